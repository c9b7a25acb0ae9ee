"""Run events on the bus and retrain requests, through the real app and moto (a rule sends the bus to SQS)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import pytest
from moto_cloud import REGION, Cloud, make_bundle
from test_pipeline import DIGEST, KEY, built, deliver_concurrently, deploying, received, refusing, trained

from chalicelib import services as services_module
from chalicelib.domain.errors import TransientError
from chalicelib.flows.outbox import CLAIM_SECONDS
from sagedock.eventqueue import receive, subscribe
from sagedock.eventshapes import build_state, ecr_image_action, endpoint_state, envelope, training_state

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
RUN_EVENT_SCHEMA = json.loads((SCHEMAS / "run-state-change.json").read_text())


@dataclass
class Bus:
    """What a consumer subscribed to sagedock's run events has received so far."""

    sqs: Any
    url: str

    def events(self) -> list[dict[str, Any]]:
        """Every run event delivered since the last call, each checked against the documented schema."""
        found = list(receive(self.sqs, self.url, wait_seconds=0))
        for event in found:
            assert event["source"] == "sagedock" and event["detail-type"] == "Run State Change"
            jsonschema.validate(event["detail"], RUN_EVENT_SCHEMA)
        return found

    def transitions(self) -> list[tuple[str, int, str | None, str]]:
        """(run id, sequence, previous status, status) of the events delivered since the last call."""
        return [
            (
                e["detail"]["run_id"],
                e["detail"]["sequence"],
                e["detail"]["previous_status"],
                e["detail"]["status"],
            )
            for e in self.events()
        ]


@pytest.fixture
def bus(cloud: Cloud) -> Bus:
    sqs = boto3.client("sqs", region_name=REGION)
    return Bus(sqs, subscribe(boto3.client("events", region_name=REGION), sqs))


def later(seconds: int = CLAIM_SECONDS + 1) -> None:
    """Move the app's clock past the outbox claims (the time a failed writer's claim takes to expire)."""
    from datetime import UTC, datetime, timedelta

    svc = services_module.get_services()
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    svc.clock = lambda: when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def retrain_request(detail: dict[str, Any]) -> dict[str, Any]:
    """`Retrain Request` as PutEvents delivers it to the rule's target."""
    return envelope("sagedock.requests", "Retrain Request", detail, [])


def succeeded(cloud: Cloud) -> str:
    """A run that went all the way to its endpoint."""
    run_id, run = deploying(cloud)
    cloud.send("endpoint_state_changed", endpoint_state("iris", run["endpoint_config_name"], "IN_SERVICE"))
    assert cloud.run(run_id)["status"] == "SUCCEEDED"
    return run_id


class TestRunEvents:
    def test_a_full_run_emits_one_event_per_transition(self, cloud: Cloud, bus: Bus) -> None:
        run_id = succeeded(cloud)
        events = bus.events()
        assert [(e["detail"]["previous_status"], e["detail"]["status"]) for e in events] == [
            (None, "RECEIVED"),
            ("RECEIVED", "BUILDING"),
            ("BUILDING", "TRAINING"),
            ("TRAINING", "DEPLOYING"),
            ("DEPLOYING", "SUCCEEDED"),
        ]
        assert [e["detail"]["sequence"] for e in events] == [1, 2, 3, 4, 5]
        assert {e["detail"]["run_id"] for e in events} == {run_id}
        by_status = {e["detail"]["status"]: e["detail"] for e in events}
        assert [
            by_status[s]["stage"] for s in ("RECEIVED", "BUILDING", "TRAINING", "DEPLOYING", "SUCCEEDED")
        ] == [
            "validate",
            "build",
            "train",
            "deploy",
            "deploy",
        ]
        assert by_status["BUILDING"]["image"]["digest"] is None
        assert by_status["TRAINING"]["image"]["digest"] == DIGEST
        assert by_status["TRAINING"]["image"]["uri"].endswith(f"/sagedock/iris@{DIGEST}")
        assert by_status["DEPLOYING"]["endpoint_name"] == "iris"
        assert all(e["detail"]["path"] == f"/runs/{run_id}" and e["detail"]["error"] is None for e in events)
        # nothing is left to publish, and the API shows no outbox
        assert "outbox" not in cloud.run(run_id)
        assert services_module.get_services().runs.with_pending_events() == ()

    def test_a_failure_carries_its_error(self, cloud: Cloud, bus: Bus) -> None:
        _, job = trained(cloud)
        bus.events()
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason="OOM\ntrace"))
        (event,) = bus.events()
        assert event["detail"]["status"] == "FAILED" and event["detail"]["previous_status"] == "TRAINING"
        assert event["detail"]["stage"] == "train"
        assert event["detail"]["error"] == {"stage": "train", "code": "TrainingFailed", "message": "OOM"}

    def test_a_bad_bundle_emits_received_then_failed(self, cloud: Cloud, bus: Bus) -> None:
        received(cloud, body=make_bundle({"Dockerfile": None}))
        assert [(p, s) for _, _, p, s in bus.transitions()] == [(None, "RECEIVED"), ("RECEIVED", "FAILED")]

    def test_a_retry_is_a_transition(self, cloud: Cloud, bus: Bus) -> None:
        run_id, job = trained(cloud)
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason="OOM"))
        bus.events()
        assert cloud.client.http.post(f"/runs/{run_id}/retry").status_code == 200
        (event,) = bus.events()
        assert (event["detail"]["previous_status"], event["detail"]["status"]) == ("FAILED", "TRAINING")
        assert event["detail"]["attempt"] == 2


class TestExactlyOnce:
    def test_duplicate_deliveries_emit_no_extra_event(self, cloud: Cloud, bus: Bus) -> None:
        event = cloud.upload(KEY, make_bundle())
        for _ in range(3):
            cloud.send("bundle_uploaded", event)
        run_id = cloud.client.http.get("/runs").json_body["runs"][0]["run_id"]
        for _ in range(3):
            cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        assert [s for _, _, _, s in bus.transitions()] == ["RECEIVED", "BUILDING", "TRAINING"]

    def test_concurrent_deliveries_emit_no_extra_event(self, cloud: Cloud, bus: Bus) -> None:
        deliver_concurrently(cloud, "bundle_uploaded", cloud.upload(KEY, make_bundle()))
        run_id = cloud.client.http.get("/runs").json_body["runs"][0]["run_id"]
        deliver_concurrently(cloud, "image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        job = cloud.run(run_id)["training_job_name"]
        deliver_concurrently(cloud, "training_state_changed", training_state(job, "Completed"))
        # concurrent writers may publish out of order (consumers sort by sequence), never twice
        assert sorted(bus.transitions()) == [
            (run_id, 1, None, "RECEIVED"),
            (run_id, 2, "RECEIVED", "BUILDING"),
            (run_id, 3, "BUILDING", "TRAINING"),
            (run_id, 4, "TRAINING", "DEPLOYING"),
        ]

    def test_a_failed_publish_keeps_the_transition_and_is_published_later(
        self, cloud: Cloud, bus: Bus
    ) -> None:
        # Given PutEvents refuses while the image's push starts training
        run_id = built(cloud)
        bus.events()
        events = services_module.get_services().events
        put_events = events._client.put_events
        events._client.put_events = refusing("ThrottlingException", "Rate exceeded", "PutEvents")
        outcome = cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        # Then the transition and its work happened, and no event went out
        assert outcome["action"] == "training started"
        assert cloud.run(run_id)["status"] == "TRAINING"
        assert len(cloud.sagemaker.named("create_training_job")) == 1
        assert bus.events() == []
        # When the bus is back and the run's next event comes after the claim expired
        events._client.put_events = put_events
        later()
        job = cloud.run(run_id)["training_job_name"]
        cloud.send("training_state_changed", training_state(job, "Completed"))
        # Then the missed event goes out once, before the new one
        assert bus.transitions() == [
            (run_id, 3, "BUILDING", "TRAINING"),
            (run_id, 4, "TRAINING", "DEPLOYING"),
        ]

    def test_a_claim_still_held_is_left_to_its_writer(self, cloud: Cloud, bus: Bus) -> None:
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        bus.events()
        events = services_module.get_services().events
        put_events = events._client.put_events
        events._client.put_events = refusing("ThrottlingException", "Rate exceeded", "PutEvents")
        cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        events._client.put_events = put_events
        # a late event of the run within the claim publishes nothing (the writer may still be publishing)
        late = build_state("sagedock-build", build_id, "FAILED", run_id=run_id)
        assert cloud.send("build_state_changed", late)["action"] == "ignored"
        assert bus.events() == []
        # once the claim expired, a late event takes the entry over and publishes it, once
        later()
        cloud.send("build_state_changed", late)
        cloud.send("build_state_changed", late)
        assert bus.transitions() == [(run_id, 3, "BUILDING", "TRAINING")]
        assert cloud.run(run_id)["status"] == "TRAINING"

    def test_a_failed_release_stops_nothing_and_is_the_one_window_for_a_duplicate(
        self, cloud: Cloud, bus: Bus, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given the write that removes published events from the outbox fails
        run_id = built(cloud)
        build_id = cloud.run(run_id)["build_id"]
        bus.events()
        store = services_module.get_services().runs
        save = store.save

        def refuse_releases(run: Any, *, expected_version: int) -> Any:
            if not run.outbox:
                raise TransientError("throttled", code="ThrottlingException")
            return save(run, expected_version=expected_version)

        monkeypatch.setattr(store, "save", refuse_releases)
        outcome = cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
        monkeypatch.undo()
        # Then the event went out and the pipeline went on
        assert outcome["action"] == "training started"
        assert len(cloud.sagemaker.named("create_training_job")) == 1
        assert bus.transitions() == [(run_id, 3, "BUILDING", "TRAINING")]
        # and once its claim expires the entry is published again: the duplicate docs/events.md describes,
        # with the same (run_id, sequence) for consumers to drop it by
        later()
        cloud.send("build_state_changed", build_state("sagedock-build", build_id, "FAILED", run_id=run_id))
        assert bus.transitions() == [(run_id, 3, "BUILDING", "TRAINING")]
        assert services_module.get_services().runs.with_pending_events() == ()

    def test_the_sweeper_publishes_the_last_event_of_an_ended_run(self, cloud: Cloud, bus: Bus) -> None:
        run_id, job = trained(cloud)
        bus.events()
        svc = services_module.get_services()
        put_events = svc.events._client.put_events
        svc.events._client.put_events = refusing("InternalException", "boom", "PutEvents")
        cloud.send("training_state_changed", training_state(job, "Failed", failure_reason="OOM"))
        svc.events._client.put_events = put_events
        assert bus.events() == []
        assert svc.runs.with_pending_events() == (run_id,)
        tick = envelope(
            "aws.events", "Scheduled Event", {}, ["arn:aws:events:us-east-1:123456789012:rule/sweep"]
        )
        assert cloud.send("publish_pending", tick) == {"runs": 1, "published": 0}  # still claimed
        later()
        assert cloud.send("publish_pending", tick) == {"runs": 1, "published": 1}
        assert cloud.send("publish_pending", tick) == {"runs": 0, "published": 0}
        assert bus.transitions() == [(run_id, 4, "TRAINING", "FAILED")]


class TestRetrainRequests:
    def test_a_retrain_reuses_the_last_successful_image_without_a_build(self, cloud: Cloud, bus: Bus) -> None:
        # Given a project whose run succeeded
        parent = succeeded(cloud)
        parent_run = cloud.run(parent)
        bus.events()
        # When a retrain is requested with a hyperparameter override and no deploy
        request = retrain_request(
            {"project": "iris", "hyperparameters": {"max_leaf_nodes": 8}, "deploy": False}
        )
        outcome = cloud.send("retrain_requested", request)
        # Then a new run trains the same image by digest, linked to the parent, and nothing was built
        assert outcome["action"] == "retrain started", outcome
        run = cloud.run(outcome["run_id"])
        assert run["status"] == "TRAINING" and run["retrained_from"] == parent
        assert run["image"] == parent_run["image"]
        assert len(cloud.codebuild.named("start_build")) == 1
        first, job = cloud.sagemaker.named("create_training_job")
        assert job["AlgorithmSpecification"]["TrainingImage"] == parent_run["image"]["uri"]
        assert job["AlgorithmSpecification"]["TrainingImage"].endswith(f"@{DIGEST}")
        assert job["HyperParameters"] == {**first["HyperParameters"], "max_leaf_nodes": "8"}
        assert job["TrainingJobName"] == run["training_job_name"]
        # and its first event says so
        (event,) = bus.events()
        detail = event["detail"]
        assert (detail["previous_status"], detail["status"], detail["stage"]) == (None, "TRAINING", "train")
        assert detail["retrained_from"] == parent and detail["image"]["digest"] == DIGEST
        # When the training completes, the run ends without touching the endpoint (deploy = false)
        cloud.send("training_state_changed", training_state(job["TrainingJobName"], "Completed"))
        assert cloud.run(run["run_id"])["status"] == "SUCCEEDED"
        assert len(cloud.sagemaker.named("create_endpoint_config")) == 1

    def test_a_redelivered_request_starts_nothing_more(self, cloud: Cloud, bus: Bus) -> None:
        succeeded(cloud)
        bus.events()
        request = retrain_request({"project": "iris"})
        outcomes = [cloud.send("retrain_requested", request) for _ in range(2)]
        outcomes += deliver_concurrently(cloud, "retrain_requested", request)
        assert len({o["run_id"] for o in outcomes}) == 1
        assert len(cloud.sagemaker.named("create_training_job")) == 2  # the first run's and the retrain's
        assert [s for _, _, _, s in bus.transitions()] == ["TRAINING"]
        # a new request (another event id) is another run
        second = cloud.send("retrain_requested", retrain_request({"project": "iris"}))
        assert second["run_id"] != outcomes[0]["run_id"]

    @pytest.mark.parametrize(
        ("detail", "code", "hint"),
        [
            ({"project": "nosuch"}, "UnknownProject", "no project nosuch"),
            (
                {"project": "iris", "hyperparameters": {"depth": {"nested": 1}}},
                "InvalidRetrainRequest",
                "depth",
            ),
            ({"project": "iris", "channels": {"bad name!": "x/"}}, "InvalidRetrainRequest", "channels"),
            ({"project": "iris", "deploy": "yes"}, "InvalidRetrainRequest", "deploy"),
            ({"project": "iris", "epochs": 3}, "InvalidRetrainRequest", "epochs"),
            ({"project": "Not_Valid"}, "InvalidProject", "lowercase"),
        ],
    )
    def test_an_invalid_request_is_a_failed_run(
        self, cloud: Cloud, bus: Bus, detail: dict[str, Any], code: str, hint: str
    ) -> None:
        succeeded(cloud)
        bus.events()
        outcome = cloud.send("retrain_requested", retrain_request(detail))
        run = cloud.run(outcome["run_id"])
        assert run["status"] == "FAILED"
        assert run["error"]["stage"] == "validate" and run["error"]["code"] == code
        assert hint in run["error"]["message"]
        assert len(cloud.sagemaker.named("create_training_job")) == 1
        (event,) = bus.events()
        assert event["detail"]["status"] == "FAILED" and event["detail"]["error"] == run["error"]

    def test_a_project_without_a_successful_run_cannot_retrain(self, cloud: Cloud, bus: Bus) -> None:
        built(cloud)
        outcome = cloud.send("retrain_requested", retrain_request({"project": "iris"}))
        run = cloud.run(outcome["run_id"])
        assert run["error"]["code"] == "NoSuccessfulImage"
        assert "SUCCEEDED" in run["error"]["message"]

    def test_a_request_without_project_is_dropped(self, cloud: Cloud) -> None:
        outcome = cloud.send("retrain_requested", retrain_request({"hyperparameters": {}}))
        assert outcome["action"] == "rejected" and "project" in outcome["reason"]


class TestRetrainApi:
    def test_post_starts_a_run(self, cloud: Cloud, bus: Bus) -> None:
        parent = succeeded(cloud)
        bus.events()
        response = cloud.client.http.post(
            "/projects/iris/retrain",
            body=json.dumps({"hyperparameters": {"max_leaf_nodes": 3}}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.body
        run = response.json_body
        assert run["status"] == "TRAINING" and run["retrained_from"] == parent
        assert cloud.run(run["run_id"]) == run
        assert [s for _, _, _, s in bus.transitions()] == ["TRAINING"]

    @pytest.mark.parametrize(
        ("path", "body", "status", "code"),
        [
            ("/projects/nosuch/retrain", {}, 404, "UnknownProject"),
            ("/projects/iris/retrain", {"hyperparameters": {"x": [1]}}, 400, "InvalidRetrainRequest"),
            ("/projects/iris/retrain", {"project": "other"}, 400, "BadRequest"),
        ],
    )
    def test_a_bad_request_is_refused_and_records_nothing(
        self, cloud: Cloud, bus: Bus, path: str, body: dict[str, Any], status: int, code: str
    ) -> None:
        succeeded(cloud)
        bus.events()
        response = cloud.client.http.post(
            path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, response.body
        assert response.json_body["code"] == code and response.json_body["message"]
        assert bus.events() == []

    def test_no_successful_run_is_a_conflict(self, cloud: Cloud) -> None:
        built(cloud)
        response = cloud.client.http.post(
            "/projects/iris/retrain", body="{}", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 409
        assert response.json_body["code"] == "NoSuccessfulImage"
