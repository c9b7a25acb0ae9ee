"""ECR image scanning in the local cloud, which has no vulnerability scanner: it says so, as ECR does.

Pushes to a repository with scan on push get an `ECR Image Scan` event, and DescribeImageScanFindings an
answer, with the status FINDINGS_UNAVAILABLE (moto would answer a fixed sample finding instead). A run with
`[build] scan = true` therefore ends FAILED at build with ImageScanFailed, which says to turn the gate off
locally: the gate's real verdicts need ECR (docs/deploy.md, Safe updates).
"""

from __future__ import annotations

import logging
from typing import Any

from sagedock import eventshapes
from sagedock.local.emulator import ApiCall, ApiReply, Emulator

log = logging.getLogger("local_cloud.scan")
STATUS = "FINDINGS_UNAVAILABLE"
DESCRIPTION = "The local cloud has no vulnerability scanner."


def install(emulator: Emulator) -> None:
    """Answer scan findings as unavailable, and emit the scan event of every push to a scanned repository."""

    def findings(call: ApiCall) -> ApiReply | None:
        return ApiReply.json(
            {
                "registryId": eventshapes.ACCOUNT,
                "repositoryName": call.params.get("repositoryName", ""),
                "imageId": call.params.get("imageId", {}),
                "imageScanStatus": {"status": STATUS, "description": DESCRIPTION},
            }
        )

    def scanned(event: dict[str, Any]) -> None:
        detail = event.get("detail", {})
        if event.get("detail-type") != "ECR Image Action" or detail.get("action-type") != "PUSH":
            return
        repository = detail["repository-name"]
        described = emulator.client("ecr").describe_repositories(repositoryNames=[repository])
        if not described["repositories"][0].get("imageScanningConfiguration", {}).get("scanOnPush"):
            return
        tag = detail.get("image-tag")
        emulator.bus.publish(
            eventshapes.ecr_image_scan(
                repository=repository,
                digest=detail["image-digest"],
                tags=[tag] if tag else [],
                status=STATUS,
                region=emulator.region,
            )
        )

    emulator.before("ecr", "DescribeImageScanFindings", findings)
    emulator.bus.subscribe(scanned)
