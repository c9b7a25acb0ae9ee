"""docs/deploy.md's "Safe updates" section documents every key of its tables, and the codes runs end with."""

from __future__ import annotations

from pathlib import Path

from chalicelib.manifest import BuildConfig
from chalicelib.rollout import AutoscalingConfig, UpdateConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def section() -> str:
    text = DOC.read_text()
    assert "## Safe updates" in text
    return text.split("## Safe updates", 1)[1].split("\n## ", 1)[0]


def test_every_update_autoscaling_and_scan_key_is_documented() -> None:
    text = section()
    scan_keys = [key for key in BuildConfig.model_fields if key.startswith("scan")]
    assert scan_keys == ["scan", "scan_fail_severity"]
    keys = [*UpdateConfig.model_fields, *AutoscalingConfig.model_fields, *scan_keys]
    missing = [key for key in keys if f"{key} =" not in text and f"`{key}`" not in text]
    assert not missing, f"docs/deploy.md, Safe updates, does not document {missing}"


def test_the_codes_a_run_can_end_with_are_documented() -> None:
    text = section()
    codes = ("EndpointUpdateRolledBack", "EndpointUpdateFailed", "AutoscalingFailed", "ImageVulnerable")
    for code in (*codes, "ImageScanFailed", "ScanUnavailable"):
        assert code in text, code
