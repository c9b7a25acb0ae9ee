"""The scan sweeper through the real app and moto: a run whose `ECR Image Scan` event is lost still trains
(or fails on its findings), a scan that never settles ends the run FAILED with ImageScanTimeout, and
replayed sweeps or late events change nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto_cloud import Cloud
from test_pipeline import DIGEST
from test_safe_deploys import scanned_run, succeeded_build

from chalicelib import services as services_module
from chalicelib.services import Services
from sagedock.eventshapes import ecr_image_action, ecr_image_scan, envelope

TICK = envelope(
    "aws.events", "Scheduled Event", {}, ["arn:aws:events:us-east-1:123456789012:rule/sweep-scans"]
)
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LAST_EVENTS: dict[str, Callable[[Cloud, str], dict[str, Any]]] = {
    "push": lambda cloud, run_id: cloud.send(
        "image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id)
    ),
    "build": lambda cloud, run_id: cloud.send("build_state_changed", succeeded_build(cloud, run_id)),
}


class HandClock:
    """The services' clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class EcrScan:
    """DescribeImageScanFindings as ECR answers it: no scan yet, in progress, or complete with counts."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.counts: dict[str, int] = {}
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        if self.status is None:
            from botocore.exceptions import ClientError

            error = {"Code": "ScanNotFoundException", "Message": "Image scan does not exist for the image"}
            raise ClientError({"Error": error}, "DescribeImageScanFindings")
        answer: dict[str, Any] = {
            "repositoryName": request["repositoryName"],
            "imageId": request["imageId"],
            "imageScanStatus": {"status": self.status, "description": "status of the scan"},
        }
        if self.status == "COMPLETE":
            answer["imageScanFindings"] = {"findingSeverityCounts": self.counts}
        return answer


@pytest.fixture
def svc() -> Services:
    return services_module.get_services()


@pytest.fixture
def clock(svc: Services, monkeypatch: pytest.MonkeyPatch) -> HandClock:
    hand = HandClock()
    monkeypatch.setattr(svc, "clock", hand)
    return hand


@pytest.fixture
def ecr(svc: Services, monkeypatch: pytest.MonkeyPatch) -> EcrScan:
    scan = EcrScan()
    monkeypatch.setattr(svc.ecr._client, "describe_image_scan_findings", scan)
    return scan


def sweep(cloud: Cloud) -> dict[str, Any]:
    return cloud.send("sweep_scans", TICK)


@pytest.mark.parametrize("last", sorted(LAST_EVENTS))
def test_a_run_whose_scan_event_is_lost_is_advanced_by_the_sweeper(
    cloud: Cloud, svc: Services, clock: HandClock, ecr: EcrScan, last: str
) -> None:
    # Given a gated run whose push (or build) event was the last to come: ECR was still scanning
    run_id = scanned_run(cloud)
    ecr.status = "IN_PROGRESS"
    assert LAST_EVENTS[last](cloud, run_id)["reason"] == "waiting for the image scan"
    waiting = cloud.run(run_id)
    assert waiting["status"] == "BUILDING"
    assert waiting["scan"] == {"digest": DIGEST, "status": "IN_PROGRESS", "counts": {}}
    assert svc.runs.waiting_for_scan() == (run_id,)
    # When the sweeper runs while ECR still scans
    clock.advance(minutes=5)
    assert sweep(cloud) == {"runs": 1, "ignored": 1}
    assert cloud.sagemaker.named("create_training_job") == []
    # And the scan completes, but its event is lost
    ecr.status, ecr.counts = "COMPLETE", {"MEDIUM": 1, "LOW": 2}
    clock.advance(minutes=5)
    assert sweep(cloud) == {"runs": 1, "training started": 1}
    # Then one training job started, as the scan event would have started it
    assert len(cloud.sagemaker.named("create_training_job")) == 1
    run = cloud.run(run_id)
    assert run["status"] == "TRAINING"
    assert run["scan"] == {"digest": DIGEST, "status": "COMPLETE", "counts": {"MEDIUM": 1, "LOW": 2}}
    assert ecr.calls[-1] == {
        "repositoryName": "sagedock/iris",
        "imageId": {"imageDigest": DIGEST},
        "maxResults": 1,
    }
    # And the sweeper stops looking at the run: a replayed round finds nothing
    assert svc.runs.waiting_for_scan() == ()
    assert sweep(cloud) == {"runs": 0}
    # And the late scan event changes nothing
    before = cloud.run(run_id)
    late = cloud.send(
        "image_scanned", ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"MEDIUM": 1, "LOW": 2})
    )
    assert late["action"] == "ignored"
    assert cloud.run(run_id) == before
    assert len(cloud.sagemaker.named("create_training_job")) == 1


def test_findings_read_by_the_sweeper_fail_the_run_as_the_event_would(
    cloud: Cloud, svc: Services, clock: HandClock, ecr: EcrScan
) -> None:
    run_id = scanned_run(cloud)
    cloud.send("build_state_changed", succeeded_build(cloud, run_id))
    ecr.status, ecr.counts = "COMPLETE", {"CRITICAL": 3}
    assert sweep(cloud) == {"runs": 1, "failed": 1}
    error = cloud.run(run_id)["error"]
    assert (
        error["stage"] == "build" and error["code"] == "ImageVulnerable" and "CRITICAL 3" in error["message"]
    )
    assert svc.runs.waiting_for_scan() == ()
    late = cloud.send("image_scanned", ecr_image_scan("sagedock/iris", DIGEST, [run_id], {"CRITICAL": 3}))
    assert late["action"] == "ignored"
    assert cloud.sagemaker.named("create_training_job") == []


def test_a_scan_that_never_settles_fails_the_run_after_the_bound(
    cloud: Cloud, svc: Services, clock: HandClock, ecr: EcrScan
) -> None:
    # Given a gated run whose image ECR never scans (scan on push is off: no scan exists)
    run_id = scanned_run(cloud)
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    # And a replayed push later, which must not restart the wait
    clock.advance(minutes=20)
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    # When the sweeper runs just before the bound (30 minutes by default), the run still waits
    clock.advance(minutes=9, seconds=59)
    assert sweep(cloud) == {"runs": 1, "ignored": 1}
    assert cloud.run(run_id)["status"] == "BUILDING"
    # Then at the bound it fails at build, saying what to do
    clock.advance(seconds=1)
    assert sweep(cloud) == {"runs": 1, "failed": 1}
    run = cloud.run(run_id)
    assert run["status"] == "FAILED"
    assert run["error"]["stage"] == "build" and run["error"]["code"] == "ImageScanTimeout"
    message = run["error"]["message"]
    assert "30 minutes" in message and "PENDING" in message
    assert f"/runs/{run_id}/retry" in message and "scan on push" in message
    # And nothing looks at it again, and a scan arriving after all starts nothing
    assert sweep(cloud) == {"runs": 0}
    late = cloud.send("image_scanned", ecr_image_scan("sagedock/iris", DIGEST, [run_id], {}))
    assert late["action"] == "ignored"
    assert cloud.run(run_id)["status"] == "FAILED"
    assert cloud.sagemaker.named("create_training_job") == []


def test_a_retried_timeout_waits_afresh(cloud: Cloud, svc: Services, clock: HandClock, ecr: EcrScan) -> None:
    run_id = scanned_run(cloud)
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    clock.advance(minutes=31)
    sweep(cloud)
    assert cloud.run(run_id)["error"]["code"] == "ImageScanTimeout"
    # When the run is retried, it builds again and no longer counts as waiting
    response = cloud.client.http.post(f"/runs/{run_id}/retry")
    assert response.status_code == 200, response.body
    assert cloud.run(run_id)["status"] == "BUILDING"
    assert svc.runs.waiting_for_scan() == ()
    # And its new push waits from now, not from the first attempt
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    clock.advance(minutes=5)
    assert sweep(cloud) == {"runs": 1, "ignored": 1}
    assert cloud.run(run_id)["status"] == "BUILDING"


def test_a_sweep_that_stopped_before_the_training_job_is_finished_by_the_next(
    cloud: Cloud, svc: Services, clock: HandClock, ecr: EcrScan, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a waiting run, and a sweep that records TRAINING, then dies before CreateTrainingJob
    run_id = scanned_run(cloud)
    cloud.send("image_pushed", ecr_image_action("sagedock/iris", DIGEST, run_id))
    ecr.status = "COMPLETE"

    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the Lambda timed out")

    with monkeypatch.context() as patch:
        patch.setattr(svc.sagemaker, "create_training_job", crash)
        with pytest.raises(RuntimeError):
            sweep(cloud)
    assert cloud.run(run_id)["status"] == "TRAINING"
    assert cloud.sagemaker.named("create_training_job") == []
    # When the sweep is delivered again (Lambda's retry) and replayed once more
    outcomes = [sweep(cloud) for _ in range(3)]
    # Then exactly one training job was created, and the run left the sweeper's index
    assert outcomes == [{"runs": 1, "training started": 1}, {"runs": 0}, {"runs": 0}]
    assert len(cloud.sagemaker.named("create_training_job")) == 1
    assert svc.runs.waiting_for_scan() == ()
