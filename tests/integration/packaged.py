"""One real `make package` run per test process, shared by the tests that read what it writes."""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from infra import package
from infra.expand import expand

ROOT = Path(__file__).resolve().parents[2]


@cache
def dist(stage: str = "dev") -> Path:
    """The directory `python infra/package.py STAGE DIR` wrote (sam.json and the zips)."""
    out = Path(tempfile.mkdtemp(prefix=f"sagedock-dist-{stage}-")) / stage
    assert package.main([stage, str(out), "--buildspec", str(ROOT / "buildspec.yml")]) == 0
    return out


def template(stage: str = "dev") -> dict[str, Any]:
    """The packaged (SAM) template, a fresh copy."""
    found: dict[str, Any] = json.loads((dist(stage) / package.SAM_TEMPLATE).read_text())
    return found


@cache
def _expanded_text(stage: str) -> str:
    return json.dumps(expand(template(stage)))


def expanded(stage: str = "dev") -> dict[str, Any]:
    """The packaged template with its SAM transform expanded (plain CloudFormation), a fresh copy."""
    found: dict[str, Any] = json.loads(_expanded_text(stage))
    return found
