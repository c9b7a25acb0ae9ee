"""sagedock.toml: the defaults, the documented example, and each validation rule with its message."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from chalicelib.domain.errors import ManifestInvalid
from chalicelib.domain.manifest import Manifest, parse_manifest

DESIGN_EXAMPLE = """
[build]
dockerfile = "Dockerfile"
build_args = { SKLEARN_VERSION = "1.5" }

[train]
instance_type = "ml.m5.large"
instance_count = 1
volume_size_gb = 30
max_runtime_seconds = 3600
hyperparameters = { max_leaf_nodes = 5, criterion = "gini" }   # scalars; sent to SageMaker as strings
[train.channels]
train = "iris/train/"          # key prefix in the data bucket, or a full s3:// URI

[deploy]
enabled = true
endpoint_name = "iris"         # default: the project
instance_type = "ml.t2.medium"
initial_instance_count = 1
startup_health_timeout_seconds = 600   # ContainerStartupHealthCheckTimeoutInSeconds (60-3600)
# serverless = { memory_size_mb = 2048, max_concurrency = 5 }  (instead of instances)
"""


def parse(text: str | bytes | None) -> Manifest:
    return parse_manifest(text, project="iris")


def problems(text: str | bytes) -> str:
    """The message of the ManifestInvalid that parsing `text` must raise."""
    with pytest.raises(ManifestInvalid) as caught:
        parse(text)
    assert caught.value.code == "InvalidManifest"
    assert "\n" not in caught.value.message
    return caught.value.message


# --- defaults and the documented example ------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", b"", "# nothing but a comment\n"])
def test_no_manifest_means_all_defaults(text: str | bytes | None) -> None:
    # Given no sagedock.toml (or an empty one): when parsed
    manifest = parse(text)

    # Then every setting has its documented default, the project-derived ones from the project
    assert manifest.build.dockerfile == "Dockerfile"
    assert manifest.build.build_args == {}
    train = manifest.train
    assert (train.instance_type, train.instance_count, train.volume_size_gb, train.max_runtime_seconds) == (
        "ml.m5.large",
        1,
        30,
        3600,
    )
    assert train.hyperparameters == {}
    assert train.channels is None  # resolved at validate, by the SDK's convention (test_preflight.py)
    deploy = manifest.deploy
    assert (deploy.enabled, deploy.endpoint_name, deploy.instance_type, deploy.initial_instance_count) == (
        True,
        "iris",
        "ml.t2.medium",
        1,
    )
    assert deploy.startup_health_timeout_seconds == 600
    assert deploy.serverless is None


def test_the_design_example_parses_as_written() -> None:
    # Given the example from the design document: when parsed
    manifest = parse(DESIGN_EXAMPLE)

    # Then hyperparameters keep their TOML types and go to SageMaker as strings
    assert manifest.train.hyperparameters == {"max_leaf_nodes": 5, "criterion": "gini"}
    assert manifest.train.hyperparameters_as_strings() == {"max_leaf_nodes": "5", "criterion": "gini"}
    assert manifest.build.build_args_as_strings() == {"SKLEARN_VERSION": "1.5"}
    assert manifest.train.channels == {"train": "iris/train/"}
    assert manifest.deploy.endpoint_name == "iris"


def test_scalars_become_the_strings_sagemaker_and_docker_expect() -> None:
    # Given hyperparameters and build args of every scalar type
    manifest = parse(
        "[build]\nbuild_args = { DEBUG = false, WORKERS = 4 }\n"
        "[train]\nhyperparameters = { a = true, b = false, c = 0.001, d = 10, e = 'x y', f = 1e-5 }\n"
    )

    # When turned into strings, then booleans are lowercase and numbers read back as numbers
    assert manifest.train.hyperparameters_as_strings() == {
        "a": "true",
        "b": "false",
        "c": "0.001",
        "d": "10",
        "e": "x y",
        "f": "1e-05",
    }
    assert manifest.build.build_args_as_strings() == {"DEBUG": "false", "WORKERS": "4"}


def test_channels_resolve_against_the_data_bucket_unless_they_are_uris() -> None:
    # Given a key-prefix channel and an s3:// channel
    manifest = parse("[train.channels]\ntrain = 'iris/train/'\ntest = 's3://shared-data/iris/test/'\n")

    # When resolved, then the prefix is in the data bucket and the URI stays
    assert manifest.train.channel_uris("sagedock-data") == {
        "train": "s3://sagedock-data/iris/train/",
        "test": "s3://shared-data/iris/test/",
    }


def test_explicit_empty_channels_mean_no_input_and_a_train_section_keeps_the_convention() -> None:
    # Given an explicit empty channel table, and a [train] section without one: when parsed
    # Then the first has no channels and the second leaves them to validate's convention
    assert parse("[train]\nchannels = {}\n").train.channels == {}
    assert parse("[train]\ninstance_count = 2\n").train.channels is None


def test_the_endpoint_name_can_be_set_and_serverless_replaces_instances() -> None:
    # Given a serverless deploy with its own endpoint name: when parsed
    deploy = parse("[deploy]\nendpoint_name = 'Iris-Prod-2'\nserverless = { memory_size_mb = 3072 }\n").deploy

    # Then both are kept, the serverless defaults filled in, and there are no instance settings
    assert deploy.endpoint_name == "Iris-Prod-2"
    assert (deploy.instance_type, deploy.initial_instance_count) == (None, None)
    assert deploy.serverless is not None
    assert (deploy.serverless.memory_size_mb, deploy.serverless.max_concurrency) == (3072, 5)


def test_a_byte_order_mark_is_accepted_and_the_dockerfile_path_normalised() -> None:
    # Given a manifest saved by an editor that writes a BOM, with a "./" path: when parsed
    manifest = parse("\ufeff[build]\ndockerfile = './docker//Dockerfile'\n".encode())

    # Then the path is the one the zip holds
    assert manifest.build.dockerfile == "docker/Dockerfile"


def test_a_stored_manifest_validates_back_to_itself() -> None:
    # Given a manifest dumped to JSON, as a run record stores it
    manifest = parse(
        "[train]\nhyperparameters = { depth = 5, rate = 0.1, prune = true, kind = 'gini' }\n"
        "[deploy]\nserverless = { memory_size_mb = 4096, max_concurrency = 10 }\n"
    )
    stored = manifest.model_dump_json()

    # When it is read back, then it is the same manifest
    assert Manifest.model_validate_json(stored) == manifest


def test_the_manifest_is_immutable() -> None:
    # Given a parsed manifest: when a setting is assigned, then it refuses
    manifest = parse(None)
    with pytest.raises(ValidationError):
        manifest.train.instance_count = 5  # type: ignore[misc]


def test_the_project_must_be_a_project_name() -> None:
    # Given a caller passing something that is not a project name: when parsing, then it is a caller bug
    with pytest.raises(ValueError, match="project name"):
        parse_manifest(None, project="Not A Project")


def test_importing_the_manifest_stays_light() -> None:
    # Given a fresh interpreter: when the manifest module is imported
    probe = (
        "import sys, chalicelib.domain.manifest; "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    # Then no AWS SDK came with it
    assert result.stdout.strip() == "[]"


# --- syntax and structure ---------------------------------------------------------------------------


def test_a_toml_syntax_error_says_where() -> None:
    # Given a manifest with a missing value on line 2
    message = problems("[train]\ninstance_count =\n")

    # Then the message says it is not TOML, and the line
    assert message.startswith("sagedock.toml is not valid TOML")
    assert "line 2" in message


def test_non_utf8_bytes_are_rejected() -> None:
    # Given a manifest saved in Latin-1 with an accented character
    assert "save it as UTF-8" in problems("# café\n".encode("latin-1"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 'red'\n", "colour: unknown key (allowed here: build, train, deploy)"),
        ("[train]\ninstance = 'ml.m5.large'\n", "train.instance: unknown key (allowed here: instance_type,"),
        (
            "[deploy.serverless]\nmemory = 1024\n",
            "deploy.serverless.memory: unknown key (allowed here: memory_size_mb",
        ),
    ],
)
def test_an_unknown_key_is_an_error_that_lists_the_allowed_ones(text: str, expected: str) -> None:
    # Given a misspelt key: when parsed, then the error names it and what is allowed there
    assert expected in problems(text)


def test_a_section_of_the_wrong_type_says_it_must_be_a_table() -> None:
    assert "deploy: must be a table, not an integer" in problems("deploy = 5\n")


def test_values_are_taken_as_typed_not_coerced() -> None:
    # Given a boolean written as a string: when parsed, then it is an error rather than a guess
    assert "deploy.enabled: Input should be a valid boolean" in problems("[deploy]\nenabled = 'yes'\n")


def test_every_problem_is_reported_at_once_on_its_own_dotted_path() -> None:
    # Given a manifest with three mistakes in three sections
    message = problems(
        "[build]\ndockerfile = '../Dockerfile'\n[train]\ninstance_count = 0\n[deploy]\nenabled = 'yes'\n"
    )

    # Then each has its own "path: problem" part
    parts = message.removeprefix("invalid sagedock.toml: ").split("; ")
    assert [part.split(":")[0] for part in parts] == [
        "build.dockerfile",
        "train.instance_count",
        "deploy.enabled",
    ]
    assert "train.instance_count: Input should be greater than 0" in parts


# --- each rule --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["ml.m5.large", "ml.p4d.24xlarge", "ml.g5.xlarge", "ml.trn1n.32xlarge"])
def test_sagemaker_instance_types_are_accepted(value: str) -> None:
    manifest = parse(f"[train]\ninstance_type = '{value}'\n[deploy]\ninstance_type = '{value}'\n")
    assert manifest.train.instance_type == manifest.deploy.instance_type == value


@pytest.mark.parametrize("value", ["m5.large", "ml.m5", "ML.M5.LARGE", "ml.m5.large ", "local"])
@pytest.mark.parametrize("section", ["train", "deploy"])
def test_an_instance_type_must_look_like_ml_family_size(section: str, value: str) -> None:
    message = problems(f"[{section}]\ninstance_type = '{value}'\n")
    assert f"{section}.instance_type: {value!r} is not a valid SageMaker instance type" in message
    assert "use one like 'ml.m5.large'" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("instance_count", "0", "train.instance_count: Input should be greater than 0"),
        ("volume_size_gb", "-1", "train.volume_size_gb: Input should be greater than 0"),
        ("max_runtime_seconds", "0", "train.max_runtime_seconds: Input should be greater than 0"),
        (
            "max_runtime_seconds",
            "2419201",
            "train.max_runtime_seconds: Input should be less than or equal to 2419200",
        ),
        ("instance_count", "'2'", "train.instance_count: Input should be a valid integer"),
        ("instance_count", "2.0", "train.instance_count: Input should be a valid integer"),
    ],
)
def test_training_numbers_must_be_in_range(key: str, value: str, expected: str) -> None:
    assert expected in problems(f"[train]\n{key} = {value}\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{ a = { b = 1 } }", "train.hyperparameters.a: must be a string, number or boolean, not a table"),
        ("{ a = [1, 2] }", "train.hyperparameters.a: must be a string, number or boolean, not an array"),
        (
            "{ a = 1979-05-27 }",
            "train.hyperparameters.a: must be a string, number or boolean, not a date or time",
        ),
        ("{ a = nan }", "train.hyperparameters.a: nan is not allowed: use a finite number"),
        ("{ a = inf }", "train.hyperparameters.a: inf is not allowed"),
        ("{ a = '" + "x" * 257 + "' }", "at most 256 characters in each name and value"),
        ("{ '' = 1 }", "String should have at least 1 character"),
    ],
)
def test_hyperparameters_must_be_scalars_sagemaker_accepts(value: str, expected: str) -> None:
    assert expected in problems(f"[train]\nhyperparameters = {value}\n")


def test_at_most_100_hyperparameters() -> None:
    table = ", ".join(f"p{i} = {i}" for i in range(101))
    assert "train.hyperparameters: Dictionary should have at most 100 items" in problems(
        f"[train]\nhyperparameters = {{ {table} }}\n"
    )


@pytest.mark.parametrize("name", ["bad name", "tráin", "a/b", "x" * 65])
def test_a_channel_name_must_match_sagemakers_pattern(name: str) -> None:
    message = problems(f"[train.channels]\n'{name}' = 'iris/train/'\n")
    assert f"train.channels: {name!r} is not a valid channel name" in message
    assert "use 1-64 letters, digits, '.', '-' and '_'" in message


def test_channel_names_with_dots_dashes_and_underscores_are_fine() -> None:
    assert parse("[train.channels]\n'eval.v-2_b' = 'iris/eval/'\n").train.channels == {
        "eval.v-2_b": "iris/eval/"
    }


@pytest.mark.parametrize(
    "source",
    [
        "s3://Bad_Bucket/x",
        "s3://ab/x",
        "s3:///x",
        "s3://my..bucket/x",
        "s3://192.168.1.1/x",
        "https://host/x",
        "S3://b/x",
    ],
)
def test_a_channel_uri_must_be_a_well_formed_s3_uri(source: str) -> None:
    message = problems(f"[train.channels]\ntrain = '{source}'\n")
    assert (
        f"train.channels.train: {source!r} is not a well-formed S3 URI: write s3://<bucket>/<prefix>"
        in message
    )


@pytest.mark.parametrize("source", ["", "/iris/train/"])
def test_a_channel_prefix_must_be_relative_and_non_empty(source: str) -> None:
    assert "is not a key prefix: write a prefix in the data bucket without a leading '/'" in problems(
        f"[train.channels]\ntrain = '{source}'\n"
    )


@pytest.mark.parametrize("source", ["s3://my-bucket", "s3://my.data-bucket/iris/", "iris/train/", "train"])
def test_well_formed_channel_sources_are_accepted(source: str) -> None:
    assert parse(f"[train.channels]\ntrain = '{source}'\n").train.channels["train"] == source


def test_at_most_20_channels() -> None:
    channels = "\n".join(f"c{i} = 'iris/c{i}/'" for i in range(21))
    assert "train.channels: Dictionary should have at most 20 items" in problems(
        f"[train.channels]\n{channels}\n"
    )


@pytest.mark.parametrize("name", ["a", "Iris-2", "a--b", "x" * 63])
def test_valid_endpoint_names_are_accepted(name: str) -> None:
    assert parse(f"[deploy]\nendpoint_name = '{name}'\n").deploy.endpoint_name == name


@pytest.mark.parametrize("name", ["", "-iris", "iris-", "iris_prod", "iris.prod", "x" * 64])
def test_an_endpoint_name_must_match_sagemakers_pattern(name: str) -> None:
    message = problems(f"[deploy]\nendpoint_name = '{name}'\n")
    assert f"deploy.endpoint_name: {name!r} is not a valid endpoint name" in message
    assert "use 1-63 letters, digits and hyphens" in message


def test_a_project_name_ending_in_a_hyphen_is_refused() -> None:
    # Given a project whose name ends in a hyphen (neither an ECR repository nor an endpoint accepts it)
    # Then parsing for it is a caller error: the upload handler rejects such a project before this
    with pytest.raises(ValueError, match="not a sagedock project name"):
        parse_manifest(None, project="iris-")


@pytest.mark.parametrize(("value", "ok"), [(59, False), (60, True), (3600, True), (3601, False)])
def test_the_startup_health_timeout_is_60_to_3600_seconds(value: int, ok: bool) -> None:
    text = f"[deploy]\nstartup_health_timeout_seconds = {value}\n"
    if ok:
        assert parse(text).deploy.startup_health_timeout_seconds == value
    else:
        assert "deploy.startup_health_timeout_seconds: Input should be" in problems(text)


@pytest.mark.parametrize("memory", [1024, 2048, 3072, 4096, 5120, 6144])
def test_serverless_memory_sizes_sagemaker_offers_are_accepted(memory: int) -> None:
    serverless = parse(f"[deploy]\nserverless = {{ memory_size_mb = {memory} }}\n").deploy.serverless
    assert serverless is not None
    assert serverless.memory_size_mb == memory


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "memory_size_mb = 1000",
            "deploy.serverless.memory_size_mb: Input should be 1024, 2048, 3072, 4096, 5120",
        ),
        (
            "memory_size_mb = 7168",
            "deploy.serverless.memory_size_mb: Input should be 1024, 2048, 3072, 4096, 5120",
        ),
        (
            "max_concurrency = 0",
            "deploy.serverless.max_concurrency: Input should be greater than or equal to 1",
        ),
        (
            "max_concurrency = 201",
            "deploy.serverless.max_concurrency: Input should be less than or equal to 200",
        ),
    ],
)
def test_serverless_settings_must_be_ones_sagemaker_offers(setting: str, expected: str) -> None:
    assert expected in problems(f"[deploy]\nserverless = {{ {setting} }}\n")


@pytest.mark.parametrize("instances", ["instance_type = 'ml.m5.large'", "initial_instance_count = 2"])
def test_serverless_and_instance_settings_exclude_each_other(instances: str) -> None:
    message = problems(f"[deploy]\n{instances}\nserverless = {{ memory_size_mb = 2048 }}\n")
    assert "deploy: serverless and" in message
    assert "exclude each other: remove one" in message


@pytest.mark.parametrize(
    "path", ["../Dockerfile", "/Dockerfile", "docker\\Dockerfile", "C:/Dockerfile", "", "a/../../b"]
)
def test_the_dockerfile_path_must_stay_inside_the_bundle(path: str) -> None:
    message = problems(f"[build]\ndockerfile = '{path}'\n")
    assert f"build.dockerfile: {path!r} must be a path inside the bundle, relative to its root" in message


@pytest.mark.parametrize("path", [".", "docker/"])
def test_the_dockerfile_path_must_name_a_file(path: str) -> None:
    assert "names a directory: give the path of the Dockerfile itself" in problems(
        f"[build]\ndockerfile = '{path}'\n"
    )


@pytest.mark.parametrize("name", ["1ST", "MY-ARG", "a b"])
def test_build_arg_names_must_be_variable_names(name: str) -> None:
    message = problems(f"[build]\nbuild_args = {{ '{name}' = 'x' }}\n")
    assert f"build.build_args: {name!r} is not a valid build argument name" in message
