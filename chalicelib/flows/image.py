"""ECR's events on a pushed image: the push (start training by digest) and the scan (the gate's verdict)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain import names
from chalicelib.domain import scan_rules as scangate
from chalicelib.domain.models import ScanResult
from chalicelib.flows.outcomes import (
    Outcome,
    ignored,
)
from chalicelib.flows.train import start_training
from chalicelib.observability import logger

if TYPE_CHECKING:
    from chalicelib.domain.event_models import (
        ImageAction,
        ImageScan,
    )
    from chalicelib.services import Services


def image_pushed(event: ImageAction, svc: Services) -> Outcome:
    """An image was pushed to a project repository with a run id as tag: start that run's training."""
    if event.action_type != "PUSH" or event.result != "SUCCESS":
        return ignored(f"{event.action_type} {event.result}")
    tag = event.image_tag or ""
    if not tag:
        return ignored("push without a tag (an attestation or an index)", digest=event.image_digest)
    if not event.repository_name.startswith(svc.settings.ecr_prefix + "/") or not names.is_run_id(tag):
        return ignored("not a sagedock image", repository=event.repository_name, tag=tag)
    run = svc.runs.find(tag)
    if run is None:
        return ignored("push of no known run", tag=tag)
    logger.set_correlation_id(run.run_id)
    if run.image and not run.image.repository.endswith("/" + event.repository_name):
        return ignored("push to another repository than the run's", repository=event.repository_name)
    return start_training(svc, run, event.image_digest)


def image_scanned(event: ImageScan, svc: Services) -> Outcome:
    """ECR scanned a pushed image: with the scan gate on, its findings fail the run or start its training.

    The push, the build and the scan events arrive in any order: each of them can start training, the push
    and build events only once the scan is known (from this event's record, or from ECR itself).
    """
    tags = [tag for tag in event.image_tags if names.is_run_id(tag)]
    if not event.repository_name.startswith(svc.settings.ecr_prefix + "/") or not tags:
        return ignored("not a sagedock image", repository=event.repository_name)
    run = svc.runs.find(tags[0])
    if run is None:
        return ignored("scan of no known run", tag=tags[0])
    logger.set_correlation_id(run.run_id)
    if run.image and not run.image.repository.endswith("/" + event.repository_name):
        return ignored("scan of another repository than the run's", repository=event.repository_name)
    if not scangate.required(run, svc.settings):
        return ignored("the run does not wait for a scan", run_id=run.run_id)
    result = ScanResult(
        digest=event.image_digest, status=event.scan_status, counts=dict(event.finding_severity_counts)
    )
    return start_training(svc, run, event.image_digest, scan=result)
