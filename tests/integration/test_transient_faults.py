"""Transient AWS faults on every call of the pipeline: retried by the clients' own retry configuration, or,
past it, by Lambda redelivering the event; the run still ends right, with nothing done twice.

Faults are injected under the real clients (chalicelib.adapters.clients, with their configured retries) by a
`before-send` hook that answers a request as AWS does when it throttles or fails: ThrottlingException,
ProvisionedThroughputExceededException, SlowDown (S3) and 5xx. Everything else reaches moto.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import BotocoreStubber
from moto_cloud import SETTINGS, Atomic, Cloud, InstallServices, make_bundle, open_cloud
from test_pipeline import DIGEST, _moto_sagemaker

from chalicelib.adapters import clients as aws
from chalicelib.adapters.codebuild import CodeBuild
from chalicelib.adapters.sagemaker import SageMaker
from sagedock.eventshapes import build_state, ecr_image_action, ecr_image_scan, endpoint_state, training_state
from tests.alarms import put_rollback_alarm

MANIFEST = b"""
[build]
scan = true
[train.channels]
train = "iris/train/"
[deploy]
initial_instance_count = 2
[deploy.update]
strategy = "canary"
canary_percent = 50
wait_interval_seconds = 60
rollback_alarms = ["iris-5xx"]
[deploy.autoscaling]
min_capacity = 1
max_capacity = 4
target_invocations_per_instance = 50
"""
HANDLERS = {
    "Object Created": "bundle_uploaded",
    "CodeBuild Build State Change": "build_state_changed",
    "ECR Image Action": "image_pushed",
    "ECR Image Scan": "image_scanned",
    "SageMaker Training Job State Change": "training_state_changed",
    "SageMaker Endpoint State Change": "endpoint_state_changed",
}
REFUSED = "sagedock-test-answered"  # set on a request the hook answered: moto must not apply it
MAX_DELIVERIES = 4  # Lambda's two retries of an asynchronous invocation, then EventBridge's own retries


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _fault(kind: str, service: str, url: str) -> AWSResponse:
    """The answer AWS gives when it throttles or fails, in the service's protocol."""
    status = 503 if kind == "5xx" else 400
    if service == "s3":
        code = "SlowDown" if status == 503 else "Throttling"
        body = f"<Error><Code>{code}</Code><Message>Please reduce your request rate.</Message></Error>"
        return AWSResponse(url, 503, {"Content-Type": "application/xml"}, _Raw(body.encode()))
    if kind == "5xx":
        code = "ServiceUnavailable"
    elif service == "dynamodb":
        code = "ProvisionedThroughputExceededException"
    else:
        code = "ThrottlingException"
    payload = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
    return AWSResponse(url, status, headers, _Raw(payload))


@dataclass
class Faults:
    """Fails chosen calls as AWS would, and answers UpdateEndpoint as SageMaker does (moto lacks it)."""

    fail_first: int = 0  # every call: this many attempts fail before one gets through
    exhaust: str | None = None  # "service.Operation": every attempt of its first call fails
    kinds: Iterator[str] = field(default_factory=lambda: itertools.cycle(["throttle", "5xx"]))
    injected: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)  # calls that reached AWS (moto, or UpdateEndpoint)
    exhausted: bool = False
    roll_back: bool = False  # UpdateEndpoint is rolled back by the rollback alarm
    sleeps: list[float] = field(default_factory=list)

    def hook(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        service = {"application-auto-scaling": "application-autoscaling"}.get(service, service)
        key = f"{service}.{operation}"
        attempt = int(request.context.get("retries", {}).get("attempt", 1))
        if attempt <= self.fail_first or (key == self.exhaust and not self.exhausted):
            self.injected[key] += 1
            if key == self.exhaust and attempt >= int(aws.RETRIES[service]["total_max_attempts"]):
                self.exhausted = True  # the client's last attempt of the call: the next call may pass
            request.context[REFUSED] = True  # AWS throttled it: nothing of it is applied
            return _fault(next(self.kinds), service, request.url)
        request.context.pop(REFUSED, None)  # the context is shared by the attempts of one call
        self.applied[key] += 1
        if key == "sagemaker.UpdateEndpoint":
            request.context[REFUSED] = True  # answered here: moto must not answer it too
            return self._update(request)
        return None

    def _update(self, request: Any) -> AWSResponse:
        params = json.loads(request.body)
        endpoint = _moto_sagemaker().endpoints[params["EndpointName"]]
        if self.roll_back:  # the update's alarm fires: the endpoint stays on its config
            endpoint.failure_reason = "Deployment rolled back: an alarm went to ALARM during baking."
            aws.client("cloudwatch").set_alarm_state(
                AlarmName="iris-5xx", StateValue="ALARM", StateReason="5xx"
            )
        else:
            endpoint.endpoint_config_name = params["EndpointConfigName"]
        body = json.dumps({"EndpointArn": endpoint.arn}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Raw(body))


@dataclass
class Wired:
    cloud: Cloud
    faults: Faults
    deliveries: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """Lambda's delivery of an event: redelivered while the handler raises, up to MAX_DELIVERIES times."""
        handler = HANDLERS[event["detail-type"]]
        for _ in range(MAX_DELIVERIES):
            self.deliveries[handler] += 1
            try:
                return self.cloud.send(handler, event)
            except Exception as exc:
                self.errors.append(f"{handler}: {type(exc).__name__}: {exc}")
        pytest.fail(f"{handler} failed {MAX_DELIVERIES} deliveries: {self.errors[-MAX_DELIVERIES:]}")


@pytest.fixture
def wired(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, install_services: InstallServices
) -> Iterator[Wired]:
    """The app on moto with the clients chalicelib builds (their own retries), faults under them."""
    answer = BotocoreStubber.__call__

    def unless_refused(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        """moto's answer, unless AWS refused the request (every before-send handler runs, ours first)."""
        return None if request.context.get(REFUSED) else answer(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", unless_refused)
    for cloud in open_cloud(monkeypatch, tmp_path, SETTINGS):
        faults = Faults()
        monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=faults.sleeps.append))
        aws.reset_clients()
        clients = {name: aws.client(name) for name in aws.RETRIES}
        for made in clients.values():
            made.meta.events.register_first("before-send", faults.hook)
        install_services(
            dynamodb=Atomic(clients["dynamodb"]),
            codebuild=CodeBuild(clients["codebuild"], SETTINGS["SAGEDOCK_CODEBUILD_PROJECT"]),
            sagemaker=SageMaker(clients["sagemaker"]),
        )
        yield Wired(cloud, faults)


def run_pipeline(w: Wired) -> tuple[str, str]:
    """Two runs of the project through every event, the second updating the first's endpoint (canary,
    rollback alarm, autoscaling, scan gate): the two run ids."""
    cloudwatch = aws.client("cloudwatch")
    w.faults.exhaust, exhaust = None, w.faults.exhaust  # the alarm is the user's, made before the test
    put_rollback_alarm(cloudwatch, "iris-5xx")
    w.faults.exhaust = exhaust
    first = trained(w, "bundles/iris/v1.zip", DIGEST)
    w.deliver(endpoint_state("iris", w.cloud.run(first)["endpoint_config_name"], "IN_SERVICE"))
    second = trained(w, "bundles/iris/v2.zip", "sha256:" + "cd" * 32)
    w.deliver(endpoint_state("iris", w.cloud.run(second)["endpoint_config_name"], "IN_SERVICE"))
    return first, second


def trained(w: Wired, key: str, digest: str) -> str:
    """A bundle taken through its upload, push, scan, build and training events: its run id."""
    uploaded = w.cloud.upload(key, make_bundle({"sagedock.toml": MANIFEST}))
    run_id = str(w.deliver(uploaded)["run_id"])
    run = w.cloud.run(run_id)
    w.deliver(ecr_image_action("sagedock/iris", digest, run_id))  # waits for the scan
    w.deliver(ecr_image_scan("sagedock/iris", digest, [run_id], {"LOW": 1}))
    succeeded = build_state(
        "sagedock-build", run["build_id"], "SUCCEEDED", run_id=run_id, exported={"IMAGE_DIGEST": digest}
    )
    w.deliver(succeeded)
    w.deliver(training_state(w.cloud.run(run_id)["training_job_name"], "Completed"))
    return run_id


def assert_done_once(w: Wired, first: str, second: str) -> None:
    """Both runs SUCCEEDED with their provenance; each build, job, endpoint change and scaling done once."""
    for run_id in (first, second):
        run = w.cloud.run(run_id)
        assert run["status"] == "SUCCEEDED", run
        assert run["build_id"] and run["scan"] and run["training_job_name"] and run["model_artifact"]
    applied = w.faults.applied
    assert applied["codebuild.StartBuild"] == 2
    assert applied["sagemaker.CreateTrainingJob"] == 2 and len(_moto_sagemaker().training_jobs) == 2
    assert applied["sagemaker.CreateEndpoint"] == 1
    assert applied["sagemaker.UpdateEndpoint"] == 1
    assert _moto_sagemaker().endpoints["iris"].endpoint_config_name == second
    scaling = aws.client("application-autoscaling")
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    assert len(scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]) == 1


def test_faults_the_clients_retries_absorb_change_nothing(wired: Wired) -> None:
    # Given every call's first two attempts throttled or failing with a 5xx
    wired.faults.fail_first = 2
    # When both runs go through every event
    first, second = run_pipeline(wired)
    # Then each event was handled in one delivery, and everything happened once
    assert set(wired.deliveries.values()) == {2, 4} or max(wired.deliveries.values()) <= 4
    assert sum(wired.deliveries.values()) == 12
    assert_done_once(wired, first, second)
    # And faults reached every service the pipeline calls, and the clients backed off within their bounds
    services = {key.split(".")[0] for key in wired.faults.injected}
    assert services >= {"s3", "dynamodb", "ecr", "codebuild", "sagemaker", "application-autoscaling"}
    assert wired.faults.sleeps and max(wired.faults.sleeps) <= 8  # 2 ** (attempts - 2), jittered


# Every call the two runs make, as service.Operation: each in turn fails on every attempt of its first call.
PIPELINE_CALLS = [
    "s3.GetObject",
    "dynamodb.PutItem",
    "dynamodb.GetItem",
    "dynamodb.UpdateItem",
    "ecr.CreateRepository",
    "ecr.DescribeRepositories",
    "ecr.DescribeImageScanFindings",
    "codebuild.StartBuild",
    "sagemaker.CreateTrainingJob",
    "sagemaker.DescribeTrainingJob",
    "sagemaker.CreateModel",
    "sagemaker.CreateEndpointConfig",
    "sagemaker.ListEndpoints",
    "sagemaker.DescribeEndpoint",
    "sagemaker.DescribeEndpointConfig",
    "sagemaker.CreateEndpoint",
    "sagemaker.UpdateEndpoint",
    "application-autoscaling.RegisterScalableTarget",
    "application-autoscaling.PutScalingPolicy",
]


@pytest.mark.parametrize("call", PIPELINE_CALLS)
def test_a_call_failing_past_its_retries_is_finished_by_redelivery_without_duplicates(
    wired: Wired, call: str
) -> None:
    # Given one call failing on every attempt the client makes, once
    wired.faults.exhaust = call
    # When both runs go through every event, redelivered while a handler fails
    first, second = run_pipeline(wired)
    # Then the call failed past its retries, and (but for the idempotency record of a side effect already
    # done, whose result the delivery keeps) the handler failed and its event was delivered again
    assert wired.faults.exhausted, f"{call} was never made"
    redelivered = sum(wired.deliveries.values()) > 12
    assert redelivered == (call != "dynamodb.UpdateItem"), wired.errors
    # And the runs still ended SUCCEEDED, with nothing done twice and nothing lost
    assert_done_once(wired, first, second)


@pytest.mark.parametrize("fault", ["absorbed", "exhausted"])
def test_a_rollback_is_recorded_whatever_the_faults_on_reading_its_alarms(wired: Wired, fault: str) -> None:
    # Given the alarm read throttled (twice, or past its retries once), and an update its alarm rolls back
    _, second = run_pipeline(wired)  # the endpoint in service, its alarm made
    serving = wired.cloud.run(second)["endpoint_config_name"]
    wired.faults.roll_back = True
    third = trained(wired, "bundles/iris/v3.zip", "sha256:" + "ef" * 32)
    if fault == "absorbed":
        wired.faults.fail_first = 2
    else:
        wired.faults.exhaust = "cloudwatch.DescribeAlarms"
    # When the endpoint's event says it is in service on its old config
    wired.deliver(endpoint_state("iris", serving, "IN_SERVICE"))
    # Then the run FAILED with the alarm named, and the faults did reach the alarm read
    error = wired.cloud.run(third)["error"]
    assert error["code"] == "EndpointUpdateRolledBack" and "iris-5xx" in error["message"], error
    assert serving in error["message"] and _moto_sagemaker().endpoints["iris"].endpoint_config_name == serving
    assert wired.faults.injected["cloudwatch.DescribeAlarms"] >= 2
    assert wired.faults.exhausted == (fault == "exhausted")
