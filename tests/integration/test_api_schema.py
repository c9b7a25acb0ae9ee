"""Every answer of the app, success or error, conforms to docs/openapi.json for its route and status."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from api_client import DIGEST
from jsonschema import Draft202012Validator
from moto_cloud import Cloud

from infra import openapi
from sagedock.eventshapes import endpoint_state

DOCUMENT = json.loads(openapi.DOCUMENT.read_text())


ERROR = {
    "description": "an error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def operation(method: str, path: str) -> dict[str, Any]:
    """The documented operation whose template matches a concrete path (a method it lacks: only a 405)."""
    for template, item in DOCUMENT["paths"].items():
        if re.fullmatch(re.sub(r"{\w+}", "[^/]+", template), path.split("?")[0]):
            return dict(item.get(method.lower()) or {"responses": {"405": ERROR}})
    raise AssertionError(f"{method} {path} is not documented")


def conforms(method: str, path: str, status: int, body: bytes) -> None:
    responses = operation(method, path)["responses"]
    response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
    assert response is not None, f"{method} {path} answered {status}, which the document does not list"
    content = response.get("content", {})
    if "application/json" not in content:
        return  # an endpoint's answer, passed through as it is
    schema = {**content["application/json"]["schema"], "components": DOCUMENT["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(json.loads(body)), key=str)
    assert not errors, f"{method} {path} {status}: {errors[0]}"


def call(
    cloud: Cloud, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> int:
    raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    response = cloud.client.http.request(
        method, path, headers={"Content-Type": content_type}, body=raw or b""
    )
    conforms(method, path, response.status_code, response.body)
    return int(response.status_code)


def test_every_route_in_every_state_answers_as_documented(cloud: Cloud, runs: dict[str, str]) -> None:
    deploying = runs["iris-deploying"]
    run = cloud.run(deploying)
    cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "IN_SERVICE"))
    requests: list[tuple[str, str, Any, int]] = [
        ("GET", "/health", None, 200),
        ("POST", "/uploads", {"project": "iris"}, 200),
        ("POST", "/uploads", {"project": "Iris"}, 400),
        ("POST", "/uploads", "{not json", 400),
        ("GET", "/runs", None, 200),
        ("GET", "/runs?limit=1", None, 200),
        ("GET", "/runs?limit=0", None, 400),
        ("GET", "/runs?next_token=garbage", None, 400),
        ("GET", f"/runs/{deploying}", None, 200),
        ("GET", f"/runs/{runs['iris-failed']}", None, 200),
        ("GET", "/runs/iris-0123456789ab", None, 404),
        ("POST", f"/runs/{deploying}/retry", None, 409),
        ("POST", "/runs/iris-0123456789ab/retry", None, 404),
        ("GET", f"/runs/{deploying}/logs", None, 200),
        ("GET", f"/runs/{runs['iris-failed']}/logs", None, 200),
        ("GET", f"/runs/{deploying}/logs?stage=nope", None, 400),
        ("GET", "/runs/iris-0123456789ab/logs", None, 404),
        ("GET", "/projects", None, 200),
        ("GET", "/projects?limit=1", None, 200),
        ("GET", "/projects?limit=-1", None, 400),
        ("GET", "/projects/iris", None, 200),
        ("GET", "/projects/wine", None, 200),
        ("GET", "/projects/nothing", None, 404),
        ("POST", "/endpoints/bad_name/invocations", "1,2", 400),
        ("DELETE", "/runs", None, 405),
    ]
    for method, path, body, expected in requests:
        assert call(cloud, method, path, body) == expected, (method, path)
    assert call(cloud, "POST", "/uploads", "project=iris", "text/plain") == 415
    assert call(cloud, "POST", "/endpoints/iris/invocations", "x" * (6 * 1024**2 + 1), "text/csv") == 413
    assert cloud.run(deploying)["image"]["digest"] == DIGEST


@pytest.mark.parametrize("project", ["iris", "wine"])
def test_project_views_conform_before_and_after_success(
    cloud: Cloud, runs: dict[str, str], project: str
) -> None:
    assert call(cloud, "GET", f"/projects/{project}") == 200
