"""`python infra/package.py STAGE OUTDIR` produces a template that deploys the app as designed.

One real `chalice package` run (through infra/package.py) is checked for: the five event rules with the
app's own patterns, each function on its own role with its own policy file, the merged infrastructure,
environment variables that name the merged resources (and validate as settings), the embedded buildspec
and a template whose every reference resolves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import packaged
import pytest

from chalicelib.adapters.run_store import idempotency_table_definition, table_definition
from chalicelib.settings import load_settings
from infra import package
from registry_auth.build import deployment_zip

ROOT = Path(__file__).resolve().parents[2]
REPO_BUILDSPEC = ROOT / "buildspec.yml"
STAND_IN_BUILDSPEC = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo stand-in\n"
NO_VALUE = {"Ref": "AWS::NoValue"}
PSEUDO = re.compile(r"AWS::[A-Za-z]+")

# What each setting names, and the resource type that name belongs to.
SETTING_RESOURCES = {
    "SAGEDOCK_SOURCE_BUCKET": ("${SourceBucket}", "AWS::S3::Bucket"),
    "SAGEDOCK_DATA_BUCKET": ("${DataBucket}", "AWS::S3::Bucket"),
    "SAGEDOCK_ARTIFACT_BUCKET": ("${ArtifactBucket}", "AWS::S3::Bucket"),
    "SAGEDOCK_RUNS_TABLE": ("${RunsTable}", "AWS::DynamoDB::Table"),
    "SAGEDOCK_IDEMPOTENCY_TABLE": ("${IdempotencyTable}", "AWS::DynamoDB::Table"),
    "SAGEDOCK_CODEBUILD_PROJECT": ("${BuildProject}", "AWS::CodeBuild::Project"),
    "SAGEDOCK_SAGEMAKER_ROLE_ARN": ("${SageMakerExecutionRole.Arn}", "AWS::IAM::Role"),
    "SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN": ("${RegistryAuthFunction.Arn}", "AWS::Lambda::Function"),
}
# Values CloudFormation would give the references (shaped as in a real account) to validate the settings.
DEPLOYED = {
    "Stage": "dev",
    "SourceBucket": "sagedock-dev-source-123456789012-eu-west-1",
    "DataBucket": "sagedock-dev-data-123456789012-eu-west-1",
    "ArtifactBucket": "sagedock-dev-artifacts-123456789012-eu-west-1",
    "RunsTable": "sagedock-dev-runs",
    "IdempotencyTable": "sagedock-dev-idempotency",
    "BuildProject": "sagedock-dev-build",
    "SageMakerExecutionRole.Arn": "arn:aws:iam::123456789012:role/sagedock-dev-SageMakerExecutionRole-1A2B3C",
    "RegistryAuthFunction.Arn": "arn:aws:lambda:eu-west-1:123456789012:function:sagedock-dev-Registry-4D5E",
    "PrivateRegistryHost": "registry.example.com",
    "PrivateSubnetIds": "subnet-0a1b,subnet-0c2d",
    "PrivateSecurityGroupIds": "sg-0e3f",
    "RegistrySecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sagedock/registry-AbCdEf",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outdir() -> Path:
    """The dev stage, packaged once for the whole test run."""
    return packaged.dist("dev")


@pytest.fixture(scope="module")
def sam(outdir: Path) -> dict[str, Any]:
    """The packaged template."""
    template: dict[str, Any] = json.loads((outdir / "sam.json").read_text())
    return template


@pytest.fixture(scope="module")
def resources(sam: dict[str, Any]) -> dict[str, Any]:
    """The packaged template's resources."""
    found: dict[str, Any] = sam["Resources"]
    return found


def event_patterns() -> dict[str, dict[str, Any]]:
    """The event patterns the app registers, by handler name."""
    from chalice.app import CloudWatchEventConfig

    import app

    sources = [source for source in app.app.event_sources if isinstance(source, CloudWatchEventConfig)]
    others = {source.name for source in app.app.event_sources} - {source.name for source in sources}
    assert others == package.SCHEDULED_HANDLERS, "the app has events of another kind than EventBridge"
    return {source.name: source.event_pattern for source in sources}


def handlers() -> list[str]:
    """Every Lambda of the app."""
    return [*event_patterns(), *sorted(package.SCHEDULED_HANDLERS), package.API_HANDLER]


def properties(resources: dict[str, Any], name: str) -> dict[str, Any]:
    """A handler's function properties."""
    found: dict[str, Any] = resources[package.function_id(name)]["Properties"]
    return found


# --- events -------------------------------------------------------------------------------------------
def test_each_event_handler_has_one_rule_with_the_apps_exact_pattern(resources: dict[str, Any]) -> None:
    patterns = event_patterns()
    assert set(handlers()) == set(package.handler_names(json.loads(package.CONFIG.read_text()), "dev"))
    for name, pattern in patterns.items():
        events = properties(resources, name)["Events"]
        assert list(events) == [package.event_id(name)]
        rule = events[package.event_id(name)]
        assert rule["Type"] == "EventBridgeRule"
        assert rule["Properties"]["Pattern"] == pattern
    assert "Events" not in properties(resources, package.API_HANDLER)


def test_the_sweepers_run_every_five_minutes_and_keep_their_failures(resources: dict[str, Any]) -> None:
    import app

    # the app's @app.schedule handlers, each with a schedule expression
    scheduled = {source.name for source in app.app.event_sources if hasattr(source, "schedule_expression")}
    assert scheduled == package.SCHEDULED_HANDLERS == {"publish_pending", "sweep_scans"}
    for name in package.SCHEDULED_HANDLERS:
        function = properties(resources, name)
        assert list(function["Events"]) == [package.event_id(name)]
        rule = function["Events"][package.event_id(name)]
        assert rule["Type"] == "Schedule"
        assert rule["Properties"]["Schedule"] == "rate(5 minutes)"
        assert rule["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}}


def test_no_event_is_lost_when_a_handler_keeps_failing(resources: dict[str, Any]) -> None:
    queue = {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    for name in event_patterns():
        function = properties(resources, name)
        rule = function["Events"][package.event_id(name)]["Properties"]
        assert rule["DeadLetterConfig"] == {"Arn": queue}
        assert rule["RetryPolicy"]["MaximumRetryAttempts"] > 0
        invoke = function["EventInvokeConfig"]
        assert invoke["MaximumRetryAttempts"] == 2
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == queue
    statement = resources["FailedEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    rules = [*event_patterns(), *package.SCHEDULED_HANDLERS]
    assert sorted(map(json.dumps, statement["Condition"]["ArnEquals"]["aws:SourceArn"])) == sorted(
        json.dumps({"Fn::GetAtt": [package.rule_id(name), "Arn"]}) for name in rules
    )
    assert resources["FailedEventsAlarm"]["Properties"]["Threshold"] == 1


# --- roles --------------------------------------------------------------------------------------------
def test_each_function_has_its_own_role_with_exactly_its_policy_file(resources: dict[str, Any]) -> None:
    roles = []
    for name in handlers():
        role = properties(resources, name)["Role"]["Fn::GetAtt"][0]
        roles.append(role)
        policies = resources[role]["Properties"]["Policies"]
        written = json.loads((ROOT / ".chalice" / f"policy-{name}.json").read_text())
        assert len(policies) == 1
        assert policies[0]["PolicyDocument"] == package.sub(written)
        assert "ManagedPolicyArns" not in resources[role]["Properties"]
    assert len(set(roles)) == len(roles)


def test_each_function_logs_to_its_own_group_that_only_it_may_write(resources: dict[str, Any]) -> None:
    for name in handlers():
        function = properties(resources, name)
        group = package.logs_id(name)
        assert function["LoggingConfig"] == {"LogGroup": {"Ref": group}}
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert function["FunctionName"] == {"Fn::Sub": f"sagedock-${{Stage}}-{name}"}


# --- the merged infrastructure ------------------------------------------------------------------------
def test_the_source_bucket_sends_versioned_uploads_to_eventbridge_over_tls_only(
    resources: dict[str, Any],
) -> None:
    bucket = resources["SourceBucket"]["Properties"]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert any("NoncurrentVersionExpiration" in rule for rule in bucket["LifecycleConfiguration"]["Rules"])
    for name in ("SourceBucket", "DataBucket", "ArtifactBucket"):
        assert resources[name]["Type"] == "AWS::S3::Bucket"
        assert all(resources[name]["Properties"]["PublicAccessBlockConfiguration"].values())
        deny = resources[f"{name}Policy"]["Properties"]["PolicyDocument"]["Statement"][0]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_tables_have_exactly_the_schemas_of_chalicelib_runs(resources: dict[str, Any]) -> None:
    for logical, definition in (
        ("RunsTable", table_definition("x")),
        ("IdempotencyTable", idempotency_table_definition("x")),
    ):
        table = resources[logical]["Properties"]
        definition.pop("TableName")
        assert {key: table[key] for key in definition} == definition
    assert resources["RunsTable"]["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    index_names = {
        index["IndexName"] for index in resources["RunsTable"]["Properties"]["GlobalSecondaryIndexes"]
    }
    assert index_names == {"by_project", "by_created", "by_shard", "by_pending", "by_scan_wait"}
    assert resources["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }


def test_the_build_project_runs_the_repository_buildspec_privileged_on_an_s3_source(
    resources: dict[str, Any],
) -> None:
    project = resources["BuildProject"]["Properties"]
    assert project["Source"]["Type"] == "S3"
    assert project["Source"]["BuildSpec"] == REPO_BUILDSPEC.read_text()
    assert project["Environment"]["Type"] == "LINUX_CONTAINER"
    assert project["Environment"]["PrivilegedMode"] is True
    assert project["ServiceRole"] == {"Fn::GetAtt": ["BuildRole", "Arn"]}


def test_the_registry_credentials_function_exists_only_in_private_mode(
    resources: dict[str, Any], sam: dict[str, Any], outdir: Path
) -> None:
    for logical in (
        "RegistryAuthFunction",
        "RegistryAuthRole",
        "RegistryAuthLogGroup",
        "SageMakerMayInvokeRegistryAuth",
    ):
        assert resources[logical]["Condition"] == "PrivateRegistry"
    assert resources["SageMakerMayInvokeRegistryAuth"]["Properties"]["Roles"] == [
        {"Ref": "SageMakerExecutionRole"}
    ]
    assert resources["RegistryAuthFunction"]["Properties"]["Code"] == "./registry_auth.zip"
    assert (outdir / "registry_auth.zip").read_bytes() == deployment_zip()
    assert sam["Parameters"]["RegistrySecretArn"]["Default"] == ""
    assert sam["Conditions"]["PrivateRegistry"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PrivateRegistryHost"}, ""]}]
    }


def test_the_outputs_give_the_api_url_and_the_source_bucket(sam: dict[str, Any]) -> None:
    assert {"EndpointURL", "SourceBucketName", "FailedEventsQueueUrl", "ApiInvokePolicyArn"} <= set(
        sam["Outputs"]
    )
    assert sam["Parameters"]["Stage"]["AllowedValues"] == ["dev"]


# --- environment --------------------------------------------------------------------------------------
def test_the_settings_name_the_merged_resources(resources: dict[str, Any]) -> None:
    for name in handlers():
        variables = properties(resources, name)["Environment"]["Variables"]
        for setting, (reference, kind) in SETTING_RESOURCES.items():
            value = variables[setting]
            if setting in package.PRIVATE_REGISTRY_VARIABLES:
                assert value == {"Fn::If": ["PrivateRegistry", {"Fn::Sub": reference}, NO_VALUE]}
            else:
                assert value == {"Fn::Sub": reference}
            assert resources[reference.strip("${}").split(".")[0]]["Type"] == kind
        assert variables["SAGEDOCK_ECR_PREFIX"] == {"Fn::Sub": "sagedock/${Stage}"}


def resolve(value: Any, *, private: bool) -> str | None:
    """What CloudFormation would set a variable to (None: not set)."""
    if isinstance(value, str):
        return value
    if "Fn::If" in value:
        condition, yes, no = value["Fn::If"]
        assert condition == "PrivateRegistry"
        chosen = yes if private else no
        return None if chosen == NO_VALUE else resolve(chosen, private=private)
    return re.sub(r"\$\{([^}]+)\}", lambda match: DEPLOYED[match.group(1)], value["Fn::Sub"])


@pytest.mark.parametrize("private", [False, True], ids=["ecr", "private-registry"])
def test_every_function_starts_with_valid_settings(resources: dict[str, Any], private: bool) -> None:
    for name in handlers():
        variables = properties(resources, name)["Environment"]["Variables"]
        environ = {key: resolve(value, private=private) for key, value in variables.items()}
        settings = load_settings({key: value for key, value in environ.items() if value is not None})
        assert settings.private_mode is private
        assert settings.source_bucket == DEPLOYED["SourceBucket"]
        assert settings.ecr_prefix == "sagedock/dev"


def test_function_sizes_follow_their_work(resources: dict[str, Any]) -> None:
    timeouts = {name: properties(resources, name)["Timeout"] for name in handlers()}
    assert timeouts["bundle_uploaded"] == max(timeouts[name] for name in event_patterns())
    assert timeouts[package.API_HANDLER] > 60  # SageMaker InvokeEndpoint may take 60 s
    assert all(properties(resources, name)["MemorySize"] >= 256 for name in handlers())


# --- the template as a whole --------------------------------------------------------------------------
def references(value: Any) -> tuple[set[str], set[str]]:
    """The logical ids and parameters `value` refers to, and the conditions it uses."""
    names: set[str] = set()
    conditions: set[str] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "Ref" in node:
                names.add(node["Ref"])
            if "Fn::GetAtt" in node:
                names.add(node["Fn::GetAtt"][0])
            if "Fn::Sub" in node:
                text, local = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
                found = {m.split(".")[0] for m in re.findall(r"\$\{(?!!)([^}]+)\}", text)}
                names.update(found - set(local))
            if "Fn::If" in node:
                conditions.add(node["Fn::If"][0])
            if isinstance(node.get("Condition"), str):
                conditions.add(node["Condition"])
            stack.extend(value for key, value in node.items() if key != "Condition")
    return names, conditions


def test_every_reference_in_the_template_resolves(sam: dict[str, Any]) -> None:
    # SAM creates each EventBridge rule as <function><event>; the failed-events queue's policy names them.
    generated = {package.rule_id(name) for name in [*event_patterns(), *package.SCHEDULED_HANDLERS]}
    defined = set(sam["Parameters"]) | set(sam["Resources"]) | generated
    names, conditions = references({key: sam[key] for key in ("Resources", "Outputs", "Rules")})
    undefined = {name for name in names if not PSEUDO.fullmatch(name)} - defined
    assert not undefined, f"references to nothing: {sorted(undefined)}"
    assert conditions <= set(sam["Conditions"]), sorted(conditions - set(sam["Conditions"]))
    condition_names, _ = references(sam["Conditions"])
    assert {name for name in condition_names if not PSEUDO.fullmatch(name)} <= set(sam["Parameters"])


def test_every_parameter_has_a_default_so_a_plain_deploy_needs_no_overrides(sam: dict[str, Any]) -> None:
    without_default = {name for name, spec in sam["Parameters"].items() if "Default" not in spec}
    assert without_default == set()


# --- packaging itself (no chalice run) ----------------------------------------------------------------
@pytest.mark.parametrize(("stage", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_prod_keeps_its_buckets_and_runs_when_the_stack_goes(stage: str, policy: str) -> None:
    template = package.build_merge_template(stage, STAND_IN_BUILDSPEC)
    for logical in ("SourceBucket", "DataBucket", "ArtifactBucket", "RunsTable"):
        assert template["Resources"][logical]["DeletionPolicy"] == policy
    assert template["Parameters"]["Stage"]["AllowedValues"] == [stage]


def test_an_unknown_stage_fails_naming_the_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert package.main(["staging", str(tmp_path / "out")]) == 1
    assert "no stage 'staging'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_buildspec_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "buildspec.yml"
    bad.write_text("just: text\n")
    assert package.main(["dev", str(tmp_path / "out"), "--buildspec", str(bad)]) == 1
    assert "needs `version` and `phases`" in capsys.readouterr().err


def test_an_app_zip_over_the_limit_is_refused_naming_its_largest_parts(tmp_path: Path) -> None:
    import zipfile

    app_zip = tmp_path / package.APP_ZIP
    with zipfile.ZipFile(app_zip, "w") as zipped:
        zipped.writestr("heavy/blob.bin", bytes(range(256)) * 64)
        zipped.writestr("app.py", "app = None\n")
    package.check_size(app_zip, limit=app_zip.stat().st_size)  # at the limit: fine
    with pytest.raises(package.PackagingError, match=r"over the .* limit(.|\n)*heavy"):
        package.check_size(app_zip, limit=app_zip.stat().st_size - 1)
