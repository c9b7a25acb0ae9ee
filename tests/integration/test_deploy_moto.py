"""`make deploy` and `make destroy` against the emulator's CloudFormation, with no AWS account.

infra/deploy.py uploads the packaged zips and template and deploys them through a change set into moto;
the SAM transform, which moto lacks, is expanded first (infra/expand.py). The resources moto's
CloudFormation cannot create are taken out (NOT_EMULATED, each with how it is checked instead) and what
refers to them gets the value CloudFormation would give it. Then every function the stack created is read
back from moto's Lambda: its environment validates as the app's settings, and each setting that names a
resource of the stack names one that exists. `destroy` is run for real: versioned buckets are emptied of
every version and the stack deleted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import packaged
import pytest
from moto import mock_aws

from chalicelib.settings import Settings, load_settings
from infra import deploy, package
from infra.expand import expand

REGION = "eu-west-1"
STAGE = "dev"
STACK = deploy.stack_name(STAGE)
# Resource types moto's CloudFormation cannot create (moto 5.2.5), and where else they are checked.
NOT_EMULATED = {
    "AWS::CodeBuild::Project": "test_package (properties), cfn-lint and checkov",
    "AWS::CloudWatch::Alarm": "test_deploy_checks (alarms), cfn-lint",
    "AWS::Lambda::EventInvokeConfig": "test_package (on-failure destinations), cfn-lint",
    "AWS::ApiGateway::Stage": "cfn-lint, checkov",
    # moto does not import a RestApi's Body (the routes), so it refuses to deploy a method-less API
    "AWS::ApiGateway::Deployment": "cfn-lint; the routes: tests/integration/test_api.py",
    "AWS::S3::BucketPolicy": "test_package (TLS-only), checkov",
    "AWS::SQS::QueuePolicy": "test_package, checkov",
}
# Properties moto's CloudFormation accepts but does not apply (moto applies a bucket's encryption and tags
# only); test_package and checkov check them in the template.
NOT_APPLIED = {
    "AWS::S3::Bucket": [
        "VersioningConfiguration",
        "PublicAccessBlockConfiguration",
        "NotificationConfiguration",
        "LifecycleConfiguration",
        "OwnershipControls",
    ],
}
PRIVATE = {
    "PrivateRegistryHost": "registry.example.com",
    # with a customer managed key, so the conditional KMS statements are deployed too (moto does not drop
    # an AWS::NoValue statement from a policy: it calls the policy malformed)
    "RegistrySecretKmsKeyArn": f"arn:aws:kms:{REGION}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "RegistrySecretArn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:sagedock/registry-AbCdEf",
    "PrivateSubnetIds": "subnet-0a1b,subnet-0c2d",
    "PrivateSecurityGroupIds": "sg-0e3f",
}
SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}")


@pytest.fixture
def session(aws_env: None) -> Any:
    """A boto3 session on a fresh moto account."""
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def stand_in(template: dict[str, Any], logical: str, attribute: str | None) -> str:
    """What CloudFormation would answer for Ref/GetAtt of a resource moto cannot create."""
    name = template["Resources"][logical]["Properties"].get("Name")
    if not isinstance(name, dict) or "Fn::Sub" not in name:
        raise AssertionError(f"{logical} is referenced but moto cannot create it: give it a stand-in here")
    resolved = name["Fn::Sub"].replace("${Stage}", STAGE)
    if attribute is None:
        return str(resolved)
    assert attribute == "Arn", f"no stand-in for {logical}.{attribute}"
    service = template["Resources"][logical]["Type"].split("::")[1].lower()
    return f"arn:aws:{service}:{REGION}:123456789012:project/{resolved}"


def replace(value: Any, removed: dict[str, Any], template: dict[str, Any]) -> Any:
    """`value` with every reference to a removed resource replaced by its stand-in."""
    if isinstance(value, list):
        return [replace(item, removed, template) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("Ref") in removed:
        return stand_in(template, value["Ref"], None)
    if "Fn::GetAtt" in value and value["Fn::GetAtt"][0] in removed:
        return stand_in(template, value["Fn::GetAtt"][0], value["Fn::GetAtt"][1])
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):

        def swap(match: re.Match[str]) -> str:
            if match.group(1) not in removed:
                return match.group(0)
            return stand_in(template, match.group(1), match.group(2))

        return {"Fn::Sub": SUB_NAME.sub(swap, value["Fn::Sub"])}
    return {key: replace(item, removed, template) for key, item in value.items()}


def for_the_emulator(uploaded: dict[str, Any]) -> dict[str, Any]:
    """The uploaded template expanded, without what moto cannot create (references given stand-ins)."""
    template = expand(uploaded, region=REGION)
    removed = {
        logical: spec for logical, spec in template["Resources"].items() if spec["Type"] in NOT_EMULATED
    }
    kept = {logical: spec for logical, spec in template["Resources"].items() if logical not in removed}
    for spec in kept.values():
        if spec["Type"] == "AWS::ApiGateway::RestApi" and "Name" not in spec["Properties"]:
            # AWS names an API imported from its Body by the body's info.title; moto wants Name.
            spec["Properties"]["Name"] = spec["Properties"]["Body"]["info"]["title"]
    outputs = replace(template.get("Outputs", {}), removed, template)
    return template | {"Resources": replace(kept, removed, template), "Outputs": outputs}


def deploy_into_moto(session: Any, given: dict[str, str]) -> dict[str, str]:
    """`make deploy` into moto, through infra/deploy.py."""
    return deploy.deploy(
        STAGE,
        packaged.dist(STAGE),
        given,
        session=session,
        code_bucket="code-bucket",
        prepare=for_the_emulator,
    )


def stack_resources(cfn: Any) -> dict[str, dict[str, Any]]:
    """The stack's resources as moto reports them, by logical id."""
    summaries = cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    # moto 5.2.5 also lists one summary with no id, type or physical id: not a resource of the template
    return {summary["LogicalResourceId"]: summary for summary in summaries if summary["LogicalResourceId"]}


def exists(session: Any, kind: str, physical: str) -> bool:
    """Whether the resource a setting names exists in the emulator (by its service's own API)."""
    if kind == "AWS::S3::Bucket":
        session.client("s3").head_bucket(Bucket=physical)
    elif kind == "AWS::DynamoDB::Table":
        session.client("dynamodb").describe_table(TableName=physical)
    elif kind == "AWS::IAM::Role":
        session.client("iam").get_role(RoleName=physical.rsplit("/", 1)[-1])
    elif kind == "AWS::Lambda::Function":
        session.client("lambda").get_function(FunctionName=physical)
    elif kind == "AWS::Events::EventBus":
        session.client("events").describe_event_bus(Name=physical.rsplit("/", 1)[-1])
    elif kind == "AWS::SQS::Queue":
        session.client("sqs").get_queue_url(QueueName=physical.rsplit("/", 1)[-1])
    else:
        raise AssertionError(f"a setting names a {kind}: teach exists() how to find one")
    return True


def aliases() -> set[str]:
    """Every environment variable the settings model reads."""
    return {str(field.validation_alias) for field in Settings.model_fields.values()}


@pytest.mark.slow
@pytest.mark.parametrize("given", [{}, PRIVATE], ids=["ecr", "private-registry"])
def test_the_packaged_stack_deploys_and_its_functions_name_what_it_created(
    session: Any, given: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the packaged dev stage, when `make deploy` runs it into the emulator
    found = deploy_into_moto(session, given)
    cfn = session.client("cloudformation")
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    assert f"{STACK}: deployed" in capsys.readouterr().out
    # Then it reports every resource of the expansion but those moto cannot create, all created
    expected = expand(packaged.template(STAGE), region=REGION)["Resources"]
    conditional = {k for k, v in expected.items() if v.get("Condition") == package.PRIVATE_REGISTRY}
    wanted = {k for k, v in expected.items() if v["Type"] not in NOT_EMULATED}
    if not given:
        wanted -= conditional
    resources = stack_resources(cfn)
    assert set(resources) == wanted
    assert {r["ResourceStatus"] for r in resources.values()} == {"CREATE_COMPLETE"}
    assert found["SourceBucketName"] == resources["SourceBucket"]["PhysicalResourceId"]
    assert found["EndpointURL"].startswith("https://") and "/api/" in found["EndpointURL"]
    steps = "\n".join(deploy.next_steps(found))
    assert f"s3://{found['SourceBucketName']}/bundles/" in steps
    # And every app function starts with valid settings that name resources of this stack that exist
    functions = [r for r in resources.values() if r["ResourceType"] == "AWS::Lambda::Function"]
    app_functions = 0
    for function in functions:
        config = session.client("lambda").get_function_configuration(
            FunctionName=function["PhysicalResourceId"]
        )
        variables: dict[str, str] = config.get("Environment", {}).get("Variables", {})
        if not config["Handler"].startswith("app."):
            continue
        app_functions += 1
        settings = load_settings(variables)
        assert settings.private_mode is bool(given)
        declared = expected[function["LogicalResourceId"]]["Properties"]["Environment"]["Variables"]
        for alias in aliases() & set(variables):
            value = declared[alias]
            value = value["Fn::If"][1] if isinstance(value, dict) and "Fn::If" in value else value
            text = value["Fn::Sub"] if isinstance(value, dict) else value
            for logical, _attribute in SUB_NAME.findall(text):
                if logical in resources:
                    physical = resources[logical]["PhysicalResourceId"]
                    kind = resources[logical]["ResourceType"]
                    assert exists(session, kind, physical)
                    assert physical.rsplit("/", 1)[-1] in variables[alias], (alias, physical)
                elif logical in expected:
                    assert expected[logical]["Type"] in NOT_EMULATED, (alias, logical)
    assert app_functions == len(package.handler_names(json.loads(package.CONFIG.read_text()), STAGE))
    assert ("RegistryAuthFunction" in resources) is bool(given)


def test_a_second_deploy_without_changes_changes_nothing(
    session: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    first = deploy_into_moto(session, {})
    capsys.readouterr()
    assert deploy_into_moto(session, {}) == first
    assert f"{STACK}: no changes" in capsys.readouterr().out


def test_unknown_parameters_are_refused_naming_the_known_ones(session: Any) -> None:
    with pytest.raises(deploy.DeployError, match=r"unknown parameters \['AlarmTopic'\].*AlarmTopicArn"):
        deploy_into_moto(session, {"AlarmTopic": "x"})


def test_a_template_cloudformation_refuses_is_a_clear_error_not_a_traceback(session: Any) -> None:
    def broken(uploaded: dict[str, Any]) -> dict[str, Any]:
        template = for_the_emulator(uploaded)
        del template["Resources"]["RunsTable"]  # the functions' settings and policies still refer to it
        return template

    with pytest.raises(deploy.DeployError, match=r"CloudFormation refused the template: .*RunsTable"):
        deploy.deploy(
            STAGE, packaged.dist(STAGE), {}, session=session, code_bucket="code-bucket", prepare=broken
        )


def test_deploy_before_package_says_to_package(session: Any, tmp_path: Path) -> None:
    with pytest.raises(deploy.DeployError, match="make package STAGE=dev"):
        deploy.deploy(STAGE, tmp_path, {}, session=session, code_bucket="code-bucket")


@pytest.mark.slow
def test_destroy_empties_every_version_and_deletes_the_stack_after_confirmation(session: Any) -> None:
    deploy_into_moto(session, {})
    cfn, s3 = session.client("cloudformation"), session.client("s3")
    resources = stack_resources(cfn)
    buckets = [r["PhysicalResourceId"] for r in resources.values() if r["ResourceType"] == "AWS::S3::Bucket"]
    source = resources["SourceBucket"]["PhysicalResourceId"]
    assert s3.get_bucket_encryption(Bucket=source)["ServerSideEncryptionConfiguration"]["Rules"]
    # the template versions the bucket; moto's CloudFormation does not apply it (NOT_APPLIED)
    s3.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket=source, Key="bundles/iris/a.zip", Body=body)
    s3.delete_object(Bucket=source, Key="bundles/iris/a.zip")  # a delete marker on top of two versions
    assert len(list(deploy.versions(s3, source))) == 3

    # When the user does not type the stack's name, nothing is deleted
    assert deploy.destroy(STAGE, session=session, confirm=lambda prompt: "no") is False
    assert len(list(deploy.versions(s3, source))) == 3

    # When they do, every version goes, then the stack and its buckets
    prompts: list[str] = []
    assert deploy.destroy(STAGE, session=session, confirm=lambda prompt: prompts.append(prompt) or STACK)
    assert source in prompts[0]
    remaining = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    assert not set(buckets) & remaining
    assert deploy.destroy(STAGE, session=session, confirm=None) is False  # no stack any more


def test_empty_deletes_more_versions_than_one_delete_call_takes(session: Any) -> None:
    s3 = session.client("s3")
    s3.create_bucket(Bucket="many", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="many", VersioningConfiguration={"Status": "Enabled"})
    for index in range(deploy.DELETE_BATCH // 2 + 1):
        s3.put_object(Bucket="many", Key=f"k{index % 3}", Body=b"x")
        s3.put_object(Bucket="many", Key=f"j{index}", Body=b"y")
    assert deploy.empty(s3, "many") == deploy.DELETE_BATCH + 2
    assert list(deploy.versions(s3, "many")) == []
