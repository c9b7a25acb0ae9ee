"""The container contract check: build a bundle, train it, serve the model, judge each step as SageMaker does.

The programs run as sagedock.programs runs them (a sandbox per program where the OS allows it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.domain.manifest import as_string
from sagedock.image import ContractError, LocalImage, build_local_image, remove_tree
from sagedock.optml import layout_opt_ml, pack_model
from sagedock.programs import (
    INVOCATION_LIMIT,
    PING_LIMIT,
    Log,
    ServeProcess,
    describe_exit,
    free_port,
    run_train,
)


@dataclass(frozen=True)
class Check:
    """One requirement of the contract and how the bundle fared."""

    name: str
    passed: bool
    reason: str
    skipped: bool = False


@dataclass
class ContractReport:
    """Every check, in order; `ok` only when all passed."""

    checks: list[Check] = field(default_factory=list)
    image: LocalImage | None = None

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return bool(self.checks) and all(check.passed for check in self.checks)

    def add(self, name: str, passed: bool, reason: str) -> bool:
        """Record a check; returns `passed`."""
        self.checks.append(Check(name, passed, reason))
        return passed

    def skip(self, *names: str, because: str) -> None:
        """Record checks that could not run."""
        self.checks.extend(Check(name, False, f"not run: {because}", skipped=True) for name in names)

    def render(self) -> str:
        """One line a check, then the verdict."""
        lines = []
        for check in self.checks:
            status = "SKIP" if check.skipped else ("PASS" if check.passed else "FAIL")
            lines.append(f"{status}  {check.name:<12} {check.reason}")
        passed = sum(check.passed for check in self.checks)
        verdict = (
            "the container meets the contract" if self.ok else "the container does not meet the contract"
        )
        lines.append(f"{passed}/{len(self.checks)} checks passed: {verdict}")
        return "\n".join(lines)


CHECKS = ("build", "train", "model", "ping", "ping-2s", "invocation", "sigterm")


SERVE_CHECKS = ("build", "model", "ping", "ping-2s", "invocation", "sigterm")


def _manifest_train(directory: Path) -> dict[str, Any]:
    path = directory / "sagedock.toml"
    if not path.is_file():
        return {}
    try:
        manifest = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ContractError(f"sagedock.toml: {exc}") from exc
    train = manifest.get("train", {})
    return train if isinstance(train, dict) else {}


def manifest_hyperparameters(directory: Path) -> dict[str, str]:
    """[train.hyperparameters] of the bundle's sagedock.toml as SageMaker receives them (strings)."""
    raw = _manifest_train(directory).get("hyperparameters", {})
    return {str(key): as_string(value) for key, value in raw.items()}


def manifest_serve_only(directory: Path) -> bool:
    """Whether the bundle's sagedock.toml makes it serve-only (`[train] enabled = false`): nothing trains."""
    return _manifest_train(directory).get("enabled", True) is False


def sample_request(channels: Mapping[str, Path], content_type: str) -> bytes:
    """An invocation body from the first training row, label (the first column) dropped."""
    for source in channels.values():
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.strip():
                        features = line.strip().split(",")[1:]
                        if content_type == "application/json":
                            with contextlib.suppress(ValueError):
                                return json.dumps([[float(value) for value in features]]).encode()
                        return ",".join(features).encode()
    return b""


def _timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def check_container(
    directory: Path,
    *,
    hyperparameters: Mapping[str, str] | None = None,
    channels: Mapping[str, Path] | None = None,
    sample_body: bytes | None = None,
    content_type: str = "text/csv",
    ready_timeout: float = 480,
    grace: float = 30,
    train_timeout: float = 3600,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    log: Log | None = None,
    workdir: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    serve_only: bool | None = None,
    model_data: Path | None = None,
) -> ContractReport:
    """Build the bundle in `directory`, train it, serve the model and judge each step by SageMaker's rules.

    Defaults: hyperparameters from sagedock.toml, the `data/` folder as the `train` channel, and the first
    training row without its label (first column) as the invocation body. A serve-only bundle (`serve_only`,
    by default what sagedock.toml's `[train] enabled` says) is not trained: `serve` runs on `model_data`
    (a local model.tar.gz, as `deploy.model_data` would be) or on an empty /opt/ml/model (a model baked
    into the image), and only serving is judged.
    """
    report = ContractReport()
    with _scratch(workdir) as scratch:
        try:
            only_serve = manifest_serve_only(directory) if serve_only is None else serve_only
            image = build_local_image(directory, scratch / "image", dockerfile, build_args)
            params = dict(manifest_hyperparameters(directory) if hyperparameters is None else hyperparameters)
        except (ContractError, ValueError, OSError) as exc:
            report.add("build", False, str(exc))
            report.skip(*CHECKS[1:], because="the image could not be built")
            return report
        report.image = image
        notes = f" ({'; '.join(image.notes)})" if image.notes else ""
        report.add("build", True, f"{image.digest[:19]}... from {directory / dockerfile}{notes}")

        if channels is None:
            channels = {"train": directory / "data"} if (directory / "data").is_dir() else {}
        if only_serve:
            served = _serve_only_model(report, model_data, scratch / "model.tar.gz")
            if served is None:
                report.skip(*SERVE_CHECKS[2:], because="the model archive cannot be read")
                return report
            body = sample_request(channels, content_type) if sample_body is None else sample_body
            limits = _ServeLimits(ready_timeout, grace, log, extra_env)
            _check_serving(report, image, served, scratch / "serve", body, content_type, limits)
            return report
        opt_ml = scratch / "train" / "opt_ml"
        try:
            layout_opt_ml(opt_ml, hyperparameters=params, channels=channels)
        except ContractError as exc:
            report.add("train", False, str(exc))
            report.skip(*CHECKS[2:], because="no training job could be laid out")
            return report
        outcome, seconds = _timed(
            lambda: run_train(image, opt_ml, timeout=train_timeout, log=log, extra_env=extra_env)
        )
        if not outcome.ok:
            report.add("train", False, outcome.failure_reason or "train failed")
            report.skip(*CHECKS[2:], because="train failed")
            return report
        report.add("train", True, f"exited 0 in {seconds:.1f} s")

        model_tar = pack_model(opt_ml, scratch / "model.tar.gz")
        with tarfile.open(model_tar) as archive:
            members = archive.getnames()
        report.add(
            "model", True, f"model.tar.gz with {len(members)} entries, {model_tar.stat().st_size} bytes"
        )

        body = sample_request(channels, content_type) if sample_body is None else sample_body
        limits = _ServeLimits(ready_timeout, grace, log, extra_env)
        _check_serving(report, image, model_tar, scratch / "serve", body, content_type, limits)
    return report


def _serve_only_model(report: ContractReport, model_data: Path | None, missing: Path) -> Path | None:
    """The archive `serve` unpacks at /opt/ml/model: `model_data`, or none (`missing`, an empty model)."""
    if model_data is None:
        report.add(
            "model", True, "serve-only, no model data: /opt/ml/model is empty (the model is in the image)"
        )
        return missing
    try:
        with tarfile.open(model_data, "r:gz") as archive:
            members = archive.getnames()
    except (OSError, tarfile.TarError) as exc:
        report.add("model", False, f"{model_data} is not a readable model.tar.gz: {exc}")
        return None
    report.add("model", True, f"serve-only, {model_data} with {len(members)} entries")
    return model_data


@dataclass(frozen=True)
class _ServeLimits:
    ready_timeout: float
    grace: float
    log: Log | None
    extra_env: Mapping[str, str] | None


def _check_serving(
    report: ContractReport,
    image: LocalImage,
    model_tar: Path,
    workdir: Path,
    body: bytes,
    content_type: str,
    limits: _ServeLimits,
) -> None:
    ready_timeout, grace = limits.ready_timeout, limits.grace
    try:
        server = ServeProcess.start(
            image, model_tar, port=free_port(), workdir=workdir, extra_env=limits.extra_env, log=limits.log
        )
    except (ContractError, OSError) as exc:
        report.add("ping", False, f"serve could not start: {exc}")
        report.skip(*CHECKS[4:], because="serve did not start")
        return
    try:
        healthy, seconds = _timed(lambda: server.wait_healthy(ready_timeout))
        if not healthy:
            why = (
                "exited"
                if not server.running()
                else f"did not answer GET /ping with 200 in {ready_timeout:g} s"
            )
            last = " | ".join(line for line in server.output_tail()[-5:] if line.strip())
            report.add("ping", False, f"serve {why}" + (f"; last output: {last}" if last else ""))
            report.skip("ping-2s", "invocation", because="serve never became healthy")
        else:
            report.add("ping", True, f"GET /ping answered 200 after {seconds:.1f} s")
            _check_ping_latency(report, server)
            _check_invocation(report, server, body, content_type)
    finally:
        started = time.monotonic()
        code = server.stop(grace)
        elapsed = time.monotonic() - started
    if code is None:
        report.add(
            "sigterm", False, f"still running {grace:g} s after SIGTERM: killed (SageMaker waits 30 s)"
        )
    elif code == 0:
        report.add("sigterm", True, f"exited 0 {elapsed:.2f} s after SIGTERM")
    elif code == -signal.SIGTERM:
        report.add(
            "sigterm",
            False,
            "died of SIGTERM's default action: as PID 1 in a container that signal is ignored, so the "
            "container would hang until SIGKILL; handle SIGTERM and exit 0",
        )
    else:
        report.add("sigterm", False, f"serve {describe_exit(code)} after SIGTERM (expected 0)")


def _check_ping_latency(report: ContractReport, server: ServeProcess) -> None:
    slowest = 0.0
    for _ in range(3):
        try:
            status, seconds = _timed(lambda: server.ping(timeout=PING_LIMIT))
        except (OSError, http.client.HTTPException) as exc:
            report.add("ping-2s", False, f"GET /ping failed once healthy: {exc}")
            return
        if status != 200:
            report.add("ping-2s", False, f"GET /ping answered {status} once healthy")
            return
        slowest = max(slowest, seconds)
    report.add("ping-2s", slowest < PING_LIMIT, f"slowest of 3 pings: {slowest * 1000:.1f} ms")


def _check_invocation(report: ContractReport, server: ServeProcess, body: bytes, content_type: str) -> None:
    try:
        (status, answer_type, answer), seconds = _timed(lambda: server.invoke(body, content_type))
    except (OSError, http.client.HTTPException) as exc:
        report.add("invocation", False, f"POST /invocations failed: {exc}")
        return
    shown = answer[:120].decode("utf-8", "replace").strip().replace("\n", " | ")
    summary = f"{status} {answer_type or '(no content type)'} in {seconds * 1000:.0f} ms: {shown!r}"
    report.add("invocation", status == 200 and seconds < INVOCATION_LIMIT, summary)


@contextlib.contextmanager
def _scratch(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    path = Path(tempfile.mkdtemp(prefix="sagedock-check-"))
    try:
        yield path
    finally:
        remove_tree(path)
