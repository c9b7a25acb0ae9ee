"""buildspec.yml: well formed, uses the documented variables, and does the right thing in order.

The last tests run the phases as CodeBuild does, each command in bash, with `docker`, `aws` and `curl`
replaced by stubs that record their calls.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILDSPEC = ROOT / "buildspec.yml"
DOCS = ROOT / "docs" / "buildspec.md"
PHASES = ("install", "pre_build", "build", "post_build")
DIGEST = "sha256:" + "ab" * 32
REPO_URI = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sagedock/iris"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(BUILDSPEC.read_text())
    return loaded


def phase_text(spec: dict[str, Any], phase: str) -> str:
    return "\n".join(spec["phases"][phase]["commands"])


def documented_variables() -> list[str]:
    """The first column of the pipeline variables table of docs/buildspec.md."""
    section = DOCS.read_text().split("## Variables", 1)[1].split("Optional,", 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M)


def test_it_is_a_version_0_2_buildspec_with_every_phase(spec: dict[str, Any]) -> None:
    assert str(spec["version"]) == "0.2"
    assert spec["env"]["shell"] == "bash"
    for phase in PHASES:
        assert spec["phases"][phase]["commands"], phase


def test_it_exports_the_image_uri_and_digest(spec: dict[str, Any]) -> None:
    assert set(spec["env"]["exported-variables"]) == {"IMAGE_URI", "IMAGE_DIGEST"}
    post_build = phase_text(spec, "post_build")
    assert "export IMAGE_DIGEST=" in post_build and "export IMAGE_URI=" in post_build


def test_it_uses_every_documented_variable(spec: dict[str, Any]) -> None:
    variables = documented_variables()
    assert {"RUN_ID", "IMAGE_REPO_URI", "IMAGE_TAG", "DOCKERFILE", "BUILD_ARGS", "PRIVATE_REGISTRY"} <= set(
        variables
    )
    commands = "\n".join(phase_text(spec, phase) for phase in PHASES)
    unused = [name for name in variables if f"${name}" not in commands and f"${{{name}" not in commands]
    assert not unused


@pytest.mark.parametrize("phase", PHASES)
def test_every_phase_is_valid_bash(spec: dict[str, Any], phase: str) -> None:
    result = subprocess.run(["bash", "-n"], input=phase_text(spec, phase), text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_a_failed_build_never_pushes(spec: dict[str, Any]) -> None:
    # The build phases abort on failure and push nothing; post_build checks before it pushes.
    for phase in ("install", "pre_build", "build"):
        assert spec["phases"][phase]["on-failure"] == "ABORT"
        assert "docker push" not in phase_text(spec, phase)
    post_build = phase_text(spec, "post_build")
    assert post_build.index("CODEBUILD_BUILD_SUCCEEDING") < post_build.index("docker push")


def test_secrets_only_go_through_stdin(spec: dict[str, Any]) -> None:
    commands = "\n".join(phase_text(spec, phase) for phase in PHASES)
    assert "set -x" not in commands
    uses = [line.strip() for line in commands.splitlines() if "$REGISTRY_PASSWORD" in line]
    assert uses == [r"""printf '%s' "$REGISTRY_PASSWORD" \ """.strip()]
    assert "secrets-manager" not in spec["env"]  # the pipeline passes them as SECRETS_MANAGER overrides


# ---------------------------------------------------------------- running the phases with stubs

DOCKER_STUB = """\
#!/usr/bin/env bash
printf 'docker %s\\n' "$*" >> "$CALLS"
case "$1" in
  version) echo "docker 27.0" ;;
  login) cat > "$CALLS.login-stdin" ;;
  pull) exit 1 ;;
  build) exit "${STUB_BUILD_EXIT:-0}" ;;
  run)
    if [[ " $* " == *" -d "* ]]; then echo 0123456789ab; exit 0; fi
    for arg in "$@"; do
      case "$arg" in *:/opt/ml) mount="${arg%:/opt/ml}" ;; esac
    done
    cp "$mount/input/config/hyperparameters.json" "$CALLS.hyperparameters"
    if [ "${STUB_TRAIN_EXIT:-0}" != 0 ]; then
      echo "bad hyperparameter max_leaf_nodes" > "$mount/output/failure"
      exit "$STUB_TRAIN_EXIT"
    fi
    echo weights > "$mount/model/model.bin" ;;
  port) echo "127.0.0.1:49999" ;;
  inspect)
    case "$*" in
      *State.Running*) echo true ;;
      *State.ExitCode*) echo 0 ;;
      *RepoDigests*) printf '%s@%s\\n' "$STUB_TARGET" "$STUB_DIGEST" ;;
    esac ;;
esac
"""

CURL_STUB = """\
#!/usr/bin/env bash
printf 'curl %s\\n' "$*" >> "$CALLS"
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    --data-binary) cp "${2#@}" "$CALLS.request"; shift ;;
  esac
  shift
done
if [ -n "$out" ] && [ "$out" != /dev/null ]; then echo setosa > "$out"; echo -n 200; fi
"""

AWS_STUB = """\
#!/usr/bin/env bash
printf 'aws %s\\n' "$*" >> "$CALLS"
echo ecr-token
"""


def run_buildspec(spec: dict[str, Any], tmp_path: Path, **overrides: str) -> dict[str, Any]:
    """Run the phases as CodeBuild does; return the calls made, exported variables, failures and stderr."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, body in (("docker", DOCKER_STUB), ("curl", CURL_STUB), ("aws", AWS_STUB)):
        (stubs / name).write_text(body)
        (stubs / name).chmod(0o755)
    bundle = tmp_path / "bundle"
    (bundle / "data").mkdir(parents=True)
    (bundle / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (bundle / "data" / "iris.csv").write_text("setosa,5.1,3.5,1.4,0.2\nvirginica,6.7,3.0,5.2,2.3\n")
    calls = tmp_path / "calls"
    calls.write_text("")
    private = overrides.get("PRIVATE_REGISTRY")
    target = f"{private}/sagedock/iris" if private else REPO_URI
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "STUB_DIGEST": DIGEST,
        "STUB_TARGET": target,
        "AWS_REGION": "eu-west-1",
        **{key: str(value) for key, value in spec["env"]["variables"].items()},
        "RUN_ID": "iris-0123abcd",
        "PROJECT": "iris",
        "IMAGE_REPO": "sagedock/iris",
        "IMAGE_REPO_URI": REPO_URI,
        "REGISTRY": REPO_URI.split("/")[0],
        "IMAGE_TAG": "iris-0123abcd",
        "DOCKERFILE": "Dockerfile",
        "BUILD_ARGS": "SKLEARN_VERSION=1.5 EXTRA=x",
        **overrides,
    }
    state = tmp_path / "state.sh"
    state.write_text("")
    failed: list[str] = []
    stderr: list[str] = []
    for phase in PHASES:
        if failed and phase != "post_build":
            continue
        succeeding = "0" if failed else "1"
        for command in spec["phases"][phase]["commands"]:
            script = f"source {state}\nexport CODEBUILD_BUILD_SUCCEEDING={succeeding}\n"
            script += f"trap 'export -p > {state}' EXIT\n{command}\n"
            result = subprocess.run(
                ["bash", "-c", script], cwd=bundle, env=env, capture_output=True, text=True
            )
            stderr.append(result.stderr)
            if result.returncode != 0:
                failed.append(phase)
                break
    exported = dict(re.findall(r'^declare -x (IMAGE_URI|IMAGE_DIGEST)="([^"]*)"', state.read_text(), re.M))
    return {
        "calls": calls.read_text().splitlines(),
        "exported": exported,
        "failed": failed,
        "stderr": "".join(stderr),
    }


def index_of(calls: list[str], prefix: str) -> int:
    return next(i for i, call in enumerate(calls) if call.startswith(prefix))


def test_a_good_bundle_is_built_smoke_tested_then_pushed(spec: dict[str, Any], tmp_path: Path) -> None:
    # Given a bundle with sample data, in ECR mode
    # When the buildspec runs
    outcome = run_buildspec(spec, tmp_path)
    calls = outcome["calls"]

    # Then it logs in to ECR, builds for amd64 with the build args, smoke-tests, and only then pushes
    assert outcome["failed"] == []
    assert calls[index_of(calls, "aws ")] == "aws ecr get-login-password --region eu-west-1"
    login = calls[index_of(calls, "docker login")]
    assert login == f"docker login --username AWS --password-stdin {REPO_URI.split('/')[0]}"
    build = calls[index_of(calls, "docker build")]
    for expected in (
        "--platform linux/amd64",
        f"--tag {REPO_URI}:iris-0123abcd",
        f"--cache-from {REPO_URI}:latest",
        "--build-arg SKLEARN_VERSION=1.5 --build-arg EXTRA=x",
    ):
        assert expected in build
    order = [
        index_of(calls, "docker build"),
        index_of(calls, "docker run --rm"),
        index_of(calls, "docker run -d"),
        index_of(calls, "curl -sS -m 60"),
        index_of(calls, "docker stop"),
        index_of(calls, f"docker push {REPO_URI}:iris-0123abcd"),
    ]
    assert order == sorted(order)
    assert ":/opt/ml/model:ro" in calls[index_of(calls, "docker run -d")]
    # And the smoke invocation was the first sample row without its label
    assert (tmp_path / "calls.request").read_text() == "5.1,3.5,1.4,0.2\n"
    # And the image is exported by digest
    assert outcome["exported"] == {"IMAGE_DIGEST": DIGEST, "IMAGE_URI": f"{REPO_URI}@{DIGEST}"}


def test_a_failing_smoke_test_pushes_nothing(spec: dict[str, Any], tmp_path: Path) -> None:
    # Given an image whose train fails
    # When the buildspec runs
    outcome = run_buildspec(spec, tmp_path, STUB_TRAIN_EXIT="1")

    # Then the build phase fails, post_build refuses to push, and nothing is exported
    assert outcome["failed"] == ["build", "post_build"]
    assert not [call for call in outcome["calls"] if call.startswith("docker push")]
    assert outcome["exported"] == {}


def test_a_failing_docker_build_pushes_nothing(spec: dict[str, Any], tmp_path: Path) -> None:
    outcome = run_buildspec(spec, tmp_path, STUB_BUILD_EXIT="1")
    assert outcome["failed"] == ["build", "post_build"]
    assert not [call for call in outcome["calls"] if call.startswith(("docker push", "docker run"))]


def test_private_registry_mode_logs_in_through_stdin_and_pushes_there(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    # Given private-registry mode with credentials from Secrets Manager
    secret = "s3cr3t-pa55word"
    outcome = run_buildspec(
        spec,
        tmp_path,
        PRIVATE_REGISTRY="registry.example.com",
        REGISTRY_USERNAME="builder",
        REGISTRY_PASSWORD=secret,
    )
    calls = outcome["calls"]

    # Then docker login reads the password from stdin, no call shows it, and the image goes there
    assert outcome["failed"] == []
    assert "docker login --username builder --password-stdin registry.example.com" in calls
    assert (tmp_path / "calls.login-stdin").read_text() == secret
    assert not [call for call in calls if secret in call]
    assert not [call for call in calls if call.startswith("aws ")]
    assert "docker push registry.example.com/sagedock/iris:iris-0123abcd" in calls
    assert outcome["exported"]["IMAGE_URI"] == f"registry.example.com/sagedock/iris@{DIGEST}"


def test_build_args_as_json_and_smoke_settings(spec: dict[str, Any], tmp_path: Path) -> None:
    # Given build args with a space in a value (JSON form) and smoke hyperparameters
    outcome = run_buildspec(
        spec,
        tmp_path,
        BUILD_ARGS='{"GREETING": "hello world", "N": "2"}',
        SMOKE_HYPERPARAMETERS='{"max_leaf_nodes": "3"}',
    )
    build = outcome["calls"][index_of(outcome["calls"], "docker build")]

    # Then each pair is one --build-arg and the smoke training got the hyperparameters
    assert "--build-arg GREETING=hello world --build-arg N=2" in build
    assert (tmp_path / "calls.hyperparameters").read_text() == '{"max_leaf_nodes": "3"}'


def test_missing_variables_are_named(spec: dict[str, Any], tmp_path: Path) -> None:
    outcome = run_buildspec(spec, tmp_path, IMAGE_REPO_URI="")
    assert outcome["failed"] == ["pre_build", "post_build"]
    assert "buildspec: IMAGE_REPO_URI is not set (see docs/buildspec.md)" in outcome["stderr"]
    assert not [call for call in outcome["calls"] if call.startswith(("docker login", "docker build"))]


def test_without_sample_data_the_smoke_test_is_skipped(spec: dict[str, Any], tmp_path: Path) -> None:
    outcome = run_buildspec(spec, tmp_path, SMOKE_DATA_DIR="no-such-folder")
    assert outcome["failed"] == []
    assert not [call for call in outcome["calls"] if call.startswith("docker run")]
    assert outcome["exported"]["IMAGE_DIGEST"] == DIGEST


def test_the_stubs_are_plain_bash() -> None:
    # The stubs themselves must be valid, or the tests above would prove nothing.
    for body in (DOCKER_STUB, CURL_STUB, AWS_STUB):
        assert subprocess.run(["bash", "-n"], input=body, text=True).returncode == 0
