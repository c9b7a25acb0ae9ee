"""`sagedock local up`: the emulator, the provisioned resources, the app's handlers and API, the executors.

One LocalCloud per process: the app's handlers and the emulator's hooks are process-wide.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sagedock.eventshapes import REGION
from sagedock.local.emulator import DUMMY_CREDENTIALS, Emulator
from sagedock.local.logs import capture_invocation_output
from sagedock.local.provision import Resources, provision

log = logging.getLogger("local_cloud")


def _project_dir() -> Path:
    """The checkout with app.py: $SAGEDOCK_PROJECT_DIR, else the package's own checkout, else the cwd."""
    configured = os.environ.get("SAGEDOCK_PROJECT_DIR")
    if configured:
        return Path(configured).resolve()
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "app.py").is_file() else Path.cwd()


PROJECT_DIR = _project_dir()
READY_KEY = "SAGEDOCK_LOCAL_READY"
ENV_FILE = "env"


def credentials_env(endpoint_url: str, region: str = REGION) -> dict[str, str]:
    """Dummy credentials and the emulator endpoint: what an AWS SDK or CLI needs to reach the local cloud."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
    }


class AlreadyRunning(Exception):
    """Another local cloud uses the same state directory."""


def running_contract(state: Path) -> dict[str, str]:
    """The contract a live `sagedock local up` wrote to `<state>/env`; empty when none is running there."""
    path = state / ENV_FILE
    if not path.is_file():
        return {}
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    try:
        pid = int(values.get("SAGEDOCK_LOCAL_PID", "0"))
        if pid <= 0:
            return {}
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return {}
    except PermissionError:
        return values  # alive, someone else's
    return values


@dataclass
class LocalCloud:
    """The whole pipeline on this machine: `start()` returns the KEY=VALUE contract, `stop()` undoes all."""

    project_dir: Path = PROJECT_DIR
    state_dir: Path | None = None
    resources: Resources = field(default_factory=Resources)
    workers: int = 4
    emulator: Emulator = field(default_factory=Emulator)
    _stack: list[Any] = field(default_factory=list)
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    contract: dict[str, str] = field(default_factory=dict)
    router: Any = None
    scheduler: Any = None
    host: Any = None
    engine: str = "auto"  # --engine: auto, docker, podman or process
    chosen: Any = None  # the Engine detected at start()
    sandbox: Any = None  # process mode: whether programs run in a sandbox here (sagedock.sandbox.Support)

    @property
    def state(self) -> Path:
        """Where images, logs and work trees go (images are kept across runs: they are content-addressed)."""
        return self.state_dir or self.project_dir / ".sagedock" / "local"

    def describe(self) -> list[str]:
        """What `local up` says once at start: the engine and why; in process mode, whether programs run
        in a sandbox or, when they cannot, what is not isolated."""
        lines = [self.chosen.describe()] if self.chosen is not None else []
        if self.sandbox is not None:
            lines.append(self.sandbox.describe())
        return lines

    def start(self) -> dict[str, str]:
        """Bring everything up; returns the contract (also written to `<state>/env`)."""
        from sagedock.local import scan
        from sagedock.local.build import BuildExecutor
        from sagedock.local.engine import detect, with_registry
        from sagedock.local.host import HostExecutor
        from sagedock.local.images import ImageStore
        from sagedock.local.registry import find_registry
        from sagedock.local.router import Router
        from sagedock.local.scheduler import Scheduler, scale_from, schedules
        from sagedock.local.server import ApiServer
        from sagedock.local.train import TrainExecutor

        started = time.monotonic()
        running = running_contract(self.state)
        if running:
            raise AlreadyRunning(
                f"a local cloud is already running on {self.state} (pid {running['SAGEDOCK_LOCAL_PID']}, API "
                f"{running.get('SAGEDOCK_API_URL')}): use it, stop it, or pass another --state-dir"
            )
        self.chosen = with_registry(detect(self.engine), self.engine, find_registry())
        if not self.chosen.containers:  # found now and said by the caller, not at the first program's start
            from sagedock import sandbox

            self.sandbox = sandbox.support(said=True)
        work = self.state / "work"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(self.state / "logs", ignore_errors=True)
        work.mkdir(parents=True)
        try:
            url = self.emulator.start()
            self._stack.append(self.emulator.stop)
            self._set_env(
                {**credentials_env(url, self.resources.region), **self.resources.settings(), **_quiet_env()}
            )
            import boto3

            provision(
                boto3.session.Session(), url, self.resources, sample_data=self.project_dir / "container"
            )
            store = ImageStore(self.state / "images")
            runtime = builds = None
            if self.chosen.containers:  # container mode: the registry, the buildspec for real, containers
                from sagedock.local.containerbuild import start_container_mode

                runtime, builds = start_container_mode(
                    self.emulator, self.chosen, self.state, self.project_dir, self._stack
                )
            self.host = HostExecutor(self.emulator, store, work / "endpoints", containers=runtime)
            for executor in (
                BuildExecutor(self.emulator, store, self.state / "logs" / "builds", containers=builds),
                TrainExecutor(
                    self.emulator,
                    store,
                    work / "training",
                    self.state / "logs" / "training",
                    containers=runtime,
                ),
                self.host,
            ):
                executor.install()
                self._stack.append(executor.close)
            scan.install(self.emulator)
            self._stack.append(capture_invocation_output(self.state / "logs" / "app.log"))
            app = load_app(self.project_dir)
            warm_clients()
            self.router = Router(app, workers=self.workers)
            self._stack.append(self.router.close)
            self.emulator.bus.subscribe(self.router.deliver)
            # The app's scheduled handlers (the sweepers), at their rate or SAGEDOCK_LOCAL_SCHEDULE_SCALE's.
            self.scheduler = Scheduler(
                schedules(app), self.router.invoke, scale=scale_from(os.environ), region=self.resources.region
            )
            self.scheduler.start()
            self._stack.append(self.scheduler.stop)
            api = ApiServer(app)
            api_url = api.start()
            self._stack.append(api.stop)
        except BaseException:
            self.stop()
            raise
        self.contract = {
            **credentials_env(url, self.resources.region),
            "SAGEDOCK_API_URL": api_url,
            "SAGEDOCK_SOURCE_BUCKET": self.resources.source_bucket,
            "SAGEDOCK_DATA_BUCKET": self.resources.data_bucket,
            "SAGEDOCK_ARTIFACT_BUCKET": self.resources.artifact_bucket,
            "SAGEDOCK_EVENTS_QUEUE_URL": boto3.client("sqs").get_queue_url(
                QueueName=self.resources.events_queue
            )["QueueUrl"],
            "SAGEDOCK_LOCAL_STATE": str(self.state),
            "SAGEDOCK_LOCAL_PID": str(os.getpid()),
            "SAGEDOCK_ENGINE": self.chosen.name,
            **({"SAGEDOCK_LOCAL_REGISTRY": runtime.registry} if runtime is not None else {}),
            READY_KEY: "1",
        }
        (self.state / ENV_FILE).write_text("".join(f"{k}={v}\n" for k, v in self.contract.items()))
        log.info("local cloud up in %.1fs: API %s, emulator %s", time.monotonic() - started, api_url, url)
        return dict(self.contract)

    def stop(self) -> None:
        """Stop everything started, newest first; restore the environment."""
        env_file = self.state / ENV_FILE
        if env_file.exists() and self.contract:
            env_file.unlink()
        while self._stack:
            closer = self._stack.pop()
            began = time.monotonic()
            try:
                closer()
            except Exception:
                log.exception("stopping %s failed", getattr(closer, "__qualname__", closer))
            log.debug("%s took %.2fs", getattr(closer, "__qualname__", closer), time.monotonic() - began)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def _set_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            if key in os.environ:
                self._saved_env.setdefault(key, os.environ[key])
                del os.environ[key]


def _quiet_env() -> dict[str, str]:
    """Never read the user's AWS config or credentials files, nor reach the instance metadata service."""
    return {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",  # metrics are CloudWatch's business; locally they are noise
    }


def load_app(project_dir: Path) -> Any:
    """Import the project's app.py (the deployed Chalice app) with the settings already in the environment."""
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    module: ModuleType
    if "app" in sys.modules and getattr(sys.modules["app"], "__file__", None) == str(project_dir / "app.py"):
        module = importlib.reload(sys.modules["app"])
    else:
        module = importlib.import_module("app")
    _reset_cached_settings()
    return module.app


def warm_clients() -> None:
    """Create the app's cached AWS clients on this thread: boto3 sessions are not safe to share while clients
    are being created, and handlers run on several threads."""
    aws = sys.modules.get("chalicelib.adapters.clients")
    factory = getattr(aws, "client", None)
    for service in (
        "s3",
        "dynamodb",
        "codebuild",
        "ecr",
        "sagemaker",
        "sagemaker-runtime",
        "events",
        "application-autoscaling",
        "cloudwatch",
    ):
        if callable(factory):
            try:
                factory(service)
            except Exception:
                log.debug("could not pre-create a %s client", service, exc_info=True)


def _reset_cached_settings() -> None:
    """The app caches its settings and clients once per process; a new local cloud has new ones."""
    services = sys.modules.get("chalicelib.services")
    if services is not None:  # not imported yet: nothing is cached
        services.reset()
