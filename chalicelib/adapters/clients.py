"""boto3 clients built lazily (after any mock starts, and only when used) and ClientError translation."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.domain.errors import SagedockError, TransientError, UpstreamError

if TYPE_CHECKING:
    from botocore.config import Config

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalServerException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


# Each service's retries, explicit and bounded (total_max_attempts counts the first call). Standard mode
# retries throttling, 5xx and transient network errors with jittered exponential backoff: 5 attempts sleep
# at most 1 + 2 + 4 + 8 = 15 s, within the event functions' 30 s timeout; a call that still fails raises
# TransientError and Lambda redelivers the event. Adaptive mode is not used: its client-side rate limiter
# outlives the invocation in a warm Lambda and, after a burst of throttling, can hold a call far longer.
RETRIES: dict[str, dict[str, str | int]] = {
    "dynamodb": {"mode": "standard", "total_max_attempts": 5},
    "s3": {"mode": "standard", "total_max_attempts": 5},
    "codebuild": {"mode": "standard", "total_max_attempts": 5},
    "ecr": {"mode": "standard", "total_max_attempts": 5},
    "sagemaker": {"mode": "standard", "total_max_attempts": 5},
    "sagemaker-runtime": {"mode": "standard", "total_max_attempts": 3},  # invocations: the caller retries
    "application-autoscaling": {"mode": "standard", "total_max_attempts": 5},
    "cloudwatch": {"mode": "standard", "total_max_attempts": 5},
    "events": {"mode": "standard", "total_max_attempts": 5},
    "logs": {"mode": "standard", "total_max_attempts": 3},  # GET /runs/{id}/logs: the caller polls again
}


def config_for(service: str) -> Config:
    """The client config of a service: its retries (a service without an entry has no client here)."""
    from botocore.config import Config

    if service not in RETRIES:
        raise KeyError(f"no retry configuration for {service}: add it to chalicelib.adapters.clients.RETRIES")
    read_timeout = 70 if service == "sagemaker-runtime" else 60  # invocations may take 60 s
    return Config(retries=dict(RETRIES[service]), connect_timeout=5, read_timeout=read_timeout)  # type: ignore[arg-type]


@cache
def _session() -> Any:
    # One session for every client: its loader reads botocore's endpoint and partition data once.
    import boto3

    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """The process-wide client of a service (created on first use, with its retries)."""
    return _session().client(service, config=config_for(service))


def reset_clients() -> None:
    """Forget the clients and their session (tests start a new mock; the local cloud a new emulator)."""
    client.cache_clear()
    _session.cache_clear()


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: ClientError | ParamValidationError, doing: str) -> SagedockError:
    """A domain error for a failed AWS call: TransientError to retry, UpstreamError to record."""
    if isinstance(exc, ParamValidationError):  # refused before sending: the request itself is wrong
        return UpstreamError(f"{doing}: {exc}", code="InvalidRequest")
    code = error_code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in TRANSIENT_CODES or status >= 500:
        return TransientError(f"{doing}: {code or status}: {message}", code=code or "Transient")
    return UpstreamError(f"{doing}: {message}", code=code or "UpstreamError")


def service_model(service: str) -> Any:
    """A service's botocore model, through the clients' session (its loader reads each model once).

    boto3 offers the model only on a client (`meta.service_model`), which needs a region; the session's
    botocore session gives it without one, from the same cached loader the clients use.
    """
    return _session()._session.get_service_model(service)
