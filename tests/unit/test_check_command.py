"""`sagedock check`: the pipeline's own refusals, all of them at once, before anything is uploaded."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from sagedock.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No data bucket in the environment and no local cloud running: the bundle checks alone."""
    monkeypatch.delenv("SAGEDOCK_DATA_BUCKET", raising=False)
    monkeypatch.setenv("SAGEDOCK_LOCAL_STATE", str(tmp_path / "no-local-cloud"))


def bundle_dir(tmp_path: Path, manifest: str | None, dockerfile: bool = True) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    if dockerfile:
        (root / "Dockerfile").write_text("FROM python:3.11-slim\n")
    if manifest is not None:
        (root / "sagedock.toml").write_text(manifest)
    return root


def test_the_sample_bundle_is_clean_and_says_what_it_could_not_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", str(ROOT / "container"), "--project", "demo"]) == 0
    out = capsys.readouterr()
    assert "no problems found" in out.out
    assert "training channels and the endpoint's owner not checked" in out.err


def test_every_manifest_problem_is_printed_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = (
        '[train]\ninstance_type = "ml.t2.medium"\nmax_runtime_seconds = 2419201\nhyperparameters = { k = "'
        + "v" * 257
        + '" }\n[deploy]\nstartup_health_timeout_seconds = 30\nendpoint_name = "bad_name"\n'
    )
    code = main(["check", str(bundle_dir(tmp_path, manifest)), "--project", "iris", "--offline"])
    assert code == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  - ")]
    assert len(lines) == 5
    for key in (
        "train.instance_type",
        "train.max_runtime_seconds",
        "train.hyperparameters",
        "deploy.startup_health_timeout_seconds",
        "deploy.endpoint_name",
    ):
        assert any(f"InvalidManifest {key}:" in line for line in lines), key


def test_a_zip_without_a_dockerfile_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train.py", "print('hi')\n")
    assert main(["check", str(path), "--project", "iris", "--offline"]) == 1
    assert "NoDockerfile" in capsys.readouterr().out


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.zip"
    path.write_text("not a zip")
    assert main(["check", str(path), "--project", "iris", "--offline"]) == 1
    assert "NotAZip" in capsys.readouterr().out


def test_a_missing_path_or_a_bad_project_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "nothing"), "--project", "iris"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["check", str(bundle_dir(tmp_path, None)), "--project", "Not_A_Project"])
    assert exited.value.code == 2


def test_a_missing_dockerfile_is_reported_with_the_manifests_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = bundle_dir(
        tmp_path, '[build]\ndockerfile = "docker/Dockerfile"\n[train]\ninstance_count = 0\n', False
    )
    assert main(["check", str(root), "--project", "iris", "--offline"]) == 1
    out = capsys.readouterr().out
    assert "InvalidManifest train.instance_count:" in out
    assert "NoDockerfile: no Dockerfile at 'docker/Dockerfile'" in out
