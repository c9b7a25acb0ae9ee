"""The local CodeBuild's buildspec runner: phases in order, exports carried between commands and phases,
overrides over the buildspec's variables, failures as CodeBuild reports them, exported-variables read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagedock.local.buildspec import Buildspec, BuildspecError, BuildspecRun
from sagedock.local.shims import _repository, _without_cache_from

SPEC = """
version: 0.2
env:
  shell: bash
  variables:
    GREETING: "hello"
    TARGET: "default"
  exported-variables:
    - RESULT
    - NEVER_SET
phases:
  install:
    commands:
      - export STEP=installed
  pre_build:
    commands:
      - |
        export RESULT="$GREETING $TARGET $STEP"
        cd subdir-that-does-not-matter 2>/dev/null || true
  build:
    on-failure: ABORT
    commands:
      - echo "building in $(pwd)"
      - '[ "$FAIL_BUILD" != "yes" ]'
      - echo "not reached when the build fails"
  post_build:
    commands:
      - echo "post_build sees succeeding=$CODEBUILD_BUILD_SUCCEEDING result=$RESULT"
"""


def _run(tmp_path: Path, **env: str) -> tuple[BuildspecRun, list[str]]:
    (tmp_path / "buildspec.yml").write_text(SPEC)
    source = tmp_path / "src"
    source.mkdir()
    lines: list[str] = []
    run = BuildspecRun(
        Buildspec.load(tmp_path / "buildspec.yml"), source, tmp_path / "scratch", env, lines.append
    )
    return run, lines


def test_exports_reach_later_commands_and_overrides_win(tmp_path: Path) -> None:
    run, lines = _run(tmp_path, TARGET="override", FAIL_BUILD="no")
    assert [run.phase(name).ok for name in ("install", "pre_build", "build", "post_build")] == [True] * 4
    output = "".join(lines)
    assert f"building in {tmp_path / 'src'}" in output
    assert "post_build sees succeeding=1 result=hello override installed" in output
    assert run.exported() == [{"name": "RESULT", "value": "hello override installed"}]


def test_a_failed_build_phase_says_which_command_and_post_build_knows(tmp_path: Path) -> None:
    run, lines = _run(tmp_path, FAIL_BUILD="yes")
    assert run.phase("install").ok and run.phase("pre_build").ok
    failed = run.phase("build")
    assert not failed.ok and run.aborts("build")
    assert failed.context == (
        'COMMAND_EXECUTION_ERROR: Error while executing command: [ "$FAIL_BUILD" != "yes" ]. '
        "Reason: exit status 1"
    )
    assert run.phase("post_build").ok
    output = "".join(lines)
    assert "not reached" not in output  # the phase ends at its failing command
    assert "post_build sees succeeding=0" in output


def test_an_unusable_buildspec_is_a_yaml_file_error(tmp_path: Path) -> None:
    (tmp_path / "buildspec.yml").write_text("version: 0.1\nphases: {build: {commands: [true]}}\n")
    with pytest.raises(BuildspecError, match=r"YAML_FILE_ERROR: .*only buildspec version 0\.2"):
        Buildspec.load(tmp_path / "buildspec.yml")
    (tmp_path / "buildspec.yml").write_text("version: 0.2\n")
    with pytest.raises(BuildspecError, match="has no phases"):
        Buildspec.load(tmp_path / "buildspec.yml")


def test_project_buildspec_parses_with_its_phases_and_exports() -> None:
    spec = Buildspec.load(Path(__file__).resolve().parents[2] / "buildspec.yml")
    assert list(spec.phases) == ["install", "pre_build", "build", "post_build"]
    assert spec.exported == ["IMAGE_URI", "IMAGE_DIGEST"]
    assert spec.variables["SMOKE_TEST"] == "auto"


def test_docker_shim_drops_remote_cache_from_and_names_repositories() -> None:
    args = ["--file", "Dockerfile", "--cache-from", "r/x:latest", "--cache-from=r/y", "--tag", "r/x:1", "."]
    assert _without_cache_from(args) == ["--file", "Dockerfile", "--tag", "r/x:1", "."]
    assert _repository("127.0.0.1:5000/sagedock/demo:run-1") == "127.0.0.1:5000/sagedock/demo"
    assert _repository("127.0.0.1:5000/sagedock/demo") == "127.0.0.1:5000/sagedock/demo"
