"""The local cloud carries sagedock's events: run events reach `sagedock events`, retrain requests the app."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from localcloud import ROOT, LocalCloudProcess, wait_until

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def demo_run(local_cloud: LocalCloudProcess) -> dict[str, Any]:
    """The sample submitted and followed to its endpoint with the CLI."""
    submitted = local_cloud.cli(
        "submit", str(ROOT / "container"), "--project", "demo", "--follow", timeout=300
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    run_id = re.search(r"^run (\S+)$", submitted.stdout, re.M)
    assert run_id, submitted.stdout
    return local_cloud.api.get_run(run_id.group(1))


def received_events(local_cloud: LocalCloudProcess, run_id: str, last: str) -> list[dict[str, Any]]:
    """What `sagedock events --output json` prints for one run, read until its `last` status is in."""
    seen: list[dict[str, Any]] = []

    def read() -> bool:
        out = local_cloud.cli("events", "--project", "demo", "--output", "json")
        assert out.returncode == 0, out.stderr
        seen.extend(e for e in map(json.loads, out.stdout.splitlines()) if e["detail"]["run_id"] == run_id)
        return any(e["detail"]["status"] == last for e in seen)

    wait_until(read, timeout=30, what=f"the {last} event of {run_id}")
    return sorted(seen, key=lambda e: e["detail"]["sequence"])


def test_sagedock_events_prints_each_transition_of_a_run_once(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    events = received_events(local_cloud, demo_run["run_id"], "SUCCEEDED")
    assert [e["detail"]["status"] for e in events] == [
        "RECEIVED",
        "BUILDING",
        "TRAINING",
        "DEPLOYING",
        "SUCCEEDED",
    ]
    assert all(e["source"] == "sagedock" and e["detail-type"] == "Run State Change" for e in events)
    assert events[2]["detail"]["image"]["digest"] == demo_run["image"]["digest"]


def test_a_retrain_request_on_the_bus_trains_the_same_image_again(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    detail = {"project": "demo", "hyperparameters": {"max_leaf_nodes": 3}, "deploy": False}
    put = local_cloud.aws("events").put_events(
        Entries=[
            {"Source": "sagedock.requests", "DetailType": "Retrain Request", "Detail": json.dumps(detail)}
        ]
    )
    assert put["FailedEntryCount"] == 0

    def retrained() -> str | None:
        for record in local_cloud.api.iter_runs(project="demo"):
            if record.get("retrained_from") == demo_run["run_id"]:
                return str(record["run_id"])
        return None

    run_id = wait_until(retrained, timeout=30, what="the retrain's run")
    run = local_cloud.wait_run(run_id, RUN_TIMEOUT)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["image"] == demo_run["image"] and run["build_id"] is None
    job = local_cloud.aws("sagemaker").describe_training_job(TrainingJobName=run["training_job_name"])
    assert job["HyperParameters"]["max_leaf_nodes"] == "3"
    assert [s["stage"] for s in run["stages"]] == ["validate", "train", "deploy"]
    assert run["stages"][-1]["status"] == "SKIPPED"


def test_sagedock_retrain_follows_the_new_run(
    local_cloud: LocalCloudProcess, demo_run: dict[str, Any]
) -> None:
    out = local_cloud.cli(
        "retrain", "demo", "--hyperparameter", "max_leaf_nodes=4", "--no-deploy", "--follow", timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^run demo-[0-9a-f]{12} TRAINING: retrain of demo-[0-9a-f]{12}$", out.stdout, re.M), (
        out.stdout
    )
    assert "run SUCCEEDED" in out.stdout


def test_sagedock_retrain_of_an_unknown_project_is_a_usage_error(local_cloud: LocalCloudProcess) -> None:
    out = local_cloud.cli("retrain", "nosuch")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no project nosuch" in out.stderr
