"""registry_auth without AWS: the login it returns, how long it keeps it, what it says and never says."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from registry_auth import handler as registry_auth

SECRET_ID = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sagedock/registry-AbCdEf"
USERNAME = "sagemaker-puller"
PASSWORD = "pw-9f2c1e7a4b"  # distinctive, so a leak anywhere is found by a plain search
ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra" / "registry_auth.json"


class FakeSecretsManager:
    """Stands in for the Secrets Manager client: answers GetSecretValue from a script and counts calls."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Context:
    """The attributes of a Lambda context the handler reads."""

    aws_request_id = "5f1d6c2e-0000-4000-8000-000000000001"
    function_name = "sagedock-registry-auth"


def secret_string(value: str) -> dict[str, Any]:
    return {"ARN": SECRET_ID, "Name": "sagedock/registry", "SecretString": value}


def login_json(username: Any = USERNAME, password: Any = PASSWORD) -> str:
    return json.dumps({"username": username, "password": password})


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetSecretValue")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> FakeSecretsManager:
    """Given the function configured with a secret id and a scripted client behind a fresh cache."""
    fake = FakeSecretsManager()
    monkeypatch.setattr(
        registry_auth, "CACHE", registry_auth.SecretCache(client_factory=lambda: fake, clock=clock)
    )
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, SECRET_ID)
    monkeypatch.delenv(registry_auth.MAX_AGE_ENV, raising=False)
    return fake


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of every logger at DEBUG: the most a deployment could turn on."""
    caplog.set_level(logging.DEBUG)
    own = logging.getLogger("sagedock.registry_auth")
    previous = own.level
    own.setLevel(logging.DEBUG)
    yield caplog
    own.setLevel(previous)


def invoke(event: dict[str, Any] | None = None) -> Any:
    return registry_auth.handler(event if event is not None else {}, Context())


def assert_no_secret_values(text: str) -> None:
    assert PASSWORD not in text
    assert USERNAME not in text


def full_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Message, arguments and every extra attribute of each record: what any formatter could print."""
    return "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records)


# --- the happy path -------------------------------------------------------------------------------------


def test_returns_the_login_in_the_shape_sagemaker_expects(secrets: FakeSecretsManager) -> None:
    secrets.answers.append(secret_string(login_json()))

    response = invoke()

    assert response == {"Credentials": {"Username": USERNAME, "Password": PASSWORD}}
    assert secrets.calls == [{"SecretId": SECRET_ID}]


def test_extra_fields_in_the_secret_are_ignored(secrets: FakeSecretsManager) -> None:
    secrets.answers.append(
        secret_string(json.dumps({"username": USERNAME, "password": PASSWORD, "note": "x"}))
    )

    assert invoke()["Credentials"] == {"Username": USERNAME, "Password": PASSWORD}


def test_the_secret_id_may_be_a_name_and_is_stripped(
    secrets: FakeSecretsManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, "  sagedock/registry \n")
    secrets.answers.append(secret_string(login_json()))

    invoke()

    assert secrets.calls == [{"SecretId": "sagedock/registry"}]


# --- caching --------------------------------------------------------------------------------------------


def test_a_second_call_within_max_age_reads_nothing(secrets: FakeSecretsManager, clock: Clock) -> None:
    secrets.answers.append(secret_string(login_json()))

    first = invoke()
    clock.now += registry_auth.DEFAULT_MAX_AGE_SECONDS - 1
    second = invoke()

    assert first == second
    assert len(secrets.calls) == 1


def test_after_max_age_the_secret_is_read_again(secrets: FakeSecretsManager, clock: Clock) -> None:
    secrets.answers += [secret_string(login_json()), secret_string(login_json(password="rotated-1"))]

    invoke()
    clock.now += registry_auth.DEFAULT_MAX_AGE_SECONDS
    rotated = invoke()

    assert len(secrets.calls) == 2
    assert rotated["Credentials"]["Password"] == "rotated-1"


def test_max_age_comes_from_the_environment(
    secrets: FakeSecretsManager, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry_auth.MAX_AGE_ENV, "30")
    secrets.answers += [secret_string(login_json())] * 2

    invoke()
    clock.now += 29
    invoke()
    clock.now += 1
    invoke()

    assert len(secrets.calls) == 2


def test_max_age_zero_reads_on_every_call(
    secrets: FakeSecretsManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry_auth.MAX_AGE_ENV, "0")
    secrets.answers += [secret_string(login_json())] * 3

    for _ in range(3):
        invoke()

    assert len(secrets.calls) == 3


def test_a_changed_secret_id_is_not_served_from_the_cache(
    secrets: FakeSecretsManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets.answers += [secret_string(login_json()), secret_string(login_json(username="other-user"))]

    invoke()
    monkeypatch.setenv(registry_auth.SECRET_ID_ENV, "sagedock/other-registry")
    other = invoke()

    assert other["Credentials"]["Username"] == "other-user"
    assert secrets.calls[-1] == {"SecretId": "sagedock/other-registry"}


def test_an_invalid_secret_is_not_kept_so_a_fix_is_seen_at_once(secrets: FakeSecretsManager) -> None:
    secrets.answers += [secret_string(json.dumps({"username": USERNAME})), secret_string(login_json())]

    with pytest.raises(registry_auth.RegistryCredentialsError):
        invoke()
    fixed = invoke()

    assert fixed["Credentials"]["Password"] == PASSWORD
    assert len(secrets.calls) == 2


def test_a_failed_read_is_retried_on_the_next_call(secrets: FakeSecretsManager) -> None:
    secrets.answers += [client_error("InternalServiceError", "try again"), secret_string(login_json())]

    with pytest.raises(registry_auth.RegistryCredentialsError):
        invoke()

    assert invoke()["Credentials"]["Username"] == USERNAME


def test_the_client_is_built_on_first_use_not_at_import() -> None:
    built: list[FakeSecretsManager] = []

    def factory() -> FakeSecretsManager:
        built.append(FakeSecretsManager(secret_string(login_json())))
        return built[-1]

    cache = registry_auth.SecretCache(client_factory=factory)
    assert built == []

    cache.get(SECRET_ID, 300)
    cache.reset()
    assert len(built) == 1

    cache.get(SECRET_ID, 300)
    assert len(built) == 2


# --- errors: each names the secret and the problem, never a value ---------------------------------------

BAD_VALUES = [
    pytest.param(login_json(password=None), "'password' is not a string", id="password-null"),
    pytest.param(json.dumps({"username": USERNAME}), "no 'password' field", id="no-password"),
    pytest.param(json.dumps({"password": PASSWORD}), "no 'username' field", id="no-username"),
    pytest.param(json.dumps({}), "no 'username' field; no 'password' field", id="no-fields"),
    pytest.param(login_json(password=""), "'password' is empty", id="empty-password"),
    pytest.param(login_json(username="   "), "'username' is empty", id="blank-username"),
    pytest.param(login_json(username=12345), "'username' is not a string", id="numeric-username"),
    pytest.param(login_json(password=[PASSWORD]), "'password' is not a string", id="list-password"),
    pytest.param(f"username={USERNAME} password={PASSWORD}", "is not JSON", id="not-json"),
    pytest.param(f'{{"username": "{USERNAME}", "password": "{PASSWORD}"', "is not JSON", id="truncated-json"),
    pytest.param(json.dumps([USERNAME, PASSWORD]), "is JSON but not an object", id="json-list"),
    pytest.param(json.dumps(PASSWORD), "is JSON but not an object", id="json-string"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_VALUES)
def test_a_secret_that_is_not_a_login_fails_naming_secret_and_problem(
    secrets: FakeSecretsManager, all_logs: pytest.LogCaptureFixture, value: str, problem: str
) -> None:
    secrets.answers.append(secret_string(value))

    with pytest.raises(registry_auth.RegistryCredentialsError) as raised:
        invoke()

    message = str(raised.value)
    assert SECRET_ID in message
    assert problem in message
    assert '{"username": "...", "password": "..."}' in message  # says what to store instead
    assert_no_secret_values(message)
    assert_no_secret_values(full_log_text(all_logs))
    assert_no_secret_values(_exception_chain_text(raised.value))


def test_a_binary_secret_fails_naming_the_problem(secrets: FakeSecretsManager) -> None:
    secrets.answers.append({"ARN": SECRET_ID, "Name": "n", "SecretBinary": login_json().encode()})

    with pytest.raises(registry_auth.RegistryCredentialsError, match="holds binary data") as raised:
        invoke()

    assert SECRET_ID in str(raised.value)
    assert_no_secret_values(str(raised.value))


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("ResourceNotFoundException", "does not exist"),
        ("AccessDeniedException", "secretsmanager:GetSecretValue"),
        ("DecryptionFailure", "kms:Decrypt"),
        ("InvalidRequestException", "scheduled for deletion"),
        ("InternalServiceError", "the service said: boom"),
    ],
)
def test_an_unreadable_secret_fails_with_what_to_fix(
    secrets: FakeSecretsManager, code: str, hint: str
) -> None:
    secrets.answers.append(client_error(code, "the service said: boom"))

    with pytest.raises(registry_auth.RegistryCredentialsError) as raised:
        invoke()

    message = str(raised.value)
    assert SECRET_ID in message
    assert hint in message
    assert code in message
    assert isinstance(raised.value.__cause__, ClientError)


def test_an_unreachable_endpoint_fails_naming_the_secret(secrets: FakeSecretsManager) -> None:
    secrets.answers.append(
        EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")
    )

    with pytest.raises(
        registry_auth.RegistryCredentialsError, match="cannot be read: Could not connect"
    ) as raised:
        invoke()

    assert SECRET_ID in str(raised.value)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_secret_id_fails_naming_the_variable(
    secrets: FakeSecretsManager, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(registry_auth.SECRET_ID_ENV)
    else:
        monkeypatch.setenv(registry_auth.SECRET_ID_ENV, value)

    with pytest.raises(
        registry_auth.RegistryCredentialsError, match="SAGEDOCK_REGISTRY_SECRET_ID is not set"
    ):
        invoke()

    assert secrets.calls == []


@pytest.mark.parametrize("value", ["-1", "5m", "1.5", "three hundred"])
def test_a_malformed_max_age_fails_naming_the_variable(
    secrets: FakeSecretsManager, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(registry_auth.MAX_AGE_ENV, value)

    with pytest.raises(registry_auth.RegistryCredentialsError, match=registry_auth.MAX_AGE_ENV):
        invoke()


def _exception_chain_text(exc: BaseException | None) -> str:
    """The text and attributes of an exception and of all chained to it: what a traceback could show."""
    parts = []
    while exc is not None:
        parts.append(f"{exc!s} {exc.args!r} {vars(exc)!r}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


# --- logs -----------------------------------------------------------------------------------------------


def test_nothing_logged_at_debug_contains_the_login(
    secrets: FakeSecretsManager, all_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets.answers.append(secret_string(login_json()))

    invoke({"source": "sagemaker", "detail": {"model": "iris"}})
    invoke()  # served from the cache

    records = full_log_text(all_logs)
    assert "invoked with event" in records  # invocation logging was on...
    assert "registry credentials returned from " + SECRET_ID in records  # ...and the outcome was logged
    assert_no_secret_values(records)
    printed = capsys.readouterr()
    assert_no_secret_values(printed.out + printed.err)


def test_failures_are_logged_with_the_message_and_without_values(
    secrets: FakeSecretsManager, all_logs: pytest.LogCaptureFixture
) -> None:
    secrets.answers.append(secret_string(json.dumps({"username": USERNAME, "password": ""})))

    with pytest.raises(registry_auth.RegistryCredentialsError):
        invoke()

    errors = [record for record in all_logs.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "'password' is empty" in errors[0].getMessage()
    assert_no_secret_values(full_log_text(all_logs))


def test_botocore_response_bodies_stay_out_of_the_logs_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    assert not logging.getLogger("botocore.parsers").isEnabledFor(logging.DEBUG)


def test_the_login_repr_shows_no_value() -> None:
    login = registry_auth.parse_login(SECRET_ID, login_json())

    assert (login.username, login.password) == (USERNAME, PASSWORD)
    assert_no_secret_values(repr(login))


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("DEBUG", logging.DEBUG),
        ("TRACE", logging.DEBUG),
        ("WARN", logging.WARNING),
        ("nonsense", logging.INFO),
    ],
)
def test_lambda_application_log_level_names_map_to_python_levels(level: str, expected: int) -> None:
    # Given a fresh function whose Lambda application log level is `level`
    probe = "import registry_auth.handler as h; print(h.logger.level)"
    answer = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "AWS_LAMBDA_LOG_LEVEL": level},
        capture_output=True,
        text=True,
        check=True,
    )
    # Then its logger logs at the matching Python level
    assert int(answer.stdout) == expected


# --- its CloudFormation: the function as the handler expects it, and least privilege --------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return json.loads(INFRA.read_text())


def test_the_fragment_only_refers_to_what_it_defines(template: dict[str, Any]) -> None:
    known = set(template["Parameters"]) | set(template["Resources"]) | {"AWS::Region", "AWS::AccountId"}
    known |= {"AWS::Partition", "AWS::StackName", "AWS::NoValue", "AWS::URLSuffix"}
    text = json.dumps(template)
    refs = set(re.findall(r'"Ref": "([^"]+)"', text))
    refs |= {target.split(".")[0] for target in re.findall(r"\$\{([^}!]+)\}", text)}
    refs |= set(re.findall(r'"Fn::GetAtt": \["([^"]+)"', text))
    conditions = set(re.findall(r'"Condition": "([^"]+)"', text))
    conditions |= set(re.findall(r'"Fn::If": \["([^"]+)"', text))

    assert refs <= known, refs - known
    assert conditions <= set(template.get("Conditions", {}))


def test_the_function_runs_this_handler_with_its_settings(template: dict[str, Any]) -> None:
    function = _resources(template, "AWS::Lambda::Function")
    assert len(function) == 1
    properties = function[0]["Properties"]

    module, attribute = properties["Handler"].rsplit(".", 1)
    assert module == registry_auth.__name__
    assert callable(getattr(registry_auth, attribute))
    assert properties["Runtime"] == "python3.11"
    assert properties["MemorySize"] <= 512
    assert properties["Timeout"] <= 30
    variables = properties["Environment"]["Variables"]
    assert variables[registry_auth.SECRET_ID_ENV] == {"Ref": "RegistrySecretArn"}
    assert registry_auth.MAX_AGE_ENV in variables


def test_the_function_role_reads_this_one_secret_and_writes_its_own_logs(template: dict[str, Any]) -> None:
    (role,) = _resources(template, "AWS::IAM::Role")
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]
    statements = [s for p in role["Properties"]["Policies"] for s in _statements(p["PolicyDocument"])]

    by_action = {action: s for s in statements for action in _as_list(s["Action"])}
    assert set(by_action) == {
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] == {"Ref": "RegistrySecretArn"}
    assert by_action["kms:Decrypt"]["Resource"] == {"Ref": "RegistrySecretKmsKeyArn"}
    assert "kms:ViaService" in json.dumps(by_action["kms:Decrypt"]["Condition"])
    assert by_action["logs:PutLogEvents"]["Resource"] == {"Fn::GetAtt": ["RegistryAuthLogGroup", "Arn"]}
    assert '"*"' not in json.dumps(statements)


def test_the_sagemaker_role_may_invoke_this_one_function_only(template: dict[str, Any]) -> None:
    (policy,) = _resources(template, "AWS::IAM::Policy")

    assert policy["Properties"]["Roles"] == [{"Ref": "SageMakerRoleName"}]
    (statement,) = _statements(policy["Properties"]["PolicyDocument"])
    assert statement["Effect"] == "Allow"
    assert _as_list(statement["Action"]) == ["lambda:InvokeFunction"]
    assert statement["Resource"] == {"Fn::GetAtt": ["RegistryAuthFunction", "Arn"]}


def test_the_outputs_give_the_arn_the_pipeline_settings_need(template: dict[str, Any]) -> None:
    assert template["Outputs"]["RegistryAuthFunctionArn"]["Value"] == {
        "Fn::GetAtt": ["RegistryAuthFunction", "Arn"]
    }


def _resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [resource for resource in template["Resources"].values() if resource["Type"] == kind]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements, with an Fn::If [condition, statement, AWS::NoValue] taken as its statement."""
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in document["Statement"]]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


# --- the deployment package ------------------------------------------------------------------------------


def test_the_deployment_zip_holds_the_runtime_modules_only_and_is_reproducible(tmp_path: Path) -> None:
    from registry_auth import build

    data = build.deployment_zip()

    assert data == build.deployment_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["registry_auth/__init__.py", "registry_auth/handler.py"]
    assert build.main([str(tmp_path / "out.zip")]) == 0
    assert (tmp_path / "out.zip").read_bytes() == data


def test_the_packaged_handler_needs_nothing_beyond_boto3_and_the_standard_library(tmp_path: Path) -> None:
    from registry_auth import build

    zipfile.ZipFile(io.BytesIO(build.deployment_zip())).extractall(tmp_path)

    def top_level_modules(statement: str) -> set[str]:
        probe = f"import sys; {statement}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
        return set(
            subprocess.run(
                [sys.executable, "-c", probe],
                cwd=tmp_path,
                env={**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        )

    beyond_boto3 = top_level_modules("import registry_auth.handler") - top_level_modules("import boto3")

    assert "registry_auth" in beyond_boto3
    assert beyond_boto3 - {"registry_auth"} <= set(sys.stdlib_module_names), beyond_boto3
