"""Small pieces of the local cloud: image references, build args, bundle extraction, samples, demo rows."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from sagedock.commands.demo import parse_predictions, sample_rows
from sagedock.commands.submit import SubmitError, bundle_bytes, zip_directory
from sagedock.local.build import extract_bundle, parse_build_args
from sagedock.local.images import parse_image_uri
from sagedock.local.provision import channel_prefixes, sample_objects

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            f"123456789012.dkr.ecr.us-east-1.amazonaws.com/sagedock/demo@{DIGEST}",
            ("sagedock/demo", None, DIGEST),
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagedock/demo:demo-1",
            ("sagedock/demo", "demo-1", None),
        ),
        ("registry.example.com:5000/team/img:v1", ("team/img", "v1", None)),
        ("registry.example.com:5000/team/img", ("team/img", None, None)),
    ],
)
def test_image_references_split_into_repository_tag_and_digest(uri: str, expected: tuple[str, ...]) -> None:
    ref = parse_image_uri(uri)
    assert (ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("uri", ["no-slash", "host/repo@sha256:short", ""])
def test_what_is_not_an_image_reference_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="not an image reference"):
        parse_image_uri(uri)


def test_build_args_are_the_buildspecs_space_separated_pairs() -> None:
    assert parse_build_args("A=1 B='two words' C=") == {"A": "1", "B": "two words", "C": ""}
    assert parse_build_args("") == {}


def test_build_args_as_the_pipeline_sends_them_a_json_object() -> None:
    sent = json.dumps({"PYTHON_VERSION": "3.11", "GREETING": "hello world", "EMPTY": ""}, sort_keys=True)
    assert parse_build_args(sent) == {"PYTHON_VERSION": "3.11", "GREETING": "hello world", "EMPTY": ""}


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_bundle_is_extracted_in_place(tmp_path: Path) -> None:
    extract_bundle(_zip({"Dockerfile": b"FROM x\n", "program/train": b"#!/bin/sh\n"}), tmp_path)
    assert (tmp_path / "program" / "train").read_bytes() == b"#!/bin/sh\n"


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b"])
def test_an_entry_outside_the_bundle_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        extract_bundle(_zip({name: b"x"}), tmp_path / "dest")


def test_sample_data_goes_under_each_channel_prefix_of_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "iris.csv").write_text("a,1\n")
    (tmp_path / "sagedock.toml").write_text('[train.channels]\ntrain = "iris/train"\nother = "s3://x/y/"\n')
    assert channel_prefixes(tmp_path / "sagedock.toml") == ["iris/train/"]
    assert [key for key, _ in sample_objects(tmp_path)] == ["iris/train/iris.csv"]
    assert channel_prefixes(tmp_path / "missing.toml") == ["iris/train/"]


def test_a_directory_is_zipped_reproducibly_without_caches(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "m.pyc").write_bytes(b"\0")
    first = zip_directory(tmp_path)
    assert zip_directory(tmp_path) == first
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["Dockerfile"]


def test_a_bundle_needs_the_dockerfile_its_manifest_names(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "sagedock.toml").write_text('[build]\ndockerfile = "docker/Dockerfile.train"\n')
    with pytest.raises(SubmitError, match=r"no docker/Dockerfile\.train"):
        bundle_bytes(tmp_path)
    zipped = tmp_path / "b.zip"
    zipped.write_bytes(_zip({"train.py": b""}))
    with pytest.raises(SubmitError, match="no Dockerfile"):
        bundle_bytes(zipped)


def test_the_demo_picks_a_row_per_label_and_reads_predictions_in_any_common_shape(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,1,2\na,3,4\nb,5,6\n")
    assert sample_rows(tmp_path) == [("a", ["1", "2"]), ("b", ["5", "6"])]
    assert parse_predictions(b'{"predictions": ["a", "b"]}') == ["a", "b"]
    assert parse_predictions(b'["a", {"p": 1}]') == ["a", '{"p": 1}']
    assert parse_predictions(b"a\nb\n") == ["a", "b"]
