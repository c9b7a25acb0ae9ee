"""Writes buildkit.json: how BuildKit's own parser reads each Dockerfile of the corpus and of the repository.

The reference of tests/unit/test_dockerfile_corpus.py. Run by `make dockerfile-corpus`, which installs
the `dockerfile` package (BuildKit's Go parser, built as wheels for x86-64 Linux, macOS and Windows only)
in a venv of its own; sagedock itself does not depend on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import dockerfile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def corpus() -> list[Path]:
    """The Dockerfiles read: this folder's, the sample container's and the test bundles'."""
    return [
        *sorted(HERE.glob("*.Dockerfile")),
        ROOT / "container" / "Dockerfile",
        *sorted((ROOT / "tests").glob("e2e/bundles/*/Dockerfile")),
    ]


def view(text: str) -> list[list[object]]:
    """[line, INSTRUCTION, arguments as written (continuations joined), here-documents] per instruction."""
    rows: list[list[object]] = []
    for command in dockerfile.parse_string(text):
        args = "".join(command.original.split("\n", 1)[0].split(None, 1)[1:]).strip()
        rows.append([command.start_line, command.cmd.upper(), args, len(command.heredocs)])
    return rows


def main() -> None:
    views = {str(path.relative_to(ROOT)): view(path.read_bytes().decode()) for path in corpus()}
    files = [
        f"  {json.dumps(name)}: [\n" + ",\n".join(f"    {json.dumps(row)}" for row in rows) + "\n  ]"
        for name, rows in views.items()
    ]
    (HERE / "buildkit.json").write_text("{\n" + ",\n".join(files) + "\n}\n")  # a row a line


if __name__ == "__main__":
    main()
