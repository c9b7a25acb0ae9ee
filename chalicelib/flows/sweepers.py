"""The scan sweeper: a run waiting for its image's scan advances even when ECR's scan event is lost."""

from __future__ import annotations

from collections import Counter

from chalicelib.domain.errors import TransientError
from chalicelib.flows import pipeline
from chalicelib.observability import count, logger
from chalicelib.services import Services


def sweep_scans(svc: Services, limit: int = 100) -> dict[str, int]:
    """Ask ECR for the scan of every run waiting for one, as its scan event would have; counts for the log.

    A scan that has settled starts the training job or fails the run (the path the event takes, so a late
    event changes nothing); a wait longer than SAGEDOCK_IMAGE_SCAN_TIMEOUT_SECONDS fails it with
    ImageScanTimeout. A run whose ECR call failed transiently is left for the next round.
    """
    waiting = svc.runs.waiting_for_scan(limit)
    actions: Counter[str] = Counter()
    for run_id in waiting:
        try:
            outcome = pipeline.scan_awaited(run_id, svc)
        except TransientError as exc:
            logger.warning(
                "scan not checked; next round", extra={"run_id": run_id, "error_message": exc.message}
            )
            count("ScanChecksDeferred")
            actions["deferred"] += 1
            continue
        actions[str(outcome["action"])] += 1
    return {"runs": len(waiting), **actions}
