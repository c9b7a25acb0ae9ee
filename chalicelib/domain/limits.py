"""SageMaker's documented limits in one place: a value past one fails at validate, before a paid build.

The instance type sets are not written by hand, nor read here: they are the enums of botocore's SageMaker
service model, which AWS regenerates with every botocore release, and an adapter reads them
(chalicelib/adapters/instance_types.py) and hands them in as `InstanceTypes`. The numeric limits below are
the API's length and range constraints, as documented in the SageMaker API reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# CreateTrainingJob
MAX_CHANNELS: Final = 20  # InputDataConfig: 1-20 channels
MAX_CHANNEL_NAME_LENGTH: Final = 64  # ChannelName: [A-Za-z0-9.\-_]+
MAX_HYPERPARAMETERS: Final = 100  # HyperParameters: at most 100 entries
# "Each key and value is limited to 256 characters" (CreateTrainingJob, HyperParameters).
MAX_HYPERPARAMETER_LENGTH: Final = 256
MAX_RUNTIME_SECONDS: Final = 28 * 24 * 3600  # StoppingCondition.MaxRuntimeInSeconds: 28 days
# CreateModel
MAX_MODEL_DATA_URL_LENGTH: Final = 1024  # PrimaryContainer.ModelDataUrl: ^(https|s3)://([^/]+)/?(.*)$
# CreateEndpointConfig
MIN_STARTUP_HEALTH_TIMEOUT_SECONDS: Final = 60  # ContainerStartupHealthCheckTimeoutInSeconds: 60-3600
MAX_STARTUP_HEALTH_TIMEOUT_SECONDS: Final = 3600
SERVERLESS_MEMORY_SIZES_MB: Final = (1024, 2048, 3072, 4096, 5120, 6144)  # MemorySizeInMB, 1 GB steps
MAX_SERVERLESS_CONCURRENCY: Final = 200  # ServerlessConfig.MaxConcurrency: 1-200
# Names of training jobs, models, endpoint configs and endpoints: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$
MAX_NAME_LENGTH: Final = 63


@dataclass(frozen=True)
class InstanceTypes:
    """The instance types SageMaker accepts for training and for hosting, and where the lists came from."""

    training: frozenset[str]
    hosting: frozenset[str]
    source: str


def unknown_instance_type(value: str, *, kind: str, known: InstanceTypes, example: str) -> str | None:
    """Why SageMaker would refuse `value` as a `kind` ("training" or "hosting") instance type, or None;
    `example` is the type the message suggests when the family offers none alike."""
    allowed = known.training if kind == "training" else known.hosting
    if value in allowed:
        return None
    family = value.rsplit(".", 1)[0] + "."
    similar = sorted(t for t in allowed if t.startswith(family))[:6]
    hint = f"this family offers {', '.join(similar)}" if similar else f"e.g. {example}"
    return (
        f"{value!r} is not a SageMaker {kind} instance type ({hint}; list from {known.source}: if AWS "
        "added the type since, upgrade botocore)"
    )
