"""10,000 runs in the table (moto): GET /runs, GET /runs?project=, GET /projects and `sagedock runs` page
through every run exactly once, newest first, and no request reads the table with anything but Query,
GetItem or BatchGetItem (a botocore before-call hook on the app's DynamoDB client sees every call)."""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from api_client import assert_bad_request, get
from moto import mock_aws
from moto_cloud import REGION, SETTINGS, Cloud, open_cloud
from moto_fast import sort_each_table_once

from chalicelib import services as services_module
from chalicelib.adapters import run_store
from chalicelib.domain.models import Run, Status
from sagedock import cli
from sagedock import client as client_module
from tests.run_records import many_runs

pytestmark = pytest.mark.slow

RUNS = 10_000
PROJECTS = 40
READS = {"Query", "GetItem", "BatchGetItem"}


def seeded_runs() -> list[Run]:
    """RUNS runs over PROJECTS projects, two created in each second (ties in created_at, as in AWS)."""
    return many_runs(RUNS, PROJECTS, per_second=2)


def batch_put(table: str, items: list[dict[str, Any]]) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        answer = dynamodb.batch_write_item(RequestItems={table: batch})
        assert not answer.get("UnprocessedItems"), answer


class Calls:
    """The DynamoDB operations the app makes, by name, from a before-call hook."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, model: Any, **_kwargs: Any) -> None:
        self.counts[model.name] += 1


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cloud, list[Run], Calls]]:
    """One moto account for the module, seeded once with RUNS runs and their projects' summaries."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        sort_each_table_once(monkeypatch)
        for cloud in open_cloud(monkeypatch, tmp_path_factory.mktemp("many"), SETTINGS):
            runs = seeded_runs()
            latest = {run.project: run for run in runs}  # created in order: the last one is the latest
            items = [run_store.run_item(run) for run in runs]
            items += [item for run in latest.values() for item in run_store.summary_items(run)]
            batch_put(SETTINGS["SAGEDOCK_RUNS_TABLE"], items)
            calls = Calls()
            app_client = services_module.get_services().dynamodb._inner  # type: ignore[attr-defined]
            app_client.meta.events.register("before-call.dynamodb", calls)
            yield cloud, runs, calls


@pytest.fixture
def calls(seeded: tuple[Cloud, list[Run], Calls]) -> Calls:
    seeded[2].counts.clear()
    return seeded[2]


def walk(cloud: Cloud, path: str, items: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, following next_token; (items, pages)."""
    collected: list[dict[str, Any]] = []
    token: str | None = None
    for pages in itertools.count(1):
        query = f"{path}{'&' if '?' in path else '?'}limit={limit}"
        status, body = get(cloud, query + (f"&next_token={urllib.parse.quote(token)}" if token else ""))
        assert status == 200, body
        assert len(body[items]) <= limit
        collected.extend(body[items])
        token = body["next_token"]
        if token is None:
            return collected, pages
        assert pages <= RUNS, "pagination does not end"
    raise AssertionError("unreachable")


def assert_each_once_newest_first(listed: list[dict[str, Any]], expected: list[Run]) -> None:
    ids = [run["run_id"] for run in listed]
    assert len(ids) == len(expected)
    assert set(ids) == {run.run_id for run in expected}
    stamps = [run["created_at"] for run in listed]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps == sorted((run.created_at for run in expected), reverse=True)


def test_get_runs_pages_through_every_run_once_newest_first(
    seeded: tuple[Cloud, list[Run], Calls], calls: Calls
) -> None:
    cloud, runs, _ = seeded

    listed, pages = walk(cloud, "/runs", "runs", 100)

    assert pages == RUNS // 100
    assert_each_once_newest_first(listed, runs)
    assert set(calls.counts) <= READS, calls.counts
    # A page is the shards' queries and a few more, not a query per run
    assert calls.counts["Query"] <= pages * (run_store.SHARDS + 4)


def test_get_runs_of_a_project_pages_through_its_runs(
    seeded: tuple[Cloud, list[Run], Calls], calls: Calls
) -> None:
    cloud, runs, _ = seeded
    for project in ("p00", "p17", "p39"):
        mine = [run for run in runs if run.project == project]

        listed, pages = walk(cloud, f"/runs?project={project}", "runs", 60)

        assert pages == -(-len(mine) // 60)
        assert_each_once_newest_first(listed, mine)
    assert set(calls.counts) <= READS, calls.counts


def test_get_projects_lists_each_project_once_newest_run_first(
    seeded: tuple[Cloud, list[Run], Calls], calls: Calls
) -> None:
    cloud, runs, _ = seeded
    latest = {run.project: run for run in runs}

    listed, _pages = walk(cloud, "/projects", "projects", 7)

    assert len(listed) == PROJECTS and {p["project"] for p in listed} == set(latest)
    assert [p["latest_run_id"] for p in listed] == [latest[p["project"]].run_id for p in listed]
    stamps = [latest[p["project"]].created_at for p in listed]
    assert stamps == sorted(stamps, reverse=True)
    assert set(calls.counts) <= READS, calls.counts


def test_a_token_of_another_listing_or_a_forged_one_is_a_400(seeded: tuple[Cloud, list[Run], Calls]) -> None:
    cloud, _, _ = seeded
    _status, projects = get(cloud, "/projects?limit=1")
    _status, first = get(cloud, "/runs?limit=1")
    forged = run_store.encode_positions(
        run_store.RUN_KIND, ["top"] * (run_store.SHARDS - 1) + [("x", "p00-1")]
    )
    short = run_store.encode_positions(run_store.RUN_KIND, ["top"])
    for path in (
        f"/runs?next_token={projects['next_token']}",
        f"/projects?next_token={first['next_token']}",
        f"/runs?next_token={forged}",
        f"/runs?next_token={short}",
    ):
        status, body = get(cloud, path)
        assert_bad_request(status, body)
        assert body["code"] == "InvalidToken", path


def test_sagedock_runs_pages_through_every_run(
    seeded: tuple[Cloud, list[Run], Calls],
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cloud, runs, _ = seeded

    def through_the_app(
        method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
    ) -> tuple[int, dict[str, str], bytes]:
        assert method == "GET" and body is None
        parts = urllib.parse.urlsplit(url)
        answer = cloud.client.http.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
        return answer.status_code, {"content-type": "application/json"}, answer.body

    monkeypatch.setattr(client_module, "_http", through_the_app)
    monkeypatch.setenv("SAGEDOCK_API_URL", "http://127.0.0.1:9")

    def pages(*options: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            argv = ["runs", "--output", "json", "--limit", "100", *options]
            assert cli.main([*argv, *(["--next-token", token] if token else [])]) == 0
            page = json.loads(capsys.readouterr().out)
            yield page
            token = page["next_token"]
            if token is None:
                return

    # Every run of a project, and the newest thousand of all (the whole walk is GET /runs' test above)
    mine = [run for run in runs if run.project == "p05"]
    assert_each_once_newest_first([r for page in pages("--project", "p05") for r in page["runs"]], mine)
    newest = runs[-1000:]  # two runs a second, so no second is split at the thousandth
    first = [r for page in itertools.islice(pages(), 10) for r in page["runs"]]
    assert_each_once_newest_first(first, newest)
    assert set(calls.counts) <= READS, calls.counts


def test_a_status_filter_that_skips_most_runs_still_pages_through_each_match_once(aws_env: None) -> None:
    # Given 400 runs of which 1 in 40 FAILED: a page's queries run out before it fills
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**run_store.table_definition("small"))
        runs = [
            run.model_copy(update={"status": Status.FAILED if index % 40 == 0 else Status.SUCCEEDED})
            for index, run in enumerate(seeded_runs()[:400])
        ]
        batch_put("small", [run_store.run_item(run) for run in runs])
        store = run_store.RunStore(client, "small")
        listed, token, short_pages = [], None, 0
        # When every page of FAILED runs is read
        while True:
            page, token = store.list(project=None, status=Status.FAILED, limit=7, next_token=token)
            listed += [run.public() for run in page]
            short_pages += len(page) < 7 and token is not None
            if token is None:
                break
    # Then each FAILED run comes once, newest first, and some pages ended short with a token to go on
    assert_each_once_newest_first(listed, [run for run in runs if run.status == Status.FAILED])
    assert short_pages > 0
