"""SageMaker's credentials provider for a private Docker registry: the login kept in Secrets Manager.

SageMaker calls this function while it creates a model or starts a training job, so its cold start is on
that path: it imports only boto3 (which the Lambda runtime provides) and the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

SECRET_ID_ENV = "SAGEDOCK_REGISTRY_SECRET_ID"  # noqa: S105 (the variable's name, not a secret)
MAX_AGE_ENV = "SAGEDOCK_REGISTRY_SECRET_MAX_AGE_SECONDS"
DEFAULT_MAX_AGE_SECONDS = 300
EXPECTED = 'a JSON SecretString {"username": "...", "password": "..."}'

# botocore logs each response body at DEBUG, and GetSecretValue's holds the password: never let it through.
logging.getLogger("botocore.parsers").setLevel(logging.INFO)

logger = logging.getLogger("sagedock.registry_auth")
# Lambda's ApplicationLogLevel names (TRACE, WARN, FATAL) are not all Python's.
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}
logger.setLevel(_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper(), logging.INFO))

# A caller is waiting: fail fast, retry once, and give up (at worst ~11 s) before the 15 s function timeout.
_BOTO_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"mode": "standard", "max_attempts": 2})

_UNREADABLE_HINTS = {
    "ResourceNotFoundException": f"it does not exist (check {SECRET_ID_ENV} and the function's region)",
    "AccessDeniedException": (
        "access denied: the function's role needs secretsmanager:GetSecretValue on this secret "
        "(and kms:Decrypt on its key when that key is customer managed)"
    ),
    "DecryptionFailure": "it cannot be decrypted: the function's role needs kms:Decrypt on the secret's key",
    "InvalidRequestException": "it cannot be read now (is it scheduled for deletion?)",
}

_NOT_JSON = object()


class RegistryCredentialsError(Exception):
    """The registry secret is not configured, not readable, or not a username/password pair."""


class Credentials(TypedDict):
    """The login, named as SageMaker's RepositoryAuthConfig contract names it."""

    Username: str
    Password: str


class CredentialsResponse(TypedDict):
    """What SageMaker expects the function to return."""

    Credentials: Credentials


class RegistryLogin:
    """A username/password pair whose repr shows neither, so it cannot leak through a log line."""

    __slots__ = ("password", "username")

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return "RegistryLogin(<redacted>)"


def new_client() -> SecretsManagerClient:
    """The Secrets Manager client this function uses: short timeouts, a few standard retries."""
    return boto3.session.Session().client("secretsmanager", config=_BOTO_CONFIG)


class SecretCache:
    """The secret's value, reused for max_age seconds; its client is built on first use, not at import."""

    def __init__(
        self,
        client_factory: Callable[[], SecretsManagerClient] = new_client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client_factory
        self._clock = clock
        self._client: SecretsManagerClient | None = None
        self._entry: tuple[str, str | bytes, float] | None = None  # secret id, value, read at

    def get(self, secret_id: str, max_age: float) -> str | bytes:
        """The cached value when younger than max_age seconds, else a fresh GetSecretValue."""
        now = self._clock()
        if self._entry is not None and self._entry[0] == secret_id and now - self._entry[2] < max_age:
            return self._entry[1]
        value = self._read(secret_id)
        self._entry = (secret_id, value, now)
        return value

    def forget(self) -> None:
        """Drop the cached value: the next get() reads the secret again."""
        self._entry = None

    def reset(self) -> None:
        """Drop the cached value and the client (tests, or a changed environment)."""
        self._entry = None
        self._client = None

    def _read(self, secret_id: str) -> str | bytes:
        if self._client is None:
            self._client = self._client_factory()
        try:
            response = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            raise RegistryCredentialsError(_unreadable(secret_id, exc)) from exc
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, timeout: none carries a value
            raise RegistryCredentialsError(f"registry secret {secret_id!r} cannot be read: {exc}") from exc
        if "SecretString" in response:
            return response["SecretString"]
        return response.get("SecretBinary", b"")


CACHE = SecretCache()


def clear_cache() -> None:
    """Forget the cached secret and the client: the next invocation starts afresh."""
    CACHE.reset()


def secret_id_from_env() -> str:
    """The secret's ARN or name, from SAGEDOCK_REGISTRY_SECRET_ID."""
    secret_id = os.environ.get(SECRET_ID_ENV, "").strip()
    if not secret_id:
        raise RegistryCredentialsError(
            f"{SECRET_ID_ENV} is not set: set it to the ARN or name of the registry secret ({EXPECTED})"
        )
    return secret_id


def max_age_from_env() -> int:
    """How long a read secret is reused, in seconds (0 reads it on every invocation)."""
    raw = os.environ.get(MAX_AGE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_AGE_SECONDS
    if not raw.isdecimal():
        raise RegistryCredentialsError(f"{MAX_AGE_ENV} must be whole seconds, 0 or more: {raw!r}")
    return int(raw)


def read_login(secret_id: str, *, max_age: int, cache: SecretCache) -> RegistryLogin:
    """Read the secret (cached for max_age seconds) and check it is a username/password pair."""
    value = cache.get(secret_id, max_age)
    try:
        return parse_login(secret_id, value)
    except RegistryCredentialsError:
        cache.forget()  # so the next invocation picks up the corrected secret at once
        raise


def parse_login(secret_id: str, value: object) -> RegistryLogin:
    """Check the secret's value; every message names the secret and the problem, never a value."""
    name = f"registry secret {secret_id!r}"
    if not isinstance(value, str):
        raise RegistryCredentialsError(f"{name} holds binary data: store {EXPECTED}")
    data = _json_or_marker(value)
    if data is _NOT_JSON:
        raise RegistryCredentialsError(f"{name} is not JSON: store {EXPECTED}")
    if not isinstance(data, dict):
        raise RegistryCredentialsError(f"{name} is JSON but not an object: store {EXPECTED}")
    problems = [problem for key in ("username", "password") if (problem := _field_problem(data, key))]
    if problems:
        raise RegistryCredentialsError(f"{name}: {'; '.join(problems)}: store {EXPECTED}")
    return RegistryLogin(username=data["username"], password=data["password"])


def handler(event: dict[str, Any], context: Any) -> CredentialsResponse:
    """Return the registry login in the shape SageMaker's RepositoryAuthConfig expects."""
    request_id = getattr(context, "aws_request_id", None)
    logger.debug("invoked with event %s", json.dumps(event, default=str), extra={"request_id": request_id})
    try:
        secret_id = secret_id_from_env()
        login = read_login(secret_id, max_age=max_age_from_env(), cache=CACHE)
    except RegistryCredentialsError as exc:
        logger.error("%s", exc, extra={"request_id": request_id})
        raise
    logger.info("registry credentials returned from %s", secret_id, extra={"request_id": request_id})
    return {"Credentials": {"Username": login.username, "Password": login.password}}


def _json_or_marker(value: str) -> Any:
    # Parsed outside any `except` block, so no raised error keeps a reference to the secret's text.
    try:
        return json.loads(value)
    except ValueError:
        return _NOT_JSON


def _field_problem(data: dict[str, Any], name: str) -> str | None:
    if name not in data:
        return f"no {name!r} field"
    if not isinstance(data[name], str):
        return f"{name!r} is not a string"
    if not data[name].strip():
        return f"{name!r} is empty"
    return None


def _unreadable(secret_id: str, exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    reason = _UNREADABLE_HINTS.get(code) or error.get("Message") or str(exc)
    return f"registry secret {secret_id!r} cannot be read: {reason} [{code}]"
