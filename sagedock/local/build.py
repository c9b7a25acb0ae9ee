"""The build executor: does what CodeBuild does with buildspec.yml, without a container engine.

It watches StartBuild on the emulator, fetches the bundle the build's S3 source override names, turns it into
a local image (content-addressed digest), records the image in the emulator's ECR under the build's
IMAGE_REPO:IMAGE_TAG, and emits the `ECR Image Action` and `CodeBuild Build State Change` events AWS would,
with the phases and the exported IMAGE_DIGEST/IMAGE_URI. It also answers BatchGetBuilds and StopBuild.
"""

from __future__ import annotations

import io
import json
import logging
import shlex
import shutil
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sagedock import eventshapes as events
from sagedock.local.emulator import ApiCall, ApiReply, Emulator
from sagedock.local.images import ImageStore
from sagedock.local.logs import LineTee, cloudwatch_logger

log = logging.getLogger("local_cloud.build")

PHASES = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
)
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


class BuildFailed(Exception):
    """A phase of a build failed; the message is the phase context AWS would show."""

    def __init__(self, phase: str, context: str) -> None:
        super().__init__(context)
        self.phase = phase
        self.context = context


class BuildStopped(Exception):
    """StopBuild was called while the build ran."""


@dataclass
class Phase:
    """One phase of a build's timeline."""

    type: str
    start: datetime
    end: datetime | None = None
    status: str | None = None
    context: list[str] = field(default_factory=list)


@dataclass
class Build:
    """A build the executor runs; rendered as BatchGetBuilds answers and as events."""

    id: str
    arn: str
    project: str
    source_location: str
    source_version: str | None
    variables: list[dict[str, str]]
    token: str | None
    start: datetime
    log_path: Path
    status: str = "IN_PROGRESS"
    phases: list[Phase] = field(default_factory=list)
    exported: list[dict[str, str]] = field(default_factory=list)
    end: datetime | None = None
    stop_requested: bool = False

    def variable(self, name: str, default: str = "") -> str:
        """A plaintext environment variable the build was started with."""
        for var in self.variables:
            if var.get("name") == name:
                return str(var.get("value", default))
        return default

    @property
    def current_phase(self) -> str:
        return (
            "COMPLETED"
            if self.status != "IN_PROGRESS"
            else (self.phases[-1].type if self.phases else "QUEUED")
        )

    def api(self) -> dict[str, Any]:
        """The build as BatchGetBuilds / StartBuild return it."""
        phases = []
        for p in self.phases:
            entry: dict[str, Any] = {"phaseType": p.type, "startTime": p.start.timestamp()}
            if p.end is not None:
                entry.update(
                    endTime=p.end.timestamp(), durationInSeconds=int((p.end - p.start).total_seconds())
                )
            if p.status:
                entry["phaseStatus"] = p.status
            if p.context:
                code, _, message = p.context[0].partition(": ")
                entry["contexts"] = [{"statusCode": code, "message": message}]
            phases.append(entry)
        answer: dict[str, Any] = {
            "id": self.id,
            "arn": self.arn,
            "buildNumber": 1,
            "startTime": self.start.timestamp(),
            "currentPhase": self.current_phase,
            "buildStatus": self.status,
            "sourceVersion": self.source_version or "",
            "projectName": self.project,
            "phases": phases,
            "source": {"type": "S3", "location": self.source_location},
            "environment": {
                "type": "LINUX_CONTAINER",
                "image": "aws/codebuild/standard:7.0",
                "computeType": "BUILD_GENERAL1_SMALL",
                "environmentVariables": self.variables,
                "privilegedMode": True,
            },
            "logs": {"deepLink": self.log_path.as_uri()},
            "buildComplete": self.status != "IN_PROGRESS",
            "initiator": "sagedock-local",
            "exportedEnvironmentVariables": self.exported,
        }
        if self.end is not None:
            answer["endTime"] = self.end.timestamp()
        return answer

    def event(self, region: str) -> dict[str, Any]:
        """The `CodeBuild Build State Change` event for the build's current status."""
        return events.codebuild_build_state_change(
            project=self.project,
            build_arn=self.arn,
            status=self.status,
            current_phase=self.current_phase,
            phases=[
                events.codebuild_phase(p.type, p.status, p.start, p.end, p.context)
                for p in [*self.phases, *([Phase("COMPLETED", self.end)] if self.end else [])]
            ],
            environment_variables=[
                {"name": v["name"], "type": v.get("type", "PLAINTEXT"), "value": v.get("value", "")}
                for v in self.variables
            ],
            exported_variables=self.exported,
            source={"location": self.source_location, "type": "S3"},
            started=self.start,
            log_group=f"/aws/codebuild/{self.project}",
            log_stream=self.id.split(":", 1)[-1],
            region=region,
        )


class BuildExecutor:
    """Runs the builds StartBuild asks for, a few at a time."""

    def __init__(
        self,
        emulator: Emulator,
        store: ImageStore,
        workdir: Path,
        *,
        concurrency: int = 2,
        containers: Any = None,
    ) -> None:
        self._emulator = emulator
        self._containers = containers  # container mode: a ContainerBuilds that runs buildspec.yml for real
        self._store = store
        self._workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="codebuild")
        self._builds: dict[str, Build] = {}
        self._by_token: dict[str, str] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        """Watch and answer the CodeBuild calls that involve builds."""
        self._emulator.before("codebuild", "StartBuild", self._replay_token)
        self._emulator.after("codebuild", "StartBuild", self._started)
        self._emulator.before("codebuild", "BatchGetBuilds", self._batch_get)
        self._emulator.before("codebuild", "StopBuild", self._stop)

    def close(self) -> None:
        """Stop the running builds at their next phase and wait for them."""
        with self._lock:
            for build in self._builds.values():
                build.stop_requested = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- API ------------------------------------------------------------------------------------------------
    def _replay_token(self, call: ApiCall) -> ApiReply | None:
        """StartBuild with an idempotency token seen before returns that build, as CodeBuild does."""
        token = call.params.get("idempotencyToken")
        with self._lock:
            build = self._builds.get(self._by_token.get(token, "")) if token else None
        if build is None:
            return None
        if build.source_location != call.params.get("sourceLocationOverride", build.source_location):
            return ApiReply.error(
                "InvalidInputException", "Idempotency token was used with different request parameters"
            )
        return ApiReply.json({"build": build.api()})

    def _started(self, call: ApiCall, answer: dict[str, Any]) -> None:
        params = call.params
        build_id = answer["build"]["id"]
        build = Build(
            id=build_id,
            arn=answer["build"].get("arn")
            or f"arn:aws:codebuild:{call.region}:{events.ACCOUNT}:build/{build_id}",
            project=params["projectName"],
            source_location=params.get("sourceLocationOverride", ""),
            source_version=params.get("sourceVersion"),
            variables=[dict(v) for v in params.get("environmentVariablesOverride", [])],
            token=params.get("idempotencyToken"),
            start=datetime.now(UTC),
            log_path=self._workdir / "logs" / f"{build_id.replace(':', '-')}.log",
        )
        build.phases.append(Phase("SUBMITTED", build.start, build.start, "SUCCEEDED"))
        build.phases.append(Phase("QUEUED", build.start))
        with self._lock:
            self._builds[build_id] = build
            if build.token:
                self._by_token[build.token] = build_id
        self._pool.submit(self._run, build)

    def _batch_get(self, call: ApiCall) -> ApiReply | None:
        ids = list(call.params.get("ids", []))
        with self._lock:
            found = [self._builds[i].api() for i in ids if i in self._builds]
        missing = [i for i in ids if i not in self._builds]
        return ApiReply.json({"builds": found, "buildsNotFound": missing})

    def _stop(self, call: ApiCall) -> ApiReply | None:
        with self._lock:
            build = self._builds.get(call.params.get("id", ""))
            if build is None:
                return ApiReply.error("ResourceNotFoundException", f"Build {call.params.get('id')} not found")
            build.stop_requested = True
            return ApiReply.json({"build": build.api()})

    # -- the build ------------------------------------------------------------------------------------------
    def _run(self, build: Build) -> None:
        region = self._emulator.region
        build.log_path.parent.mkdir(parents=True, exist_ok=True)
        workspace = self._workdir / "src" / build.id.replace(":", "-")
        stream = cloudwatch_logger(
            self._emulator.client("logs"), f"/aws/codebuild/{build.project}", build.id.split(":", 1)[-1]
        )
        with build.log_path.open("a") as file, LineTee(file, stream) as logfile:
            self._emit(build, region)
            try:
                self._phase(build, "PROVISIONING", logfile, lambda: None)
                self._phase(build, "DOWNLOAD_SOURCE", logfile, lambda: self._download(build, workspace))
                if self._containers is not None:
                    self._containers.run(build, workspace, logfile, self._phase)
                else:
                    self._process_phases(build, workspace, logfile)
                self._phase(build, "UPLOAD_ARTIFACTS", logfile, lambda: None)
                build.status = "SUCCEEDED"
            except BuildFailed as failure:
                build.status = "FAILED"
                logfile.write(f"[Container] Phase {failure.phase} failed: {failure.context}\n")
            except BuildStopped:
                build.status = "STOPPED"
            except Exception as exc:  # an executor fault is a build fault, never a hung build
                log.exception("build %s failed unexpectedly", build.id)
                build.status = "FAULT"
                build.phases.append(
                    Phase(
                        "FINALIZING",
                        datetime.now(UTC),
                        datetime.now(UTC),
                        "FAULT",
                        [f"INTERNAL_ERROR: {exc}"],
                    )
                )
            finally:
                shutil.rmtree(workspace, ignore_errors=True)
        now = datetime.now(UTC)
        if build.status != "FAULT":
            build.phases.append(Phase("FINALIZING", now, now, "SUCCEEDED"))
        build.end = now
        log.info("build %s %s", build.id, build.status)
        self._emit(build, region)

    def _process_phases(self, build: Build, workspace: Path, logfile: Any) -> None:
        self._phase(build, "INSTALL", logfile, lambda: None)
        repository = build.variable("IMAGE_REPO")
        self._phase(build, "PRE_BUILD", logfile, lambda: self._check_repository(repository))
        image = self._phase(build, "BUILD", logfile, lambda: self._build(build, workspace, logfile))
        self._phase(build, "POST_BUILD", logfile, lambda: self._push(build, image.digest, logfile))

    def _emit(self, build: Build, region: str) -> None:
        with self._lock:
            event = build.event(region)
        self._emulator.bus.publish(event)

    def _phase(self, build: Build, name: str, logfile: Any, action: Any) -> Any:
        if build.stop_requested:
            raise BuildStopped()
        now = datetime.now(UTC)
        if build.phases and build.phases[-1].end is None:
            build.phases[-1].end, build.phases[-1].status = now, "SUCCEEDED"
        phase = Phase(name, now)
        build.phases.append(phase)
        logfile.write(f"[Container] Entering phase {name}\n")
        logfile.flush()
        try:
            result = action()
        except BuildFailed as failure:
            phase.end, phase.status, phase.context = datetime.now(UTC), "FAILED", [failure.context]
            raise BuildFailed(name, failure.context) from failure
        phase.end, phase.status = datetime.now(UTC), "SUCCEEDED"
        logfile.write(f"[Container] Phase complete: {name} State: SUCCEEDED\n")
        return result

    def _download(self, build: Build, workspace: Path) -> None:
        location = build.source_location.removeprefix("arn:aws:s3:::")
        bucket, _, key = location.partition("/")
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if build.source_version:
            request["VersionId"] = build.source_version
        try:
            body = self._emulator.client("s3").get_object(**request)["Body"].read()
        except Exception as exc:
            raise BuildFailed(
                "DOWNLOAD_SOURCE", f"CLIENT_ERROR: could not get s3://{location}: {exc}"
            ) from exc
        try:
            extract_bundle(body, workspace)
        except (zipfile.BadZipFile, ValueError) as exc:
            raise BuildFailed(
                "DOWNLOAD_SOURCE", f"CLIENT_ERROR: the source is not a usable zip: {exc}"
            ) from exc

    def _check_repository(self, repository: str) -> None:
        try:
            self._emulator.client("ecr").describe_repositories(repositoryNames=[repository])
        except Exception as exc:
            raise BuildFailed(
                "PRE_BUILD",
                f"COMMAND_EXECUTION_ERROR: Error while executing command: docker login. Reason: "
                f"repository {repository!r} is not available: {exc}",
            ) from exc

    def _build(self, build: Build, workspace: Path, logfile: Any) -> Any:
        dockerfile = build.variable("DOCKERFILE", "Dockerfile") or "Dockerfile"
        build_args = parse_build_args(build.variable("BUILD_ARGS"))
        logfile.write(f"[Container] Running command docker build -f {dockerfile} .\n")
        try:
            image = self._store.build(workspace, dockerfile=dockerfile, build_args=build_args)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logfile.write(f"{exc}\n")
            raise BuildFailed(
                "BUILD",
                f"COMMAND_EXECUTION_ERROR: Error while executing command: docker build -f {dockerfile} . "
                f"Reason: {first}",
            ) from exc
        for note in image.notes:  # RUN steps skipped, settings ignored: said once each, where users look
            logfile.write(f"process mode: {note}\n")
        logfile.write(f"[Container] Built image {image.digest}\n")
        return image

    def _push(self, build: Build, digest: str, logfile: Any) -> None:
        repository = build.variable("IMAGE_REPO")
        tag = build.variable("IMAGE_TAG") or build.variable("RUN_ID")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 0,
                "digest": digest,
            },
            "layers": [],
        }
        ecr = self._emulator.client("ecr")
        try:
            ecr.put_image(
                repositoryName=repository,
                imageManifest=json.dumps(manifest),
                imageManifestMediaType=MANIFEST_MEDIA_TYPE,
                imageTag=tag,
                imageDigest=digest,
            )
        except ecr.exceptions.ImageAlreadyExistsException:
            pass  # docker push of an image the repository has under this tag already succeeds
        except Exception as exc:
            raise BuildFailed(
                "POST_BUILD",
                f"COMMAND_EXECUTION_ERROR: Error while executing command: docker push. Reason: {exc}",
            ) from exc
        logfile.write(f"[Container] Pushed {repository}:{tag} {digest}\n")
        self._emulator.bus.publish(
            events.ecr_image_action(
                repository=repository, digest=digest, tag=tag, region=self._emulator.region
            )
        )
        uri = build.variable("IMAGE_REPO_URI") or repository
        build.exported = [
            {"name": "IMAGE_DIGEST", "value": digest},
            {"name": "IMAGE_URI", "value": f"{uri}@{digest}"},
        ]


def parse_build_args(text: str) -> dict[str, str]:
    """The buildspec's BUILD_ARGS as a mapping: a JSON object (what the pipeline sends), or `K=V K2=V2`."""
    if (text or "").startswith("{"):
        return {str(name): str(value) for name, value in json.loads(text).items()}
    args: dict[str, str] = {}
    for word in shlex.split(text or ""):
        name, sep, value = word.partition("=")
        if sep and name:
            args[name] = value
    return args


def extract_bundle(data: bytes, dest: Path) -> None:
    """Unzip a bundle, refusing entries that would land outside `dest` or be links."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            path = PurePosixPath(info.filename)
            if path.is_absolute() or ".." in path.parts:
                raise ValueError(f"entry {info.filename!r} points outside the bundle")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"entry {info.filename!r} is a symlink")
            target = dest.joinpath(*path.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode | 0o600)
