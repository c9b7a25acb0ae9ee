"""Runs an image's `train` and `serve` as containers of the chosen engine, as SageMaker runs them.

Each job and endpoint is a container of its own (own /tmp, /var/log, network namespace), named
`sagedock-<kind>-<name>-<nonce>` and labelled with the local cloud that started it, so leftovers can be
found and removed. `--init` puts an init process at PID 1 so SIGTERM stops `serve` at once; memory is
limited to the instance type's. Training gets /opt/ml as laid out by `layout_opt_ml`; serving gets the
model read-only at /opt/ml/model and port 8080 published on a loopback port.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.image import make_writable
from sagedock.local.engine import Engine
from sagedock.local.images import parse_image_uri
from sagedock.optml import unpack_model
from sagedock.programs import Log, ServeProcess, TrainOutcome, _Running, judge_train

LABEL = "org.sagedock.local-cloud"
SERVING_PORT = 8080
# Memory of the ml.* instance types (GiB): a container gets at most its instance's (and the host's).
INSTANCE_MEMORY_GIB = {
    "ml.t2.medium": 4,
    "ml.t2.large": 8,
    "ml.t2.xlarge": 16,
    "ml.t3.medium": 4,
    "ml.t3.large": 8,
    "ml.m4.xlarge": 16,
    "ml.m5.large": 8,
    "ml.m5.xlarge": 16,
    "ml.m5.2xlarge": 32,
    "ml.m5.4xlarge": 64,
    "ml.m6i.large": 8,
    "ml.m6i.xlarge": 16,
    "ml.c5.large": 4,
    "ml.c5.xlarge": 8,
    "ml.c5.2xlarge": 16,
    "ml.r5.large": 16,
    "ml.g4dn.xlarge": 16,
    "ml.g5.xlarge": 16,
    "ml.p3.2xlarge": 61,
}


def memory_limit(instance_type: str) -> str | None:
    """`--memory` for the instance type, capped by this machine's memory; None for an unknown type."""
    gib = INSTANCE_MEMORY_GIB.get(instance_type)
    if gib is None:
        return None
    mib = gib * 1024
    with contextlib.suppress(OSError, ValueError, AttributeError):
        mib = min(mib, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))
    return f"{mib}m"


def container_name(kind: str, name: str) -> str:
    """`sagedock-<kind>-<name>-<nonce>`: unique, and recognisable as ours."""
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-.")[:60] or "x"
    return f"sagedock-{kind}-{slug}-{uuid.uuid4().hex[:8]}"


def _engine_env(engine: Engine) -> dict[str, str]:
    return {**os.environ, **(engine.env or {})}


def _cli(engine: Engine, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert engine.command is not None, "process mode has no engine CLI"
    return subprocess.run(
        [engine.command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_engine_env(engine),
    )


def _run_argv(
    engine: Engine,
    *,
    name: str,
    owner: str,
    image: str,
    program: str,
    mounts: list[str],
    env: Mapping[str, str],
    instance_type: str,
    extra: tuple[str, ...] = (),
) -> list[str]:
    assert engine.command is not None, "process mode has no engine CLI"
    argv = [engine.command, "run", "--rm", "--init", "--name", name, "--label", f"{LABEL}={owner}"]
    limit = memory_limit(instance_type)
    if limit:
        argv += ["--memory", limit]
    for mount in mounts:
        argv += ["-v", mount]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    return [*argv, *extra, image, program]


def _start(engine: Engine, argv: list[str], cwd: Path, log: Log | None) -> _Running:
    cwd.mkdir(parents=True, exist_ok=True)
    return _Running(argv, _engine_env(engine), cwd, log)


def remove(engine: Engine, name: str) -> None:
    """Remove a container whatever its state (a container already gone is fine)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        _cli(engine, "rm", "--force", "--time", "0", name)


def remove_owned(engine: Engine, owner: str) -> list[str]:
    """Remove every container a local cloud (`owner`) started and left; their names."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        found = _cli(engine, "ps", "--all", "--filter", f"label={LABEL}={owner}", "--format", "{{.Names}}")
        names = found.stdout.split() if found.returncode == 0 else []
        for name in names:
            remove(engine, name)
        return names
    return []


def untag_registry(engine: Engine, registry: str) -> list[str]:
    """Drop the engine's names of images in `registry` (a local cloud's, whose port dies with it). Tags are
    untagged (the built images stay as build cache); a name by digest (an image pulled for a job or an
    endpoint) is removed with `rmi`, since the engine cannot untag a digest. The names dropped."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired, ValueError):
        found = _cli(engine, "images", "--format", "json")
        images = json.loads(found.stdout or "[]") if found.returncode == 0 else []
        names = [
            str(n) for image in images for n in image.get("Names") or [] if str(n).startswith(f"{registry}/")
        ]
        for name in sorted(names, key=lambda n: "@" in n):  # tags first: a digest's rmi then frees the image
            if "@" in name:
                _cli(engine, "rmi", name)
            else:
                _cli(engine, "untag", name, name)
        return names
    return []


def run_train(
    engine: Engine,
    image: str,
    opt_ml: Path,
    *,
    job_name: str,
    job_arn: str,
    owner: str,
    instance_type: str = "ml.m5.large",
    region: str = "us-east-1",
    timeout: float = 3600,
    log: Log | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> TrainOutcome:
    """`<image> train` with opt_ml at /opt/ml, judged as SageMaker would (see contract.run_train)."""
    name = container_name("train", job_name)
    env = {
        "TRAINING_JOB_NAME": job_name,
        "TRAINING_JOB_ARN": job_arn,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        **(extra_env or {}),
    }
    argv = _run_argv(
        engine,
        name=name,
        owner=owner,
        image=image,
        program="train",
        mounts=[f"{opt_ml}:/opt/ml"],
        env=env,
        instance_type=instance_type,
    )
    try:
        running = _start(engine, argv, opt_ml.parent, log)
    except OSError as exc:
        return TrainOutcome(False, None, f"train could not start: {exc}")
    try:
        code = running.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            _cli(engine, "stop", "--time", "2", name)
        return TrainOutcome(False, None, f"train did not finish within {timeout:g} s and was stopped")
    finally:
        remove(engine, name)
        running.finish()
    return judge_train(code, opt_ml, list(running.tail))


class ServeContainer(ServeProcess):
    """`<image> serve` in a container of its own, its port 8080 published on a loopback port."""

    def __init__(self, engine: Engine, name: str, running: _Running, port: int, model_dir: Path) -> None:
        super().__init__(running, port, model_dir, stop_signal=15)
        self.engine = engine
        self.name = name

    @classmethod
    def launch(
        cls,
        engine: Engine,
        image: str,
        model_tar: Path,
        *,
        port: int,
        workdir: Path,
        endpoint: str,
        owner: str,
        instance_type: str = "ml.m5.large",
        extra_env: Mapping[str, str] | None = None,
        log: Log | None = None,
    ) -> ServeContainer:
        """Unpack the model under workdir/model (read-only) and start the container serving it."""
        model_dir = workdir / "model"
        if model_tar.is_file():
            unpack_model(model_tar, model_dir)
        else:
            model_dir.mkdir(parents=True, exist_ok=True)
        name = container_name("serve", endpoint)
        argv = _run_argv(
            engine,
            name=name,
            owner=owner,
            image=image,
            program="serve",
            mounts=[f"{model_dir}:/opt/ml/model:ro"],
            env=dict(extra_env or {}),
            instance_type=instance_type,
            extra=("-p", f"127.0.0.1:{port}:{SERVING_PORT}"),
        )
        return cls(engine, name, _start(engine, argv, workdir, log), port, model_dir)

    @property
    def identity(self) -> str:
        """The container's name (what `podman ps` shows)."""
        return self.name

    def stop(self, grace: float = 30) -> int | None:
        """`<engine> stop` (SIGTERM to the init process, SIGKILL after `grace` s), then remove it."""
        proc = self._running.proc
        if proc.poll() is None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _cli(self.engine, "stop", "--time", str(max(int(grace), 0)), self.name, timeout=grace + 30)
            try:
                self.exit_code = proc.wait(10)
            except subprocess.TimeoutExpired:
                self.killed = True
        else:
            self.exit_code = proc.returncode
            self.say_how_it_ended(f"container {self.name}")
        if self.exit_code is not None and self.exit_code in (137, -9):
            self.killed = True
        remove(self.engine, self.name)
        self._running.finish()
        make_writable(self._model_dir)
        return None if self.killed else self.exit_code


@dataclass(frozen=True)
class ContainerRuntime:
    """What the training and hosting executors need in container mode: the engine, the registry, the owner."""

    engine: Engine
    registry: str  # host:port of the local registry (ECR's data plane)
    owner: str  # the label value of this local cloud's containers

    def pull(self, uri: str, ecr: Any) -> str:
        """Pull the image an ECR reference names from the registry, by digest, as SageMaker does; the local
        reference to run. ValueError for a bad reference, LookupError when ECR or the registry lacks it."""
        ref = parse_image_uri(uri)
        image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
        try:
            described = ecr.describe_images(repositoryName=ref.repository, imageIds=[image_id])
            digest = ref.digest or described["imageDetails"][0]["imageDigest"]
        except Exception as exc:
            raise LookupError(f"{uri} is not in the registry") from exc
        local = f"{self.registry}/{ref.repository}@{digest}"
        try:
            done = _cli(self.engine, "pull", "--quiet", local, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LookupError(f"pulling {local}: {exc}") from exc
        if done.returncode != 0:
            raise LookupError(f"pulling {local}: {done.stderr.strip()[-500:]}")
        return local

    def train(self, image: str, opt_ml: Path, **options: Any) -> TrainOutcome:
        """`run_train` with this runtime's engine and owner."""
        return run_train(self.engine, image, opt_ml, owner=self.owner, **options)

    def serve(self, image: str, model_tar: Path, **options: Any) -> ServeContainer:
        """`ServeContainer.launch` with this runtime's engine and owner."""
        return ServeContainer.launch(self.engine, image, model_tar, owner=self.owner, **options)

    def clean(self) -> list[str]:
        """Remove every container this local cloud left (names)."""
        return remove_owned(self.engine, self.owner)

    def untag(self) -> list[str]:
        """Drop the names of the images of this local cloud's registry (see untag_registry)."""
        return untag_registry(self.engine, self.registry)
