"""InProgress `SageMaker Training Job State Change` details, as SageMaker sends one per secondary status."""

from __future__ import annotations

from typing import Any

MS = 1763726460000  # 2025-11-21T12:01:00Z in epoch milliseconds, as SageMaker's events carry times
STEPS = (
    ("Starting", "Launching requested ML instances"),
    ("Downloading", "Downloading input data"),
    ("Training", "Training image download completed. Training in progress."),
    ("Uploading", "Uploading generated training model"),
)


def in_progress_fields(upto: int) -> dict[str, Any]:
    """The fields saying the job entered STEPS[upto] (steps a second apart): the transitions so far."""
    transitions: list[dict[str, Any]] = []
    for i, (name, message) in enumerate(STEPS[: upto + 1]):
        step: dict[str, Any] = {"Status": name, "StartTime": MS + i * 1000, "StatusMessage": message}
        if i < upto:
            step["EndTime"] = MS + (i + 1) * 1000
        transitions.append(step)
    return {
        "TrainingJobStatus": "InProgress",
        "SecondaryStatus": STEPS[upto][0],
        "SecondaryStatusTransitions": transitions,
        "TrainingStartTime": MS,
        "LastModifiedTime": MS + upto * 1000,
    }
