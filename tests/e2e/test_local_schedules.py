"""The local cloud runs the app's schedules: an event its writer could not publish goes out by the sweeper."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from localcloud import LocalCloudProcess, start_local_cloud, stop_local_cloud, wait_until

from chalicelib.adapters.run_store import RunStore
from chalicelib.domain.models import PendingEvent, Run, SourceRef, Status
from chalicelib.flows.outbox import detail
from sagedock.local.provision import Resources
from sagedock.local.scheduler import SCALE_ENV

pytestmark = pytest.mark.slow

RUN_ID = "sweep-0123456789ab"
AT = "2026-01-02T03:04:05.000Z"


@pytest.fixture(scope="module")
def fast_schedules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudProcess]:
    """A local cloud whose five-minute schedules run every second."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SCALE_ENV, "300")
        cloud = start_local_cloud(tmp_path_factory.mktemp("local-cloud-schedules"))
    try:
        yield cloud
    finally:
        stop_local_cloud(cloud)


def left_in_the_outbox(cloud: LocalCloudProcess) -> Run:
    """A run whose event's writer died before publishing it (its claim long expired); no later event."""
    run = Run(
        run_id=RUN_ID,
        project="sweep",
        status=Status.RECEIVED,
        source=SourceRef(bucket=cloud.contract["SAGEDOCK_SOURCE_BUCKET"], key="bundles/sweep/a.zip"),
        created_at=AT,
        updated_at=AT,
        events_recorded=1,
    )
    pending = PendingEvent(
        sequence=1, time=AT, detail=detail(None, run, 1), claim="a-writer-that-died", claimed_until=AT
    )
    stored, created = store(cloud).create(run.model_copy(update={"outbox": (pending,)}))
    assert created and stored.outbox
    return stored


def store(cloud: LocalCloudProcess) -> RunStore:
    return RunStore(cloud.aws("dynamodb"), Resources().runs_table)


def test_an_event_left_in_the_outbox_is_published_by_the_scheduled_sweeper(
    fast_schedules: LocalCloudProcess,
) -> None:
    # Given a run whose event is still in its outbox, with no later event of the run to take it over
    left_in_the_outbox(fast_schedules)
    seen: list[dict[str, Any]] = []

    def published() -> bool:
        out = fast_schedules.cli("events", "--project", "sweep", "--output", "json")
        assert out.returncode == 0, out.stderr
        seen.extend(json.loads(line) for line in out.stdout.splitlines())
        return bool(seen)

    # When the local cloud's scheduler runs publish_pending: the event reaches `sagedock events`
    wait_until(published, timeout=60, what="the sweeper to publish the run's pending event")
    (event,) = seen
    assert event["source"] == "sagedock" and event["detail-type"] == "Run State Change"
    assert event["detail"]["run_id"] == RUN_ID and event["detail"]["status"] == "RECEIVED"
    assert event["detail"]["sequence"] == 1
    # and the outbox is empty again, so it is not published twice
    wait_until(lambda: store(fast_schedules).get(RUN_ID).outbox == (), timeout=30, what="the outbox to empty")
