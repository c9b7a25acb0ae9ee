"""Training progress through the real app and moto: recorded on the run, replay safe, never a run event."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto_cloud import REGION, Cloud
from test_pipeline import trained
from test_run_events import Bus

from sagedock.eventqueue import subscribe
from sagedock.eventshapes import SAMPLE_START, epoch_millis, training_progress, training_state


@pytest.fixture
def bus(cloud: Cloud) -> Bus:
    """The run events a subscriber receives (test_run_events' queue on the bus)."""
    sqs = boto3.client("sqs", region_name=REGION)
    return Bus(sqs, subscribe(boto3.client("events", region_name=REGION), sqs))


def in_progress(job: str, run_id: str, upto: int) -> dict[str, Any]:
    """The InProgress event SageMaker sends when the job enters STEPS[upto]."""
    event = training_state(job, "InProgress", tags={"sagedock:run-id": run_id})
    event["detail"].update(training_progress(upto, epoch_millis(SAMPLE_START) + 60_000))
    return event


def train_stage(cloud: Cloud, run_id: str) -> dict[str, Any]:
    run = cloud.run(run_id)
    assert run["status"] == "TRAINING"
    entry: dict[str, Any] = run["stages"][-1]
    assert entry["stage"] == "train" and entry["ended_at"] is None
    return entry


def test_in_progress_events_record_progress_without_run_events(cloud: Cloud, bus: Bus) -> None:
    run_id, job = trained(cloud)
    bus.events()  # the transitions up to TRAINING
    assert train_stage(cloud, run_id)["progress"] is None

    outcome = cloud.send("training_state_changed", in_progress(job, run_id, 1))
    assert outcome["action"] == "progress"
    entry = train_stage(cloud, run_id)
    assert entry["progress"] == "Downloading: Downloading input data"
    assert entry["progress_at"] == "2025-11-21T12:01:01.000Z"

    cloud.send("training_state_changed", in_progress(job, run_id, 2))
    cloud.send("training_state_changed", in_progress(job, run_id, 0))  # late: older than what is recorded
    cloud.send("training_state_changed", in_progress(job, run_id, 2))  # replayed
    assert train_stage(cloud, run_id)["progress"] == (
        "Training: Training image download completed. Training in progress."
    )
    assert bus.events() == []  # progress is not a Run State Change


def test_the_last_progress_stays_on_the_closed_train_stage(cloud: Cloud, bus: Bus) -> None:
    run_id, job = trained(cloud)
    cloud.send("training_state_changed", in_progress(job, run_id, 2))
    cloud.send("training_state_changed", training_state(job, "Completed", tags={"sagedock:run-id": run_id}))
    run = cloud.run(run_id)
    assert run["status"] == "DEPLOYING"
    train = next(s for s in run["stages"] if s["stage"] == "train")
    assert train["ended_at"] is not None and train["progress"].startswith("Training: ")
    # a progress event arriving after training ended changes nothing
    assert cloud.send("training_state_changed", in_progress(job, run_id, 1))["action"] == "ignored"
    assert cloud.run(run_id)["stages"] == run["stages"]
    statuses = [e["detail"]["status"] for e in bus.events()]
    assert statuses == ["RECEIVED", "BUILDING", "TRAINING", "DEPLOYING"]


def test_progress_of_another_job_is_ignored(cloud: Cloud) -> None:
    run_id, job = trained(cloud)
    outcome = cloud.send("training_state_changed", in_progress(f"{job}x", run_id, 1))
    assert outcome["action"] == "ignored"
    assert train_stage(cloud, run_id)["progress"] is None
