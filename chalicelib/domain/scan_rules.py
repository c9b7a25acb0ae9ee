"""The image scan gate: whether a run waits for ECR's scan of its image, and what the findings decide."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from chalicelib.domain.errors import UpstreamError
from chalicelib.domain.models import Run, ScanResult
from chalicelib.settings import Settings

# Most severe first; a threshold fails the run on findings of its severity or any above it.
SEVERITIES: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
COMPLETE: Final = "COMPLETE"
# Scan statuses that will not become COMPLETE (basic scanning): the gate cannot pass, so the run fails.
UNFINISHABLE: Final = frozenset(
    {"FAILED", "UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED"}
)


def with_result(run: Run, scan: ScanResult | None) -> Run:
    """`run` carrying the scan verdict that lets it go on (none: as it is). A run that waited for that
    digest's scan keeps its mark until the sweeper sees the next step's work exist (flows/sweepers.py)."""
    if scan is None:
        return run
    marked = run.scan is not None and run.scan.digest == scan.digest
    since = run.scan.waiting_since if marked and run.scan is not None else None
    return run.model_copy(update={"scan": scan.model_copy(update={"waiting_since": since})})


def settled(scan: ScanResult | None) -> bool:
    """Whether the scan has ended, one way or the other (else the gate waits for it)."""
    return scan is not None and (scan.status == COMPLETE or scan.status in UNFINISHABLE)


def overdue(run: Run, now: str, settings: Settings) -> bool:
    """Whether the run has waited for its image's scan longer than the stage allows."""
    since = run.scan.waiting_since if run.scan is not None else None
    if since is None:
        return False
    limit = timedelta(seconds=settings.image_scan_timeout_seconds)
    return _parse(now) - _parse(since) >= limit


def timed_out(run: Run, settings: Settings) -> UpstreamError:
    """The error of a run whose scan did not settle in time, saying what to do."""
    assert run.scan is not None
    assert run.image is not None
    minutes = settings.image_scan_timeout_seconds // 60
    repository = run.image.repository.split("/", 1)[-1]
    return UpstreamError(
        f"ECR's scan of image {run.scan.digest} did not finish within {minutes} minutes (last status "
        f"{run.scan.status}); retry the run (POST /runs/{run.run_id}/retry), and check that scan on push "
        f"is on for repository {repository} (`aws ecr describe-repositories`) or that enhanced scanning "
        "covers it",
        code="ImageScanTimeout",
    )


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def required(run: Run, settings: Settings) -> bool:
    """Whether the run waits for the scan: its manifest asks (`[build] scan = true`) or the stage does
    (SAGEDOCK_REQUIRE_IMAGE_SCAN)."""
    return settings.require_image_scan or run.effective_manifest().build.scan


def threshold(run: Run) -> str:
    """The lowest severity that fails the run (`[build] scan_fail_severity`, HIGH by default)."""
    return run.effective_manifest().build.scan_fail_severity


def blocking(result: ScanResult, fail_at: str) -> dict[str, int]:
    """The findings at or above `fail_at`, by severity (empty: the image may train)."""
    limit = SEVERITIES.index(fail_at) if fail_at in SEVERITIES else len(SEVERITIES)
    return {sev: n for sev, n in result.counts.items() if n > 0 and sev in SEVERITIES[: limit + 1]}


def verdict(result: ScanResult, fail_at: str) -> UpstreamError | None:
    """Why the scan stops the run (an error with the code to record), or None when it may train."""
    if result.status in UNFINISHABLE:
        return UpstreamError(
            f"ECR could not scan image {result.digest} (scan status {result.status}); turn `[build] scan` "
            "off for this image, or use a base image ECR basic scanning supports",
            code="ImageScanFailed",
        )
    found = blocking(result, fail_at)
    if not found:
        return None
    counts = ", ".join(f"{sev} {found[sev]}" for sev in SEVERITIES if sev in found)
    return UpstreamError(
        f"image {result.digest} has findings at or above {fail_at}: {counts}; update the base image or "
        "the packages with these findings (see `aws ecr describe-image-scan-findings`), or raise "
        "`[build] scan_fail_severity`",
        code="ImageVulnerable",
    )
