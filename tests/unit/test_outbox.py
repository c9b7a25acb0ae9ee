"""The outbox staging rule: one event per transition, claimed by its writer; expired claims taken over."""

from __future__ import annotations

from typing import Any

from chalicelib.domain import statemachine as sm
from chalicelib.domain.models import ImageRef, Run, SourceRef, Stage, Status
from chalicelib.flows.outbox import CLAIM_SECONDS, Outbox

NOW = "2026-11-21T12:00:00.000Z"


def outbox(now: str = NOW) -> Outbox:
    def no_bus() -> Any:
        raise AssertionError("staging never publishes")

    return Outbox(no_bus, lambda: now)


def received() -> Run:
    fresh = Run(
        run_id="iris-3f2a9c0d41b7",
        project="iris",
        status=Status.RECEIVED,
        source=SourceRef(bucket="b", key="bundles/iris/v1.zip"),
        created_at=NOW,
        updated_at=NOW,
    )
    staged, _ = outbox().stage(None, sm.new_run(fresh))
    return staged


def test_a_new_run_has_its_first_event_claimed_by_its_writer() -> None:
    run = received()
    (entry,) = run.outbox
    assert entry.sequence == 1 and run.events_recorded == 1
    assert entry.detail["status"] == "RECEIVED" and entry.detail["previous_status"] is None
    assert entry.claimed_until == "2026-11-21T12:05:00.000Z"
    assert CLAIM_SECONDS == 300


def test_each_transition_adds_one_event_and_other_writes_none() -> None:
    run = received()
    building = sm.start_build(run, image=ImageRef(repository="r/iris", tag="t"), now=NOW)
    staged, claim = outbox().stage(run, building)
    assert [e.sequence for e in staged.outbox] == [1, 2]
    assert staged.outbox[-1].claim == claim and staged.outbox[0].claim != claim  # the first is still claimed
    recorded, _ = outbox().stage(staged, sm.record_build(staged, build_id="b:1", now=NOW))
    assert recorded.outbox == staged.outbox and recorded.events_recorded == 2


def test_a_write_after_a_claim_expired_takes_the_entry_over() -> None:
    run = received()
    later = "2026-11-21T12:05:00.000Z"
    building = sm.start_build(run, image=ImageRef(repository="r/iris", tag="t"), now=later)
    staged, claim = outbox(later).stage(run, building)
    assert [e.claim for e in staged.outbox] == [claim, claim]


def test_a_failure_is_an_event_with_its_error() -> None:
    run = received()
    failed = sm.fail(run, stage=Stage.VALIDATE, code="NoDockerfile", message="add one", now=NOW)
    staged, _ = outbox().stage(run, failed)
    detail = staged.outbox[-1].detail
    assert detail["status"] == "FAILED" and detail["stage"] == "validate"
    assert detail["error"] == {"stage": "validate", "code": "NoDockerfile", "message": "add one"}


def test_the_outbox_is_not_part_of_the_api() -> None:
    assert {"outbox", "events_recorded", "version"}.isdisjoint(received().public())
