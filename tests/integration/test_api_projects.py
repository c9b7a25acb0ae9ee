"""GET /projects and GET /projects/{project} through the real app and moto: the summary each transition
keeps, its order and paging, a late event that must not move it back, and the project view."""

from __future__ import annotations

import itertools
from typing import Any

from api_client import DIGEST, assert_bad_request, get, upload
from moto_cloud import Cloud

from sagedock.eventshapes import ecr_image_action, endpoint_state


def walk(cloud: Cloud, limit: int) -> list[dict[str, Any]]:
    collected: list[dict[str, Any]] = []
    token: str | None = None
    for pages in itertools.count(1):
        status, body = get(cloud, f"/projects?limit={limit}" + (f"&next_token={token}" if token else ""))
        assert status == 200, body
        assert len(body["projects"]) <= limit
        collected.extend(body["projects"])
        token = body["next_token"]
        if token is None:
            return collected
        assert pages < 10, "pagination does not end"
    raise AssertionError("unreachable")


def succeed(cloud: Cloud, run_id: str) -> dict[str, Any]:
    """Take a DEPLOYING run to SUCCEEDED with the endpoint's IN_SERVICE event."""
    run = cloud.run(run_id)
    cloud.send(
        "endpoint_state_changed",
        endpoint_state(run["endpoint_name"], run["endpoint_config_name"], "IN_SERVICE"),
    )
    run = cloud.run(run_id)
    assert run["status"] == "SUCCEEDED", run
    return run


def test_no_projects_yet(cloud: Cloud) -> None:
    assert get(cloud, "/projects") == (200, {"projects": [], "next_token": None})


def test_projects_with_their_latest_run_newest_first(cloud: Cloud, runs: dict[str, str]) -> None:
    status, body = get(cloud, "/projects")

    assert status == 200, body
    assert body["next_token"] is None
    wine, iris = body["projects"]
    assert wine == {
        "project": "wine",
        "latest_run_id": runs["wine-failed"],
        "status": "FAILED",
        "updated_at": cloud.run(runs["wine-failed"])["updated_at"],
    }
    assert iris["project"] == "iris"
    assert iris["latest_run_id"] == runs["iris-deploying"]
    assert iris["status"] == "DEPLOYING"  # every transition of the latest run reaches the summary
    assert iris["updated_at"] == cloud.run(runs["iris-deploying"])["updated_at"]


def test_project_listing_pages(cloud: Cloud, runs: dict[str, str]) -> None:
    upload(cloud, "bundles/cherry/c1.zip")  # the fixture's clock keeps ticking: the newest run
    for limit in (1, 2, 3):
        assert [p["project"] for p in walk(cloud, limit)] == ["cherry", "wine", "iris"], limit


def test_a_late_event_of_an_older_run_does_not_move_the_summary_back(
    cloud: Cloud, runs: dict[str, str]
) -> None:
    # When the oldest iris run (BUILDING) gets its push after newer iris runs exist
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, runs["iris-building"]))
    assert cloud.run(runs["iris-building"])["status"] == "TRAINING"

    # Then the project still shows its newest run
    _status, body = get(cloud, "/projects")
    iris = next(p for p in body["projects"] if p["project"] == "iris")
    assert (iris["latest_run_id"], iris["status"]) == (runs["iris-deploying"], "DEPLOYING")


def test_bad_listing_queries_are_400s(cloud: Cloud) -> None:
    for query, field in (
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("sort=name", "sort"),
    ):
        status, body = get(cloud, f"/projects?{query}")
        assert_bad_request(status, body, field)
    for token in ("garbage", "e30"):
        status, body = get(cloud, f"/projects?next_token={token}")
        assert_bad_request(status, body)


def test_a_runs_token_is_not_a_projects_token(cloud: Cloud, runs: dict[str, str]) -> None:
    _status, page = get(cloud, "/runs?limit=1")
    status, body = get(cloud, f"/projects?next_token={page['next_token']}")
    assert_bad_request(status, body)
    assert body["code"] == "InvalidToken"


def test_project_view_before_any_success(cloud: Cloud, runs: dict[str, str]) -> None:
    status, body = get(cloud, "/projects/iris")

    assert status == 200, body
    assert body["project"] == "iris"
    assert body["latest_run"] == cloud.run(runs["iris-deploying"])
    assert body["latest_successful_image"] is None
    # The deploying run created the endpoint: its status is SageMaker's, its owner that run
    endpoint = body["endpoint"]
    assert endpoint["name"] == "iris"
    assert endpoint["config_name"] == runs["iris-deploying"]
    assert endpoint["run_id"] == runs["iris-deploying"]
    assert isinstance(endpoint["status"], str) and endpoint["status"]


def test_project_view_after_a_success_keeps_its_image_when_a_newer_run_fails(
    cloud: Cloud, runs: dict[str, str]
) -> None:
    # Given a successful iris run, and then a newer iris run that failed validation
    done = succeed(cloud, runs["iris-deploying"])
    failed = upload(cloud, "bundles/iris/v9.zip", b"not a zip")

    status, body = get(cloud, "/projects/iris")

    assert status == 200, body
    assert body["latest_run"]["run_id"] == failed
    assert body["latest_run"]["status"] == "FAILED"
    assert body["latest_successful_image"] == {
        "run_id": done["run_id"],
        "repository": done["image"]["repository"],
        "digest": DIGEST,
        "uri": done["image"]["uri"],
    }
    assert "@" + DIGEST in body["latest_successful_image"]["uri"]
    assert body["endpoint"]["name"] == "iris"
    assert body["endpoint"]["run_id"] == done["run_id"]


def test_a_project_without_an_endpoint(cloud: Cloud, runs: dict[str, str]) -> None:
    status, body = get(cloud, "/projects/wine")
    assert status == 200, body
    assert body["latest_run"]["run_id"] == runs["wine-failed"]
    assert body["latest_successful_image"] is None
    assert body["endpoint"] is None


def test_unknown_or_invalid_project_is_a_404(cloud: Cloud, runs: dict[str, str]) -> None:
    for project in ("cherry", "Iris", "-iris", "a" * 41, "a_b"):
        status, body = get(cloud, f"/projects/{project}")
        assert status == 404, (project, body)
        assert body["code"] == "NotFound" and project in body["message"]
