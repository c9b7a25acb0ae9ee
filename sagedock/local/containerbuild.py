"""The local CodeBuild in container mode: the project's buildspec.yml run for real, pushed to the registry.

The build's environment is what CodeBuild gives it (the buildspec's variables, the StartBuild overrides,
CODEBUILD_*), with the local cloud's stand-ins: IMAGE_REPO_URI and REGISTRY name the loopback registry
(ECR's data plane here), `docker` and `aws` on PATH are the shims of sagedock.local.shims, and TMPDIR is
the build's own. After post_build the image's manifest, read back from the registry by the exported
IMAGE_DIGEST, is recorded in the emulator's ECR under IMAGE_REPO:IMAGE_TAG, and `ECR Image Action` is
emitted with that digest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagedock import eventshapes as events
from sagedock.local.build import Build, BuildFailed
from sagedock.local.buildspec import PHASES, Buildspec, BuildspecError, BuildspecRun, PhaseResult
from sagedock.local.containers import ContainerRuntime
from sagedock.local.emulator import Emulator
from sagedock.local.engine import Engine
from sagedock.local.registry import LocalRegistry
from sagedock.local.shims import ENGINE_VAR, OWNER_VAR, REGISTRY_VAR, STATE_VAR, install

log = logging.getLogger("local_cloud.build")

Phase = Callable[[Build, str, Any, Callable[[], Any]], Any]


class ContainerBuilds:
    """Runs a build's INSTALL..POST_BUILD phases from buildspec.yml with the engine."""

    def __init__(
        self,
        emulator: Emulator,
        runtime: ContainerRuntime,
        registry: LocalRegistry,
        buildspec: Path,
        root: Path,
    ) -> None:
        self._emulator = emulator
        self._runtime = runtime
        self._registry = registry
        self._buildspec = buildspec
        self._root = root
        self._bin = install(root / "bin")

    def run(self, build: Build, workspace: Path, logfile: Any, phase: Phase) -> None:
        """The four buildspec phases through the executor's `phase` (which records and times them)."""
        scratch = self._root / "builds" / build.id.replace(":", "-")
        try:
            self._run(build, workspace, scratch, logfile, phase)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run(self, build: Build, workspace: Path, scratch: Path, logfile: Any, phase: Phase) -> None:
        try:
            spec = Buildspec.load(self._buildspec)
        except BuildspecError as exc:
            raise BuildFailed("INSTALL", str(exc)) from exc
        run = BuildspecRun(
            spec, workspace, scratch / "shell", self._env(build, workspace, scratch), logfile.write
        )
        failure: BuildFailed | None = None
        aborted = False  # after an aborting build phase only post_build runs, as in CodeBuild
        for name in PHASES:
            if aborted and name != "post_build":
                continue
            try:
                phase(build, name.upper(), logfile, functools.partial(self._phase, run, name, build))
            except BuildFailed as failed:
                failure = failure or failed
                if name in ("install", "pre_build") and run.aborts(name):
                    raise
                aborted = aborted or run.aborts(name)
        if failure is not None:
            raise failure

    def _phase(self, run: BuildspecRun, name: str, build: Build) -> None:
        result: PhaseResult = run.phase(name)
        if not result.ok:
            raise BuildFailed(name.upper(), result.context)
        if name == "post_build" and run.succeeding:
            build.exported = run.exported()
            self._record(build, {v["name"]: v["value"] for v in build.exported})

    def _env(self, build: Build, workspace: Path, scratch: Path) -> dict[str, str]:
        variables = {
            str(v["name"]): str(v.get("value", ""))
            for v in build.variables
            if v.get("type", "PLAINTEXT") == "PLAINTEXT"
        }
        repository = variables.get("IMAGE_REPO", "")
        tmp = scratch / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        engine = self._runtime.engine
        assert engine.command is not None
        return {
            **variables,
            "IMAGE_REPO_URI": f"{self._registry.host}/{repository}",
            "REGISTRY": self._registry.host,
            "CODEBUILD_BUILD_ID": build.id,
            "CODEBUILD_BUILD_ARN": build.arn,
            "CODEBUILD_BUILD_NUMBER": "1",
            "CODEBUILD_INITIATOR": "sagedock-local",
            "CODEBUILD_SOURCE_VERSION": build.source_version or "",
            "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0",
            "PATH": f"{self._bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "TMPDIR": str(tmp),
            "CONTAINERS_REGISTRIES_CONF": str(self._registry.registries_conf),
            ENGINE_VAR: engine.command,
            STATE_VAR: str(scratch / "docker"),
            REGISTRY_VAR: self._registry.host,
            OWNER_VAR: self._runtime.owner,
            **(engine.env or {}),
        }

    def _record(self, build: Build, exported: dict[str, str]) -> None:
        """The pushed image in the emulator's ECR, by the registry's digest, and its `ECR Image Action`."""
        repository = build.variable("IMAGE_REPO")
        tag = build.variable("IMAGE_TAG") or build.variable("RUN_ID")
        digest = exported.get("IMAGE_DIGEST", "")
        try:
            actual, media_type, manifest = self._registry.manifest(repository, digest or tag)
        except (LookupError, OSError) as exc:
            raise BuildFailed(
                "POST_BUILD", f"COMMAND_EXECUTION_ERROR: the pushed image is not in the registry: {exc}"
            ) from exc
        if digest != actual:
            raise BuildFailed(
                "POST_BUILD",
                f"COMMAND_EXECUTION_ERROR: the buildspec exported IMAGE_DIGEST={digest!r} but the registry "
                f"has {repository}:{tag} as {actual}",
            )
        ecr = self._emulator.client("ecr")
        with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):  # pushed before: same image
            ecr.put_image(
                repositoryName=repository,
                imageManifest=manifest.decode(),
                imageManifestMediaType=media_type,
                imageTag=tag,
                imageDigest=digest,
            )
        self._emulator.bus.publish(
            events.ecr_image_action(
                repository=repository, digest=digest, tag=tag, region=self._emulator.region
            )
        )


def owner_of(state: Path) -> str:
    """The label value of the containers of the local cloud on this state dir (one at a time runs there)."""
    return hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]


def start_container_mode(
    emulator: Emulator, engine: Engine, state: Path, project_dir: Path, stack: list[Callable[[], Any]]
) -> tuple[ContainerRuntime, ContainerBuilds]:
    """Start the registry, clean what a previous local cloud on this state dir left, and return the runtime
    the executors use; what must be undone at stop goes on `stack`."""
    registry = LocalRegistry(state / "registry")
    registry.start()
    stack.append(registry.stop)
    owner = owner_of(state)
    conf = {"CONTAINERS_REGISTRIES_CONF": str(registry.registries_conf)}
    runtime = ContainerRuntime(
        dataclasses.replace(engine, env={**(engine.env or {}), **conf}), registry.host, owner
    )
    left = runtime.clean()
    if left:
        log.info("removed %d containers a previous local cloud left: %s", len(left), ", ".join(left))
    stack.append(runtime.untag)
    stack.append(runtime.clean)
    return runtime, ContainerBuilds(
        emulator, runtime, registry, project_dir / "buildspec.yml", state / "codebuild"
    )
