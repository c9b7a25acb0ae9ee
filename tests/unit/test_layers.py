"""The floors of chalicelib/ hold: the import-linter contracts pass, and they fail when a floor is crossed.

Each violation is added to a copy of chalicelib/ in a temporary folder, checked with the project's own
[tool.importlinter] configuration, so the test shows the contract would catch it here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(where / "pyproject.toml"), "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "chalicelib", tmp_path / "chalicelib", ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_the_code_as_it_is(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("domain/leaky.py", "import boto3\n", "chalicelib.domain is not allowed to import boto3"),
        (
            "domain/leaky.py",
            "from chalicelib.adapters.sagemaker import SageMaker\n",
            "chalicelib.domain is not allowed to import chalicelib.adapters",
        ),
        (  # the instance type lists are an adapter's (adapters/instance_types.py): no exception for limits
            "domain/limits.py",
            "from chalicelib.adapters.clients import service_model\n",
            "chalicelib.domain is not allowed to import chalicelib.adapters",
        ),
        ("domain/limits.py", "import botocore\n", "chalicelib.domain is not allowed to import botocore"),
        (
            "domain/leaky.py",
            "from chalicelib.flows import train\n",
            "chalicelib.domain is not allowed to import chalicelib.flows",
        ),
        (
            "flows/leaky.py",
            "from chalicelib.adapters.ecr import Ecr\n",
            "chalicelib.flows is not allowed to import chalicelib.adapters",
        ),
        (
            "flows/leaky.py",
            "import botocore.exceptions\n",
            "chalicelib.flows is not allowed to import botocore",
        ),
    ],
)
def test_a_crossed_floor_breaks_a_contract(tmp_path: Path, module: str, source: str, broken: str) -> None:
    # Given a copy of chalicelib with one module that imports across a floor
    where = _copy(tmp_path)
    (where / "chalicelib" / module).write_text(f'"""A violation."""\n\n{source}')
    # When the contracts are checked
    result = _lint(where)
    # Then the check fails and names the import
    assert result.returncode == 1, result.stdout
    assert broken in " ".join(result.stdout.split()), result.stdout
    assert "chalicelib." + module.removesuffix(".py").replace("/", ".") in result.stdout
