"""Settings: a complete environment loads; a missing or malformed variable fails with a message naming it."""

from __future__ import annotations

import pytest

from chalicelib.domain.errors import SettingsError
from chalicelib.settings import load_settings
from tests.settings_env import AUTH_ARN, PRIVATE, REQUIRED, ROLE_ARN


def error_of(env: dict[str, str]) -> str:
    """The message of the SettingsError that loading `env` must raise."""
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.code == "InvalidSettings"
    return caught.value.message


def test_full_environment_loads() -> None:
    # Given every variable, in private-registry mode, among unrelated variables
    env = {**REQUIRED, "SAGEDOCK_ECR_PREFIX": "team/sagedock", **PRIVATE, "PATH": "/usr/bin", "HOME": "/"}

    settings = load_settings(env)

    assert settings.source_bucket == "sagedock-source"
    assert settings.data_bucket == "sagedock-data"
    assert settings.artifact_bucket == "sagedock-artifacts"
    assert settings.runs_table == "sagedock-runs"
    assert settings.idempotency_table == "sagedock-idempotency"
    assert settings.codebuild_project == "sagedock-build"
    assert settings.ecr_prefix == "team/sagedock"
    assert settings.sagemaker_role_arn == ROLE_ARN
    assert settings.private_mode is True
    assert settings.private_registry == "registry.example.com"
    assert settings.registry_auth_function_arn == AUTH_ARN
    assert settings.subnet_ids == ["subnet-0a", "subnet-0b"]
    assert settings.security_group_ids == ["sg-0c"]
    assert settings.registry_secret_id == "sagedock/registry"


def test_minimal_environment_is_ecr_mode_with_defaults() -> None:
    settings = load_settings(REQUIRED)

    assert settings.private_mode is False
    assert settings.ecr_prefix == "sagedock"
    assert settings.subnet_ids == [] and settings.security_group_ids == []
    assert settings.max_bundle_entries == 10_000
    assert settings.max_bundle_uncompressed_bytes == 4 * 1024**3
    assert settings.max_compression_ratio == 200.0


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAGEDOCK_RUNS_TABLE", "from-the-process")
    assert load_settings().runs_table == "from-the-process"


@pytest.mark.parametrize("missing", list(REQUIRED))
def test_each_missing_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != missing}

    message = error_of(env)

    assert missing in message
    assert [name for name in REQUIRED if name in message] == [missing]


def test_every_missing_variable_is_named_at_once() -> None:
    message = error_of({})
    for name in REQUIRED:
        assert name in message


@pytest.mark.parametrize(
    "arn",
    [
        "sagedock-sagemaker",
        "arn:aws:iam::123:role/short-account",
        "arn:aws:iam::123456789012:user/not-a-role",
        "arn:aws:iam::123456789012:role/",
    ],
)
def test_malformed_role_arn_is_named(arn: str) -> None:
    message = error_of({**REQUIRED, "SAGEDOCK_SAGEMAKER_ROLE_ARN": arn})
    assert "SAGEDOCK_SAGEMAKER_ROLE_ARN" in message


def test_role_arn_of_another_partition_is_accepted() -> None:
    arn = "arn:aws-cn:iam::123456789012:role/sagedock"
    assert load_settings({**REQUIRED, "SAGEDOCK_SAGEMAKER_ROLE_ARN": arn}).sagemaker_role_arn == arn


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN", "sagedock-registry-auth"),
        ("SAGEDOCK_ECR_PREFIX", "Upper/Case"),
        ("SAGEDOCK_ECR_PREFIX", "trailing/"),
        ("SAGEDOCK_MAX_BUNDLE_ENTRIES", "many"),
        ("SAGEDOCK_MAX_BUNDLE_ENTRIES", "0"),
        ("SAGEDOCK_MAX_COMPRESSION_RATIO", "1"),
        ("SAGEDOCK_SOURCE_BUCKET", "ab"),
    ],
)
def test_other_malformed_variables_are_named(name: str, value: str) -> None:
    assert name in error_of({**REQUIRED, name: value})


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("subnet-0a,subnet-0b", ["subnet-0a", "subnet-0b"]),
        (" subnet-0a , subnet-0b ", ["subnet-0a", "subnet-0b"]),
        ("subnet-0a,,subnet-0b,", ["subnet-0a", "subnet-0b"]),
        ("subnet-0a", ["subnet-0a"]),
        ("", []),
    ],
)
def test_csv_lists_are_parsed(value: str, parsed: list[str]) -> None:
    settings = load_settings({**REQUIRED, "SAGEDOCK_SUBNET_IDS": value, "SAGEDOCK_SECURITY_GROUP_IDS": value})
    assert settings.subnet_ids == parsed
    assert settings.security_group_ids == parsed


@pytest.mark.parametrize(
    "missing",
    [
        "SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN",
        "SAGEDOCK_SUBNET_IDS",
        "SAGEDOCK_SECURITY_GROUP_IDS",
        "SAGEDOCK_REGISTRY_SECRET_ID",
    ],
)
def test_private_registry_without_each_companion_is_an_error(missing: str) -> None:
    env = {**REQUIRED, **{k: v for k, v in PRIVATE.items() if k != missing}}

    message = error_of(env)

    assert "SAGEDOCK_PRIVATE_REGISTRY" in message
    assert missing in message
    others = [name for name in PRIVATE if name not in (missing, "SAGEDOCK_PRIVATE_REGISTRY")]
    assert not any(name in message for name in others)


def test_private_registry_alone_names_all_its_companions() -> None:
    message = error_of({**REQUIRED, "SAGEDOCK_PRIVATE_REGISTRY": "registry.example.com"})
    for name in PRIVATE:
        assert name in message


def test_empty_csv_counts_as_missing_in_private_mode() -> None:
    message = error_of({**REQUIRED, **PRIVATE, "SAGEDOCK_SUBNET_IDS": " , "})
    assert "SAGEDOCK_SUBNET_IDS" in message


def test_limits_can_be_raised() -> None:
    settings = load_settings(
        {
            **REQUIRED,
            "SAGEDOCK_MAX_BUNDLE_ENTRIES": "50",
            "SAGEDOCK_MAX_BUNDLE_UNCOMPRESSED_BYTES": "1048576",
            "SAGEDOCK_MAX_COMPRESSION_RATIO": "12.5",
        }
    )
    assert settings.max_bundle_entries == 50
    assert settings.max_bundle_uncompressed_bytes == 1_048_576
    assert settings.max_compression_ratio == 12.5
