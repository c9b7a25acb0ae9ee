"""docs/deploy.md's "Safe updates" section documents every key of its tables, and the codes runs end with."""

from __future__ import annotations

from pathlib import Path

from chalicelib.domain.manifest import BuildConfig
from chalicelib.domain.rollout import AutoscalingConfig, UpdateConfig
from chalicelib.settings import Settings

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


def test_the_scan_wait_bound_is_documented_with_its_default() -> None:
    text = section()
    field = Settings.model_fields["image_scan_timeout_seconds"]
    assert f"`{field.validation_alias}`" in text
    assert f"default {field.default}" in text and "ImageScanTimeout" in text
    assert "upload the bundle again" not in text  # the workaround the scan sweeper replaced
