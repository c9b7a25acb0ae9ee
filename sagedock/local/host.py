"""The hosting executor: does what SageMaker hosting does with CreateEndpoint and UpdateEndpoint.

Each endpoint runs its image's `serve` on a free loopback port with the model unpacked; an update starts the
new serve, waits for it to be healthy and only then retires the old one (no availability loss, as in AWS).
A serve that does not answer /ping within the variant's ContainerStartupHealthCheckTimeoutInSeconds fails
the create (endpoint Failed) or the update (endpoint back InService on the old config, FailureReason set).
An update's DeploymentConfig is honoured as blue/green (sagedock/local/rollout.py): the new serve takes
traffic only once healthy, in the canary or linear steps asked for, each followed by its baking period;
a rollback alarm in ALARM in the emulator's CloudWatch meanwhile rolls the update back, and the endpoint
keeps serving the old config. Invocations through the emulator's sagemaker-runtime InvokeEndpoint reach
the endpoint's serve (during a shift, the old or the new one in the step's proportion); InvokeEndpointAsync
and data capture are done as SageMaker does them (sagedock/local/inference.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagedock import eventshapes as events
from sagedock.local import inference
from sagedock.local.emulator import ApiCall, ApiReply, Emulator
from sagedock.local.images import ImageStore
from sagedock.local.logs import cloudwatch_logger, line_logger, tee
from sagedock.local.rollout import RolledBack, Shift, bake, traffic_steps
from sagedock.programs import ServeProcess, free_port

log = logging.getLogger("local_cloud.host")

DEFAULT_HEALTH_TIMEOUT = 480  # SageMaker's default: healthy within 8 minutes of start
PING_FAILED = (
    "The primary container for production variant {variant} did not pass the ping health check. "
    "Please check CloudWatch logs for this endpoint."
)


class DeployFailed(Exception):
    """The endpoint cannot serve this config; the message is its FailureReason."""


@dataclass
class Serving:
    """The serve process behind an endpoint, and the config it serves."""

    config: str
    process: ServeProcess
    workdir: Path


class HostExecutor:
    """Runs one serve per endpoint and routes invocations to it."""

    def __init__(
        self,
        emulator: Emulator,
        store: ImageStore,
        workdir: Path,
        *,
        concurrency: int = 8,
        containers: Any = None,
    ) -> None:
        self._emulator = emulator
        self._containers = containers  # container mode: a ContainerRuntime; None runs processes
        self._store = store
        self._workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hosting")
        self._serving: dict[str, Serving] = {}
        self._shifts: dict[str, Shift] = {}  # endpoints whose traffic moves to a new serve
        self._lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()  # ends the baking periods of updates in progress

    def install(self) -> None:
        """Watch the endpoint calls, answer UpdateEndpoint and InvokeEndpoint, reject duplicate names."""
        em = self._emulator
        em.before("sagemaker", "CreateModel", self._unique("ModelName", "model", "model"))
        em.before(
            "sagemaker",
            "CreateEndpointConfig",
            self._unique("EndpointConfigName", "endpoint-config", "endpoint config"),
        )
        em.before("sagemaker", "CreateEndpoint", self._unique("EndpointName", "endpoint", "endpoint"))
        em.after("sagemaker", "CreateEndpoint", self._created)
        em.before("sagemaker", "UpdateEndpoint", self._update_endpoint)
        em.after("sagemaker", "DeleteEndpoint", self._deleted)
        em.before("sagemaker-runtime", "InvokeEndpoint", self._invoke)
        em.before("sagemaker-runtime", "InvokeEndpointAsync", self._invoke_async)

    def close(self) -> None:
        """Stop every serve process (SIGTERM, then SIGKILL after the grace period)."""
        self._stopping.set()
        with self._lock:
            self._closed = True
            serving = list(self._serving.values())
            self._serving.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for entry in serving:
            self._retire(entry)

    # -- API ------------------------------------------------------------------------------------------------
    def _unique(self, field: str, kind: str, label: str) -> Any:
        def check(call: ApiCall) -> ApiReply | None:
            name = str(call.params.get(field, ""))
            if not self._exists(kind, name):
                return None
            arn = f"arn:aws:sagemaker:{call.region}:{events.ACCOUNT}:{kind}/{name.lower()}"
            return ApiReply.error("ValidationException", f'Cannot create already existing {label} "{arn}".')

        return check

    def _created(self, call: ApiCall, answer: dict[str, Any]) -> None:
        name = call.params["EndpointName"]
        self._set_endpoint(name, status="Creating")
        self._emit(name)
        self._pool.submit(self._deploy, name, call.params["EndpointConfigName"], False)

    def _update_endpoint(self, call: ApiCall) -> ApiReply | None:
        name = str(call.params.get("EndpointName", ""))
        config = str(call.params.get("EndpointConfigName", ""))
        endpoint = self._endpoint(name)
        arn = f"arn:aws:sagemaker:{call.region}:{events.ACCOUNT}:endpoint/{name.lower()}"
        if endpoint is None:
            return ApiReply.error("ValidationException", f'Could not find endpoint "{arn}".')
        if not self._exists("endpoint-config", config):
            config_arn = f"arn:aws:sagemaker:{call.region}:{events.ACCOUNT}:endpoint-config/{config.lower()}"
            return ApiReply.error(
                "ValidationException", f'Could not find endpoint configuration "{config_arn}".'
            )
        if endpoint.endpoint_status != "InService":
            return ApiReply.error(
                "ValidationException",
                f'Cannot update in-progress endpoint "{arn}".'
                if endpoint.endpoint_status != "Failed"
                else f'Cannot update failed endpoint "{arn}". Delete it and create it again.',
            )
        self._set_endpoint(name, status="Updating")
        self._emit(name)
        self._pool.submit(self._deploy, name, config, True, call.params.get("DeploymentConfig") or {})
        return ApiReply.json({"EndpointArn": arn})

    def _deleted(self, call: ApiCall, answer: dict[str, Any]) -> None:
        with self._lock:
            entry = self._serving.pop(str(call.params.get("EndpointName", "")), None)
        if entry is not None:
            self._pool.submit(self._retire, entry)

    def _serving_entry(self, name: str) -> Serving | None:
        with self._lock:
            entry = self._serving.get(name)
            shift = self._shifts.get(name)
            if shift is not None:
                entry = shift.pick(entry)
        return entry

    def _config_tables(self, config_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The endpoint config's (AsyncInferenceConfig, DataCaptureConfig), each {} when absent."""
        config = inference.endpoint_config(self._emulator, config_name)
        if config is None:
            return {}, {}
        return (
            dict(getattr(config, "async_inference_config", None) or {}),
            dict(getattr(config, "data_capture_config", None) or {}),
        )

    def _invoke_async(self, call: ApiCall) -> ApiReply | None:
        name = call.path.strip("/").split("/")[1]
        entry = self._serving_entry(name)
        if entry is None:
            return ApiReply.error(
                "ValidationError", f"Endpoint {name} of account {events.ACCOUNT} not found.", status=400
            )
        async_config, capture_config = self._config_tables(entry.config)
        if not async_config:
            return ApiReply.error(
                "ValidationError",
                f"Endpoint {name} of account {events.ACCOUNT} is not an asynchronous endpoint: "
                "use InvokeEndpoint",
                status=400,
            )
        request = inference.queued(name, async_config, call.headers)
        if isinstance(request, tuple):
            return ApiReply.error(*request, status=400)

        def run() -> None:
            serving = self._serving_entry(name) or entry
            inference.process(self._emulator, request, serving.process.invoke, capture_config or None)

        self._pool.submit(run)
        reply = ApiReply.json({"InferenceId": request.inference_id}, status=202)
        reply.headers["Content-Type"] = "application/json"
        reply.headers["X-Amzn-SageMaker-OutputLocation"] = request.output_location
        reply.headers["X-Amzn-SageMaker-FailureLocation"] = request.failure_location
        return reply

    def _invoke(self, call: ApiCall) -> ApiReply | None:
        name = call.path.strip("/").split("/")[1]
        entry = self._serving_entry(name)
        if entry is None:
            return ApiReply.error(
                "ValidationError", f"Endpoint {name} of account {events.ACCOUNT} not found.", status=400
            )
        content_type = call.headers.get("Content-Type", "application/octet-stream")
        try:
            status, out_type, body = entry.process.invoke(call.body, content_type, call.headers.get("Accept"))
        except Exception as exc:
            return ApiReply.error("ModelError", f"Received server error from primary: {exc}", status=424)
        if status >= 400:
            kind = "client" if status < 500 else "server"
            message = body.decode("utf-8", "replace")[:1000]
            reply = ApiReply.error(
                "ModelError",
                f'Received {kind} error ({status}) from primary with message "{message}". '
                f"See the endpoint's log in {entry.workdir} for more information.",
                status=424,
            )
            reply.headers["x-amzn-OriginalStatusCode"] = str(status)
            # As SageMaker Runtime answers: the model's own status and message are members of the error.
            error = json.loads(reply.body)
            reply.body = json.dumps(
                error | {"OriginalStatusCode": status, "OriginalMessage": message}
            ).encode()
            return reply
        _, capture_config = self._config_tables(entry.config)
        if capture_config:
            try:
                inference.capture(
                    self._emulator, capture_config, name, (content_type, call.body), (out_type, body)
                )
            except Exception:
                log.exception("capturing an invocation of %s failed", name)
        return ApiReply(
            200, body, {"Content-Type": out_type, "x-Amzn-Invoked-Production-Variant": "AllTraffic"}
        )

    # -- deploying ------------------------------------------------------------------------------------------
    def _deploy(
        self, name: str, config_name: str, updating: bool, deployment: dict[str, Any] | None = None
    ) -> None:
        workdir = self._workdir / name / f"{config_name}-{datetime.now(UTC):%H%M%S%f}"
        try:
            process, variant = self._start(name, config_name, workdir)
        except DeployFailed as failure:
            self._failed(name, str(failure), updating)
            return
        except Exception as exc:
            log.exception("deploying %s failed unexpectedly", name)
            self._failed(name, f"InternalServerError: {exc}", updating)
            return
        new = Serving(config_name, process, workdir)
        if updating and deployment:
            try:
                self._shift(name, new, variant, deployment)
            except RolledBack as rollback:
                self._rolled_back(name, new, str(rollback))
                return
        with self._lock:
            self._shifts.pop(name, None)
            if self._closed or self._endpoint(name) is None:
                old: Serving | None = new
            else:
                old = self._serving.get(name)
                self._serving[name] = new
        if old is not None:
            self._retire(old)
        if self._endpoint(name) is None:
            return
        self._set_endpoint(name, status="InService", config=config_name, variant=variant, failure_reason=None)
        log.info("endpoint %s InService on %s (%s)", name, config_name, process.url)
        self._emit(name)

    def _shift(self, name: str, new: Serving, variant: dict[str, Any], deployment: dict[str, Any]) -> None:
        """Move the traffic to `new` step by step, baking after each; RolledBack when an alarm fires."""
        policy = deployment.get("BlueGreenUpdatePolicy") or {}
        routing = policy.get("TrafficRoutingConfiguration") or {
            "Type": "ALL_AT_ONCE",
            "WaitIntervalInSeconds": 0,
        }
        alarms = [
            a["AlarmName"] for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])
        ]
        instances = int(variant.get("InitialInstanceCount") or 1)
        deadline = float(policy.get("MaximumExecutionTimeoutInSeconds") or 28800)
        cloudwatch = self._emulator.client("cloudwatch")
        started = datetime.now(UTC)
        for weight in traffic_steps(routing, instances):
            with self._lock:
                if self._closed:
                    return
                self._shifts[name] = Shift(new, weight)
            log.info("endpoint %s: %.0f%% of the traffic on %s", name, weight * 100, new.config)
            wait = float(routing.get("WaitIntervalInSeconds", 0))
            bake(cloudwatch, alarms, wait, started, deadline, self._stopping)
        # The new fleet takes all the traffic; the old one is kept for TerminationWaitInSeconds.
        with self._lock:
            self._shifts[name] = Shift(new, 1.0)
        wait = float(policy.get("TerminationWaitInSeconds", 0))
        bake(cloudwatch, [], wait, started, deadline, self._stopping)

    def _rolled_back(self, name: str, new: Serving, reason: str) -> None:
        """All traffic back on the old serve; the endpoint InService on its old config, with the reason."""
        with self._lock:
            self._shifts.pop(name, None)
        self._retire(new)
        log.info("endpoint %s rolled back: %s", name, reason)
        self._set_endpoint(name, status="InService", failure_reason=reason)
        self._emit(name)

    def _start(self, name: str, config_name: str, workdir: Path) -> tuple[ServeProcess, dict[str, Any]]:
        sagemaker = self._emulator.client("sagemaker")
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variant = config["ProductionVariants"][0]
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        image = self._resolve_image(str(container.get("Image", "")))
        workdir.mkdir(parents=True, exist_ok=True)
        model_tar = workdir / "model.tar.gz"
        data_url = str(container.get("ModelDataUrl", ""))
        if data_url:
            bucket, _, key = data_url.removeprefix("s3://").partition("/")
            try:
                self._emulator.client("s3").download_file(bucket, key, str(model_tar))
            except Exception as exc:
                raise DeployFailed(f"Failed to download model data from {data_url}: {exc}") from exc
        timeout = float(variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or DEFAULT_HEALTH_TIMEOUT)
        container = (
            {"endpoint": name, "instance_type": str(variant.get("InstanceType") or "ml.m5.large")}
            if self._containers is not None
            else {}
        )
        process = (self._containers.serve if self._containers is not None else ServeProcess.start)(
            image,
            model_tar,
            port=free_port(),
            workdir=workdir,
            **container,
            extra_env={str(k): str(v) for k, v in (container.get("Environment") or {}).items()},
            log=tee(
                line_logger(workdir / "serve.log"),
                # SageMaker's stream of one instance of the variant: <variant>/<instance id>
                cloudwatch_logger(
                    self._emulator.client("logs"),
                    f"/aws/sagemaker/Endpoints/{name}",
                    f"{variant.get('VariantName', 'AllTraffic')}/i-{uuid.uuid4().hex[:17]}",
                ),
            ),
        )
        if not process.wait_healthy(timeout):
            process.stop(grace=5)
            raise DeployFailed(PING_FAILED.format(variant=variant.get("VariantName", "AllTraffic")))
        return process, variant

    def _resolve_image(self, uri: str) -> Any:
        try:
            if self._containers is not None:
                return self._containers.pull(uri, self._emulator.client("ecr"))
            return self._store.pull(uri, self._emulator.client("ecr"))
        except Exception as exc:
            raise DeployFailed(
                f"The image '{uri}' does not exist or the execution role lacks permissions to pull it"
            ) from exc

    def _failed(self, name: str, reason: str, updating: bool) -> None:
        if self._endpoint(name) is None:
            return
        with self._lock:
            still_serving = name in self._serving
        if updating and still_serving:
            self._set_endpoint(name, status="InService", failure_reason=reason)
        else:
            self._set_endpoint(name, status="Failed", failure_reason=reason)
        log.info("endpoint %s %s: %s", name, "update failed" if updating else "Failed", reason)
        self._emit(name)

    def _retire(self, entry: Serving) -> None:
        try:
            entry.process.stop(grace=10)
        finally:
            shutil.rmtree(entry.workdir / "model", ignore_errors=True)

    # -- state ----------------------------------------------------------------------------------------------
    def _backend(self) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[events.ACCOUNT][self._emulator.region]

    def _endpoint(self, name: str) -> Any:
        return self._backend().endpoints.get(name)

    def _exists(self, kind: str, name: str) -> bool:
        backend = self._backend()
        collection = {
            "model": backend._models,
            "endpoint-config": backend.endpoint_configs,
            "endpoint": backend.endpoints,
        }.get(kind)
        return collection is not None and name in collection

    def _set_endpoint(
        self,
        name: str,
        *,
        status: str,
        config: str | None = None,
        variant: dict[str, Any] | None = None,
        failure_reason: str | None = "",
    ) -> None:
        endpoint = self._endpoint(name)
        if endpoint is None:
            return
        with self._lock:
            endpoint.endpoint_status = status
            if config is not None:
                endpoint.endpoint_config_name = config
            if variant is not None:
                endpoint.production_variants = endpoint._process_production_variants([variant])
            if failure_reason != "":
                endpoint.failure_reason = failure_reason
            endpoint.last_modified_time = datetime.now(UTC)

    def _emit(self, name: str) -> None:
        try:
            description = self._emulator.client("sagemaker").describe_endpoint(EndpointName=name)
        except Exception:
            return  # deleted meanwhile
        endpoint = self._endpoint(name)
        description["Tags"] = list(getattr(endpoint, "tags", None) or [])
        self._emulator.bus.publish(events.endpoint_state_change(description, region=self._emulator.region))
