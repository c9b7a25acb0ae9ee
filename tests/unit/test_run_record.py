"""The run record carries a typed Manifest, and the runs table's items stay what they were: a record as stored
today reads back and writes out the same bytes, and a record an older version wrote (keys missing, serverless
next to its instance defaults) reads back with the defaults filled in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.adapters.instance_types import instance_types
from chalicelib.adapters.run_store import _run, run_item
from chalicelib.domain import specs
from chalicelib.domain.errors import ManifestInvalid
from chalicelib.domain.manifest import Manifest, default_manifest, parse_manifest, stored_manifest
from chalicelib.domain.models import Run
from chalicelib.settings import load_settings
from tests.run_records import (
    IMAGE_URI,
    MANIFEST_2026_11_21,
    MANIFEST_TODAY,
    RECORD_TODAY,
    item_of,
    with_manifest,
)
from tests.settings_env import REQUIRED

ROOT = Path(__file__).resolve().parents[2]

# --- a record as stored today ---------------------------------------------------------------------------


def test_a_record_as_stored_today_reads_back_typed_and_writes_the_same_item() -> None:
    # Given the item of a run as the runs table holds it today
    item = item_of(RECORD_TODAY)

    # When it is read
    run = _run(item)

    # Then the run carries the typed manifest, every value as stored
    assert isinstance(run.manifest, Manifest)
    assert run.manifest.train.instance_type == "ml.m5.xlarge"
    assert run.manifest.train.hyperparameters == {
        "max_leaf_nodes": 5,
        "criterion": "gini",
        "rate": 0.25,
        "prune": True,
    }
    assert run.manifest.deploy.update is not None and run.manifest.deploy.update.rollback_alarms == [
        "iris-5xx"
    ]
    assert run.manifest.deploy.autoscaling is not None and run.manifest.deploy.autoscaling.max_capacity == 4
    assert run.version == 3
    # And written back it is the very same item: the manifest is still a JSON map inside the record
    assert run_item(run) == item
    assert json.loads(run_item(run)["record"]["S"])["manifest"] == MANIFEST_TODAY


def test_the_public_record_shows_the_manifest_as_it_is_stored() -> None:
    run = _run(item_of(RECORD_TODAY))
    public = run.public()
    assert public["manifest"] == MANIFEST_TODAY
    assert "version" not in public and "outbox" not in public and "events_recorded" not in public


def test_a_run_without_a_manifest_stays_without_one() -> None:
    # Given a run recorded before its build started (or failed at validate)
    run = _run(item_of(with_manifest(None)))

    # Then its record says null, and what it follows is the project's defaults
    assert run.manifest is None
    assert json.loads(run_item(run)["record"]["S"])["manifest"] is None
    assert run.effective_manifest() == parse_manifest(None, project="iris")


# --- records older versions wrote -----------------------------------------------------------------------


def test_an_older_record_missing_keys_loads_with_the_defaults() -> None:
    # Given a record written before the scan gate, endpoint claims, updates and autoscaling existed
    run = _run(item_of(with_manifest(MANIFEST_2026_11_21)))

    # Then the keys it lacks take the manifest's defaults
    assert run.manifest is not None
    assert run.manifest.build.scan is False
    assert run.manifest.build.scan_fail_severity == "HIGH"
    assert run.manifest.deploy.claim_endpoint is False
    assert run.manifest.deploy.update is None and run.manifest.deploy.autoscaling is None
    # And what it stored is kept
    assert run.manifest.train.hyperparameters == {"max_leaf_nodes": 5}
    # And written back, the record holds the whole manifest, defaults filled in
    stored = json.loads(run_item(run)["record"]["S"])["manifest"]
    assert stored == parse_manifest(
        "[train]\nhyperparameters = { max_leaf_nodes = 5 }\n[train.channels]\ntrain = 'iris/train/'\n",
        project="iris",
    ).model_dump(mode="json")


@pytest.mark.parametrize(
    "manifest",
    [
        {},
        {"train": {}},
        {"deploy": {}},
        {"deploy": {"endpoint_name": None}},
        {"build": None, "train": None, "deploy": None},
    ],
    ids=["empty", "train-only", "deploy-only", "null-endpoint", "null-sections"],
)
def test_missing_sections_take_the_defaults_and_the_endpoint_is_the_projects(
    manifest: dict[str, Any],
) -> None:
    run = _run(item_of(with_manifest(manifest)))
    assert run.manifest == default_manifest("iris")
    assert run.manifest == parse_manifest(None, project="iris")


def test_an_older_serverless_record_with_its_ignored_instance_defaults_loads() -> None:
    # Given a serverless run recorded when the instance defaults were stored next to `serverless` (ignored)
    deploy = {
        **MANIFEST_2026_11_21["deploy"],
        "serverless": {"memory_size_mb": 4096, "max_concurrency": 10},
    }
    run = _run(item_of(with_manifest({**MANIFEST_2026_11_21, "deploy": deploy})))

    # Then it is the serverless endpoint it deployed, with no instance settings
    assert run.manifest is not None
    assert run.manifest.deploy.instance_type is None
    assert run.manifest.deploy.initial_instance_count is None
    (variant,) = specs.endpoint_config_request(run, config_name="c", model_name="m")["ProductionVariants"]
    assert variant == {
        "VariantName": "AllTraffic",
        "ModelName": "m",
        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10},
    }


def test_an_older_record_builds_the_requests_it_built_then() -> None:
    # Given a record written on 2026-11-21
    run = _run(item_of(with_manifest(MANIFEST_2026_11_21)))
    settings = load_settings(REQUIRED)

    # Then its training job and endpoint config are what that version asked SageMaker for
    training = specs.training_job_request(run, settings, job_name="j", image_uri=IMAGE_URI)
    assert training["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert training["HyperParameters"] == {"max_leaf_nodes": "5"}
    (variant,) = specs.endpoint_config_request(run, config_name="c", model_name="m")["ProductionVariants"]
    assert variant["InstanceType"] == "ml.t2.medium"
    assert variant["InitialInstanceCount"] == 1
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert specs.deployment_config(run) is None
    assert specs.autoscaling(run) is None


def test_a_stored_instance_type_is_not_checked_again_against_botocores_list() -> None:
    # Given a type botocore's SageMaker model does not list (one AWS added after this botocore, say)
    text = "[train]\ninstance_type = 'ml.zz9.large'\n"
    with pytest.raises(ManifestInvalid, match="not a SageMaker training instance type"):
        parse_manifest(text, project="iris", instance_types=instance_types)

    # When a record that holds it (validated by the version that wrote it) is read, then it loads
    manifest = {
        **MANIFEST_2026_11_21,
        "train": {**MANIFEST_2026_11_21["train"], "instance_type": "ml.zz9.large"},
    }
    run = _run(item_of(with_manifest(manifest)))
    assert run.manifest is not None and run.manifest.train.instance_type == "ml.zz9.large"


def test_a_stored_map_that_is_no_manifest_is_refused() -> None:
    # Given a record whose manifest holds a key no version ever wrote: reading it is an error, not a guess
    with pytest.raises(ValidationError, match="epochs"):
        _run(item_of(with_manifest({"train": {"epochs": 3}})))
    with pytest.raises(ValidationError):
        stored_manifest({"deploy": "yes"}, project="iris")


def test_runs_built_in_code_take_a_manifest_or_its_map() -> None:
    manifest = parse_manifest(None, project="iris")
    fields: dict[str, Any] = {k: v for k, v in RECORD_TODAY.items() if k != "manifest"}
    assert Run.model_validate({**fields, "manifest": manifest}).manifest is manifest
    assert Run.model_validate({**fields, "manifest": manifest.model_dump(mode="json")}).manifest == manifest


def test_reading_a_run_loads_no_aws_sdk() -> None:
    # Given a fresh interpreter (a Lambda that only reads runs, as the API's GET /runs does)
    probe = (
        "import json, sys; from tests.run_records import RECORD_TODAY; "
        "from chalicelib.domain.models import Run; "
        "run = Run.model_validate(json.loads(json.dumps(RECORD_TODAY))); "
        "assert run.manifest is not None and run.manifest.train.instance_type == 'ml.m5.xlarge'; "
        "print(sorted(m for m in ('boto3', 'botocore', 'tomllib') if m in sys.modules))"
    )
    # When a record is read, then neither botocore's instance lists nor a TOML parser came with it
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"
