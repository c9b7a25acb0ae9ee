"""sagedock reads every Dockerfile of the corpus into the instructions BuildKit's own parser reads.

The corpus: tests/unit/dockerfiles/*.Dockerfile (shapes of public SageMaker bring-your-own-container
images), the sample container's and the test bundles' Dockerfiles. The reference, buildkit.json, is
BuildKit's reading of them (`make dockerfile-corpus` regenerates it; see buildkit_view.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagedock.dockerfile import DockerfileError, _instructions, parse_dockerfile

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "unit" / "dockerfiles"
BUILDKIT = json.loads((CORPUS / "buildkit.json").read_text())
# What sagedock's semantics refuse although BuildKit reads it: (line, the start of the message).
REFUSED = {"copy-heredoc.Dockerfile": (3, "COPY with a here-document is not supported")}


def _files() -> list[str]:
    return [
        str(path.relative_to(ROOT))
        for path in [
            *sorted(CORPUS.glob("*.Dockerfile")),
            ROOT / "container" / "Dockerfile",
            *sorted((ROOT / "tests").glob("e2e/bundles/*/Dockerfile")),
        ]
    ]


def test_the_reference_covers_the_whole_corpus() -> None:
    # A Dockerfile added without regenerating buildkit.json would not be compared at all
    assert sorted(BUILDKIT) == sorted(_files())
    assert len([name for name in BUILDKIT if name.startswith("tests/unit/dockerfiles/")]) >= 10


@pytest.mark.parametrize("name", _files())
def test_sagedock_reads_the_instructions_buildkit_reads(name: str) -> None:
    # Given a Dockerfile (bytes as written: CRLF line ends and tabs kept)
    text = (ROOT / name).read_bytes().decode()

    # When sagedock splits it into instructions
    ours = [[i.line, i.keyword, i.args, i.heredocs] for i in _instructions(text)]

    # Then lines, instructions, arguments (continuations joined) and here-documents are BuildKit's
    assert ours == BUILDKIT[name]


@pytest.mark.parametrize("name", _files())
def test_every_corpus_image_is_read_or_refused_with_its_line(name: str) -> None:
    text = (ROOT / name).read_bytes().decode()
    refused = REFUSED.get(Path(name).name)
    if refused is None:
        assert parse_dockerfile(text).stages
        return
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile(text)
    assert (caught.value.line, str(caught.value)) == (refused[0], f"line {refused[0]}: {refused[1]}")
