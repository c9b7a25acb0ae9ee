"""Training progress on the run: the secondary status a user watches, never moved backwards by late events."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest

from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import StaleEvent
from chalicelib.domain.event_models import TrainingJobStateChange, parse_detail
from chalicelib.domain.models import Run, Stage, Status
from chalicelib.flows.outbox import is_transition
from chalicelib.flows.training_progress import describe, record
from sagedock.eventshapes import SAMPLE_START, epoch_millis, training_progress, training_state
from sagedock.eventshapes import TRAINING_STEPS as STEPS
from tests.unit.test_statemachine import DIGEST, REPO, RUN_ID, T0, training

JOB = f"{RUN_ID}-t1"
T1 = "2026-11-21T12:05:00.000Z"
MS = epoch_millis(SAMPLE_START) + 60_000  # the job started a minute after it was created


def detail(upto: int, *, job: str = JOB) -> dict[str, Any]:
    """The detail SageMaker sends when the job enters STEPS[upto]."""
    fields: dict[str, Any] = training_state(job, "InProgress", tags={"sagedock:run-id": RUN_ID})["detail"]
    fields["AlgorithmSpecification"]["TrainingImage"] = f"{REPO}@{DIGEST}"
    fields["CreationTime"] = MS - 5000
    fields.update(training_progress(upto, MS))
    return fields


def event(upto: int, **kwargs: Any) -> TrainingJobStateChange:
    return parse_detail(TrainingJobStateChange, detail(upto, **kwargs))


def apply(run: Run, upto: int) -> Run:
    described = describe(event(upto))
    assert described is not None
    progress, at = described
    return record(run, job=JOB, progress=progress, at=at, now=T1)


def test_describe_names_the_secondary_status_its_message_and_when_it_began() -> None:
    assert describe(event(1)) == ("Downloading: Downloading input data", "2025-11-21T12:01:01.000Z")
    assert describe(event(0)) == ("Starting: Launching requested ML instances", "2025-11-21T12:01:00.000Z")


def test_describe_without_transitions_uses_the_status_alone_and_the_last_modified_time() -> None:
    raw = detail(2)
    raw["SecondaryStatusTransitions"] = []
    assert describe(parse_detail(TrainingJobStateChange, raw)) == ("Training", "2025-11-21T12:01:02.000Z")
    del raw["LastModifiedTime"]
    assert describe(parse_detail(TrainingJobStateChange, raw)) is None  # cannot be ordered: not recorded
    raw["SecondaryStatus"] = None
    assert describe(parse_detail(TrainingJobStateChange, raw)) is None


def test_progress_is_recorded_on_the_open_train_stage_and_is_not_a_transition() -> None:
    before = training()
    after = apply(before, 1)
    entry = after.stages[-1]
    assert (entry.stage, entry.status, entry.ended_at) == (Stage.TRAIN, sm.IN_PROGRESS, None)
    assert entry.progress == "Downloading: Downloading input data"
    assert entry.progress_at == "2025-11-21T12:01:01.000Z"
    assert after.status == Status.TRAINING and after.stages[:-1] == before.stages[:-1]
    assert after.updated_at == T1
    assert not is_transition(before, after)  # no Run State Change for a progress update
    assert after.public()["stages"][-1]["progress"] == "Downloading: Downloading input data"


def test_a_newer_step_replaces_an_older_one() -> None:
    assert apply(apply(training(), 1), 2).stages[-1].progress == (
        "Training: Training image download completed. Training in progress."
    )


def test_a_late_older_step_and_a_replay_are_stale() -> None:
    run = apply(training(), 2)
    with pytest.raises(StaleEvent):
        apply(run, 1)  # Downloading arrives after Training
    with pytest.raises(StaleEvent):
        apply(run, 2)  # the same event again


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(STEPS)))))
def test_any_delivery_order_ends_on_the_newest_step(order: tuple[int, ...]) -> None:
    run = training()
    for upto in order:
        with contextlib.suppress(StaleEvent):
            run = apply(run, upto)
    assert run.stages[-1].progress == "Uploading: Uploading generated training model"


def test_only_a_training_run_of_that_job_takes_progress() -> None:
    with pytest.raises(StaleEvent):
        record(training(), job=f"{RUN_ID}-t0", progress="Training", at="2025-11-21T12:01:02.000Z", now=T1)
    deploying = sm.start_deploy(
        training(),
        model_artifact="s3://a/model.tar.gz",
        model_name=RUN_ID,
        endpoint_config_name=RUN_ID,
        endpoint_name="iris",
        now=T0,
    )
    with pytest.raises(StaleEvent):
        record(deploying, job=JOB, progress="Uploading", at="2025-11-21T12:01:03.000Z", now=T1)


def test_the_closed_train_stage_keeps_its_last_progress() -> None:
    deploying = sm.start_deploy(
        apply(training(), 3),
        model_artifact="s3://a/model.tar.gz",
        model_name=RUN_ID,
        endpoint_config_name=RUN_ID,
        endpoint_name="iris",
        now=T0,
    )
    train = next(s for s in deploying.stages if s.stage == Stage.TRAIN)
    assert train.ended_at == T0 and train.progress == "Uploading: Uploading generated training model"


def test_the_local_clouds_in_progress_event_reaches_the_training_handler_as_progress() -> None:
    # Given the local training executor's event for a job entering Downloading (DescribeTrainingJob's answer)
    from datetime import UTC, datetime

    import app
    from sagedock import eventshapes as events
    from sagedock.local.router import Router

    started = datetime(2025, 11, 21, 12, 1, 0, tzinfo=UTC)
    downloading = datetime(2025, 11, 21, 12, 1, 1, tzinfo=UTC)
    description = {
        "TrainingJobName": JOB,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}",
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": "Downloading",
        "CreationTime": started,
        "LastModifiedTime": downloading,
        "SecondaryStatusTransitions": [
            {
                "Status": "Starting",
                "StartTime": started,
                "EndTime": downloading,
                "StatusMessage": "Preparing",
            },
            {"Status": "Downloading", "StartTime": downloading, "StatusMessage": "Downloading input data"},
        ],
        "Tags": [{"Key": "sagedock:run-id", "Value": RUN_ID}],
    }
    event = events.training_job_state_change(description)
    # Then the app's rule routes it to the training handler, which reads it as progress
    router = Router(app.app, workers=1)
    try:
        assert router.matching(event) == ["training_state_changed"]
    finally:
        router.close()
    parsed = parse_detail(TrainingJobStateChange, event["detail"])
    assert describe(parsed) == ("Downloading: Downloading input data", "2025-11-21T12:01:01.000Z")
