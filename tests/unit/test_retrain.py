"""A retrain's manifest: the last successful run's, with the request's overrides, by the manifest's rules."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.manifest import parse_manifest
from chalicelib.domain.models import Run, SourceRef, Status
from chalicelib.flows.retrain import RetrainRequest
from chalicelib.flows.retrain import validated_manifest as typed_manifest

MANIFEST = b"""
[train]
hyperparameters = { max_leaf_nodes = 5, criterion = "gini" }
[train.channels]
train = "iris/train/"
"""


def parent(manifest: dict[str, Any] | None) -> Run:
    return Run(
        run_id="iris-3f2a9c0d41b7",
        project="iris",
        status=Status.SUCCEEDED,
        source=SourceRef(bucket="b", key="bundles/iris/v1.zip"),
        created_at="2026-11-21T12:00:00.000Z",
        updated_at="2026-11-21T12:00:00.000Z",
        manifest=manifest,
    )


def validated_manifest(parent: Run, request: RetrainRequest) -> dict[str, Any]:
    """The retrain's manifest as its run stores it (and GET /runs/{id} shows it)."""
    return typed_manifest(parent, request).model_dump(mode="json")


def stored() -> dict[str, Any]:
    return parse_manifest(MANIFEST, project="iris").model_dump(mode="json")


def test_overrides_are_merged_over_the_parents_manifest() -> None:
    request = RetrainRequest(
        project="iris",
        hyperparameters={"max_leaf_nodes": 8},
        channels={"extra": "s3://elsewhere/y/"},
        deploy=False,
    )
    manifest = validated_manifest(parent(stored()), request)
    assert manifest["train"]["hyperparameters"] == {"max_leaf_nodes": 8, "criterion": "gini"}
    assert manifest["train"]["channels"] == {"train": "iris/train/", "extra": "s3://elsewhere/y/"}
    assert manifest["deploy"]["enabled"] is False and manifest["deploy"]["endpoint_name"] == "iris"


def test_no_override_keeps_the_manifest_as_it_was() -> None:
    assert validated_manifest(parent(stored()), RetrainRequest(project="iris")) == stored()


def test_a_parent_without_a_manifest_retrains_with_the_defaults() -> None:
    manifest = validated_manifest(parent(None), RetrainRequest(project="iris", hyperparameters={"a": "1"}))
    assert manifest["train"]["channels"] == {"train": "iris/train/"}
    assert manifest["train"]["hyperparameters"] == {"a": "1"}


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        ({"hyperparameters": {"x": [1, 2]}}, "train.hyperparameters.x"),
        ({"hyperparameters": "max_leaf_nodes=8"}, "hyperparameters must be an object"),
        ({"channels": {"bad name!": "x/"}}, "train.channels"),
        ({"deploy": "false"}, "deploy.enabled"),
        ({"epochs": 3}, "unknown field(s) epochs"),
    ],
)
def test_a_bad_override_says_what_to_fix(fields: dict[str, Any], hint: str) -> None:
    with pytest.raises(BadRequest) as refused:
        validated_manifest(parent(stored()), RetrainRequest.model_validate({"project": "iris", **fields}))
    assert refused.value.code == "InvalidRetrainRequest"
    assert hint in refused.value.message
