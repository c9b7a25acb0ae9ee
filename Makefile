# The two commands a new user needs: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format unit integration e2e container bench package clean dockerfile-corpus

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.2.1
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sagedock demo

test: lint $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: $(STAMP)
	$(BIN)/pytest tests/unit
integration: $(STAMP)
	$(BIN)/pytest tests/integration
e2e: $(STAMP)
	$(BIN)/pytest tests/e2e
container: $(STAMP)
	$(BIN)/pytest tests/container

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python bench/run_all.py

# BuildKit's own reading of tests/unit/dockerfiles (the reference of test_dockerfile_corpus.py), with its
# Go parser from the `dockerfile` package, in a venv of its own (wheels for x86-64 Linux, macOS, Windows).
dockerfile-corpus: $(STAMP)
	@test -x $(VENV)/buildkit/bin/python || $(PYTHON) -m venv $(VENV)/buildkit
	$(VENV)/buildkit/bin/python -m pip install --quiet -r tests/unit/dockerfiles/requirements.txt
	$(VENV)/buildkit/bin/python tests/unit/dockerfiles/buildkit_view.py

STAGE ?= dev
package: $(STAMP)
	$(BIN)/python infra/package.py $(STAGE) out/$(STAGE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
