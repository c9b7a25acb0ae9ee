"""The scan gate (`[build] scan = true`): an image trains once ECR's scan of it is settled and clean.

The push, the build and the scan events arrive in any order; a run waiting for its scan is marked, so the
scan sweeper (flows/sweepers.py) finds it if the scan's own event is lost.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from chalicelib.domain import scan_rules as scangate
from chalicelib.domain.errors import StaleEvent, UpstreamError
from chalicelib.domain.models import Run, ScanResult, Stage, Status
from chalicelib.flows.outcomes import (
    Outcome,
    ignored,
    record_failure,
)

if TYPE_CHECKING:
    from chalicelib.services import Services


def scan_gate(svc: Services, run: Run, digest: str, scan: ScanResult | None) -> Outcome | ScanResult:
    """The scan that lets this image train, or the outcome that holds it (waiting, or the run FAILED)."""
    if svc.settings.private_mode:
        return record_failure(
            svc,
            run.run_id,
            Stage.BUILD,
            "ScanUnavailable",
            "`[build] scan = true` needs ECR scanning, and this stage pushes to a private registry: "
            "scan the image in your registry and set `scan = false`",
        )
    if scan is None and run.scan is not None and run.scan.digest == digest:
        scan = run.scan
    if not scangate.settled(scan):
        assert run.image is not None
        repository = run.image.repository.split("/", 1)[1]
        try:
            scan = svc.ecr.scan_result(repository, digest)
        except UpstreamError as exc:
            return record_failure(svc, run.run_id, Stage.BUILD, exc.code, exc.message)
    if scan is None or not scangate.settled(scan):
        return await_scan(svc, run, digest, scan)
    stop = scangate.verdict(scan, scangate.threshold(run))
    if stop is not None:
        return record_failure(svc, run.run_id, Stage.BUILD, stop.code, stop.message)
    return scan


def await_scan(svc: Services, run: Run, digest: str, scan: ScanResult | None) -> Outcome:
    """Mark the run as waiting for its image's scan (the scan sweeper finds it by that mark and asks ECR
    again), or fail it with ImageScanTimeout once it has waited longer than the stage allows."""
    now = svc.clock()
    if run.scan is not None and run.scan.digest == digest and scangate.overdue(run, now, svc.settings):
        stop = scangate.timed_out(run, svc.settings)
        return record_failure(svc, run.run_id, Stage.BUILD, stop.code, stop.message)
    status = scan.status if scan is not None else "PENDING"

    def wait(current: Run) -> Run:
        if current.status != Status.BUILDING:
            raise StaleEvent(f"run is {current.status}")
        marked = current.scan if current.scan is not None and current.scan.digest == digest else None
        since = marked.waiting_since if marked is not None and marked.waiting_since else now
        waiting = ScanResult(digest=digest, status=status, waiting_since=since)
        if current.scan == waiting:
            raise StaleEvent("already waiting")  # nothing to write
        return current.model_copy(update={"scan": waiting, "updated_at": now})

    with contextlib.suppress(StaleEvent):  # the run moved on, or was marked already
        svc.runs.update(run.run_id, wait)
    return ignored("waiting for the image scan", run_id=run.run_id, digest=digest)
