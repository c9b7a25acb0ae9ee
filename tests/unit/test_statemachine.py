"""The run state machine: the timeline a user reads, forward-only statuses, failures and retries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from chalicelib.domain import statemachine as sm
from chalicelib.domain.errors import Conflict, StaleEvent
from chalicelib.domain.models import ImageRef, Run, RunError, SourceRef, Stage, Status

RUN_ID = "iris-0123456789ab"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagedock/iris"
DIGEST = "sha256:" + "ab" * 32
ARTIFACT = f"s3://sagedock-artifacts/iris/{RUN_ID}/{RUN_ID}-t1/output/model.tar.gz"
T0, T1, T2, T3, T4, T5 = (f"2026-11-21T12:00:0{i}.000Z" for i in range(6))


# --- runs at each point of the pipeline ---------------------------------------------------------------


def received() -> Run:
    return sm.new_run(
        Run(
            run_id=RUN_ID,
            project="iris",
            status=Status.RECEIVED,
            source=SourceRef(bucket="sagedock-source", key="bundles/iris/v1.zip", version_id="v1"),
            created_at=T0,
            updated_at=T0,
        )
    )


def building() -> Run:
    image = ImageRef(repository=REPO, tag=RUN_ID)
    started = sm.start_build(received(), image=image, now=T1)
    return sm.record_build(started, build_id="sagedock-build:b1", now=T1)


def training() -> Run:
    return sm.start_training(
        building(), digest=DIGEST, uri=f"{REPO}@{DIGEST}", job_name=f"{RUN_ID}-t1", now=T2
    )


def deploying() -> Run:
    return sm.start_deploy(
        training(),
        model_artifact=ARTIFACT,
        model_name=RUN_ID,
        endpoint_config_name=RUN_ID,
        endpoint_name="iris",
        now=T3,
    )


def succeeded() -> Run:
    return sm.succeed(deploying(), now=T4)


def failed_at(stage: Stage) -> Run:
    before = {Stage.VALIDATE: received, Stage.BUILD: building, Stage.TRAIN: training, Stage.DEPLOY: deploying}
    return sm.fail(before[stage](), stage=stage, code="Boom", message="it broke", now=T4)


RUNS: dict[str, Callable[[], Run]] = {
    "RECEIVED": received,
    "BUILDING": building,
    "TRAINING": training,
    "DEPLOYING": deploying,
    "SUCCEEDED": succeeded,
    "FAILED@validate": lambda: failed_at(Stage.VALIDATE),
    "FAILED@build": lambda: failed_at(Stage.BUILD),
    "FAILED@train": lambda: failed_at(Stage.TRAIN),
    "FAILED@deploy": lambda: failed_at(Stage.DEPLOY),
}


def timeline(run: Run) -> list[tuple[str, str, str, str | None]]:
    return [(s.stage.value, s.status, s.started_at, s.ended_at) for s in run.stages]


# --- the happy sequence -------------------------------------------------------------------------------


def test_new_run_is_received_with_validate_open() -> None:
    run = received()

    assert run.status == Status.RECEIVED
    assert timeline(run) == [("validate", "IN_PROGRESS", T0, None)]
    assert run.error is None and run.attempt == 1


def test_happy_sequence_builds_the_timeline_of_the_design() -> None:
    # Given a run taken through every stage
    run = succeeded()

    # Then it SUCCEEDED, each stage ended when the next began, and the provenance chain is recorded
    assert run.status == Status.SUCCEEDED
    assert timeline(run) == [
        ("validate", "SUCCEEDED", T0, T1),
        ("build", "SUCCEEDED", T1, T2),
        ("train", "SUCCEEDED", T2, T3),
        ("deploy", "SUCCEEDED", T3, T4),
    ]
    assert run.updated_at == T4 and run.created_at == T0
    assert run.build_id == "sagedock-build:b1"
    assert run.image == ImageRef(repository=REPO, tag=RUN_ID, digest=DIGEST, uri=f"{REPO}@{DIGEST}")
    assert run.training_job_name == f"{RUN_ID}-t1"
    assert run.model_artifact == ARTIFACT
    assert (run.model_name, run.endpoint_config_name, run.endpoint_name) == (RUN_ID, RUN_ID, "iris")
    assert run.error is None


@pytest.mark.parametrize(
    ("make", "status", "stage", "detail"),
    [
        (building, Status.BUILDING, "build", "build sagedock-build:b1"),
        (training, Status.TRAINING, "train", f"training job {RUN_ID}-t1"),
        (deploying, Status.DEPLOYING, "deploy", f"endpoint iris with config {RUN_ID}"),
    ],
)
def test_each_start_opens_its_stage_with_a_detail(
    make: Callable[[], Run], status: Status, stage: str, detail: str
) -> None:
    run = make()

    assert run.status == status
    current = run.stages[-1]
    assert (current.stage.value, current.status, current.ended_at) == (stage, "IN_PROGRESS", None)
    assert current.detail == detail
    assert all(s.status == "SUCCEEDED" and s.ended_at for s in run.stages[:-1])


def test_training_keeps_the_tag_and_adds_the_digest() -> None:
    run = training()
    assert run.image is not None
    assert run.image.tag == RUN_ID
    assert run.image.uri == f"{REPO}@{DIGEST}"


def test_succeed_without_deploy_skips_the_deploy_stage() -> None:
    # Given a trained run whose manifest disables deployment
    run = sm.succeed_without_deploy(training(), model_artifact=ARTIFACT, now=T3)

    # Then it SUCCEEDED with the artifact, and the timeline says deploy was skipped and why
    assert run.status == Status.SUCCEEDED
    assert run.model_artifact == ARTIFACT
    assert timeline(run) == [
        ("validate", "SUCCEEDED", T0, T1),
        ("build", "SUCCEEDED", T1, T2),
        ("train", "SUCCEEDED", T2, T3),
        ("deploy", "SKIPPED", T3, T3),
    ]
    assert run.stages[-1].detail == "deploy.enabled = false"
    assert run.endpoint_name is None


# --- failures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", list(Stage))
def test_fail_closes_the_current_stage_and_records_the_error(stage: Stage) -> None:
    run = failed_at(stage)

    assert run.status == Status.FAILED
    assert run.error == RunError(stage=stage, code="Boom", message="it broke")
    assert run.updated_at == T4
    last = run.stages[-1]
    assert (last.stage, last.status, last.ended_at) == (stage, "FAILED", T4)
    assert all(s.ended_at for s in run.stages)


@pytest.mark.parametrize(
    ("make", "stage"),
    [
        (building, Stage.VALIDATE),
        (training, Stage.VALIDATE),
        (training, Stage.BUILD),  # a late build failure after the image was pushed
        (deploying, Stage.BUILD),
        (deploying, Stage.TRAIN),
    ],
)
def test_failure_of_a_stage_the_run_has_passed_is_stale(make: Callable[[], Run], stage: Stage) -> None:
    run = make()
    with pytest.raises(StaleEvent):
        sm.fail(run, stage=stage, code="Late", message="late", now=T5)


@pytest.mark.parametrize("state", [name for name in RUNS if name.startswith(("SUCCEEDED", "FAILED"))])
@pytest.mark.parametrize("stage", list(Stage))
def test_fail_on_a_terminal_run_is_stale(state: str, stage: Stage) -> None:
    run = RUNS[state]()
    with pytest.raises(StaleEvent):
        sm.fail(run, stage=stage, code="Late", message="late", now=T5)


@pytest.mark.parametrize(
    ("make", "stage", "passed"),
    [
        (received, Stage.BUILD, "validate"),  # StartBuild refused
        (building, Stage.TRAIN, "build"),  # CreateTrainingJob refused after the push
        (training, Stage.DEPLOY, "train"),  # CreateModel refused after training completed
    ],
)
def test_timeline_names_the_failed_stage_when_it_had_not_opened_yet(
    make: Callable[[], Run], stage: Stage, passed: str
) -> None:
    # Given a stage that finished and the next stage refused before its status was recorded
    run = sm.fail(make(), stage=stage, code="ValidationException", message="refused", now=T5)

    # Then the timeline agrees with the error: the finished stage succeeded, the refused one failed
    assert run.error is not None and run.error.stage == stage
    statuses = {s.stage.value: s.status for s in run.stages}
    assert statuses[passed] == "SUCCEEDED"
    assert statuses.get(stage.value) == "FAILED"


# --- forward only: every status x every transition -----------------------------------------------------


def _transitions() -> dict[str, Callable[[Run], Run]]:
    image = ImageRef(repository=REPO, tag=RUN_ID)
    return {
        "start_build": lambda r: sm.start_build(r, image=image, now=T5),
        "start_training": lambda r: sm.start_training(
            r, digest=DIGEST, uri=f"{REPO}@{DIGEST}", job_name="j", now=T5
        ),
        "start_deploy": lambda r: sm.start_deploy(
            r, model_artifact=ARTIFACT, model_name="m", endpoint_config_name="c", endpoint_name="e", now=T5
        ),
        "succeed_without_deploy": lambda r: sm.succeed_without_deploy(r, model_artifact=ARTIFACT, now=T5),
        "succeed": lambda r: sm.succeed(r, now=T5),
        **{
            f"fail@{stage.value}": (lambda r, s=stage: sm.fail(r, stage=s, code="X", message="x", now=T5))
            for stage in Stage
        },
    }


ALLOWED = {
    "start_build": {"RECEIVED"},
    "start_training": {"BUILDING"},
    "start_deploy": {"TRAINING"},
    "succeed_without_deploy": {"TRAINING"},
    "succeed": {"DEPLOYING"},
    "fail@validate": {"RECEIVED"},
    "fail@build": {"RECEIVED", "BUILDING"},
    "fail@train": {"RECEIVED", "BUILDING", "TRAINING"},
    "fail@deploy": {"RECEIVED", "BUILDING", "TRAINING", "DEPLOYING"},
}
RANK = {"RECEIVED": 0, "BUILDING": 1, "TRAINING": 2, "DEPLOYING": 3, "SUCCEEDED": 4, "FAILED": 4}


@pytest.mark.parametrize("state", list(RUNS))
@pytest.mark.parametrize("name", list(ALLOWED))
def test_each_transition_applies_only_from_its_statuses(state: str, name: str) -> None:
    # Given a run in some state, and a snapshot of it
    run = RUNS[state]()
    snapshot = run.model_copy(deep=True)
    transition = _transitions()[name]

    if state in ALLOWED[name]:
        # Then the allowed transition moves the status forward (or to FAILED) and stamps the time
        after = transition(run)
        assert RANK[after.status.value] > RANK[run.status.value]
        assert after.updated_at == T5
        assert len(after.stages) >= len(run.stages)
    else:
        # Then any other is stale: refused, and the run it was given is untouched
        with pytest.raises(StaleEvent):
            transition(run)
    assert run == snapshot


def test_runs_are_frozen() -> None:
    run = building()
    with pytest.raises(ValidationError):
        run.status = Status.SUCCEEDED  # type: ignore[misc]
    with pytest.raises(ValidationError):
        run.stages[0].status = "FAILED"  # type: ignore[misc]


def test_a_replayed_start_is_stale() -> None:
    # Given a run whose training started: when the same push arrives again, then nothing changes
    run = training()
    with pytest.raises(StaleEvent):
        sm.start_training(run, digest=DIGEST, uri=f"{REPO}@{DIGEST}", job_name=f"{RUN_ID}-t1", now=T5)


# --- retry ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["RECEIVED", "BUILDING", "TRAINING", "DEPLOYING", "SUCCEEDED"])
def test_only_failed_runs_can_be_retried(state: str) -> None:
    run = RUNS[state]()
    with pytest.raises(Conflict):
        sm.retry_stage(run)
    with pytest.raises(Conflict):
        sm.retry(run, now=T5)


def test_a_bundle_that_failed_validation_cannot_be_retried() -> None:
    run = failed_at(Stage.VALIDATE)
    with pytest.raises(Conflict) as caught:
        sm.retry(run, now=T5)
    assert "upload it again" in caught.value.message


@pytest.mark.parametrize(
    ("stage", "expected"),
    [(Stage.BUILD, Stage.BUILD), (Stage.TRAIN, Stage.TRAIN), (Stage.DEPLOY, Stage.DEPLOY)],
)
def test_retry_restarts_the_failed_stage_when_its_input_exists(stage: Stage, expected: Stage) -> None:
    assert sm.retry_stage(failed_at(stage)) == expected


def test_retry_of_training_without_an_image_digest_rebuilds() -> None:
    # Given a run that failed at train before any digest was recorded (CreateTrainingJob refused)
    run = sm.fail(building(), stage=Stage.TRAIN, code="ValidationException", message="x", now=T4)
    assert run.image is not None and run.image.digest is None

    # Then its retry starts again from the build
    assert sm.retry_stage(run) == Stage.BUILD
    assert sm.retry(run, now=T5, build_id="b2").status == Status.BUILDING


def test_retry_of_deploy_without_a_model_artifact_retrains() -> None:
    # Given a run that failed at deploy with no artifact recorded (CreateModel refused)
    run = sm.fail(training(), stage=Stage.DEPLOY, code="ValidationException", message="x", now=T4)
    assert run.model_artifact is None

    # Then its retry trains again
    assert sm.retry_stage(run) == Stage.TRAIN
    assert sm.retry(run, now=T5).status == Status.TRAINING


def test_retry_falls_back_as_far_as_the_missing_inputs_demand() -> None:
    # Given a run that failed at deploy while it had neither an artifact nor an image digest
    run = sm.fail(building(), stage=Stage.DEPLOY, code="X", message="x", now=T4)

    # Then the retry goes back to the build, the first stage whose input exists
    assert sm.retry_stage(run) == Stage.BUILD


def test_retry_is_a_new_attempt_with_the_error_cleared_and_fields_applied() -> None:
    # Given a run whose training failed
    run = failed_at(Stage.TRAIN)

    # When it is retried, with the new job the caller started
    retried = sm.retry(run, now=T5, training_job_name=f"{RUN_ID}-t2")

    # Then it is TRAINING again, as attempt 2, with the new job and no error
    assert retried.status == Status.TRAINING
    assert retried.attempt == 2
    assert retried.error is None
    assert retried.training_job_name == f"{RUN_ID}-t2"
    assert retried.updated_at == T5
    # And the timeline keeps the failure and opens the stage again
    assert timeline(retried)[:-1] == timeline(run)
    last = retried.stages[-1]
    assert (last.stage, last.status, last.started_at, last.ended_at) == (Stage.TRAIN, "IN_PROGRESS", T5, None)
    assert last.detail == "retry, attempt 2"
    # And the failed run itself is unchanged
    assert run.status == Status.FAILED and run.attempt == 1


def test_retried_run_can_go_on_to_succeed() -> None:
    run = sm.retry(failed_at(Stage.DEPLOY), now=T5)
    assert run.status == Status.DEPLOYING and run.attempt == 2
    done = sm.succeed(run, now="2026-11-21T12:00:06.000Z")
    assert done.status == Status.SUCCEEDED
    assert [s.status for s in done.stages] == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED"]


def test_retry_twice_counts_attempts() -> None:
    first = sm.retry(failed_at(Stage.BUILD), now=T5, build_id="b2")
    again = sm.fail(first, stage=Stage.BUILD, code="X", message="x", now="2026-11-21T12:00:06.000Z")
    second = sm.retry(again, now="2026-11-21T12:00:07.000Z", build_id="b3")
    assert second.attempt == 3 and second.build_id == "b3"
    assert second.stages[-1].detail == "retry, attempt 3"


# --- the build's id is recorded after the launch ----------------------------------------------------------


def test_a_started_build_is_building_before_its_id_is_known() -> None:
    # Given a valid bundle: the run is BUILDING before the build is launched
    run = sm.start_build(received(), image=ImageRef(repository=REPO, tag=RUN_ID), now=T1)
    assert run.status == Status.BUILDING and run.build_id is None
    assert run.stages[-1].detail == "starting the build"

    # When the launched build's id is recorded, the open stage names it
    recorded = sm.record_build(run, build_id="sagedock-build:b1", now=T2)
    assert recorded.build_id == "sagedock-build:b1"
    assert recorded.stages[-1].detail == "build sagedock-build:b1"
    assert recorded.status == Status.BUILDING


def test_recording_the_build_after_its_events_moved_the_run_keeps_their_status() -> None:
    # Given a run whose build events (fast, or early) already moved it on before the id was recorded
    run = sm.start_build(received(), image=ImageRef(repository=REPO, tag=RUN_ID), now=T1)
    moved = sm.start_training(run, digest=DIGEST, uri=f"{REPO}@{DIGEST}", job_name="j", now=T2)

    # When the id is recorded, it is kept for provenance and nothing else changes
    recorded = sm.record_build(moved, build_id="b1", now=T3)
    assert recorded.build_id == "b1"
    assert recorded.status == Status.TRAINING
    assert recorded.stages == moved.stages


def test_a_build_id_is_recorded_once() -> None:
    with pytest.raises(StaleEvent):
        sm.record_build(building(), build_id="another", now=T2)
