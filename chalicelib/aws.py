"""boto3 clients built lazily (after any mock starts, and only when used) and ClientError translation."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib.errors import SagedockError, TransientError, UpstreamError

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


def _config() -> Config:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


@cache
def _session() -> Any:
    # One session for every client: its loader reads botocore's endpoint and partition data once.
    import boto3

    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """The process-wide client of a service (created on first use, with standard retries)."""
    return _session().client(service, config=_config())


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
