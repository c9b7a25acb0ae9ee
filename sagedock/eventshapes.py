"""The one source of the EventBridge events AWS sends the pipeline: envelope and detail, shaped as AWS does.

The local cloud's executors emit these in place of S3, CodeBuild, ECR and SageMaker, and the tests drive the
handlers with them: the full builders take every value an executor knows; `build_state`, `training_state`
and `endpoint_state` fill in realistic values around the few a test cares about.
"""

from __future__ import annotations

import time as _clock
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

Event = dict[str, Any]


def iso_time(when: datetime | None = None) -> str:
    """The envelope's `time`: ISO 8601 UTC to the second with a Z, as EventBridge writes it."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_millis(when: datetime) -> int:
    """SageMaker event details carry timestamps as epoch milliseconds."""
    return int(when.timestamp() * 1000)


def codebuild_time(when: datetime) -> str:
    """CodeBuild event details write times like `Sep 1, 2017 4:12:29 PM`."""
    when = when.astimezone(UTC)
    hour = when.hour % 12 or 12
    return f"{when:%b} {when.day}, {when.year} {hour}:{when:%M:%S} {'AM' if when.hour < 12 else 'PM'}"


def envelope(
    source: str,
    detail_type: str,
    detail: Mapping[str, Any],
    resources: Iterable[str] = (),
    *,
    time: str | None = None,
    event_id: str | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
) -> Event:
    """The EventBridge envelope around a detail (the fields and order AWS uses)."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": time or iso_time(),
        "region": region,
        "resources": list(resources),
        "detail": dict(detail),
    }


def s3_object_created(
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str,
    version_id: str | None,
    sequencer: str | None = None,
    request_id: str | None = None,
    reason: str = "PutObject",
    requester: str = ACCOUNT,
    source_ip: str = "127.0.0.1",
    region: str = REGION,
) -> Event:
    """`Object Created` from a bucket with EventBridge notifications on; `version-id` only when versioned."""
    obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"')}
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    obj["sequencer"] = sequencer or f"{_clock.time_ns():018X}"
    return envelope(
        source="aws.s3",
        detail_type="Object Created",
        resources=[f"arn:aws:s3:::{bucket}"],
        region=region,
        detail={
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": request_id or uuid.uuid4().hex[:16].upper(),
            "requester": requester,
            "source-ip-address": source_ip,
            "reason": reason,
        },
    )


def codebuild_build_state_change(
    *,
    project: str,
    build_arn: str,
    status: str,
    current_phase: str,
    phases: Sequence[Mapping[str, Any]],
    environment_variables: Sequence[Mapping[str, str]],
    exported_variables: Sequence[Mapping[str, str]],
    source: Mapping[str, str],
    started: datetime,
    log_group: str,
    log_stream: str,
    current_phase_context: str = "[]",
    initiator: str = "sagedock-local",
    region: str = REGION,
) -> Event:
    """`CodeBuild Build State Change`; `build-id` is the build's ARN, as in AWS's events."""
    complete = status not in ("IN_PROGRESS",)
    info: dict[str, Any] = {
        "artifact": {"location": ""},
        "cache": {"type": "NO_CACHE"},
        "build-number": 1,
        "timeout-in-minutes": 60,
        "build-complete": complete,
        "initiator": initiator,
        "build-start-time": codebuild_time(started),
        "source": dict(source),
        "logs": {
            "group-name": log_group,
            "stream-name": log_stream,
            "deep-link": (
                f"https://console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#logEvent:group={log_group};stream={log_stream}"
            ),
        },
        "environment": {
            "image": "aws/codebuild/standard:7.0",
            "privileged-mode": True,
            "compute-type": "BUILD_GENERAL1_SMALL",
            "type": "LINUX_CONTAINER",
            "environment-variables": [dict(v) for v in environment_variables],
        },
        "phases": [dict(p) for p in phases],
        "queued-timeout-in-minutes": 480,
    }
    if complete:
        info["exported-environment-variables"] = [dict(v) for v in exported_variables]
    return envelope(
        source="aws.codebuild",
        detail_type="CodeBuild Build State Change",
        resources=[build_arn],
        region=region,
        detail={
            "build-status": status,
            "project-name": project,
            "build-id": build_arn,
            "additional-information": info,
            "current-phase": current_phase,
            "current-phase-context": current_phase_context,
            "version": "1",
        },
    )


def codebuild_phase(
    phase_type: str,
    status: str | None,
    start: datetime,
    end: datetime | None = None,
    context: Sequence[str] = (),
) -> dict[str, Any]:
    """One entry of `additional-information.phases` (the last, COMPLETED, has only a type and a start)."""
    phase: dict[str, Any] = {"phase-context": list(context), "start-time": codebuild_time(start)}
    if end is not None:
        phase["end-time"] = codebuild_time(end)
        phase["duration-in-seconds"] = max(0, int((end - start).total_seconds()))
    phase["phase-type"] = phase_type
    if status is not None:
        phase["phase-status"] = status
    return phase


def ecr_image_action(
    repository: str,
    digest: str,
    tag: str,
    *,
    result: str = "SUCCESS",
    action: str = "PUSH",
    region: str = REGION,
) -> Event:
    """`ECR Image Action` (a push or delete); AWS sends it with an empty resources list."""
    return envelope(
        source="aws.ecr",
        detail_type="ECR Image Action",
        region=region,
        detail={
            "result": result,
            "repository-name": repository,
            "image-digest": digest,
            "action-type": action,
            "image-tag": tag,
        },
    )


def ecr_image_scan(
    repository: str,
    digest: str,
    tags: list[str],
    counts: dict[str, int] | None = None,
    *,
    status: str = "COMPLETE",
    region: str = REGION,
) -> Event:
    """`ECR Image Scan` (basic scanning, scan on push): the scan's status, the findings by severity found."""
    return envelope(
        source="aws.ecr",
        detail_type="ECR Image Scan",
        resources=[f"arn:aws:ecr:{region}:{ACCOUNT}:repository/{repository}"],
        region=region,
        detail={
            "scan-status": status,
            "repository-name": repository,
            "finding-severity-counts": dict(counts or {}),
            "image-digest": digest,
            "image-tags": list(tags),
        },
    )


def _sagemaker_detail(description: Mapping[str, Any]) -> dict[str, Any]:
    """A Describe* answer as an event detail: datetimes become epoch milliseconds, tags a map."""
    detail: dict[str, Any] = {}
    for key, value in description.items():
        if key == "ResponseMetadata":
            continue
        detail[key] = _jsonable(value)
    tags = detail.get("Tags")
    if isinstance(tags, list):
        detail["Tags"] = {t["Key"]: t["Value"] for t in tags if "Key" in t}
    detail.setdefault("Tags", {})
    return detail


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_millis(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _sagemaker_event(detail_type: str, arn_key: str, detail: dict[str, Any], region: str) -> Event:
    return envelope(
        source="aws.sagemaker",
        detail_type=detail_type,
        resources=[str(detail.get(arn_key, ""))],
        region=region,
        detail=detail,
    )


def training_job_state_change(description: Mapping[str, Any], *, region: str = REGION) -> Event:
    """`SageMaker Training Job State Change`: the detail mirrors DescribeTrainingJob."""
    detail = _sagemaker_detail(description)
    return _sagemaker_event("SageMaker Training Job State Change", "TrainingJobArn", detail, region)


def endpoint_status_for_event(status: str) -> str:
    """DescribeEndpoint says `InService`; the event says `IN_SERVICE` (which is left as it is)."""
    if status.isupper():
        return status
    out = []
    for i, char in enumerate(status):
        if char.isupper() and i:
            out.append("_")
        out.append(char.upper())
    return "".join(out)


def endpoint_state_change(description: Mapping[str, Any], *, region: str = REGION) -> Event:
    """`SageMaker Endpoint State Change`: EndpointStatus in UPPER_SNAKE, FailureReason only via Describe.

    Its times are epoch milliseconds written as floats (`1589926046055.0`), as in AWS's endpoint events.
    """
    detail = _sagemaker_detail(description)
    detail.pop("FailureReason", None)
    for key in ("CreationTime", "LastModifiedTime"):
        if isinstance(detail.get(key), int):
            detail[key] = float(detail[key])
    if "EndpointStatus" in detail:
        detail["EndpointStatus"] = endpoint_status_for_event(str(detail["EndpointStatus"]))
    return _sagemaker_event("SageMaker Endpoint State Change", "EndpointArn", detail, region)


# ---------------------------------------------------------------- the same events around a few values

SAMPLE_START = datetime(2025, 11, 21, 12, 0, tzinfo=UTC)
# The secondary statuses an InProgress training job goes through, with SageMaker's messages.
TRAINING_STEPS = (
    ("Starting", "Launching requested ML instances"),
    ("Downloading", "Downloading input data"),
    ("Training", "Training image download completed. Training in progress."),
    ("Uploading", "Uploading generated training model"),
)


def build_state(
    project: str,
    build_id: str,
    status: str,
    *,
    run_id: str,
    exported: Mapping[str, str] | None = None,
    failed_phase: tuple[str, str] | None = None,
) -> Event:
    """`CodeBuild Build State Change` of build `<project>:<uuid>` for a run: done, or failed in one phase."""
    start, end = SAMPLE_START, SAMPLE_START.replace(minute=1)
    phases = [
        codebuild_phase("SUBMITTED", "SUCCEEDED", start, start),
        codebuild_phase("PROVISIONING", "SUCCEEDED", start, start, [": "]),
    ]
    current_phase, context = "COMPLETED", ""
    if failed_phase:
        current_phase, context = failed_phase
        phases.append(codebuild_phase(current_phase, "FAILED", start, end, [context]))
    else:
        phases.append(codebuild_phase("BUILD", "SUCCEEDED", start, end, [": "]))
    if status != "IN_PROGRESS":
        phases.append(codebuild_phase("COMPLETED", None, end))
    return codebuild_build_state_change(
        project=project,
        build_arn=f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{build_id}",
        status=status,
        current_phase=current_phase,
        current_phase_context=f"[{context}]",
        phases=phases,
        environment_variables=[
            {"name": "RUN_ID", "type": "PLAINTEXT", "value": run_id},
            {"name": "IMAGE_TAG", "type": "PLAINTEXT", "value": run_id},
        ],
        exported_variables=[{"name": name, "value": value} for name, value in (exported or {}).items()],
        source={"location": "bucket/key", "type": "S3"},
        started=start,
        log_group=f"/aws/codebuild/{project}",
        log_stream=build_id.split(":")[-1],
        initiator="sagedock",
    )


def training_state(
    name: str, status: str, *, failure_reason: str | None = None, tags: Mapping[str, str] | None = None
) -> Event:
    """`SageMaker Training Job State Change` of job `name` (Tags is a map; no model artifact)."""
    description: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "HyperParameters": {},
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": SAMPLE_START,
        "LastModifiedTime": SAMPLE_START.replace(minute=1),
        "SecondaryStatusTransitions": [],
        "Tags": [{"Key": key, "Value": value} for key, value in (tags or {}).items()],
    }
    if failure_reason is not None:
        description["FailureReason"] = failure_reason
    return training_job_state_change(description)


def training_progress(upto: int, started_ms: int) -> dict[str, Any]:
    """The detail fields of the InProgress event for entering TRAINING_STEPS[upto] (steps a second apart)."""
    transitions: list[dict[str, Any]] = []
    for i, (step, message) in enumerate(TRAINING_STEPS[: upto + 1]):
        transition: dict[str, Any] = {
            "Status": step,
            "StartTime": started_ms + i * 1000,
            "StatusMessage": message,
        }
        if i < upto:
            transition["EndTime"] = started_ms + (i + 1) * 1000
        transitions.append(transition)
    return {
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": TRAINING_STEPS[upto][0],
        "SecondaryStatusTransitions": transitions,
        "TrainingStartTime": started_ms,
        "LastModifiedTime": started_ms + upto * 1000,
    }


def endpoint_state(name: str, config: str, status: str) -> Event:
    """`SageMaker Endpoint State Change` of endpoint `name` on `config`, one instance."""
    return endpoint_state_change(
        {
            "EndpointName": name,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}",
            "EndpointConfigName": config,
            "ProductionVariants": [{"DesiredWeight": 1.0, "DesiredInstanceCount": 1.0}],
            "EndpointStatus": status,
            "CreationTime": SAMPLE_START,
            "LastModifiedTime": SAMPLE_START.replace(minute=1),
            "Tags": [],
        }
    )
