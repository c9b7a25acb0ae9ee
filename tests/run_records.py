"""Run records as the runs table holds them, today's and an older version's: the fixtures that show the
item format stays readable (tests/unit/test_run_record.py, tests/integration/test_api_run_records.py); and
many runs at once, for the paging test and bench (tests/integration/test_many_runs.py,
bench/bench_runs_paging.py)."""

from __future__ import annotations

import copy
import json
import zlib
from typing import Any

DIGEST = "sha256:" + "cd" * 32
IMAGE_URI = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/sagedock/dev/iris@{DIGEST}"

# A TRAINING run's record exactly as the runs table holds it today (the `record` attribute, a JSON map).
MANIFEST_TODAY: dict[str, Any] = {
    "build": {
        "dockerfile": "Dockerfile",
        "build_args": {"SKLEARN_VERSION": "1.5"},
        "scan": True,
        "scan_fail_severity": "HIGH",
    },
    "train": {
        "instance_type": "ml.m5.xlarge",
        "instance_count": 1,
        "volume_size_gb": 30,
        "max_runtime_seconds": 3600,
        "hyperparameters": {"max_leaf_nodes": 5, "criterion": "gini", "rate": 0.25, "prune": True},
        "channels": {"train": "iris/train/"},
        "enabled": True,
    },
    "deploy": {
        "enabled": True,
        "endpoint_name": "iris",
        "instance_type": "ml.t2.medium",
        "initial_instance_count": 2,
        "startup_health_timeout_seconds": 600,
        "serverless": None,
        "claim_endpoint": False,
        "update": {
            "strategy": "canary",
            "canary_percent": None,
            "canary_instances": 1,
            "linear_step_percent": None,
            "linear_step_instances": None,
            "wait_interval_seconds": 300,
            "termination_wait_seconds": 0,
            "maximum_execution_timeout_seconds": None,
            "rollback_alarms": ["iris-5xx"],
        },
        "autoscaling": {
            "min_capacity": 1,
            "max_capacity": 4,
            "target_invocations_per_instance": 70.0,
            "scale_in_cooldown_seconds": 300,
            "scale_out_cooldown_seconds": 60,
        },
        "model_data": None,
    },
}
RECORD_TODAY: dict[str, Any] = {
    "run_id": "iris-3f2a9c0d41b7",
    "project": "iris",
    "status": "TRAINING",
    "source": {
        "bucket": "sagedock-source",
        "key": "bundles/iris/v1.zip",
        "version_id": "v1",
        "etag": "e1",
        "size": 2048,
        "sha256": "ab" * 32,
    },
    "image": {
        "repository": "sagedock/dev/iris",
        "tag": "iris-3f2a9c0d41b7",
        "digest": DIGEST,
        "uri": IMAGE_URI,
    },
    "build_id": "sagedock-dev:0001",
    "training_job_name": "iris-3f2a9c0d41b7-t1",
    "model_artifact": None,
    "model_name": None,
    "endpoint_config_name": None,
    "endpoint_name": None,
    "created_at": "2026-12-01T10:00:00.000Z",
    "updated_at": "2026-12-01T10:05:00.000Z",
    "stages": [
        {
            "stage": "validate",
            "status": "SUCCEEDED",
            "started_at": "2026-12-01T10:00:00.000Z",
            "ended_at": "2026-12-01T10:00:01.000Z",
            "detail": None,
            "progress": None,
            "progress_at": None,
        },
        {
            "stage": "train",
            "status": "IN_PROGRESS",
            "started_at": "2026-12-01T10:04:00.000Z",
            "ended_at": None,
            "detail": "training job iris-3f2a9c0d41b7-t1",
            "progress": None,
            "progress_at": None,
        },
    ],
    "error": None,
    "attempt": 1,
    "manifest": MANIFEST_TODAY,
    "retrained_from": None,
    "events_recorded": 0,
    "outbox": [],
    "scan": None,
}

# The manifest of a run recorded on 2026-11-21, before [build] scan, deploy.claim_endpoint, [deploy.update]
# and [deploy.autoscaling] existed.
MANIFEST_2026_11_21: dict[str, Any] = {
    "build": {"dockerfile": "Dockerfile", "build_args": {}},
    "train": {
        "instance_type": "ml.m5.large",
        "instance_count": 1,
        "volume_size_gb": 30,
        "max_runtime_seconds": 3600,
        "hyperparameters": {"max_leaf_nodes": 5},
        "channels": {"train": "iris/train/"},
    },
    "deploy": {
        "enabled": True,
        "endpoint_name": "iris",
        "instance_type": "ml.t2.medium",
        "initial_instance_count": 1,
        "startup_health_timeout_seconds": 600,
        "serverless": None,
    },
}


def item_of(record: dict[str, Any], version: int = 3) -> dict[str, Any]:
    """A runs table item as DynamoDB returns it for this record."""
    return {
        "run_id": {"S": record["run_id"]},
        # run_store.shard_of, spelt out: importing the adapter would load the AWS SDK
        "shard": {"S": f"run#{zlib.crc32(record['run_id'].encode()) % 8}"},
        "project": {"S": record["project"]},
        "status": {"S": record["status"]},
        "created_at": {"S": record["created_at"]},
        "updated_at": {"S": record["updated_at"]},
        "version": {"N": str(version)},
        "record": {"S": json.dumps(record, separators=(",", ":"))},
    }


def with_manifest(manifest: dict[str, Any] | None) -> dict[str, Any]:
    return {**copy.deepcopy(RECORD_TODAY), "manifest": copy.deepcopy(manifest)}


def many_runs(count: int, projects: int, *, per_second: int = 1, status: Any = None) -> list[Any]:
    """`count` runs over `projects` projects (p00, p01, ...), `per_second` of them created in each second
    from 2026-01-01 (above 1, ties in created_at, as in AWS); all in `status`, or, with none given, every
    seventh FAILED and the others SUCCEEDED."""
    from chalicelib.domain import statemachine as sm
    from chalicelib.domain.models import Run, SourceRef, Status

    base = sm.new_run(
        Run(
            run_id="p00-000000000000",
            project="p00",
            status=Status.RECEIVED,
            source=SourceRef(bucket="b", key="bundles/p00/0.zip"),
            created_at="2026-01-01T00:00:00.000Z",
            updated_at="2026-01-01T00:00:00.000Z",
        )
    )
    runs = []
    for index in range(count):
        project = f"p{index % projects:02d}"
        second = index // per_second
        day, hour, minute = 1 + second // 86400, second // 3600 % 24, second // 60 % 60
        stamp = f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:{second % 60:02d}.000Z"
        fallback = Status.FAILED if index % 7 == 0 else Status.SUCCEEDED
        runs.append(
            base.model_copy(
                update={
                    "run_id": f"{project}-{index:012x}",
                    "project": project,
                    "status": status or fallback,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        )
    return runs
