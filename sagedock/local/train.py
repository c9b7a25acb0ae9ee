"""The training executor: does what SageMaker training does with CreateTrainingJob, as local processes.

For each job: resolve the image by digest in the emulator's ECR and the local image store, download the
channels from the emulator's S3, lay out /opt/ml as SageMaker does, run the image's `train` through the
container contract runner, upload `model.tar.gz` to `<S3OutputPath>/<job>/output/`, keep DescribeTrainingJob
answering like AWS, and emit `SageMaker Training Job State Change` at each status change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagedock import eventshapes as events
from sagedock.local.emulator import ApiCall, ApiReply, Emulator
from sagedock.local.images import ImageStore
from sagedock.local.logs import cloudwatch_logger, line_logger, tee
from sagedock.optml import layout_opt_ml, pack_model
from sagedock.programs import FAILURE_REASON_LIMIT, run_train

log = logging.getLogger("local_cloud.train")

DEFAULT_MAX_RUNTIME = 86_400


class JobFailed(Exception):
    """The job cannot go on; the message is its FailureReason."""


class TrainExecutor:
    """Runs the jobs CreateTrainingJob starts, a few at a time."""

    def __init__(
        self,
        emulator: Emulator,
        store: ImageStore,
        workdir: Path,
        logs: Path,
        *,
        concurrency: int = 2,
        containers: Any = None,
    ) -> None:
        self._emulator = emulator
        self._containers = containers  # container mode: a ContainerRuntime; None runs processes
        self._store = store
        self._workdir = workdir
        self._logs = logs
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="training")
        self._stopping: set[str] = set()
        self._closing = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Watch CreateTrainingJob; answer StopTrainingJob (moto has no such operation)."""
        self._emulator.before("sagemaker", "CreateTrainingJob", self._unique_name)
        self._emulator.after("sagemaker", "CreateTrainingJob", self._created)
        self._emulator.before("sagemaker", "StopTrainingJob", self._stop)

    def close(self) -> None:
        """Drop the queued jobs and end the running ones: their `train` process groups are terminated."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._closing = True
        terminate_child_groups()
        self._pool.shutdown(wait=True)

    # -- API ------------------------------------------------------------------------------------------------
    def _unique_name(self, call: ApiCall) -> ApiReply | None:
        name = str(call.params.get("TrainingJobName", ""))
        if self._job(name) is None:
            return None
        arn = f"arn:aws:sagemaker:{call.region}:{events.ACCOUNT}:training-job/{name.lower()}"
        return ApiReply.error(
            "ResourceInUse",
            "Training job names must be unique within an AWS account and region, and a training job with "
            f"this name already exists ({arn})",
        )

    def _created(self, call: ApiCall, answer: dict[str, Any]) -> None:
        name = call.params["TrainingJobName"]
        self._update(
            name, status="InProgress", secondary="Starting", message="Preparing the instances for training"
        )
        self._emit(name)
        self._pool.submit(self._run, name, dict(call.params))

    def _stop(self, call: ApiCall) -> ApiReply | None:
        name = str(call.params.get("TrainingJobName", ""))
        job = self._job(name)
        if job is None:
            return ApiReply.error("ValidationException", f"Requested resource not found: training job {name}")
        if job.training_job_status != "InProgress":
            return ApiReply.error(
                "ValidationException",
                f"The request was rejected because the training job is in status {job.training_job_status}.",
            )
        with self._lock:
            self._stopping.add(name)
        self._update(name, status="Stopping", secondary="Stopping", message="Stopping the training job")
        self._emit(name)
        return ApiReply.json({})

    # -- the job --------------------------------------------------------------------------------------------
    def _run(self, name: str, request: dict[str, Any]) -> None:
        root = self._workdir / name
        try:
            self._train(name, request, root)
        except JobFailed as failure:
            self._finish(name, "Failed", failure_reason=str(failure)[:FAILURE_REASON_LIMIT])
        except Exception as exc:
            log.exception("training job %s failed unexpectedly", name)
            self._finish(name, "Failed", failure_reason=f"InternalServerError: {exc}"[:FAILURE_REASON_LIMIT])
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _train(self, name: str, request: dict[str, Any], root: Path) -> None:
        spec = request.get("AlgorithmSpecification", {})
        image = self._resolve_image(str(spec.get("TrainingImage", "")))
        if self._stopped(name):
            return
        self._update(name, secondary="Downloading", message="Downloading input data")
        self._emit(name)
        channels = {
            channel["ChannelName"]: self._download_channel(
                channel, root / "channels" / channel["ChannelName"]
            )
            for channel in request.get("InputDataConfig", [])
        }
        resource = request.get("ResourceConfig", {})
        opt_ml = root / "opt_ml"
        layout_opt_ml(
            opt_ml,
            hyperparameters={k: str(v) for k, v in (request.get("HyperParameters") or {}).items()},
            channels=channels,
            instance_type=str(resource.get("InstanceType", "ml.m5.large")),
            instance_count=int(resource.get("InstanceCount", 1)),
        )
        if self._stopped(name):
            return
        self._update(
            name, secondary="Training", message="Training image download completed. Training in progress."
        )
        self._emit(name)
        runtime = int(request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME))
        outcome = (self._containers.train if self._containers is not None else run_train)(
            image,
            opt_ml,
            timeout=runtime,
            **self._container_options(name, resource),
            log=tee(
                line_logger(self._logs / f"{name}.log"),
                # SageMaker's stream of the job's first instance: <job>/algo-1-<epoch seconds>
                cloudwatch_logger(
                    self._emulator.client("logs"),
                    "/aws/sagemaker/TrainingJobs",
                    f"{name}/algo-1-{int(time.time())}",
                ),
            ),
            extra_env={str(k): str(v) for k, v in (request.get("Environment") or {}).items()},
        )
        if self._stopped(name):
            return
        if not outcome.ok:
            reason = (
                outcome.failure_reason or f"AlgorithmError: see the job's log, exit code: {outcome.exit_code}"
            )
            raise JobFailed(reason)
        self._update(name, secondary="Uploading", message="Uploading generated training model")
        self._emit(name)
        artifact = self._upload_model(name, request, opt_ml, root)
        self._finish(name, "Completed", artifact=artifact)

    def _container_options(self, name: str, resource: dict[str, Any]) -> dict[str, Any]:
        """What a container needs beyond what a process does: the job's identity, its instance type."""
        if self._containers is None:
            return {}
        region = self._emulator.region
        return {
            "job_name": name,
            "job_arn": f"arn:aws:sagemaker:{region}:{events.ACCOUNT}:training-job/{name.lower()}",
            "instance_type": str(resource.get("InstanceType", "ml.m5.large")),
            "region": self._emulator.region,
        }

    def _resolve_image(self, uri: str) -> Any:
        try:
            if self._containers is not None:
                return self._containers.pull(uri, self._emulator.client("ecr"))
            return self._store.pull(uri, self._emulator.client("ecr"))
        except ValueError as exc:
            raise JobFailed(f"ClientError: {exc}") from exc
        except LookupError as exc:
            raise JobFailed(
                f"ClientError: Cannot pull the training image {uri}: it does not exist in the registry "
                "or was not built here"
            ) from exc

    def _download_channel(self, channel: dict[str, Any], dest: Path) -> Path:
        uri = str(channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", ""))
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        s3 = self._emulator.client("s3")
        dest.mkdir(parents=True, exist_ok=True)
        count = 0
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(prefix) :].lstrip("/") or obj["Key"].rsplit("/", 1)[-1]
                    if obj["Key"].endswith("/"):
                        continue
                    target = dest / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, obj["Key"], str(target))
                    count += 1
        except Exception as exc:
            raise JobFailed(f"ClientError: Data download failed: {exc}") from exc
        if not count:
            raise JobFailed(
                f'ClientError: Data download failed:No S3 objects found under S3 URL "{uri}" given in input '
                "data source. Please ensure that the bucket exists in the selected region "
                f"({self._emulator.region}) and that objects exist under that S3 prefix."
            )
        return dest

    def _upload_model(self, name: str, request: dict[str, Any], opt_ml: Path, root: Path) -> str:
        output = str(request.get("OutputDataConfig", {}).get("S3OutputPath", "")).rstrip("/")
        bucket, _, prefix = output.removeprefix("s3://").partition("/")
        key = "/".join(p for p in (prefix, name, "output", "model.tar.gz") if p)
        tarball = pack_model(opt_ml, root / "model.tar.gz")
        try:
            self._emulator.client("s3").upload_file(str(tarball), bucket, key)
        except Exception as exc:
            raise JobFailed(f"ClientError: could not upload the model to s3://{bucket}/{key}: {exc}") from exc
        return f"s3://{bucket}/{key}"

    # -- state ----------------------------------------------------------------------------------------------
    def _stopped(self, name: str) -> bool:
        with self._lock:
            stopping = name in self._stopping or self._closing
        if stopping:
            self._finish(name, "Stopped")
        return stopping

    def _finish(
        self, name: str, status: str, *, failure_reason: str | None = None, artifact: str | None = None
    ) -> None:
        messages = {
            "Completed": "Training job completed",
            "Failed": failure_reason or "Training job failed",
            "Stopped": "The training job was stopped",
        }
        self._update(
            name,
            status=status,
            secondary=status,
            message=messages[status],
            failure_reason=failure_reason,
            artifact=artifact,
            ended=True,
        )
        log.info("training job %s %s%s", name, status, f": {failure_reason}" if failure_reason else "")
        self._emit(name)

    def _job(self, name: str) -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[events.ACCOUNT][self._emulator.region].training_jobs.get(name)

    def _update(
        self,
        name: str,
        *,
        status: str | None = None,
        secondary: str | None = None,
        message: str = "",
        failure_reason: str | None = None,
        artifact: str | None = None,
        ended: bool = False,
    ) -> None:
        """Make DescribeTrainingJob say what AWS would say at this point of the job."""
        job = self._job(name)
        if job is None:
            return
        now = datetime.now(UTC)
        with self._lock:
            if status:
                job.training_job_status = status
            if secondary:
                transitions = [t for t in job.secondary_status_transitions if t.get("Status") != secondary]
                if transitions and "EndTime" not in transitions[-1]:
                    transitions[-1]["EndTime"] = now
                entry = {"Status": secondary, "StartTime": now, "StatusMessage": message}
                if ended:
                    entry["EndTime"] = now
                job.secondary_status_transitions = [*transitions, entry]
                job.secondary_status = secondary
            if status == "InProgress":
                job.training_start_time = now
                job.secondary_status_transitions = [
                    {"Status": "Starting", "StartTime": now, "StatusMessage": message}
                ]
                job.training_end_time = None
                job.model_artifacts = None
                job.final_metric_data_list = []
            if failure_reason:
                job.failure_reason = failure_reason
            if artifact:
                job.model_artifacts = {"S3ModelArtifacts": artifact}
            if ended:
                job.training_end_time = now
            job.last_modified_time = now

    def _emit(self, name: str) -> None:
        sagemaker = self._emulator.client("sagemaker")
        description = sagemaker.describe_training_job(TrainingJobName=name)
        job = self._job(name)
        description["Tags"] = list(getattr(job, "tags", None) or [])
        self._emulator.bus.publish(
            events.training_job_state_change(description, region=self._emulator.region)
        )


def terminate_child_groups(grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process group led by a child of this process (each `train` runs in its
    own session, so its group is its pid). Linux only; elsewhere the jobs run to their own end."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    me = os.getpid()
    children = []
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == me:
                children.append(int(stat.parent.name))
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)
        deadline = time.monotonic() + grace
        while signum == signal.SIGTERM and time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
