"""Package sagedock for CloudFormation: `chalice package` with infra/ merged in, ready to upload and deploy.

    python infra/package.py STAGE [OUTDIR]       (`make package STAGE=...`; OUTDIR defaults to dist/STAGE)

writes OUTDIR/sam.json, OUTDIR/deployment.zip (the app) and OUTDIR/registry_auth.zip, which
infra/deploy.py (`make deploy`) uploads and deploys (docs/deploy.md), and prints each package's size.
It needs no AWS credentials and makes no AWS call.

The merge template handed to `chalice package --merge-template` is infra/template.json plus what only
packaging time knows or what lives elsewhere as its single source of truth:

- the stage (the `Stage` parameter's only allowed value, part of every resource name);
- the runs and idempotency tables' key schemas, from chalicelib/adapters/run_store.py;
- the build project's inline buildspec, the contents of buildspec.yml;
- per function: its name, its own log group, its environment and its role's policy. Values in
  .chalice/config.json `environment_variables` and in .chalice/policy-*.json are CloudFormation
  `Fn::Sub` strings (`${SourceBucket}`, `${RunsTable.Arn}`, `${AWS::AccountId}`): Chalice copies them
  verbatim, and here every string holding `${` becomes an `Fn::Sub`, so the deployed functions get the
  real names and ARNs of what this stack creates;
- per event function: its rule as an EventBridgeRule with a retry policy and a dead-letter queue, and
  an on-failure destination for its asynchronous invocations, so a failing event is never lost;
- per function: an alarm on its errors; and one alarm on the runs that failed, summed over the
  pipeline stages of chalicelib/domain/models.py (the `RunsFailed` metric of chalicelib/observability.py);
- infra/registry_auth.json, every resource of it under the PrivateRegistry condition.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python infra/package.py` puts infra/, not the project, on the path
    sys.path.insert(0, str(ROOT))

from chalice.utils import to_cfn_resource_name  # noqa: E402

from chalicelib.adapters.run_store import idempotency_table_definition, table_definition  # noqa: E402
from chalicelib.domain.models import Stage as PipelineStage  # noqa: E402
from chalicelib.observability import NAMESPACE  # noqa: E402
from registry_auth.build import deployment_zip  # noqa: E402

CHALICE_DIR = ROOT / ".chalice"
CONFIG = CHALICE_DIR / "config.json"
TEMPLATE = ROOT / "infra" / "template.json"
REGISTRY_AUTH_FRAGMENT = ROOT / "infra" / "registry_auth.json"
BUILDSPEC = ROOT / "buildspec.yml"
REGISTRY_AUTH_ZIP = "registry_auth.zip"
SAM_TEMPLATE = "sam.json"
APP_ZIP = "deployment.zip"
DIST = ROOT / "dist"
# The app's zip must stay small: cold starts and uploads grow with it (issue: at most 5 MiB).
MAX_APP_ZIP_BYTES = 5 * 1024 * 1024

API_HANDLER = "api_handler"
API_FUNCTION = "APIHandler"  # Chalice's logical id of the API handler function
PRIVATE_REGISTRY = "PrivateRegistry"  # the condition of private registry mode
# Set only in private registry mode: an empty SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN would not validate,
# and the function it names exists only in that mode.
PRIVATE_REGISTRY_VARIABLES = frozenset(
    {
        "SAGEDOCK_PRIVATE_REGISTRY",
        "SAGEDOCK_REGISTRY_AUTH_FUNCTION_ARN",
        "SAGEDOCK_SUBNET_IDS",
        "SAGEDOCK_SECURITY_GROUP_IDS",
        "SAGEDOCK_REGISTRY_SECRET_ID",
    }
)
# Stages whose data outlives the stack: buckets and the runs table are kept when it is deleted.
RETAINED_STAGES = frozenset({"prod"})
RETAINED_RESOURCES = ("SourceBucket", "DataBucket", "ArtifactBucket", "RunsTable")
FAILED_EVENTS_QUEUE = "FailedEventsQueue"
# Lambda retries a failed asynchronous invocation twice, then sends the event to the failed-events queue.
ASYNC_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE_SECONDS = 6 * 3600
# EventBridge retries delivering to the function (throttling, a missing permission) for a day.
RULE_RETRY_ATTEMPTS = 185
RULE_MAX_EVENT_AGE_SECONDS = 24 * 3600
RUNS_FAILED_METRIC = "RunsFailed"
ALARM_PERIOD_SECONDS = 300
# Handlers on a schedule (`@app.schedule`): SAM calls their rule's event `Schedule`, not `EventBridgeRule`.
SCHEDULED_HANDLERS = frozenset({"publish_pending", "sweep_scans"})


class PackagingError(Exception):
    """The inputs cannot make a deployable template, or Chalice produced something unexpected."""


# --- names --------------------------------------------------------------------------------------------
def function_id(name: str) -> str:
    """The logical id Chalice gives the function of handler `name`."""
    return API_FUNCTION if name == API_HANDLER else to_cfn_resource_name(name)


def role_id(name: str) -> str:
    """The logical id of the role Chalice creates for a function with its own policy file."""
    return to_cfn_resource_name(f"{name}_role")


def logs_id(name: str) -> str:
    """The logical id of the function's log group (created here, referenced by its policy file)."""
    return f"{function_id(name)}Logs"


def event_id(name: str) -> str:
    """The key of the function's event under Events (Chalice's naming)."""
    return f"{to_cfn_resource_name(name)}Event"


def rule_id(name: str) -> str:
    """The logical id SAM gives the EventBridge rule of the function's event."""
    return function_id(name) + event_id(name)


def errors_alarm_id(name: str) -> str:
    """The logical id of the alarm on the function's errors."""
    return f"{function_id(name)}ErrorsAlarm"


# --- inputs -------------------------------------------------------------------------------------------
def load_json(path: Path) -> Any:
    """A JSON file, or PackagingError naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PackagingError(f"cannot read {path.relative_to(ROOT)}: {exc}") from exc


def stage_config(config: dict[str, Any], stage: str) -> dict[str, Any]:
    """The stage's section of .chalice/config.json, or PackagingError listing the stages there are."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise PackagingError(f"no stage {stage!r} in .chalice/config.json (stages: {', '.join(stages)})")
    section: dict[str, Any] = stages[stage]
    return section


def handler_names(config: dict[str, Any], stage: str) -> list[str]:
    """Every handler configured with its own policy (top-level or stage `lambda_functions`)."""
    names = dict.fromkeys(config.get("lambda_functions", {}))
    names.update(dict.fromkeys(stage_config(config, stage).get("lambda_functions", {})))
    return list(names)


def lookup(config: dict[str, Any], stage: str, name: str, key: str) -> Any:
    """A per-function setting, searched in Chalice's order: stage function, stage, function, top level."""
    section = stage_config(config, stage)
    for scope in (
        section.get("lambda_functions", {}).get(name, {}),
        section,
        config.get("lambda_functions", {}).get(name, {}),
        config,
    ):
        if scope.get(key) is not None:
            return scope[key]
    return None


def environment(config: dict[str, Any], stage: str) -> dict[str, str]:
    """The stage's environment variables as Chalice merges them (top level, then the stage's)."""
    merged = dict(config.get("environment_variables", {}))
    merged.update(stage_config(config, stage).get("environment_variables", {}))
    return merged


def policy_document(config: dict[str, Any], stage: str, name: str) -> dict[str, Any]:
    """The handler's policy file as written (its strings still `Fn::Sub` syntax)."""
    filename = lookup(config, stage, name, "iam_policy_file")
    if not filename:
        raise PackagingError(f"{name} has no iam_policy_file in .chalice/config.json")
    document: dict[str, Any] = load_json(CHALICE_DIR / filename)
    return document


def read_buildspec(path: Path) -> str:
    """buildspec.yml's text, checked to be a buildspec (version and phases) before it is embedded."""
    yaml = importlib.import_module("yaml")  # PyYAML, which chalice depends on
    try:
        text = path.read_text()
    except OSError as exc:
        raise PackagingError(f"cannot read the buildspec {path}: {exc} (the image build runs it)") from exc
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PackagingError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or "version" not in spec or "phases" not in spec:
        raise PackagingError(f"{path} is not a buildspec: it needs `version` and `phases`")
    return text


# --- intrinsic functions ------------------------------------------------------------------------------
def sub(value: Any) -> Any:
    """`value` with every string holding `${` wrapped in Fn::Sub (keys and other strings unchanged)."""
    if isinstance(value, str):
        return {"Fn::Sub": value} if "${" in value else value
    if isinstance(value, list):
        return [sub(item) for item in value]
    if isinstance(value, dict):
        return {key: sub(item) for key, item in value.items()}
    return value


def walk(value: Any) -> Iterator[Any]:
    """Every dict, list and scalar inside `value`, depth first."""
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        yield from walk(child)


def replace_refs(value: Any, old: str, new: str) -> Any:
    """`value` with every {"Ref": old} replaced by {"Ref": new}."""
    if isinstance(value, list):
        return [replace_refs(item, old, new) for item in value]
    if isinstance(value, dict):
        if value == {"Ref": old}:
            return {"Ref": new}
        return {key: replace_refs(item, old, new) for key, item in value.items()}
    return value


def variable_value(name: str, value: str) -> Any:
    """An environment variable's CloudFormation value (private registry ones only in that mode)."""
    resolved = sub(value)
    if name in PRIVATE_REGISTRY_VARIABLES:
        return {"Fn::If": [PRIVATE_REGISTRY, resolved, {"Ref": "AWS::NoValue"}]}
    return resolved


# --- the merge template ------------------------------------------------------------------------------
def _tables(resources: dict[str, Any]) -> None:
    for logical, definition in (
        ("RunsTable", table_definition("placeholder")),
        ("IdempotencyTable", idempotency_table_definition("placeholder")),
    ):
        definition.pop("TableName")
        resources[logical]["Properties"].update(definition)


def _retention(resources: dict[str, Any], stage: str) -> None:
    policy = "Retain" if stage in RETAINED_STAGES else "Delete"
    for logical in RETAINED_RESOURCES:
        resources[logical]["DeletionPolicy"] = policy
        resources[logical]["UpdateReplacePolicy"] = policy
    if stage in RETAINED_STAGES:
        resources["RunsTable"]["Properties"]["DeletionProtectionEnabled"] = True


# registry_auth.json's parameters that this stack fills itself (the role it creates, the zip it packages).
REPLACED_PARAMETERS = ("SageMakerRoleName", "RegistryAuthCodeBucket", "RegistryAuthCodeKey")


def registry_auth_fragment() -> dict[str, Any]:
    """infra/registry_auth.json made a conditional part of this stack.

    Its SageMakerRoleName parameter becomes this stack's SageMaker execution role; its code parameters
    become registry_auth.zip next to the template (uploaded by `aws cloudformation package`); its
    secret parameter may be empty; and each of its resources and outputs exists only in private mode.
    """
    fragment: dict[str, Any] = load_json(REGISTRY_AUTH_FRAGMENT)
    parameters = fragment["Parameters"]
    for name in REPLACED_PARAMETERS:
        parameters.pop(name)
    secret = parameters["RegistrySecretArn"]
    secret["AllowedPattern"] = "^$|" + secret["AllowedPattern"]
    secret["Default"] = ""
    secret["ConstraintDescription"] += ", or empty without PrivateRegistryHost"
    resources = replace_refs(fragment["Resources"], "SageMakerRoleName", "SageMakerExecutionRole")
    resources["RegistryAuthFunction"]["Properties"]["Code"] = f"./{REGISTRY_AUTH_ZIP}"
    for resource in resources.values():
        resource["Condition"] = PRIVATE_REGISTRY
    outputs = fragment.get("Outputs", {})
    for output in outputs.values():
        output["Condition"] = PRIVATE_REGISTRY
    dangling = [
        node for node in walk(resources) if isinstance(node, dict) and node.get("Ref") in REPLACED_PARAMETERS
    ]
    if dangling:
        raise PackagingError(
            f"infra/registry_auth.json still refers to {dangling}: adapt registry_auth_fragment"
        )
    return {
        "Parameters": parameters,
        "Conditions": fragment.get("Conditions", {}),
        "Resources": resources,
        "Outputs": outputs,
    }


def _function(name: str, variables: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": {"Fn::Sub": f"sagedock-${{Stage}}-{name}"},
        "LoggingConfig": {"LogGroup": {"Ref": logs_id(name)}},
        "Environment": {"Variables": variables},
    }
    if name != API_HANDLER:
        queue = {"Fn::GetAtt": [FAILED_EVENTS_QUEUE, "Arn"]}
        properties["EventInvokeConfig"] = {
            "MaximumRetryAttempts": ASYNC_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": ASYNC_MAX_EVENT_AGE_SECONDS,
            "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": queue}},
        }
        properties["Events"] = {
            event_id(name): {
                "Type": "Schedule" if name in SCHEDULED_HANDLERS else "EventBridgeRule",
                "Properties": {
                    "DeadLetterConfig": {"Arn": queue},
                    "RetryPolicy": {
                        "MaximumRetryAttempts": RULE_RETRY_ATTEMPTS,
                        "MaximumEventAgeInSeconds": RULE_MAX_EVENT_AGE_SECONDS,
                    },
                },
            }
        }
    return {"Properties": properties}


def alarm_actions() -> dict[str, Any]:
    """Notify AlarmTopicArn when one is given."""
    return {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def errors_alarm(name: str) -> dict[str, Any]:
    """An alarm on the function's errors (an unhandled exception or a timeout) in any 5 minutes."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": f"sagedock-${{Stage}}-{name}-errors"},
            "AlarmDescription": f"sagedock {name} raised: see its log group; a raised event is retried, "
            "then kept in the failed-events queue.",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function_id(name)}}],
            "Statistic": "Sum",
            "Period": ALARM_PERIOD_SECONDS,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": alarm_actions(),
        },
    }


def runs_failed_alarm() -> dict[str, Any]:
    """An alarm on runs that ended FAILED: the RunsFailed count, summed over every pipeline stage."""
    metrics: list[dict[str, Any]] = [
        {
            "Id": f"failed_{stage.value}",
            "ReturnData": False,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": RUNS_FAILED_METRIC,
                    "Dimensions": [
                        {"Name": "service", "Value": "sagedock"},
                        {"Name": "stage", "Value": stage.value},
                    ],
                },
                "Period": ALARM_PERIOD_SECONDS,
                "Stat": "Sum",
            },
        }
        for stage in PipelineStage
    ]
    ids = ", ".join(metric["Id"] for metric in metrics)
    metrics.append(
        {"Id": "failed", "Label": "runs failed", "Expression": f"SUM([{ids}])", "ReturnData": True}
    )
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": "sagedock-${Stage}-runs-failed"},
            "AlarmDescription": "A sagedock run ended FAILED: `sagedock runs --status FAILED` says why.",
            "Metrics": metrics,
            "EvaluationPeriods": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": alarm_actions(),
        },
    }


def build_merge_template(stage: str, buildspec: str) -> dict[str, Any]:
    """The template `chalice package --merge-template` deep-merges into its own for `stage`."""
    config = load_json(CONFIG)
    names = handler_names(config, stage)
    if API_HANDLER not in names:
        raise PackagingError(f"{API_HANDLER} has no entry under lambda_functions in .chalice/config.json")
    template: dict[str, Any] = load_json(TEMPLATE)
    parameters, resources = template["Parameters"], template["Resources"]
    parameters["Stage"].update(Default=stage, AllowedValues=[stage])
    _tables(resources)
    _retention(resources, stage)
    resources["BuildProject"]["Properties"]["Source"]["BuildSpec"] = buildspec

    fragment = registry_auth_fragment()
    for section in ("Parameters", "Conditions", "Resources", "Outputs"):
        overlap = set(template.get(section, {})) & set(fragment[section])
        if overlap:
            raise PackagingError(f"infra/registry_auth.json redefines {section} {sorted(overlap)}")
        template.setdefault(section, {}).update(fragment[section])

    variables = {key: variable_value(key, value) for key, value in environment(config, stage).items()}
    for name in names:
        resources[logs_id(name)] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": f"/aws/lambda/sagedock-${{Stage}}-{name}"},
                "RetentionInDays": {"Ref": "LogRetentionDays"},
            },
        }
        resources[role_id(name)] = {
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": f"{role_id(name)}Policy",
                        "PolicyDocument": sub(policy_document(config, stage, name)),
                    }
                ]
            }
        }
        resources[function_id(name)] = _function(name, variables)
        resources[errors_alarm_id(name)] = errors_alarm(name)
    resources["RunsFailedAlarm"] = runs_failed_alarm()

    rules = [{"Fn::GetAtt": [rule_id(name), "Arn"]} for name in names if name != API_HANDLER]
    statement = resources["FailedEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Condition"]["ArnEquals"]["aws:SourceArn"] = rules
    return template


# --- packaging ----------------------------------------------------------------------------------------
def chalice_command() -> list[str]:
    """The chalice CLI of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).parent / "chalice"
    found = str(beside) if beside.exists() else shutil.which("chalice")
    if not found:
        raise PackagingError("the chalice CLI is not installed (pip install -r requirements-dev.txt)")
    return [found]


def verify(sam: dict[str, Any], stage: str) -> None:
    """Fail if Chalice named things otherwise than the merge template assumed (the merge would be moot)."""
    config = load_json(CONFIG)
    names = handler_names(config, stage)
    resources = sam["Resources"]
    functions = {k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    expected = {function_id(name) for name in names}
    if functions != expected:
        raise PackagingError(
            f"the packaged functions {sorted(functions)} are not the configured {sorted(expected)}: give "
            "every handler an entry with its iam_policy_file under lambda_functions in .chalice/config.json"
        )
    stubs = sorted(k for k, v in resources.items() if "Type" not in v)
    if stubs:
        raise PackagingError(f"the merge template changes resources Chalice did not create: {stubs}")
    for name in names:
        function = resources[function_id(name)]["Properties"]
        if function.get("Role") != {"Fn::GetAtt": [role_id(name), "Arn"]}:
            raise PackagingError(f"{name} does not use its own role {role_id(name)}: {function.get('Role')}")
        if name != API_HANDLER:
            event = function.get("Events", {}).get(event_id(name), {})
            if not {"Pattern", "Schedule"} & set(event.get("Properties", {})):
                raise PackagingError(
                    f"{name} has no event {event_id(name)} with a pattern: Chalice renamed it"
                )


def package(stage: str, outdir: Path, *, buildspec: Path = BUILDSPEC) -> Path:
    """Run `chalice package` for `stage` with the merge template into `outdir`; the template's path."""
    stage_config(load_json(CONFIG), stage)
    merge = build_merge_template(stage, read_buildspec(buildspec))
    env = dict(os.environ)
    # Chalice wants a region to package; the template itself is region-neutral (pseudo parameters).
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    with tempfile.TemporaryDirectory(prefix="sagedock-package-") as tmp:
        merge_path = Path(tmp) / "merge-template.json"
        merge_path.write_text(json.dumps(merge, indent=2))
        command = [
            *chalice_command(),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(merge_path),
            str(outdir),
        ]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackagingError(f"chalice package failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    (outdir / REGISTRY_AUTH_ZIP).write_bytes(deployment_zip())
    template_path = outdir / SAM_TEMPLATE
    verify(json.loads(template_path.read_text()), stage)
    check_size(outdir / APP_ZIP)
    return template_path


def check_size(app_zip: Path, limit: int = MAX_APP_ZIP_BYTES) -> None:
    """PackagingError naming the largest parts when the app's zip is over the limit."""
    if app_zip.stat().st_size > limit:
        raise PackagingError(
            f"{app_zip.name} is {mebibytes(app_zip.stat().st_size)}, over the {mebibytes(limit)} limit: "
            "a new dependency in requirements.txt? Largest parts:\n" + "\n".join(contents(app_zip)[:5])
        )


# --- what was written ---------------------------------------------------------------------------------
def mebibytes(size: int) -> str:
    """A byte count for people."""
    return f"{size / 1024 / 1024:.2f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.1f} KiB"


def contents(archive: Path) -> list[str]:
    """The zip's top-level entries (packages, modules), largest first, with compressed and full sizes."""
    compressed: dict[str, int] = {}
    uncompressed: dict[str, int] = {}
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            top = info.filename.split("/", 1)[0]
            if top.endswith(".dist-info"):
                top = "*.dist-info"
            compressed[top] = compressed.get(top, 0) + info.compress_size
            uncompressed[top] = uncompressed.get(top, 0) + info.file_size
    return [
        f"{name:<28} {mebibytes(compressed[name]):>10} ({mebibytes(uncompressed[name])} unpacked)"
        for name in sorted(compressed, key=compressed.__getitem__, reverse=True)
    ]


def summary(outdir: Path) -> list[str]:
    """Each file written, with its size; the app zip's contents below it."""
    lines = []
    for path in sorted(outdir.iterdir()):
        if path.is_file():
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            lines.append(f"{shown}  {mebibytes(path.stat().st_size)}")
    lines.append(f"{APP_ZIP} holds:")
    lines.extend(f"  {line}" for line in contents(outdir / APP_ZIP))
    return lines


def main(argv: list[str] | None = None) -> int:
    """CLI: python infra/package.py STAGE [OUTDIR] [--buildspec PATH]."""
    parser = argparse.ArgumentParser(
        prog="python infra/package.py",
        description="Package sagedock (the Chalice app merged with infra/) for `make deploy`, offline.",
    )
    parser.add_argument("stage", help="a stage of .chalice/config.json (dev, prod)")
    parser.add_argument(
        "outdir", type=Path, nargs="?", help="where sam.json and the zips go (default: dist/STAGE)"
    )
    parser.add_argument("--buildspec", type=Path, default=BUILDSPEC, help="the buildspec to embed")
    args = parser.parse_args(argv)
    outdir = (args.outdir or DIST / args.stage).resolve()
    try:
        template = package(args.stage, outdir, buildspec=args.buildspec.resolve())
    except PackagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"packaged stage {args.stage}: {template}")
    print("\n".join(summary(outdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
