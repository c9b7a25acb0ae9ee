"""registry_auth against Secrets Manager as moto emulates it, and its CloudFormation fragment deployed."""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from registry_auth import handler as registry_auth
from registry_auth.build import deployment_zip

REGION = "us-east-1"
SECRET_NAME = "sagedock/registry"
USERNAME = "sagemaker-puller"
PASSWORD = "pw-4d7e0b9c31"  # distinctive, so a leak anywhere is found by a plain search
ROOT = Path(__file__).resolve().parents[2]


class Context:
    """The attributes of a Lambda context the handler reads."""

    aws_request_id = "0b4c9e4e-0000-4000-8000-000000000002"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Given an emulated account, and no client or cached secret left over from another test."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv(registry_auth.MAX_AGE_ENV, raising=False)
    registry_auth.clear_cache()
    try:
        with mock_aws():
            yield
    finally:
        registry_auth.clear_cache()


@pytest.fixture
def secret_arn(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """Given the registry login stored as the docs say, and the function pointed at it."""
    arn = _secrets().create_secret(
        Name=SECRET_NAME, SecretString=json.dumps({"username": USERNAME, "password": PASSWORD})
    )["ARN"]
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, arn)
    return arn


@pytest.fixture
def reads(aws: None, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Clock]:
    """Given the function's own client, counting its GetSecretValue calls, behind a cache on a hand clock."""
    calls: list[str] = []

    def counting_client() -> Any:
        client = registry_auth.new_client()
        client.meta.events.register(
            "before-parameter-build.secrets-manager.GetSecretValue",
            lambda params, **_: calls.append(params["SecretId"]),
        )
        return client

    clock = Clock()
    monkeypatch.setattr(
        registry_auth, "CACHE", registry_auth.SecretCache(client_factory=counting_client, clock=clock)
    )
    return calls, clock


def _secrets() -> Any:
    return boto3.client("secretsmanager", region_name=REGION)


def invoke() -> Any:
    return registry_auth.handler({}, Context())


# --- reading the secret ----------------------------------------------------------------------------------


def test_returns_the_stored_login(secret_arn: str) -> None:
    assert invoke() == {"Credentials": {"Username": USERNAME, "Password": PASSWORD}}


def test_the_secret_may_be_named_instead_of_by_arn(secret_arn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, SECRET_NAME)

    assert invoke()["Credentials"]["Username"] == USERNAME


def test_within_max_age_the_secret_is_read_once(secret_arn: str, reads: tuple[list[str], Clock]) -> None:
    calls, clock = reads

    invoke()
    clock.now += registry_auth.DEFAULT_MAX_AGE_SECONDS - 1
    second = invoke()

    assert calls == [secret_arn]
    assert second["Credentials"]["Password"] == PASSWORD


def test_a_rotation_is_seen_once_max_age_has_passed(secret_arn: str, reads: tuple[list[str], Clock]) -> None:
    calls, clock = reads
    invoke()
    _secrets().put_secret_value(
        SecretId=secret_arn, SecretString=json.dumps({"username": USERNAME, "password": "rotated-pw"})
    )

    clock.now += registry_auth.DEFAULT_MAX_AGE_SECONDS - 1
    before = invoke()
    clock.now += 1
    after = invoke()

    assert before["Credentials"]["Password"] == PASSWORD
    assert after["Credentials"]["Password"] == "rotated-pw"
    assert len(calls) == 2


# --- errors -----------------------------------------------------------------------------------------------


def test_a_missing_secret_fails_naming_it(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, "sagedock/no-such-registry")

    with pytest.raises(registry_auth.RegistryCredentialsError) as raised:
        invoke()

    assert "'sagedock/no-such-registry' cannot be read: it does not exist" in str(raised.value)
    assert "ResourceNotFoundException" in str(raised.value)


def test_a_deleted_secret_fails_naming_it(secret_arn: str) -> None:
    _secrets().delete_secret(SecretId=secret_arn, RecoveryWindowInDays=7)

    with pytest.raises(registry_auth.RegistryCredentialsError, match="cannot be read") as raised:
        invoke()

    assert secret_arn in str(raised.value)


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ({"SecretString": f"{USERNAME}:{PASSWORD}"}, "is not JSON"),
        (
            {"SecretString": json.dumps({"user": USERNAME, "pass": PASSWORD})},
            "no 'username' field; no 'password'",
        ),
        ({"SecretString": json.dumps({"username": USERNAME, "password": ""})}, "'password' is empty"),
        (
            {"SecretBinary": json.dumps({"username": USERNAME, "password": PASSWORD}).encode()},
            "holds binary data",
        ),
    ],
    ids=["not-json", "wrong-keys", "empty-password", "binary"],
)
def test_a_stored_value_that_is_not_a_login_fails_without_showing_it(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    stored: dict[str, Any],
    problem: str,
) -> None:
    arn = _secrets().create_secret(Name=SECRET_NAME, **stored)["ARN"]
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, arn)
    caplog.set_level(logging.DEBUG)  # from here on: the function's reads, not the test's own writes

    with pytest.raises(registry_auth.RegistryCredentialsError) as raised:
        invoke()

    assert arn in str(raised.value)
    assert problem in str(raised.value)
    for text in (str(raised.value), caplog.text):
        assert PASSWORD not in text
        assert USERNAME not in text


# --- logs: the proof that no value is logged, and that the check would see one -----------------------------


def test_nothing_logged_at_debug_anywhere_contains_the_login(
    secret_arn: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, botocore's included
    logging.getLogger("sagedock.registry_auth").setLevel(logging.DEBUG)
    try:
        invoke()
        invoke()
    finally:
        logging.getLogger("sagedock.registry_auth").setLevel(logging.INFO)

    assert "GetSecretValue" in caplog.text  # the SDK's own debug logging was on...
    assert "invoked with event" in caplog.text  # ...and so was the function's
    records = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records)
    printed = capsys.readouterr()
    for text in (caplog.text, records, printed.out, printed.err):
        assert PASSWORD not in text
        assert USERNAME not in text


def test_without_its_guard_botocore_would_log_the_password(
    secret_arn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    parsers = logging.getLogger("botocore.parsers")
    guarded = parsers.level
    parsers.setLevel(logging.DEBUG)  # undo the handler module's guard
    try:
        invoke()
    finally:
        parsers.setLevel(guarded)

    assert PASSWORD in caplog.text  # so the search in the test above is one that can fail


# --- the CloudFormation fragment, deployed ---------------------------------------------------------------


def _document(policy: dict[str, Any]) -> dict[str, Any]:
    """A role policy's document as AWS would return it.

    moto keeps a template-made document as the Python repr of the dict and leaves AWS::NoValue as None in
    the statement list, where CloudFormation drops it.
    """
    document = policy["PolicyDocument"]
    if isinstance(document, str):
        document = ast.literal_eval(document)
    return {**document, "Statement": [s for s in document["Statement"] if s is not None]}


@pytest.mark.parametrize(
    "kms_key", ["", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
)
def test_the_fragment_deploys_with_least_privilege(secret_arn: str, kms_key: str) -> None:
    iam = boto3.client("iam", region_name=REGION)
    sagemaker_role = iam.create_role(
        RoleName="sagedock-sagemaker",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="sagedock-artifacts")
    s3.put_object(Bucket="sagedock-artifacts", Key="registry_auth/code.zip", Body=deployment_zip())
    cloudformation = boto3.client("cloudformation", region_name=REGION)

    cloudformation.create_stack(
        StackName="sagedock-registry",
        TemplateBody=(ROOT / "infra" / "registry_auth.json").read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[
            {"ParameterKey": "RegistrySecretArn", "ParameterValue": secret_arn},
            {"ParameterKey": "RegistrySecretKmsKeyArn", "ParameterValue": kms_key},
            {"ParameterKey": "SageMakerRoleName", "ParameterValue": sagemaker_role["RoleName"]},
            {"ParameterKey": "RegistryAuthCodeBucket", "ParameterValue": "sagedock-artifacts"},
            {"ParameterKey": "RegistryAuthCodeKey", "ParameterValue": "registry_auth/code.zip"},
        ],
    )
    (stack,) = cloudformation.describe_stacks(StackName="sagedock-registry")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}

    function = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=outputs["RegistryAuthFunctionArn"]
    )
    assert function["Handler"] == "registry_auth.handler.handler"
    assert function["Runtime"] == "python3.11"
    variables = {name: str(value) for name, value in function["Environment"]["Variables"].items()}
    assert variables == {
        "SAGEDOCK_REGISTRY_SECRET_ID": secret_arn,
        "SAGEDOCK_REGISTRY_SECRET_MAX_AGE_SECONDS": "300",
    }

    function_role = function["Role"].rsplit("/", 1)[1]
    (policy_name,) = iam.list_role_policies(RoleName=function_role)["PolicyNames"]
    statements = _document(iam.get_role_policy(RoleName=function_role, PolicyName=policy_name))["Statement"]
    granted = {statement["Sid"]: statement for statement in statements}
    assert granted["ReadTheRegistrySecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert granted["ReadTheRegistrySecret"]["Resource"] == secret_arn
    expected = {"ReadTheRegistrySecret", "WriteItsOwnLogs"} | (
        {"DecryptTheRegistrySecret"} if kms_key else set()
    )
    assert set(granted) == expected
    if kms_key:
        assert granted["DecryptTheRegistrySecret"]["Resource"] == kms_key
    assert iam.list_attached_role_policies(RoleName=function_role)["AttachedPolicies"] == []

    (invoke_policy,) = iam.list_role_policies(RoleName=sagemaker_role["RoleName"])["PolicyNames"]
    document = iam.get_role_policy(RoleName=sagemaker_role["RoleName"], PolicyName=invoke_policy)[
        "PolicyDocument"
    ]
    assert [(s["Action"], s["Resource"]) for s in document["Statement"]] == [
        ("lambda:InvokeFunction", outputs["RegistryAuthFunctionArn"])
    ]
