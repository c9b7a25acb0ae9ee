"""docs/events.md stays in step with the code: its examples match the schemas, and so do the events built."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chalicelib.domain.models import ImageRef, Run, RunError, SourceRef, Stage, StageEntry, Status
from chalicelib.flows import outbox
from chalicelib.flows.retrain import DETAIL_TYPE as RETRAIN_DETAIL_TYPE
from chalicelib.flows.retrain import SOURCE as RETRAIN_SOURCE
from chalicelib.flows.retrain import RetrainRequest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "events.md").read_text()
SCHEMAS = {path.stem: json.loads(path.read_text()) for path in (ROOT / "docs" / "schemas").glob("*.json")}
EXAMPLES = re.findall(r"<!-- example: ([a-z-]+) -->\n```json\n(.*?)\n```", DOC, flags=re.DOTALL)
ENVELOPE = {"source": {"run-state-change": outbox.SOURCE, "retrain-request": RETRAIN_SOURCE}}
DETAIL_TYPES = {"run-state-change": outbox.DETAIL_TYPE, "retrain-request": RETRAIN_DETAIL_TYPE}


def test_the_doc_has_examples_of_each_event_and_links_each_schema() -> None:
    assert {kind for kind, _ in EXAMPLES} == set(SCHEMAS) == {"run-state-change", "retrain-request"}
    for name in SCHEMAS:
        assert f"(schemas/{name}.json)" in DOC


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_schema_is_a_valid_json_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[name])


@pytest.mark.parametrize(("kind", "text"), EXAMPLES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(EXAMPLES)])
def test_each_example_is_an_eventbridge_event_whose_detail_matches_its_schema(kind: str, text: str) -> None:
    event = json.loads(text)
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["source"] == ENVELOPE["source"][kind] and event["detail-type"] == DETAIL_TYPES[kind]
    jsonschema.validate(event["detail"], SCHEMAS[kind])
    if kind == "retrain-request":
        assert RetrainRequest.model_validate(event["detail"]).model_extra == {}


def _run(**fields: Any) -> Run:
    now = "2026-11-21T12:00:00.000Z"
    base: dict[str, Any] = {
        "run_id": "iris-3f2a9c0d41b7",
        "project": "iris",
        "status": Status.RECEIVED,
        "source": SourceRef(bucket="b", key="bundles/iris/v1.zip"),
        "created_at": now,
        "updated_at": now,
        "stages": (StageEntry(stage=Stage.VALIDATE, status="IN_PROGRESS", started_at=now),),
    }
    return Run(**(base | fields))


@pytest.mark.parametrize(
    ("previous", "run"),
    [
        (None, _run()),
        (
            _run(),
            _run(
                status=Status.TRAINING,
                image=ImageRef(
                    repository="r/iris", tag="t", digest="sha256:" + "a" * 64, uri="r/iris@sha256:x"
                ),
            ),
        ),
        (
            _run(),
            _run(
                status=Status.FAILED, error=RunError(stage=Stage.VALIDATE, code="NoDockerfile", message="m")
            ),
        ),
        (
            None,
            _run(
                status=Status.FAILED, stages=(), error=RunError(stage=Stage.VALIDATE, code="C", message="m")
            ),
        ),
    ],
)
def test_the_details_the_code_builds_match_the_schema(previous: Run | None, run: Run) -> None:
    jsonschema.validate(outbox.detail(previous, run, 1), SCHEMAS["run-state-change"])


def test_the_schema_refuses_a_failed_event_without_its_error() -> None:
    failed = outbox.detail(_run(), _run(status=Status.FAILED), 2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(failed, SCHEMAS["run-state-change"])
