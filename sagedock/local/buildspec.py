"""Runs a real CodeBuild buildspec (version 0.2) as CodeBuild does, for the local CodeBuild's container mode.

Phases install, pre_build, build and post_build run in order, each command in bash (the shell of
CodeBuild's Linux images, and the one sagedock's buildspec asks for) in the source directory; variables a
command exports reach the commands after it, as in CodeBuild. `env.variables` are the defaults and the
build's environment-variable overrides win. A failing command ends its phase; with `on-failure: ABORT`
(the default) install and pre_build failures end the build, and a build failure still runs post_build
with CODEBUILD_BUILD_SUCCEEDING=0. The `exported-variables` are read from the environment post_build
leaves.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

PHASES = ("install", "pre_build", "build", "post_build")
# Written after every command: the environment the next one starts from.
_RUNNER = r"""
state="$1"; succeeding="$2"; script="$3"
if [ -f "$state/env.sh" ]; then source "$state/env.sh"; fi
export CODEBUILD_BUILD_SUCCEEDING="$succeeding"
trap 'status=$?; export -p > "$state/env.sh"; env -0 > "$state/env.0"; exit $status' EXIT
cd "$CODEBUILD_SRC_DIR"
source "$script"
"""


class BuildspecError(Exception):
    """The buildspec itself is unusable (not YAML, not version 0.2, no phases)."""


@dataclass
class PhaseResult:
    """How one phase ended: ok, or the failing command's first line and exit status."""

    name: str
    ok: bool = True
    context: str = ""


@dataclass
class Buildspec:
    """A parsed buildspec.yml."""

    variables: dict[str, str]
    exported: list[str]
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Buildspec:
        """Parse and check the parts a build uses."""
        try:
            spec = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise BuildspecError(f"YAML_FILE_ERROR: cannot read {path.name}: {exc}") from exc
        if not isinstance(spec, dict) or str(spec.get("version")) != "0.2":
            raise BuildspecError(f"YAML_FILE_ERROR: {path.name}: only buildspec version 0.2 is supported")
        env = spec.get("env") or {}
        phases = spec.get("phases") or {}
        if not isinstance(phases, dict) or not phases:
            raise BuildspecError(f"YAML_FILE_ERROR: {path.name} has no phases")
        return cls(
            variables={str(k): "" if v is None else str(v) for k, v in (env.get("variables") or {}).items()},
            exported=[str(name) for name in env.get("exported-variables") or []],
            phases={str(k): v or {} for k, v in phases.items()},
        )


class BuildspecRun:
    """One build's run of a buildspec: its scratch directory holds the environment between commands."""

    def __init__(
        self,
        spec: Buildspec,
        source: Path,
        scratch: Path,
        env: Mapping[str, str],
        write: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self.source = source
        self.scratch = scratch
        self.write = write
        self.base_env = {**spec.variables, **env, "CODEBUILD_SRC_DIR": str(source)}
        self.succeeding = True
        self._commands = 0
        scratch.mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        """The environment the last command left (the base one before any ran)."""
        path = self.scratch / "env.0"
        if not path.is_file():
            return dict(self.base_env)
        pairs = (
            item.partition("=") for item in path.read_bytes().decode(errors="replace").split("\0") if item
        )
        return {name: value for name, _, value in pairs}

    def exported(self) -> list[dict[str, str]]:
        """The `exported-variables` as CodeBuild reports them (those that are set)."""
        env = self.environment()
        return [{"name": name, "value": env[name]} for name in self.spec.exported if name in env]

    def phase(self, name: str) -> PhaseResult:
        """Run a phase's commands until one fails; a phase the buildspec lacks succeeds at once."""
        result = PhaseResult(name)
        for command in (self.spec.phases.get(name) or {}).get("commands") or []:
            code = self._run(str(command))
            if code != 0:
                first = str(command).strip().splitlines()[0] if str(command).strip() else ""
                result.ok = False
                result.context = (
                    f"COMMAND_EXECUTION_ERROR: Error while executing command: {first}. "
                    f"Reason: exit status {code}"
                )
                break
        if not result.ok:
            self.succeeding = False
        return result

    def aborts(self, name: str) -> bool:
        """Whether a failure of this phase ends the build (on-failure ABORT, CodeBuild's default)."""
        return str((self.spec.phases.get(name) or {}).get("on-failure", "ABORT")).upper() == "ABORT"

    def _run(self, command: str) -> int:
        self._commands += 1
        script = self.scratch / f"command-{self._commands}.sh"
        script.write_text(command + "\n")
        shown = command.strip().splitlines()[0] if command.strip() else command
        self.write(f"[Container] Running command {shown}\n")
        succeeding = "1" if self.succeeding else "0"
        process = subprocess.Popen(
            ["bash", "-c", _RUNNER, "bash", str(self.scratch), succeeding, str(script)],
            cwd=self.source,
            env={**os.environ, **self.base_env} if self._commands == 1 else self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        for raw in process.stdout:
            self.write(raw.decode("utf-8", "replace"))
        code = process.wait()
        if code != 0:
            self.write(f"[Container] Command did not exit successfully {shown} exit status {code}\n")
        return code
