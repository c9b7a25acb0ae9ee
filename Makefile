# The two commands a new user needs: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov pins versions that clash with requirements-dev.txt: it gets an environment of its own.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# so does samtranslator (it pins pydantic ~=2.13): infra/expand.py runs in this one.
SAM_VENV := $(VENV)/sam
SAM_STAMP := $(SAM_VENV)/.installed

.PHONY: demo test lint format unit integration e2e container bench package deploy destroy clean dockerfile-corpus base-image

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.2.1
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Process mode by default: fast, and it needs no engine. `make demo DEMO_ENGINE=auto` for container mode.
DEMO_ENGINE ?= process
demo: $(STAMP)
	$(BIN)/sagedock demo --engine $(DEMO_ENGINE)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip==26.2.1
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

$(SAM_STAMP): requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip==26.2.1
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	@touch $(SAM_STAMP)

# Two test workers (pytest-xdist), a test file each at a time: a file's tests share its module fixtures (a
# local cloud, a built image). tests/conftest.py puts the longest files first; --no-loadscope-reorder keeps
# that order (xdist would hand out the files with the most tests first). `make test TEST_WORKERS=0`: serial.
TEST_WORKERS ?= 2
test: lint $(STAMP) $(CHECKOV_STAMP) $(SAM_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

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

# The base image container mode's Dockerfiles start FROM (python:3.11-slim-bookworm), built with mmdebstrap
# and cached in /var/cache/sagedock (SAGEDOCK_CACHE_DIR); docs/local-cloud.md.
base-image: $(STAMP)
	$(BIN)/python -m sagedock.local.baseimage

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-bench.txt
	$(BIN)/python bench/run_all.py

# BuildKit's own reading of tests/unit/dockerfiles (the reference of test_dockerfile_corpus.py), with its
# Go parser from the `dockerfile` package, in a venv of its own (wheels for x86-64 Linux, macOS, Windows).
dockerfile-corpus: $(STAMP)
	@test -x $(VENV)/buildkit/bin/python || $(PYTHON) -m venv $(VENV)/buildkit
	$(VENV)/buildkit/bin/python -m pip install --quiet -r tests/unit/dockerfiles/requirements.txt
	$(VENV)/buildkit/bin/python tests/unit/dockerfiles/buildkit_view.py

# Deployment (docs/deploy.md). `package` is offline; `deploy` and `destroy` use your AWS credentials.
#   make deploy STAGE=prod PARAMS="AlarmTopicArn=arn:aws:sns:... PrivateRegistryHost=..." [CODE_BUCKET=...]
#   make destroy STAGE=dev [YES=1]
STAGE ?= dev
PARAMS ?=
CODE_BUCKET ?=
package: $(STAMP)
	$(BIN)/python infra/package.py $(STAGE) dist/$(STAGE)
deploy: package
	$(BIN)/python -m infra.deploy deploy $(STAGE) --dist dist/$(STAGE) $(if $(CODE_BUCKET),--code-bucket $(CODE_BUCKET)) $(PARAMS)
destroy: $(STAMP)
	$(BIN)/python -m infra.deploy destroy $(STAGE) $(if $(YES),--yes)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
