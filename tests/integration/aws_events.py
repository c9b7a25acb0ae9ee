"""EventBridge events shaped exactly as AWS sends them (envelope and detail), for driving the handlers."""

from __future__ import annotations

import uuid
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


def envelope(source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> dict[str, Any]:
    """The EventBridge envelope every event arrives in."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-11-21T12:00:00Z",
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


def object_created(bucket: str, key: str, *, size: int, etag: str, version_id: str | None) -> dict[str, Any]:
    """S3 `Object Created` (a bucket with EventBridge notifications enabled)."""
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag, "sequencer": "00617F08299329D189"}
    if version_id:
        obj["version-id"] = version_id
    return envelope(
        "aws.s3",
        "Object Created",
        {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
        [f"arn:aws:s3:::{bucket}"],
    )


def build_state(
    project: str,
    build_id: str,
    status: str,
    *,
    run_id: str,
    exported: dict[str, str] | None = None,
    failed_phase: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """`CodeBuild Build State Change` with its additional-information."""
    phases: list[dict[str, Any]] = [
        {
            "phase-type": "SUBMITTED",
            "phase-status": "SUCCEEDED",
            "phase-context": [],
            "duration-in-seconds": 0,
        },
        {"phase-type": "PROVISIONING", "phase-status": "SUCCEEDED", "phase-context": [": "]},
    ]
    current_phase, context = "COMPLETED", ""
    if failed_phase:
        phase, context = failed_phase
        phases.append({"phase-type": phase, "phase-status": "FAILED", "phase-context": [context]})
        current_phase = phase
    else:
        phases.append({"phase-type": "BUILD", "phase-status": "SUCCEEDED", "phase-context": [": "]})
    arn = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{build_id}"
    return envelope(
        "aws.codebuild",
        "CodeBuild Build State Change",
        {
            "build-status": status,
            "project-name": project,
            "build-id": arn,
            "additional-information": {
                "artifact": {"location": ""},
                "environment": {
                    "image": "aws/codebuild/standard:7.0",
                    "privileged-mode": True,
                    "compute-type": "BUILD_GENERAL1_SMALL",
                    "type": "LINUX_CONTAINER",
                    "environment-variables": [
                        {"name": "RUN_ID", "type": "PLAINTEXT", "value": run_id},
                        {"name": "IMAGE_TAG", "type": "PLAINTEXT", "value": run_id},
                    ],
                },
                "timeout-in-minutes": 60,
                "build-complete": status != "IN_PROGRESS",
                "initiator": "sagedock",
                "build-start-time": "Nov 21, 2026 12:00:00 PM",
                "source": {"location": "bucket/key", "type": "S3"},
                "logs": {
                    "group-name": f"/aws/codebuild/{project}",
                    "stream-name": build_id.split(":")[-1],
                    "deep-link": f"https://console.aws.amazon.com/cloudwatch/home?region={REGION}#logEvent:x",
                },
                "phases": phases,
                "exported-environment-variables": [
                    {"name": name, "value": value} for name, value in (exported or {}).items()
                ],
            },
            "current-phase": current_phase,
            "current-phase-context": f"[{context}]",
            "version": "1",
        },
        [arn],
    )


def image_action(repository: str, digest: str, tag: str, *, action: str = "PUSH") -> dict[str, Any]:
    """`ECR Image Action`."""
    return envelope(
        "aws.ecr",
        "ECR Image Action",
        {
            "result": "SUCCESS",
            "repository-name": repository,
            "image-digest": digest,
            "action-type": action,
            "image-tag": tag,
        },
        [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"],
    )


def training_state(
    name: str, status: str, *, failure_reason: str | None = None, tags: dict[str, str] | None = None
) -> dict[str, Any]:
    """`SageMaker Training Job State Change` (Tags is a map; no model artifact)."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"
    detail: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": arn,
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "HyperParameters": {},
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": 1763726400000,
        "LastModifiedTime": 1763726460000,
        "SecondaryStatusTransitions": [],
        "Tags": tags or {},
    }
    if failure_reason is not None:
        detail["FailureReason"] = failure_reason
    return envelope("aws.sagemaker", "SageMaker Training Job State Change", detail, [arn])


def endpoint_state(name: str, config: str, status: str) -> dict[str, Any]:
    """`SageMaker Endpoint State Change` (EndpointStatus in UPPER_SNAKE)."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}"
    return envelope(
        "aws.sagemaker",
        "SageMaker Endpoint State Change",
        {
            "EndpointName": name,
            "EndpointArn": arn,
            "EndpointConfigName": config,
            "ProductionVariants": [{"DesiredWeight": 1.0, "DesiredInstanceCount": 1.0}],
            "EndpointStatus": status,
            "CreationTime": 1763726400000.0,
            "LastModifiedTime": 1763726460000.0,
            "Tags": {},
        },
        [arn],
    )


def image_scan(
    repository: str, digest: str, tags: list[str], counts: dict[str, int], *, status: str = "COMPLETE"
) -> dict[str, Any]:
    """`ECR Image Scan` (basic scanning, scan on push): the findings by severity, only those found."""
    return envelope(
        "aws.ecr",
        "ECR Image Scan",
        {
            "scan-status": status,
            "repository-name": repository,
            "finding-severity-counts": counts,
            "image-digest": digest,
            "image-tags": tags,
        },
        [f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository}"],
    )
