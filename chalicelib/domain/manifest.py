"""The `sagedock.toml` schema: what a bundle may ask of its build, its training job and its endpoint.

Every section and key is optional and an absent file means all defaults; unknown keys are an error
(a typo must not silently fall back to a default). `deploy.endpoint_name` defaults to the project name,
which is why `parse_manifest` takes it.

With no `channels` key under `[train]`, `train.channels` is None here and the channels follow the SageMaker
SDK's convention, resolved at validate from the data bucket (adapters/s3_channels.py: `resolve_channels`):
every `<project>/<channel>/` prefix holding data becomes a channel of that name, so `<project>/train/` gives
`train` and `<project>/training/` gives `training`, the SDK's default channel that classic containers read
at `/opt/ml/input/data/training`. The run records the channels found, and its training job reads exactly
those. Named channels must each hold at least one object when the run is validated and again when its
training job starts (EmptyChannel). Write `channels = {}` under `[train]` for a job with no input data.

The models build their validators on first use (`defer_build`), so importing this module stays cheap.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from chalicelib.domain import inference, limits, names
from chalicelib.domain.errors import ManifestInvalid
from chalicelib.domain.rollout import AutoscalingConfig, UpdateConfig, check_deploy

MANIFEST_NAME: Final = "sagedock.toml"
PROJECT_PATTERN: Final = names.PROJECT_PATTERN

_INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9][a-z0-9-]*\.[a-z0-9]+")
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
CHANNEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9.\-_]{1,64}")
_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")

# SageMaker's own limits (chalicelib/domain/limits.py), checked here so that a bad value fails at upload
# and not after a paid build.
MAX_CHANNELS: Final = limits.MAX_CHANNELS
MAX_HYPERPARAMETERS: Final = limits.MAX_HYPERPARAMETERS
MAX_HYPERPARAMETER_LENGTH: Final = limits.MAX_HYPERPARAMETER_LENGTH
MAX_RUNTIME_SECONDS: Final = limits.MAX_RUNTIME_SECONDS

Scalar = str | int | float | bool

# The validation context key of what answers SageMaker's instance type lists (limits.InstanceTypes), called
# only when the manifest names an instance type. Whoever validates a manifest a user wrote hands it in (the
# bundle's inspection, `sagedock check`: the lists come from botocore, chalicelib/adapters/instance_types.py);
# without it only an instance type's form is checked, as for a manifest read back from a run (checked when
# its bundle was uploaded): reading a run neither loads a service model nor depends on this botocore.
INSTANCE_TYPES: Final = "instance_types"

# The instance defaults, stated once: TrainConfig's field takes the first, DeployConfig fills in the others
# (its instance settings are None on a serverless endpoint); messages name them as examples.
TRAINING_INSTANCE_TYPE: Final = "ml.m5.large"
HOSTING_INSTANCE_TYPE: Final = "ml.t2.medium"
_INSTANCE_DEFAULTS: Final = {"instance_type": HOSTING_INSTANCE_TYPE, "initial_instance_count": 1}


_TOML_KINDS: Final = {
    dict: "a table",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
}


def _toml_kind(value: object) -> str:
    return _TOML_KINDS.get(type(value), "a number" if isinstance(value, float) else "a date or time")


def _scalar(value: object) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not allowed: use a finite number")
    if isinstance(value, str | int | float):
        return value
    raise ValueError(f"must be a string, number or boolean, not {_toml_kind(value)}")


def as_string(value: Scalar) -> str:
    """The text SageMaker and Docker receive for a TOML scalar: booleans as true/false, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def channel_uri(data_bucket: str, source: str) -> str:
    """A channel's S3 URI: a full s3:// URI as it is, a key prefix resolved against the data bucket."""
    if source.startswith("s3://"):
        return source
    return f"s3://{data_bucket}/{source.lstrip('/')}"


def _model_data(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    bucket, _, key = rest.partition("/")
    if (
        scheme != "s3"
        or not sep
        or not _BUCKET_NAME.fullmatch(bucket)
        or ".." in bucket
        or _IP_ADDRESS.fullmatch(bucket)
        or not key.endswith(".tar.gz")
        or len(value) > limits.MAX_MODEL_DATA_URL_LENGTH
    ):
        raise ValueError(
            f"{value!r} is not a model archive's S3 URI: write s3://<bucket>/<key>.tar.gz (SageMaker's "
            f"ModelDataUrl: one gzip-compressed tar, at most {limits.MAX_MODEL_DATA_URL_LENGTH} characters)"
        )
    return value


def _matching(pattern: re.Pattern[str], what: str, hint: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what}: {hint}")
        return value

    return AfterValidator(check)


def _offered(kind: str, example: str) -> AfterValidator:
    def check(value: str, info: ValidationInfo) -> str:
        lists = info.context.get(INSTANCE_TYPES) if isinstance(info.context, Mapping) else None
        if not lists:
            return value
        problem = limits.unknown_instance_type(value, kind=kind, known=lists(), example=example)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _relative_path(value: str) -> str:
    parts = value.split("/")
    if not value or value.startswith("/") or "\\" in value or ".." in parts or ":" in parts[0]:
        raise ValueError(
            f"{value!r} must be a path inside the bundle, relative to its root, with '/' separators "
            "and no '..' (like 'Dockerfile' or 'docker/Dockerfile')"
        )
    normalized = posixpath.normpath(value)
    if normalized == "." or value.endswith("/"):
        raise ValueError(f"{value!r} names a directory: give the path of the Dockerfile itself")
    return normalized


def _channel_source(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep:
        if not value or value.startswith("/"):
            raise ValueError(
                f"{value!r} is not a key prefix: write a prefix in the data bucket without a leading '/' "
                "(like 'iris/train/') or a full s3:// URI"
            )
        return value
    bucket = rest.split("/", 1)[0]
    if (
        scheme != "s3"
        or not _BUCKET_NAME.fullmatch(bucket)
        or ".." in bucket
        or _IP_ADDRESS.fullmatch(bucket)
    ):
        raise ValueError(
            f"{value!r} is not a well-formed S3 URI: write s3://<bucket>/<prefix> with a valid bucket name "
            "(3-63 lowercase letters, digits, '.' and '-'), or a key prefix in the data bucket"
        )
    return value


Text = Annotated[str, Field(min_length=1)]
ScalarValue = Annotated[Scalar, PlainValidator(_scalar)]
InstanceType = Annotated[
    str, _matching(_INSTANCE_TYPE, "SageMaker instance type", f"use one like {TRAINING_INSTANCE_TYPE!r}")
]
TrainingInstanceType = Annotated[InstanceType, _offered("training", TRAINING_INSTANCE_TYPE)]
HostingInstanceType = Annotated[InstanceType, _offered("hosting", HOSTING_INSTANCE_TYPE)]
EndpointName = Annotated[
    str,
    _matching(
        _ENDPOINT_NAME,
        "endpoint name",
        "use 1-63 letters, digits and hyphens, starting and ending with a letter or digit "
        "(it defaults to the project name)",
    ),
]
ChannelName = Annotated[
    str,
    _matching(CHANNEL_NAME_PATTERN, "channel name", "use 1-64 letters, digits, '.', '-' and '_'"),
]
ChannelSource = Annotated[str, AfterValidator(_channel_source)]
BuildArgName = Annotated[
    str,
    _matching(
        _BUILD_ARG_NAME, "build argument name", "use letters, digits and '_', not starting with a digit"
    ),
]
BundlePath = Annotated[str, AfterValidator(_relative_path)]
ModelDataUri = Annotated[str, AfterValidator(_model_data)]


def _hyperparameters_fit_sagemaker(values: dict[str, Scalar]) -> dict[str, Scalar]:
    # A field validator (not a model one), so that it reports alongside the other fields' problems.
    for name, value in values.items():
        if len(name) > MAX_HYPERPARAMETER_LENGTH or len(as_string(value)) > MAX_HYPERPARAMETER_LENGTH:
            raise ValueError(
                f"hyperparameter {name[:40]!r}: SageMaker allows at most {MAX_HYPERPARAMETER_LENGTH} "
                "characters in each name and value; pass large settings as a file in a channel"
            )
    return values


Hyperparameters = Annotated[dict[Text, ScalarValue], AfterValidator(_hyperparameters_fit_sagemaker)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class BuildConfig(_Section):
    """[build]: how CodeBuild builds the image."""

    dockerfile: BundlePath = "Dockerfile"
    build_args: dict[BuildArgName, ScalarValue] = Field(default_factory=dict)
    # The image scan gate: training waits for ECR's scan on push; findings at or above the threshold fail it.
    scan: bool = False
    scan_fail_severity: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"] = "HIGH"

    def build_args_as_strings(self) -> dict[str, str]:
        """The --build-arg values as Docker receives them."""
        return {name: as_string(value) for name, value in self.build_args.items()}


class TrainConfig(_Section):
    """[train]: the SageMaker training job. `channels` maps a channel name to a key prefix in the data
    bucket or a full s3:// URI; None (no `channels` key) until validate resolves them by the SDK's
    convention (the module docstring). `enabled = false` makes a serve-only bundle: no training job,
    the other keys are ignored, and the endpoint serves `deploy.model_data` or the image's own model."""

    instance_type: TrainingInstanceType = TRAINING_INSTANCE_TYPE
    instance_count: int = Field(default=1, gt=0)
    volume_size_gb: int = Field(default=30, gt=0)
    max_runtime_seconds: int = Field(default=3600, gt=0, le=MAX_RUNTIME_SECONDS)
    hyperparameters: Hyperparameters = Field(default_factory=dict, max_length=MAX_HYPERPARAMETERS)
    channels: Annotated[dict[ChannelName, ChannelSource], Field(max_length=MAX_CHANNELS)] | None = None
    enabled: bool = True

    def hyperparameters_as_strings(self) -> dict[str, str]:
        """The HyperParameters of CreateTrainingJob: SageMaker takes strings only (booleans as true/false)."""
        return {name: as_string(value) for name, value in self.hyperparameters.items()}

    def channel_uris(self, data_bucket: str) -> dict[str, str]:
        """Each channel's S3 URI, key prefixes resolved against the data bucket (channels resolved)."""
        if self.channels is None:
            raise ValueError(
                "the channels are not resolved yet (chalicelib/adapters/s3_channels.py: resolve_channels)"
            )
        return {name: channel_uri(data_bucket, source) for name, source in self.channels.items()}

    def with_channels(self, channels: dict[str, str]) -> TrainConfig:
        """This section with the channels that validate resolved."""
        return self.model_copy(update={"channels": channels})


class ServerlessConfig(_Section):
    """[deploy.serverless]: a serverless endpoint variant instead of instances."""

    memory_size_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(default=5, ge=1, le=limits.MAX_SERVERLESS_CONCURRENCY)


class DeployConfig(_Section):
    """[deploy]: the endpoint. `endpoint_name` is filled from the project by `parse_manifest`. An endpoint
    runs on instances (`instance_type`, `initial_instance_count`, defaulted) or is `serverless`, when
    the instance settings are None; giving both is an error."""

    enabled: bool = True
    endpoint_name: EndpointName
    instance_type: HostingInstanceType | None = None
    initial_instance_count: int | None = Field(default=None, gt=0)
    startup_health_timeout_seconds: int = Field(
        default=600,
        ge=limits.MIN_STARTUP_HEALTH_TIMEOUT_SECONDS,
        le=limits.MAX_STARTUP_HEALTH_TIMEOUT_SECONDS,
    )
    serverless: ServerlessConfig | None = None
    # An endpoint that exists and was deployed by another project (or outside sagedock) is refused unless
    # the manifest claims it: set true to take it over (chalicelib/flows/preflight.py, docs/manifest.md).
    claim_endpoint: bool = False
    update: UpdateConfig | None = None
    autoscaling: AutoscalingConfig | None = None
    # A serve-only bundle's model (`[train] enabled = false`): the model.tar.gz the endpoint unpacks at
    # /opt/ml/model; None serves the model baked into the image (CreateModel without ModelDataUrl).
    model_data: ModelDataUri | None = None
    # [deploy.async] (`async` is a Python keyword: the field is `async_`, the key `async`) and
    # [deploy.capture]: chalicelib/domain/inference.py.
    async_: inference.AsyncConfig | None = Field(
        default=None, alias="async", validation_alias=AliasChoices("async", "async_")
    )
    capture: inference.CaptureConfig | None = None

    @model_serializer(mode="wrap")
    def _tables_only_when_given(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # A [deploy] without them dumps as before they existed (the runs table's records stay the same);
        # given, [deploy.async] dumps under its TOML key.
        data: dict[str, Any] = handler(self)
        for name, key in (("async_", "async"), ("capture", "capture")):
            value = data.pop(name, None) if name in data else data.pop(key, None)
            if value is not None:
                data[key] = value
        return data

    @model_validator(mode="after")
    def _sagemaker_accepts_the_rollout(self) -> DeployConfig:
        problems = check_deploy(
            serverless=self.serverless is not None,
            instance_type=self.instance_type,
            instance_count=self.initial_instance_count,
            update=self.update,
            autoscaling=self.autoscaling,
        ) + inference.check_deploy(
            serverless=self.serverless is not None, async_=self.async_, capture=self.capture
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="before")
    @classmethod
    def _serverless_or_instances(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = sorted(name for name in _INSTANCE_DEFAULTS if data.get(name) is not None)
        if data.get("serverless") is None:
            return {
                **data,
                **{name: value for name, value in _INSTANCE_DEFAULTS.items() if name not in given},
            }
        if given:
            raise ValueError(
                f"serverless and {' and '.join(given)} exclude each other: "
                "remove one (a serverless endpoint has no instances)"
            )
        return data


class Manifest(_Section):
    """A whole sagedock.toml, defaults filled in. Build it with `parse_manifest`."""

    build: BuildConfig = Field(default_factory=BuildConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    deploy: DeployConfig

    @model_validator(mode="after")
    def _serve_only_makes_sense(self) -> Manifest:
        problems = serve_only_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def serve_only(self) -> bool:
        """Whether the run skips training and deploys the image as it is (`[train] enabled = false`)."""
        return not self.train.enabled


def serve_only_problems(manifest: Manifest) -> list[str]:
    """What a manifest asks of a serve-only bundle that cannot be done: the training switch and the model."""
    if manifest.train.enabled:
        if manifest.deploy.model_data is not None:
            return [
                "deploy.model_data: the endpoint serves the model training makes; model_data is for a "
                "serve-only bundle: set enabled = false under [train], or remove model_data"
            ]
        return []
    if not manifest.deploy.enabled:
        return [
            "train.enabled: with training off and deploy.enabled = false a run has nothing to do: "
            "set enabled = true under [train] or under [deploy]"
        ]
    return []


def parse_manifest(
    text: str | bytes | None,
    *,
    project: str,
    instance_types: Callable[[], limits.InstanceTypes] | None = None,
) -> Manifest:
    """Parse and validate a sagedock.toml (None: the bundle has none), raising ManifestInvalid with every
    problem as `dotted.path: what is wrong` so that the user can fix them all at once. Its instance types
    are checked against the lists `instance_types` answers, when given (see INSTANCE_TYPES)."""
    if not PROJECT_PATTERN.fullmatch(project):
        raise ValueError(f"not a sagedock project name: {project!r}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestInvalid(
                f"{MANIFEST_NAME} is not UTF-8 text (bad byte at offset {exc.start}): save it as UTF-8"
            ) from exc
    import tomllib  # here: a handler that only reads runs never parses TOML

    try:
        data = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise ManifestInvalid(f"{MANIFEST_NAME} is not valid TOML: {exc}") from exc
    _fill_project_defaults(data, project)
    try:
        return Manifest.model_validate(data, context={INSTANCE_TYPES: instance_types})
    except ValidationError as exc:
        found = _problems(exc)
        raise ManifestInvalid(f"invalid {MANIFEST_NAME}: " + "; ".join(found), problems=found) from exc


def validate_manifest(data: dict[str, Any]) -> Manifest:
    """Validate a manifest as a run stores it (JSON, defaults filled); ManifestInvalid as parse_manifest.
    Its instance types were checked against SageMaker's lists at upload: here only their form is."""
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestInvalid("; ".join(_problems(exc))) from exc


def stored_manifest(data: Mapping[str, Any], *, project: str) -> Manifest:
    """A manifest read back from a run record (a JSON map), as any version of sagedock wrote it; a map that
    is not a manifest raises pydantic's ValidationError. Run validates its field the same way."""
    return Manifest.model_validate(upgraded(data, project=project))


def upgraded(data: Mapping[str, Any], *, project: str) -> dict[str, Any]:
    """A stored manifest map in the form this version reads.

    A key or section an older version did not write takes its default when validated; `deploy.endpoint_name`,
    absent or null, is the project's. Older versions also stored the default instance settings next to
    `serverless`, which ignored them: they are dropped. The instance types are not looked up again
    (no `INSTANCE_TYPES` in the context).
    """
    record = {name: value for name, value in data.items() if value is not None}
    deploy = record.get("deploy", {})
    if isinstance(deploy, Mapping):
        deploy = dict(deploy)
        if deploy.get("endpoint_name") is None:
            deploy["endpoint_name"] = project
        if deploy.get("serverless") is not None:
            for name in _INSTANCE_DEFAULTS:
                deploy.pop(name, None)
    record["deploy"] = deploy
    return record


def default_manifest(project: str) -> Manifest:
    """The manifest of a bundle without sagedock.toml (what a run without a recorded manifest follows)."""
    return stored_manifest({}, project=project)


def _fill_project_defaults(data: dict[str, Any], project: str) -> None:
    deploy = data.setdefault("deploy", {})
    if isinstance(deploy, dict):
        deploy.setdefault("endpoint_name", project)


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        if loc[-1:] == ["[key]"]:  # a bad dict key: its message names it, so point at the table
            loc = loc[:-2]
        if error["type"] == "extra_forbidden":
            message = "unknown key (allowed here: " + ", ".join(_keys_at(loc[:-1])) + ")"
        elif error["type"] in ("model_type", "dict_type"):
            message = f"must be a table, not {_toml_kind(error['input'])}"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = error["msg"]
        problems.append(f"{'.'.join(loc) or MANIFEST_NAME}: {message}")
    return problems


def _keys_at(loc: list[str]) -> list[str]:
    model: type[BaseModel] = Manifest
    for part in loc:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        candidates = (field.annotation, *get_args(field.annotation)) if field else ()
        sections = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not sections:
            return []
        model = sections[0]
    return [field.alias or name for name, field in model.model_fields.items()]
