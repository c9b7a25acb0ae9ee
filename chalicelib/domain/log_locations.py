"""A run's logs: which CloudWatch Logs stream holds a stage's output, and its tail or what came after."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib.domain.errors import BadRequest
from chalicelib.domain.models import STAGE_OF_STATUS, Run, Stage, Status

if TYPE_CHECKING:
    pass

TRAINING_JOBS_GROUP = "/aws/sagemaker/TrainingJobs"
ENDPOINTS_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"


def build_log_group(codebuild_project: str) -> str:
    """The group CodeBuild writes a project's builds to (infra/ creates it under this name)."""
    return f"/aws/codebuild/{codebuild_project}"


def endpoint_log_group(endpoint_name: str) -> str:
    """The group SageMaker writes an endpoint's containers to."""
    return ENDPOINTS_GROUP_PREFIX + endpoint_name


@dataclass(frozen=True)
class Where:
    """Where a stage's output is: a group, and the exact stream or the prefix of the streams to pick from."""

    group: str
    stream: str | None = None
    prefix: str = ""

    def holds(self, stream: str) -> bool:
        """Whether a stream named in a token is one of this stage's."""
        return stream == self.stream if self.stream is not None else stream.startswith(self.prefix)


def default_stage(run: Run) -> Stage:
    """The stage whose logs a caller means: the failed one of a FAILED run, else the current one."""
    if run.status == Status.FAILED and run.error is not None:
        return run.error.stage
    if run.status in (Status.SUCCEEDED, Status.FAILED):
        return Stage.DEPLOY
    return STAGE_OF_STATUS[run.status]


def where(run: Run, stage: Stage, codebuild_project: str) -> Where | None:
    """The stream(s) of a stage of this run; None while the stage has not started anything that logs.

    validate runs inside the API's Lambda: its output is in that function's log, not the run's.
    """
    if stage == Stage.BUILD and run.build_id:
        return Where(build_log_group(codebuild_project), stream=run.build_id.split(":", 1)[-1])
    if stage == Stage.TRAIN and run.training_job_name:
        # One stream per instance: <job>/algo-1-<epoch>, <job>/algo-2-<epoch>, ...
        return Where(TRAINING_JOBS_GROUP, prefix=run.training_job_name + "/")
    if stage == Stage.DEPLOY and run.endpoint_name:
        # One stream per variant and instance: AllTraffic/<instance id>.
        return Where(endpoint_log_group(run.endpoint_name))
    return None


def encode_token(stage: Stage, group: str, stream: str, forward: str) -> str:
    """An opaque token: the stage and stream read, and CloudWatch's forward token after the last event."""
    raw = json.dumps(
        {"t": stage.value, "g": group, "s": stream, "f": forward}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[Stage, str, str, str]:
    """(stage, group, stream, forward token); BadRequest when the token is not one this API returned."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken") from exc
    if not (
        isinstance(value, dict)
        and set(value) == {"t", "g", "s", "f"}
        and all(isinstance(v, str) and v for v in value.values())
        and value["t"] in {stage.value for stage in Stage}
    ):
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken")
    return Stage(value["t"]), value["g"], value["s"], value["f"]


def iso(timestamp_ms: int) -> str:
    """CloudWatch's epoch milliseconds as the API's ISO 8601 UTC."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
