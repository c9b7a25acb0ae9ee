"""Each Lambda's policy file grants exactly what its code calls, on the stage's resources, and nothing more.

The AWS calls each handler makes are read from the code by hand and written down below (CALL_SITES,
HANDLER_CALLS). A scan of chalicelib/ finds every call on a boto3 client, so a new call that is not in
these tables fails here, and a table entry the policy does not grant fails too: a new AWS call cannot ship
without its permission, and a permission cannot outlive the call that needed it.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra import package

ROOT = Path(__file__).resolve().parents[2]
CHALICELIB = ROOT / "chalicelib"
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
STAGES = ("dev", "prod")

SM = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
ECR_PREFIX = "sagedock/${Stage}"
RESOURCES = {
    "runs": "${RunsTable.Arn}",
    "runs indexes": "${RunsTable.Arn}/index/*",
    "idempotency": "${IdempotencyTable.Arn}",
    "bundles": "arn:${AWS::Partition}:s3:::${SourceBucket}/bundles/*",
    "data bucket": "arn:${AWS::Partition}:s3:::${DataBucket}",
    "model archives in the data bucket": "arn:${AWS::Partition}:s3:::${DataBucket}/*.tar.gz",
    "model archives in the artifact bucket": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/*.tar.gz",
    "repositories": "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/"
    + ECR_PREFIX
    + "/*",
    "build project": "${BuildProject.Arn}",
    "training jobs": f"{SM}:training-job/*",
    "models": f"{SM}:model/*",
    "endpoint configs": f"{SM}:endpoint-config/*",
    "endpoints": f"{SM}:endpoint/*",
    "sagemaker role": "${SageMakerExecutionRole.Arn}",
    "failed events": "${FailedEventsQueue.Arn}",
    "scalable targets": "arn:${AWS::Partition}:application-autoscaling:${AWS::Region}:${AWS::AccountId}"
    ":scalable-target/*",
    "autoscaling role": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
    "sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
    "alarms": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*",
    "event bus": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default",
    "any": "*",
    "build logs": "${BuildLogs.Arn}",
    "training logs": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    "/aws/sagemaker/TrainingJobs:*",
    "endpoint logs": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    "/aws/sagemaker/Endpoints/*",
    # [deploy.async] and [deploy.capture] default locations (chalicelib/domain/inference.py)
    "async inputs": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/*/async/input/*",
    "async answers": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/*/async/output/*",
    "async failures": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/*/async/failure/*",
    "captures": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/*/capture/*",
    "artifact bucket": "arn:${AWS::Partition}:s3:::${ArtifactBucket}",
}

# Every place chalicelib calls a boto3 client (`<class or function>.<operation>`), and the IAM actions
# the call needs on which resource. Some calls need more than their own action: a create with Tags
# needs the service's tagging action, passing RoleArn needs iam:PassRole, HeadObject/GetObject of a
# VersionId need s3:GetObjectVersion, and a presigned POST is a PutObject made with our credentials.
CALL_SITES: dict[str, list[tuple[str, str]]] = {
    "RunStore.get_item": [("dynamodb:GetItem", "runs")],
    "RunStore.put_item": [("dynamodb:PutItem", "runs")],
    "RunStore.query": [("dynamodb:Query", "runs indexes")],  # always on by_project or by_created
    "S3RangeReader.head_object": [("s3:GetObject", "bundles"), ("s3:GetObjectVersion", "bundles")],
    "S3RangeReader.get_object": [("s3:GetObject", "bundles"), ("s3:GetObjectVersion", "bundles")],
    "create_upload.generate_presigned_post": [("s3:PutObject", "bundles")],
    "Ecr.create_repository": [("ecr:CreateRepository", "repositories"), ("ecr:TagResource", "repositories")],
    "Ecr.describe_repositories": [("ecr:DescribeRepositories", "repositories")],
    "Ecr.put_lifecycle_policy": [("ecr:PutLifecyclePolicy", "repositories")],
    "CodeBuild.start_build": [("codebuild:StartBuild", "build project")],
    "EventBus.put_events": [("events:PutEvents", "event bus")],
    "SageMaker.create_training_job": [
        ("sagemaker:CreateTrainingJob", "training jobs"),
        ("sagemaker:AddTags", "training jobs"),
        ("iam:PassRole", "sagemaker role"),
    ],
    "SageMaker.describe_training_job": [("sagemaker:DescribeTrainingJob", "training jobs")],
    "SageMaker.create_model": [
        ("sagemaker:CreateModel", "models"),
        ("sagemaker:AddTags", "models"),
        ("iam:PassRole", "sagemaker role"),
    ],
    "SageMaker.describe_model": [("sagemaker:DescribeModel", "models")],
    "SageMaker.create_endpoint_config": [
        ("sagemaker:CreateEndpointConfig", "endpoint configs"),
        ("sagemaker:AddTags", "endpoint configs"),
    ],
    "SageMaker.describe_endpoint_config": [("sagemaker:DescribeEndpointConfig", "endpoint configs")],
    "SageMaker.list_endpoints": [("sagemaker:ListEndpoints", "any")],
    "SageMaker.list_tags": [("sagemaker:ListTags", "endpoints")],
    # ListObjectsV2 is authorised by s3:ListBucket on the bucket; channels in other buckets are not granted.
    "channel_problems.list_objects_v2": [("s3:ListBucket", "data bucket")],
    "discovered_channels.list_objects_v2": [("s3:ListBucket", "data bucket")],
    # A serve-only bundle's deploy.model_data, which must be a .tar.gz in the data or the artifact bucket:
    # HeadObject is s3:GetObject on the object; a missing one is 404 where the bucket may be listed (the
    # data bucket, for the channels), 403 elsewhere, which the check reports the same way.
    "model_data_problems.head_object": [
        ("s3:GetObject", "model archives in the data bucket"),
        ("s3:GetObject", "model archives in the artifact bucket"),
        ("s3:ListBucket", "data bucket"),
    ],
    "SageMaker.describe_endpoint": [("sagemaker:DescribeEndpoint", "endpoints")],
    "SageMaker.create_endpoint": [
        ("sagemaker:CreateEndpoint", "endpoints"),
        ("sagemaker:AddTags", "endpoints"),
    ],
    # Deletion is the only operation SageMaker allows on a Failed endpoint: a retried deploy deletes it.
    "SageMaker.delete_endpoint": [("sagemaker:DeleteEndpoint", "endpoints")],
    # With AutoRollbackConfiguration, SageMaker checks the caller may read the rollback alarms.
    "SageMaker.update_endpoint": [
        ("sagemaker:UpdateEndpoint", "endpoints"),
        ("cloudwatch:DescribeAlarms", "alarms"),
    ],
    "Endpoints.invoke_endpoint": [("sagemaker:InvokeEndpoint", "endpoints")],
    "Endpoints.describe_endpoint": [("sagemaker:DescribeEndpoint", "endpoints")],
    # POST /endpoints/{name}/async-invocations: the body goes under the async input prefix, then is queued.
    "Endpoints.put_object": [("s3:PutObject", "async inputs")],
    "Endpoints.invoke_endpoint_async": [("sagemaker:InvokeEndpointAsync", "endpoints")],
    # GET .../async-invocations/{id} reads the answer or the failure; GET .../captures the capture files
    # (ListObjectsV2 is s3:ListBucket on the bucket). Locations outside these defaults are not granted.
    "Endpoints.get_object": [
        ("s3:GetObject", where) for where in ("async answers", "async failures", "captures")
    ],
    "Endpoints.list_objects_v2": [("s3:ListBucket", "artifact bucket")],
    "Ecr.describe_image_scan_findings": [("ecr:DescribeImageScanFindings", "repositories")],
    # Registering a SageMaker variant: Application Auto Scaling checks the caller may read and resize it,
    # and creates its service-linked role the first time (iam:CreateServiceLinkedRole, conditioned).
    "AutoScaling.register_scalable_target": [
        ("application-autoscaling:RegisterScalableTarget", "scalable targets"),
        ("sagemaker:DescribeEndpoint", "endpoints"),
        ("sagemaker:DescribeEndpointConfig", "endpoint configs"),
        ("sagemaker:UpdateEndpointWeightsAndCapacities", "endpoints"),
        ("iam:CreateServiceLinkedRole", "autoscaling role"),
    ],
    "AutoScaling.put_scaling_policy": [("application-autoscaling:PutScalingPolicy", "scalable targets")],
    "AutoScaling.deregister_scalable_target": [
        ("application-autoscaling:DeregisterScalableTarget", "scalable targets")
    ],
    "AutoScaling.describe_scalable_targets": [("application-autoscaling:DescribeScalableTargets", "any")],
    "Alarms.describe_alarms": [("cloudwatch:DescribeAlarms", "alarms")],
    # GET /runs/{id}/logs reads the stage's stream: the build's, the training job's or the endpoint's.
    "CloudWatchLogs.describe_log_streams": [
        ("logs:DescribeLogStreams", group) for group in ("build logs", "training logs", "endpoint logs")
    ],
    "CloudWatchLogs.get_log_events": [
        ("logs:GetLogEvents", group) for group in ("build logs", "training logs", "endpoint logs")
    ],
}
# Once (chalicelib/adapters/idempotency.py) runs side effects through powertools' DynamoDB idempotency
# layer, which the scan cannot see: it reads, writes, updates and deletes its records in the idempotency
# table.
ONCE = "Once(powertools idempotency)"
CALL_SITES[ONCE] = [
    (f"dynamodb:{op}", "idempotency") for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
]

# Which call sites each handler reaches (chalicelib/flows/ -> adapters; chalicelib/http/ routes).
# find/get/create/save/update, endpoint owners; every write of a transition publishes its event (outbox)
RUNS = {"RunStore.get_item", "RunStore.put_item", "EventBus.put_events"}
BUILD = {  # _start_build
    "Ecr.create_repository",
    "Ecr.describe_repositories",
    "Ecr.put_lifecycle_policy",
    "CodeBuild.start_build",
}
TRAIN = {"SageMaker.create_training_job", "channel_problems.list_objects_v2"}  # _launch_training, preflight
# _validate's pre-flight: the channels, and who owns the endpoint (the runs table, then the endpoint's tag)
PREFLIGHT = {
    "channel_problems.list_objects_v2",
    "discovered_channels.list_objects_v2",  # no [train].channels: the SDK's convention
    "model_data_problems.head_object",  # [train] enabled = false: the model archive exists
    "SageMaker.list_endpoints",
    "SageMaker.list_tags",
}
SCAN = {"Ecr.describe_image_scan_findings"}  # _start_training's scan gate ([build] scan = true)
DEPLOY = {  # _deploy: artifact, model, endpoint config, create or update the endpoint
    "SageMaker.describe_training_job",
    "SageMaker.create_model",
    "SageMaker.describe_model",
    "SageMaker.create_endpoint_config",
    "SageMaker.describe_endpoint_config",
    "SageMaker.list_endpoints",
    "SageMaker.list_tags",  # the endpoint's owner, checked again before it is changed (preflight)
    "SageMaker.describe_endpoint",
    "SageMaker.create_endpoint",
    "SageMaker.update_endpoint",
    "SageMaker.delete_endpoint",  # a Failed endpoint, which SageMaker lets one only delete, made again
    "AutoScaling.describe_scalable_targets",  # _change_endpoint, before an instance type change
    "AutoScaling.deregister_scalable_target",
}
# start_training of a serve-only bundle ([train] enabled = false): the deploy, straight from the image's push
SERVE = DEPLOY - {"SageMaker.describe_training_job"}
SCALE = {  # endpoint_state_changed: the variant's scaling once in service; which rollback alarm fired
    "AutoScaling.register_scalable_target",
    "AutoScaling.put_scaling_policy",
    "AutoScaling.describe_scalable_targets",
    "AutoScaling.deregister_scalable_target",
    "Alarms.describe_alarms",
}
LOG_READS = {"CloudWatchLogs.describe_log_streams", "CloudWatchLogs.get_log_events"}
HANDLER_CALLS: dict[str, set[str]] = {
    "bundle_uploaded": RUNS
    | {ONCE, "S3RangeReader.head_object", "S3RangeReader.get_object"}
    | PREFLIGHT
    | BUILD,
    "build_state_changed": RUNS | {ONCE} | TRAIN | SCAN | SERVE,
    "image_pushed": RUNS | {ONCE} | TRAIN | SCAN | SERVE,
    "image_scanned": RUNS | {ONCE} | TRAIN | SCAN | SERVE,
    "training_state_changed": RUNS | {ONCE} | DEPLOY | LOG_READS,
    "endpoint_state_changed": RUNS
    | {"SageMaker.list_endpoints", "SageMaker.describe_endpoint"}
    | SCALE
    | LOG_READS,
    # the latest successful run of the project (a query), then a training job on its image
    "retrain_requested": RUNS | {"RunStore.query", ONCE} | TRAIN,
    # the sweeper: the runs with unpublished events (a query on the sparse index), claimed and published
    "publish_pending": RUNS | {"RunStore.query"},
    # the scan sweeper: the runs waiting for a scan (a query on the sparse index), then what a scan event does
    "sweep_scans": RUNS | {"RunStore.query", ONCE} | TRAIN | SCAN | SERVE,
    # GET/POST routes, and POST /runs/{id}/retry restarts a build, a training job or a deploy.
    "api_handler": RUNS
    | {"RunStore.query", ONCE, "create_upload.generate_presigned_post", "Endpoints.invoke_endpoint"}
    | {"Endpoints.describe_endpoint"}
    | {"Endpoints.put_object", "Endpoints.invoke_endpoint_async", "Endpoints.get_object"}
    | {"Endpoints.list_objects_v2"}
    | LOG_READS
    | BUILD
    | TRAIN
    | DEPLOY,
}


def infrastructure_grants(handler: str) -> set[tuple[str, str]]:
    """What every function needs beyond its code's calls: its own logs; for event functions the queue
    that Lambda's on-failure destination writes to (EMF metrics go to stdout: no cloudwatch action)."""
    logs = f"${{{package.logs_id(handler)}.Arn}}"
    grants = {("logs:CreateLogStream", logs), ("logs:PutLogEvents", logs)}
    if handler != package.API_HANDLER:
        grants.add(("sqs:SendMessage", RESOURCES["failed events"]))
    return grants


# Actions that may have Resource "*", each because AWS offers no narrower resource for it (checked in).
STAR_RESOURCE_ALLOWED = {
    action: why
    for action, why in json.loads((ROOT / "infra" / "iam_wildcards.json").read_text()).items()
    if not action.startswith("_")
}


def app_handlers() -> list[str]:
    """The Lambdas the app defines: one per event handler, plus the API handler."""
    import app

    return [source.name for source in app.app.event_sources] + [package.API_HANDLER]


def policy(handler: str, stage: str = "dev") -> dict[str, Any]:
    """The handler's policy file, as written."""
    return package.policy_document(CONFIG, stage, handler)


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy's statements, always as a list."""
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    """An IAM scalar-or-list field as a list."""
    return value if isinstance(value, list) else [value]


def grants(document: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource) an Allow statement names (action patterns as written)."""
    return {
        (action, resource)
        for statement in statements(document)
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement covers the action on exactly this resource (patterns in actions)."""
    return any(fnmatch.fnmatchcase(action, granted) and on == resource for granted, on in grants(document))


# A handler that reaches a call site on some of its resources only: (handler, site) -> those resources.
NARROWED: dict[tuple[str, str], set[str]] = {
    **{("training_state_changed", site): {"training logs"} for site in LOG_READS},  # a failed job's log
    **{("endpoint_state_changed", site): {"endpoint logs"} for site in LOG_READS},  # a failed endpoint's
}


def required(handler: str) -> set[tuple[str, str]]:
    """The (action, resource) pairs the handler's calls need."""
    return {
        (action, RESOURCES[resource])
        for site in HANDLER_CALLS[handler]
        for action, resource in CALL_SITES[site]
        if resource in NARROWED.get((handler, site), {resource})
    }


def client_call_sites() -> set[str]:
    """Every `<enclosing class or function>.<attribute>` taken off a boto3 client in chalicelib/.

    Clients live in `self._client` (adapters; `self._control_client` and `self._s3_client` for the runtime
    adapter's control-plane and S3 clients), in a parameter named `client` and in `Services.s3`.
    """
    sites: set[str] = set()

    def holds_client(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "client"
        held = ("_client", "_control_client", "_s3_client", "s3")
        return isinstance(node, ast.Attribute) and node.attr in held

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.ClassDef) or (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and not scope
            ):
                inner = child.name
            # `client` the cached factory has functools' cache_clear/cache_info, which are not AWS calls.
            if (
                isinstance(child, ast.Attribute)
                and holds_client(child.value)
                and child.attr not in ("cache_clear", "cache_info")
            ):
                sites.add(f"{scope or '<module>'}.{child.attr}")
            visit(child, inner)

    for path in sorted(CHALICELIB.rglob("*.py")):
        visit(ast.parse(path.read_text(), filename=str(path)), "")
    return sites


# --- configuration ------------------------------------------------------------------------------------
def test_every_lambda_of_the_app_has_its_own_policy_file_in_every_stage() -> None:
    assert CONFIG["autogen_policy"] is False
    assert set(CONFIG["stages"]) >= set(STAGES)
    handlers = app_handlers()
    assert set(handlers) == set(HANDLER_CALLS), (
        "a handler was added or renamed: give it a row in HANDLER_CALLS"
    )
    for stage in STAGES:
        assert set(package.handler_names(CONFIG, stage)) == set(handlers)
        files = [package.lookup(CONFIG, stage, name, "iam_policy_file") for name in handlers]
        assert len(set(files)) == len(files), "two Lambdas share a policy file"
        for filename in files:
            assert (ROOT / ".chalice" / filename).is_file(), filename


def test_no_stage_turns_policy_generation_back_on() -> None:
    for stage in STAGES:
        assert package.lookup(CONFIG, stage, "api_handler", "autogen_policy") is False
        assert package.lookup(CONFIG, stage, "api_handler", "api_gateway_endpoint_type") == "REGIONAL"


@pytest.mark.parametrize("handler", sorted(HANDLER_CALLS))
def test_the_policy_file_is_a_well_formed_allow_only_policy(handler: str) -> None:
    document = policy(handler)
    assert document["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in statements(document)]
    assert len(set(sids)) == len(sids)
    for statement in statements(document):
        assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"]), statement["Sid"]
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource", "Principal"} & set(statement), statement["Sid"]


# --- least privilege ----------------------------------------------------------------------------------
def _check_actions_and_resources(document: dict[str, Any], where: str) -> None:
    for action, resource in grants(document):
        assert "*" not in action, f"{where}: wildcard action {action}"
        if resource == "*":
            assert action in STAR_RESOURCE_ALLOWED, f"{where}: {action} on Resource '*'"


@pytest.mark.parametrize("handler", sorted(HANDLER_CALLS))
def test_no_wildcard_actions_and_resource_star_only_where_aws_requires_it(handler: str) -> None:
    _check_actions_and_resources(policy(handler), handler)


def _check_pass_role(document: dict[str, Any], where: str) -> None:
    for statement in statements(document):
        if any(fnmatch.fnmatchcase("iam:PassRole", action) for action in as_list(statement["Action"])):
            assert as_list(statement["Action"]) == ["iam:PassRole"], f"{where}: PassRole shares a statement"
            assert as_list(statement["Resource"]) == [RESOURCES["sagemaker role"]], where
            assert statement.get("Condition") == {
                "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
            }, f"{where}: iam:PassRole must be conditioned on iam:PassedToService"


@pytest.mark.parametrize("handler", sorted(HANDLER_CALLS))
def test_pass_role_is_only_the_execution_role_and_only_to_sagemaker(handler: str) -> None:
    _check_pass_role(policy(handler), handler)


def test_the_scan_finds_exactly_the_call_sites_the_tables_know() -> None:
    found = client_call_sites()
    known = set(CALL_SITES) - {ONCE}
    assert not found - known, (
        f"new AWS calls {sorted(found - known)}: add them to CALL_SITES and HANDLER_CALLS, and the "
        "permission they need to the policy files of the Lambdas that reach them"
    )
    assert not known - found, f"calls no longer in the code: {sorted(known - found)}; drop them here"
    assert "DynamoDBPersistenceLayer" in (CHALICELIB / "adapters" / "idempotency.py").read_text()
    assert set().union(*HANDLER_CALLS.values()) == set(CALL_SITES), "a call site no handler reaches"


@pytest.mark.parametrize("handler", sorted(HANDLER_CALLS))
def test_every_call_the_handler_makes_is_allowed(handler: str) -> None:
    document = policy(handler)
    missing = sorted(pair for pair in required(handler) if not allows(document, *pair))
    assert not missing, f"{handler} calls AWS without permission for {missing}"


@pytest.mark.parametrize("handler", sorted(HANDLER_CALLS))
def test_the_policy_grants_nothing_the_handler_does_not_use(handler: str) -> None:
    extra = grants(policy(handler)) - required(handler) - infrastructure_grants(handler)
    assert not extra, f"{handler} is granted what it never uses: {sorted(extra)}"


@pytest.mark.parametrize("stage", STAGES)
def test_the_policies_are_the_same_in_every_stage(stage: str) -> None:
    for handler in HANDLER_CALLS:
        assert policy(handler, stage) == policy(handler)


def test_functions_write_metrics_as_emf_to_stdout_so_none_may_put_metric_data() -> None:
    for handler in HANDLER_CALLS:
        actions = {action for action, _ in grants(policy(handler)) if action.startswith("cloudwatch:")}
        assert actions <= {"cloudwatch:DescribeAlarms"}, f"{handler}: {sorted(actions)}"


def test_the_service_linked_role_may_be_created_only_for_sagemaker_autoscaling() -> None:
    for handler in HANDLER_CALLS:
        for statement in statements(policy(handler)):
            if "iam:CreateServiceLinkedRole" in as_list(statement["Action"]):
                assert as_list(statement["Action"]) == ["iam:CreateServiceLinkedRole"], handler
                assert statement.get("Condition") == {
                    "StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
                }, handler


def test_event_permissions_match_the_configured_bus() -> None:
    for stage in STAGES:
        bus = package.environment(CONFIG, stage)["SAGEDOCK_EVENT_BUS"]
        assert RESOURCES["event bus"].endswith(f":event-bus/{bus}")


def test_repository_permissions_match_the_configured_ecr_prefix() -> None:
    assert CONFIG["environment_variables"]["SAGEDOCK_ECR_PREFIX"] == ECR_PREFIX
    for stage in STAGES:
        assert package.environment(CONFIG, stage)["SAGEDOCK_ECR_PREFIX"] == ECR_PREFIX


# --- the roles infra/ creates (CodeBuild, SageMaker, registry_auth) -----------------------------------
def infra_policies() -> dict[str, dict[str, Any]]:
    """Every identity policy document infra/ defines (inline role policies and AWS::IAM::Policy)."""
    template = package.build_merge_template("dev", "version: 0.2\nphases: {}\n")
    found: dict[str, dict[str, Any]] = {}
    for logical, resource in template["Resources"].items():
        kind = resource.get("Type")
        if kind == "AWS::IAM::Role":
            for inline in resource["Properties"].get("Policies", []):
                found[f"{logical}/{inline['PolicyName']}"] = inline["PolicyDocument"]
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found[logical] = resource["Properties"]["PolicyDocument"]
    return found


def plain(value: Any) -> Any:
    """A policy with Fn::Sub unwrapped, Fn::If taken both ways and other intrinsics as their JSON."""
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, dict) and "Fn::If" in item:
                out.extend(
                    plain(branch) for branch in item["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}
                )
            else:
                out.append(plain(item))
        return out
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            return value["Fn::Sub"]
        if set(value) & {"Ref", "Fn::GetAtt"}:
            return json.dumps(value, sort_keys=True)
        return {key: plain(item) for key, item in value.items()}
    return value


def test_infra_roles_grant_no_wildcard_actions_and_star_only_where_required() -> None:
    documents = infra_policies()
    assert {"BuildRole/image-build", "SageMakerExecutionRole/train-and-host", "SageMakerVpcAccess"} <= set(
        documents
    )
    for where, document in documents.items():
        flat = plain(document)
        _check_actions_and_resources(flat, where)
        assert not any(action == "iam:PassRole" for action, _ in grants(flat)), where


def test_the_build_reads_the_registry_secret_only_in_private_mode() -> None:
    template = package.build_merge_template("dev", "version: 0.2\nphases: {}\n")
    build_role = plain(template["Resources"]["BuildRole"]["Properties"]["Policies"][0]["PolicyDocument"])
    assert not any(action.startswith("secretsmanager:") for action, _ in grants(build_role))
    secret = template["Resources"]["BuildMayReadRegistrySecret"]
    assert secret["Condition"] == package.PRIVATE_REGISTRY
    assert ("secretsmanager:GetSecretValue", '{"Ref": "RegistrySecretArn"}') in grants(
        plain(secret["Properties"]["PolicyDocument"])
    )


def test_sagemaker_may_invoke_only_the_registry_function_and_only_in_private_mode() -> None:
    template = package.build_merge_template("dev", "version: 0.2\nphases: {}\n")
    resources = template["Resources"]
    invoke = resources["SageMakerMayInvokeRegistryAuth"]
    assert invoke["Condition"] == package.PRIVATE_REGISTRY
    assert invoke["Properties"]["Roles"] == [{"Ref": "SageMakerExecutionRole"}]
    assert grants(plain(invoke["Properties"]["PolicyDocument"])) == {
        ("lambda:InvokeFunction", '{"Fn::GetAtt": ["RegistryAuthFunction", "Arn"]}')
    }
    assert resources["SageMakerVpcAccess"]["Condition"] == package.PRIVATE_REGISTRY
    execution = plain(resources["SageMakerExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"])
    assert not any(action.startswith(("lambda:", "ec2:")) for action, _ in grants(execution))


# --- references ---------------------------------------------------------------------------------------
SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}")


def test_every_name_the_policies_and_settings_use_is_defined_by_the_merged_template() -> None:
    template = package.build_merge_template("dev", "version: 0.2\nphases: {}\n")
    # Resources Chalice itself creates (functions, their roles, the API) are defined in its own template.
    defined = set(template["Parameters"]) | set(template["Resources"]) | {"RestAPI"}
    texts = [json.dumps(policy(handler)) for handler in HANDLER_CALLS]
    texts.append(json.dumps(package.environment(CONFIG, "dev")))
    for text in texts:
        for name in SUB_REFERENCE.findall(text):
            assert name.startswith("AWS::") or name in defined, f"${{{name}}} is not defined by infra/"
