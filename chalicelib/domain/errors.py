"""The domain errors: adapters raise these, handlers record them, the HTTP layer maps them to statuses."""

from __future__ import annotations


class SagedockError(Exception):
    """Base of every error sagedock raises on purpose."""

    code = "Internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class SettingsError(SagedockError):
    """A setting (environment variable) is missing or malformed."""

    code = "InvalidSettings"


class BadRequest(SagedockError):
    """The caller sent something that cannot be accepted as it is."""

    code = "BadRequest"

    def __init__(self, message: str, *, code: str | None = None, errors: list[dict[str, str]] | None = None):
        super().__init__(message, code=code)
        self.errors = errors or []


class NotFound(SagedockError):
    """The thing asked for does not exist."""

    code = "NotFound"


class Conflict(SagedockError):
    """The request is valid but the current state does not allow it."""

    code = "Conflict"


class BundleRejected(SagedockError):
    """A source bundle failed validation; the message says what to fix."""

    code = "InvalidBundle"


class ManifestInvalid(BundleRejected):
    """The bundle's sagedock.toml is not valid TOML or does not match the schema."""

    code = "InvalidManifest"

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]  # each `dotted.key: what is wrong`, for a list


class AlreadyExists(SagedockError):
    """An AWS resource with the deterministic name exists already (a replayed transition)."""

    code = "AlreadyExists"


class UpstreamError(SagedockError):
    """An AWS service refused or failed a call in a way the pipeline cannot recover from by itself."""

    code = "UpstreamError"


class StaleEvent(SagedockError):
    """An event asks for a transition the run has already made or moved past; it changes nothing."""

    code = "StaleEvent"


class ConcurrentUpdate(SagedockError):
    """Another writer changed the run between our read and our conditional write."""

    code = "ConcurrentUpdate"


class TransientError(SagedockError):
    """AWS throttled or failed transiently; raising lets Lambda retry the event."""

    code = "Transient"


class ModelFailed(SagedockError):
    """The model's container answered an invocation with an error of its own."""

    code = "ModelError"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class PayloadTooLarge(SagedockError):
    """A request body is larger than the service behind the route accepts."""

    code = "PayloadTooLarge"
