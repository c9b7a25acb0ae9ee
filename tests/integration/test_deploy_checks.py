"""The packaged template passes the deployment checks: cfn-lint, checkov, the IAM walk, settings, alarms.

Everything is derived from what is packaged (functions from the template, settings from the Settings
model, justifications from checked-in files), so a new function, setting or statement is checked as it
lands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import packaged
import pytest

from chalicelib.domain.models import Stage
from chalicelib.observability import NAMESPACE
from chalicelib.settings import Settings
from infra import package

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
JUSTIFIED_CHECKS = {
    key: why
    for key, why in json.loads((ROOT / "infra" / "checkov.json").read_text()).items()
    if key[0] != "_"
}
STAR_RESOURCE = {
    key: why
    for key, why in json.loads((ROOT / "infra" / "iam_wildcards.json").read_text()).items()
    if key[0] != "_"
}
PASSED_TO = {"SageMakerExecutionRole": "sagemaker.amazonaws.com"}
IDENTITY_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
RESOURCE_POLICIES = ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy")
PRIVATE_FIELDS = ("private_registry", "registry_auth_function_arn", "subnet_ids", "security_group_ids")

pytestmark = pytest.mark.slow


def lint_problems(template: dict[str, Any]) -> list[str]:
    """cfn-lint's findings on a template, but the one known warning (an optional secret left empty)."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [
        f"{match.rule.id} {'/'.join(map(str, match.path))}: {match.message}"
        for match in matches
        if not (match.rule.id == "W1030" and match.path[:2] == ["Parameters", "RegistrySecretArn"])
    ]


@pytest.mark.parametrize("form", ["packaged", "expanded"])
def test_cfn_lint_finds_nothing_in_the_template_nor_in_its_sam_expansion(form: str) -> None:
    template = packaged.template() if form == "packaged" else packaged.expanded()
    problems = lint_problems(template)
    assert not problems, "\n".join(problems)


# --- checkov ------------------------------------------------------------------------------------------
def failed_checks(path: Path) -> dict[str, set[str]]:
    """checkov's failed checks of a CloudFormation template: check id -> resources."""
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV} is missing: `make test` installs it (make .venv/checkov/.installed)")
        pytest.skip("checkov is not installed: make .venv/checkov/.installed")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    command = [str(CHECKOV), "-f", str(path), "--framework", "cloudformation", "-o", "json", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)
    assert result.returncode in (0, 1), (
        f"checkov failed to run ({result.returncode}): {result.stderr[-2000:]}"
    )
    report = json.loads(result.stdout)
    found: dict[str, set[str]] = {}
    for check in report["results"]["failed_checks"]:
        found.setdefault(check["check_id"], set()).add(check["resource"])
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0, "checkov checked nothing"
    return found


def test_checkov_fails_no_check_that_is_not_justified_in_infra_checkov_json(tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(packaged.expanded()))
    failed = failed_checks(path)
    unjustified = {check: sorted(on) for check, on in failed.items() if check not in JUSTIFIED_CHECKS}
    assert not unjustified, f"fix these, or justify each in infra/checkov.json: {unjustified}"
    stale = set(JUSTIFIED_CHECKS) - set(failed)
    assert not stale, f"these checks pass now: drop their justification from infra/checkov.json: {stale}"


# --- IAM ----------------------------------------------------------------------------------------------
def as_list(value: Any) -> list[Any]:
    """An IAM scalar-or-list field as a list."""
    return value if isinstance(value, list) else [value]


def documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy document of the template: role inline policies, policies, managed policies, and the
    buckets' and the queue's resource policies."""
    for logical, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for inline in properties.get("Policies", []):
                yield f"{logical}/{inline['PolicyName']}", inline["PolicyDocument"]
            assert not properties.get("ManagedPolicyArns"), (
                f"{logical} has AWS managed policies: spell them out"
            )
        elif resource["Type"] in IDENTITY_POLICIES + RESOURCE_POLICIES:
            yield logical, properties["PolicyDocument"]


def statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A policy's statements, with Fn::If taken both ways (AWS::NoValue dropped)."""
    for statement in as_list(document["Statement"]):
        if "Fn::If" in statement:
            for branch in statement["Fn::If"][1:]:
                if branch != {"Ref": "AWS::NoValue"}:
                    yield branch
        else:
            yield statement


def chalice_policies() -> Iterator[tuple[str, dict[str, Any]]]:
    """The functions' policy files as written."""
    for path in sorted((ROOT / ".chalice").glob("policy-*.json")):
        yield path.name, json.loads(path.read_text())


def walk_problems(where: str, statement: dict[str, Any]) -> list[str]:
    """What is wrong with one policy statement (a Deny grants nothing: `Deny s3:*` without TLS is right)."""
    problems = []
    if statement.get("Effect") == "Deny":
        return []
    if {"NotAction", "NotResource"} & set(statement):
        return [f"{where}: NotAction/NotResource grant more than they name"]
    if "Action" not in statement or "Resource" not in statement:
        return [f"{where}: a statement must name its actions and resources"]
    actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
    for action in actions:
        if not isinstance(action, str) or "*" in action or "?" in action:
            problems.append(f"{where}: wildcard action {action}")
    if "*" in resources:
        problems.extend(
            f"{where}: {action} on Resource '*' without a justification in infra/iam_wildcards.json"
            for action in actions
            if action not in STAR_RESOURCE
        )
    if "iam:PassRole" in actions:
        condition = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
        roles = {json.dumps(resource) for resource in resources}
        allowed = {json.dumps(f"${{{role}.Arn}}") for role in PASSED_TO} | {
            json.dumps({"Fn::Sub": f"${{{role}.Arn}}"}) for role in PASSED_TO
        }
        if actions != ["iam:PassRole"] or not roles <= allowed or condition not in PASSED_TO.values():
            problems.append(
                f"{where}: iam:PassRole only alone, on {sorted(PASSED_TO)}, with iam:PassedToService"
            )
    return problems


def test_every_iam_statement_names_its_actions_and_justifies_each_star_resource() -> None:
    walked = 0
    problems: list[str] = []
    sources = [("template " + name, doc) for name, doc in documents(packaged.expanded())]
    sources += [(".chalice/" + name, doc) for name, doc in chalice_policies()]
    for where, document in sources:
        for index, statement in enumerate(statements(document)):
            walked += 1
            problems.extend(walk_problems(f"{where}#{statement.get('Sid', index)}", statement))
    assert not problems, "\n".join(problems)
    functions = [r for r in packaged.expanded()["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert walked > 4 * len(functions)  # the walk reached every role, not an empty list


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, "wildcard action s3:*"),
        ({"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"}, "wildcard action"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, "without a justification"),
        ({"Effect": "Allow", "NotAction": "s3:GetObject", "Resource": "*"}, "NotAction"),
        ({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}, "iam:PassRole only"),
        (
            {"Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": "arn:aws:sqs:r:1:q"},
            "wildcard",
        ),
        (
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "${SageMakerExecutionRole.Arn}"},
            "iam:PassRole only",
        ),
    ],
)
def test_the_walk_catches_what_it_is_for(statement: dict[str, Any], problem: str) -> None:
    assert any(problem in found for found in walk_problems("x", statement))


def test_a_justified_star_resource_and_a_conditioned_pass_role_pass_the_walk() -> None:
    pass_role = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": "${SageMakerExecutionRole.Arn}",
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    }
    assert walk_problems("x", pass_role) == []
    assert (
        walk_problems("x", {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}) == []
    )


# --- settings -----------------------------------------------------------------------------------------
def app_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The app's functions in the packaged template (every Chalice handler), by logical id."""
    found = {
        logical: resource["Properties"]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        and resource["Properties"]["Handler"].startswith("app.")
    }
    assert found
    return found


def test_every_setting_the_model_requires_is_set_for_every_function() -> None:
    required = {str(f.validation_alias) for f in Settings.model_fields.values() if f.is_required()}
    known = {str(f.validation_alias) for f in Settings.model_fields.values()}
    assert required, "the settings model requires nothing: this test would check nothing"
    for logical, properties in app_functions(packaged.template()).items():
        variables = properties["Environment"]["Variables"]
        missing = required - set(variables)
        assert not missing, f"{logical} does not set {sorted(missing)}: add them to .chalice/config.json"
        unconditional = {k for k, v in variables.items() if not (isinstance(v, dict) and "Fn::If" in v)}
        assert required <= unconditional, f"{logical}: a required setting is set only in one mode"
        # the private-registry ones are all set in private mode (the model requires them together)
        private = {str(Settings.model_fields[name].validation_alias) for name in PRIVATE_FIELDS}
        assert private <= set(variables), (
            f"{logical} lacks private-registry settings {private - set(variables)}"
        )
        unknown = {k for k in variables if k.startswith("SAGEDOCK_")} - known
        assert not unknown, f"{logical} sets variables no setting reads: {sorted(unknown)}"


def test_the_functions_are_exactly_the_handlers_of_chalice_config() -> None:
    config = json.loads(package.CONFIG.read_text())
    names = package.handler_names(config, "dev")
    assert set(app_functions(packaged.template())) == {package.function_id(name) for name in names}


# --- alarms and failure destinations ------------------------------------------------------------------
def test_alarms_watch_failed_runs_every_handlers_errors_and_the_failed_events_queue() -> None:
    template = packaged.expanded()
    resources = template["Resources"]
    alarms = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    runs = alarms["RunsFailedAlarm"]
    watched = [m["MetricStat"]["Metric"] for m in runs["Metrics"] if "MetricStat" in m]
    assert {m["Namespace"] for m in watched} == {NAMESPACE}
    assert {m["MetricName"] for m in watched} == {"RunsFailed"}
    assert {d["Value"] for m in watched for d in m["Dimensions"] if d["Name"] == "stage"} == {
        s.value for s in Stage
    }
    assert next(m for m in runs["Metrics"] if m.get("ReturnData"))["Expression"].startswith("SUM(")
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    errors = {
        alarm["Dimensions"][0]["Value"]["Ref"]
        for alarm in alarms.values()
        if alarm.get("MetricName") == "Errors" and alarm.get("Namespace") == "AWS/Lambda"
    }
    assert functions - errors <= {"RegistryAuthFunction"}  # SageMaker calls it; its errors fail the job
    queue = alarms["FailedEventsAlarm"]
    assert queue["Namespace"] == "AWS/SQS"
    assert queue["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["FailedEventsQueue", "QueueName"]}


def test_every_asynchronously_invoked_function_has_an_on_failure_destination() -> None:
    resources = packaged.expanded()["Resources"]
    invoked_by_events = {
        target["Arn"]["Fn::GetAtt"][0]
        for resource in resources.values()
        if resource["Type"] == "AWS::Events::Rule"
        for target in resource["Properties"]["Targets"]
    }
    assert invoked_by_events
    configured = {
        resource["Properties"]["FunctionName"]["Ref"]: resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    for function in invoked_by_events:
        destination = configured[function]["DestinationConfig"]["OnFailure"]["Destination"]
        assert destination == {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}, function


def test_packaging_makes_no_aws_call(tmp_path: Path) -> None:
    # No credentials, and every AWS endpoint on a closed port: a call would fail the packaging.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_CONFIG_FILE": "/dev/null"}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "infra/package.py", "dev", str(tmp_path / "dev")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dev" / "sam.json").is_file()
    size = (tmp_path / "dev" / package.APP_ZIP).stat().st_size
    assert size <= package.MAX_APP_ZIP_BYTES
    assert f"{package.APP_ZIP}  {package.mebibytes(size)}" in result.stdout


def test_docs_deploy_md_names_every_parameter_and_the_make_targets_it_walks_through() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    undocumented = sorted(name for name in packaged.template()["Parameters"] if f"`{name}`" not in text)
    assert not undocumented, f"docs/deploy.md does not explain the parameters {undocumented}"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("package", "deploy", "destroy"):
        assert f"make {target} STAGE=" in text
        assert f"\n{target}:" in makefile
