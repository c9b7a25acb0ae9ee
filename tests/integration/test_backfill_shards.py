"""infra/backfill_shards.py in moto: a table written by a release that listed from by_created is listed
from by_shard after the backfill; the backfill resumes where it stopped and a second pass changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto_cloud import REGION

from chalicelib.adapters.run_store import RunStore, table_definition
from chalicelib.domain import statemachine as sm
from chalicelib.domain.models import Run, SourceRef, Status
from infra.backfill_shards import Counts, backfill, main

TABLE = "sagedock-test-runs"
RUNS = 45


class Stop(Exception):
    pass


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**table_definition(TABLE))
        yield client


def record_legacy_runs(client: Any) -> list[Run]:
    """RUNS runs of three projects as the release before by_shard wrote them: `kind`, no `shard` (a
    by_created store writes both; the shard is taken off again)."""
    store = RunStore(client, TABLE, listing="by_created")
    runs = []
    for index in range(RUNS):
        project = ("iris", "wine", "digits")[index % 3]
        stamp = f"2026-03-01T10:{index // 60:02d}:{index % 60:02d}.000Z"
        run, _created = store.create(
            sm.new_run(
                Run(
                    run_id=f"{project}-{index:012x}",
                    project=project,
                    status=Status.RECEIVED,
                    source=SourceRef(bucket="b", key=f"bundles/{project}/{index}.zip"),
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        )
        runs.append(run)
    store.set_endpoint_owner("iris", runs[0].run_id)  # an item no listing reads
    for item in scan(client):
        client.update_item(
            TableName=TABLE,
            Key={"run_id": item["run_id"]},
            UpdateExpression="REMOVE #s",
            ExpressionAttributeNames={"#s": "shard"},
        )
    for item in scan(client):
        assert "shard" not in item and ("kind" in item) == ("project" in item or "project_name" in item)
    return runs


def scan(client: Any) -> list[dict[str, Any]]:
    return list(client.scan(TableName=TABLE, ConsistentRead=True)["Items"])


def listed(store: RunStore) -> list[str]:
    ids, token = [], None
    while True:
        runs, token = store.list(project=None, status=None, limit=10, next_token=token)
        ids += [run.run_id for run in runs]
        if token is None:
            return ids


def test_the_backfill_makes_legacy_runs_listable_from_by_shard(dynamodb: Any, tmp_path: Path) -> None:
    runs = record_legacy_runs(dynamodb)
    sharded = RunStore(dynamodb, TABLE)
    assert listed(sharded) == []  # before the backfill the new index holds none of them

    counts = backfill(dynamodb, TABLE, state=tmp_path / "state.json", page_size=10)

    assert counts.updated == RUNS + 3  # the runs and the three project summaries
    assert counts.other == 1  # the endpoint's owner item
    assert listed(sharded) == [run.run_id for run in reversed(runs)]
    projects, token = sharded.list_projects(limit=10, next_token=None)
    assert [p["project"] for p in projects] == ["digits", "wine", "iris"] and token is None
    # The legacy listing still answers the same (a stage can switch back before by_created is dropped)
    legacy = RunStore(dynamodb, TABLE, listing="by_created")
    assert listed(legacy) == listed(sharded)


def test_a_stopped_backfill_resumes_and_a_second_pass_changes_nothing(dynamodb: Any, tmp_path: Path) -> None:
    runs = record_legacy_runs(dynamodb)
    state = tmp_path / "state.json"
    pages = []

    def stop_after_two_pages(counts: Counts) -> None:
        pages.append(counts.updated)
        if len(pages) == 2:
            raise Stop

    with pytest.raises(Stop):
        backfill(dynamodb, TABLE, state=state, page_size=8, after_page=stop_after_two_pages)
    first = pages[-1]
    assert 0 < first <= 16
    assert sum("shard" in item for item in scan(dynamodb)) == first

    rest = backfill(dynamodb, TABLE, state=state, page_size=8)

    assert first + rest.updated == RUNS + 3
    assert rest.scanned + 16 == RUNS + 3 + 1  # goes on after the pages done, reads none of them again
    assert backfill(dynamodb, TABLE, state=state).scanned == 0  # the state says the pass is over
    again = backfill(dynamodb, TABLE)  # a fresh pass: everything is sharded already
    assert (again.updated, again.already) == (0, RUNS + 3)
    assert len(listed(RunStore(dynamodb, TABLE))) == len(runs)


def test_new_writes_during_the_backfill_are_left_as_written(dynamodb: Any, tmp_path: Path) -> None:
    record_legacy_runs(dynamodb)
    store = RunStore(dynamodb, TABLE)

    def a_run_moves_on(counts: Counts) -> None:
        if counts.scanned == 10:
            store.update("iris-000000000000", lambda run: run.model_copy(update={"status": Status.FAILED}))

    backfill(dynamodb, TABLE, page_size=10, after_page=a_run_moves_on)

    assert store.get("iris-000000000000").status == Status.FAILED
    assert all(
        "shard" in item
        for item in scan(dynamodb)
        if not item["run_id"]["S"].startswith(("endpoint#", "succeeded#"))
    )


def test_the_command_line_prints_what_it_did(
    dynamodb: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_legacy_runs(dynamodb)

    assert main([TABLE, "--state", str(tmp_path / "s.json"), "--region", REGION]) == 0

    assert (
        f"{TABLE}: scanned {RUNS + 4}, updated {RUNS + 3}, already sharded 0, not listed 1"
        in capsys.readouterr().out
    )
