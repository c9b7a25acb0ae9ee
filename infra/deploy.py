"""Deploy a packaged stage to AWS, and tear it down: `make deploy` / `make destroy` (docs/deploy.md).

    python -m infra.deploy deploy STAGE [--dist DIR] [--code-bucket B] [Key=Value ...]
    python -m infra.deploy destroy STAGE [--yes]

`deploy` does what `aws cloudformation package` + `deploy` do, with boto3: upload the code zips that
infra/package.py wrote (named by their sha256, so an unchanged zip is not uploaded again) and the template,
create or update the stack (parameters not given keep their deployed values on an update), wait, and
print the API URL, the source bucket and the command that starts a run. `destroy` empties the stack's
buckets (every version and delete marker) and deletes the stack, after a confirmation; buckets the stack
retains (prod) are left as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, WaiterError

ROOT = Path(__file__).resolve().parents[1]
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
BUCKET = "AWS::S3::Bucket"
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
NO_CHANGES = "No updates are to be performed"  # UpdateStack's refusal when nothing changed
WAIT = {"Delay": 5, "MaxAttempts": 720}  # up to an hour: an API, tables and roles take minutes


class DeployError(Exception):
    """The stack could not be deployed or destroyed; the message says why and what to do."""


def stack_name(stage: str) -> str:
    """One stack per stage."""
    return f"sagedock-{stage}"


def default_code_bucket(account: str, region: str) -> str:
    """The bucket the code zips and templates go to when none is given (created on first deploy)."""
    return f"sagedock-code-{account}-{region}"


# --- upload ------------------------------------------------------------------------------------------
def ensure_code_bucket(s3: Any, bucket: str, region: str) -> None:
    """Create the private, encrypted code bucket if it does not exist yet."""
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"cannot use the code bucket {bucket}: {exc}") from exc
    extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **extra)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def upload(s3: Any, bucket: str, prefix: str, body: bytes, suffix: str) -> str:
    """Put `body` under its sha256 (once) and return its key."""
    key = f"{prefix}/{hashlib.sha256(body).hexdigest()}{suffix}"
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def upload_code(template: dict[str, Any], dist: Path, s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    """The template with each function's local zip (`./deployment.zip`) uploaded and named by S3 location."""
    out = json.loads(json.dumps(template))
    for logical, resource in out["Resources"].items():
        kind, properties = resource.get("Type"), resource.get("Properties", {})
        field = {SERVERLESS_FUNCTION: "CodeUri", LAMBDA_FUNCTION: "Code"}.get(kind)
        local = properties.get(field) if field else None
        if not isinstance(local, str):
            continue
        path = (dist / local).resolve()
        if not path.is_file():
            raise DeployError(f"{logical}'s code {path} is missing: run `make package` first")
        key = upload(s3, bucket, prefix, path.read_bytes(), ".zip")
        properties[field] = (
            {"Bucket": bucket, "Key": key}
            if kind == SERVERLESS_FUNCTION
            else {"S3Bucket": bucket, "S3Key": key}
        )
    return out


def template_url(s3: Any, bucket: str, prefix: str, template: dict[str, Any]) -> str:
    """Upload the template (too large for TemplateBody) and return its URL."""
    key = upload(s3, bucket, prefix, json.dumps(template, indent=1).encode(), ".template.json")
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600)


# --- the stack ----------------------------------------------------------------------------------------
def existing_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack, or None when there is none."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            return None
        raise DeployError(f"cannot describe the stack {name}: {exc}") from exc
    stack: dict[str, Any] = stacks[0]
    if stack["StackStatus"] == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"{name} failed to create and was rolled back: `make destroy STAGE=...` it, then deploy again"
        )
    return stack


def parameters(
    template: dict[str, Any], given: dict[str, str], stack: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The change set's parameters: those given; on an update, every other one keeps its deployed value."""
    unknown = set(given) - set(template.get("Parameters", {}))
    if unknown:
        known = ", ".join(sorted(template.get("Parameters", {})))
        raise DeployError(f"unknown parameters {sorted(unknown)}; the template's are: {known}")
    deployed = {p["ParameterKey"] for p in (stack or {}).get("Parameters", [])}
    found = [{"ParameterKey": key, "ParameterValue": value} for key, value in sorted(given.items())]
    found += [
        {"ParameterKey": key, "UsePreviousValue": True}
        for key in sorted(template.get("Parameters", {}))
        if key not in given and key in deployed
    ]
    return found


def failure_reasons(cfn: Any, name: str, limit: int = 5) -> list[str]:
    """The first resource failures of the stack's latest operation, oldest first."""
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return []
    failed = [
        f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', event['ResourceStatus'])}"
        for event in events
        if event["ResourceStatus"].endswith("_FAILED")
    ]
    return list(reversed(failed))[:limit]


def apply(cfn: Any, name: str, url: str, given: dict[str, str], template: dict[str, Any]) -> bool:
    """Create or update the stack and wait for it; False when there was nothing to change."""
    stack = existing_stack(cfn, name)
    request = {
        "StackName": name,
        "TemplateURL": url,
        "Parameters": parameters(template, given, stack),
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": "sagedock:stack", "Value": name}],
    }
    try:
        if stack is None:
            cfn.create_stack(**request, OnFailure="ROLLBACK")
        else:
            cfn.update_stack(**request)
    except ClientError as exc:
        if stack is not None and NO_CHANGES in str(exc):
            return False
        raise DeployError(f"CloudFormation refused the template: {exc}") from exc
    waiter = "stack_update_complete" if stack else "stack_create_complete"
    try:
        cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig=WAIT)
    except WaiterError as exc:
        reasons = "\n  ".join(failure_reasons(cfn, name)) or str(exc)
        raise DeployError(f"{name} did not {'update' if stack else 'create'}:\n  {reasons}") from exc
    return True


def outputs(cfn: Any, name: str) -> dict[str, str]:
    """The stack's outputs by key."""
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def next_steps(found: dict[str, str]) -> list[str]:
    """What a user needs after a deploy: the API URL, the source bucket and how to start a run."""
    api, bucket = found.get("EndpointURL", "?"), found.get("SourceBucketName", "?")
    return [
        f"API URL:        {api}",
        f"source bucket:  {bucket}",
        f"invoke policy:  {found.get('ApiInvokePolicyArn', '?')} (attach it to who calls the API)",
        "start a run (a zip with a Dockerfile at its root):",
        f"  export SAGEDOCK_API_URL={api} SAGEDOCK_SOURCE_BUCKET={bucket}",
        "  .venv/bin/sagedock submit container/ --project iris --follow",
        f"  or: aws s3 cp bundle.zip s3://{bucket}/bundles/<project>/<name>.zip",
    ]


def deploy(
    stage: str,
    dist: Path,
    given: dict[str, str],
    *,
    session: Any,
    code_bucket: str | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, str]:
    """Upload, create or update the stack of `stage`, and return its outputs.

    `prepare` may rewrite the uploaded template before it is deployed (the emulator test expands it).
    """
    template_path = dist / "sam.json"
    if not template_path.is_file():
        raise DeployError(f"{template_path} is missing: run `make package STAGE={stage}` first")
    template = json.loads(template_path.read_text())
    region = session.region_name
    if not region:
        raise DeployError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")
    s3, cfn = session.client("s3"), session.client("cloudformation")
    if code_bucket is None:
        account = session.client("sts").get_caller_identity()["Account"]
        code_bucket = default_code_bucket(account, region)
    ensure_code_bucket(s3, code_bucket, region)
    prefix = f"sagedock/{stage}"
    template = upload_code(template, dist, s3, code_bucket, prefix)
    if prepare is not None:
        template = prepare(template)
    name = stack_name(stage)
    changed = apply(cfn, name, template_url(s3, code_bucket, prefix, template), given, template)
    print(f"{name}: {'deployed' if changed else 'no changes'}")
    return outputs(cfn, name)


# --- destroy ------------------------------------------------------------------------------------------
def stack_buckets(cfn: Any, name: str) -> tuple[list[str], list[str]]:
    """The stack's buckets: those deleted with it, and those it retains."""
    template = cfn.get_template(StackName=name, TemplateStage="Processed")["TemplateBody"]
    if isinstance(template, str):
        template = json.loads(template)
    policies = {
        logical: spec.get("DeletionPolicy", "Delete") for logical, spec in template["Resources"].items()
    }
    deleted: list[str] = []
    retained: list[str] = []
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == BUCKET and resource.get("PhysicalResourceId"):
                keep = policies.get(resource["LogicalResourceId"]) in ("Retain", "RetainExceptOnCreate")
                (retained if keep else deleted).append(resource["PhysicalResourceId"])
    return deleted, retained


def versions(s3: Any, bucket: str) -> Iterator[dict[str, str]]:
    """Every object version and delete marker in the bucket."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            yield {"Key": entry["Key"], "VersionId": entry["VersionId"]}


def empty(s3: Any, bucket: str) -> int:
    """Delete every version and delete marker of the bucket; the number deleted."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        return 0  # already gone
    deleted = 0
    batch: list[dict[str, str]] = []
    for entry in [*versions(s3, bucket)]:
        batch.append(entry)
        if len(batch) == DELETE_BATCH:
            deleted += _delete(s3, bucket, batch)
            batch = []
    if batch:
        deleted += _delete(s3, bucket, batch)
    return deleted


def _delete(s3: Any, bucket: str, batch: list[dict[str, str]]) -> int:
    response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    errors = response.get("Errors", [])
    if errors:
        first = errors[0]
        raise DeployError(
            f"cannot empty {bucket}: {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
        )
    return len(batch)


def destroy(stage: str, *, session: Any, confirm: Callable[[str], str] | None) -> bool:
    """Empty the stack's buckets and delete it; False when the user did not confirm or there is no stack.

    `confirm` is asked to type the stack's name (None: confirmed already, `--yes`).
    """
    cfn, s3 = session.client("cloudformation"), session.client("s3")
    name = stack_name(stage)
    try:
        cfn.describe_stacks(StackName=name)
    except ClientError:
        print(f"{name}: no such stack in {session.region_name}")
        return False
    deleted, retained = stack_buckets(cfn, name)
    if confirm is not None:
        what = f"delete {name} and everything in {', '.join(deleted) or 'no bucket'}"
        if confirm(f"This will {what}. Type {name} to go on: ").strip() != name:
            print("not confirmed: nothing was deleted")
            return False
    for bucket in deleted:
        print(f"emptying {bucket}: {empty(s3, bucket)} object versions deleted")
    cfn.delete_stack(StackName=name)
    try:
        cfn.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig=WAIT)
    except WaiterError as exc:
        reasons = "\n  ".join(failure_reasons(cfn, name)) or str(exc)
        raise DeployError(f"{name} was not deleted:\n  {reasons}") from exc
    print(f"{name}: deleted")
    for bucket in retained:
        print(f"kept (DeletionPolicy Retain): {bucket}")
    print(
        f"not part of the stack, delete them yourself if unused: SageMaker endpoints (billed by the hour), "
        f"models, endpoint configs and the ECR repositories under sagedock/{stage}/"
    )
    return True


# --- CLI ----------------------------------------------------------------------------------------------
def parse_parameters(items: list[str]) -> dict[str, str]:
    """Key=Value arguments (the Makefile's PARAMS) as a mapping."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DeployError(f"parameter {item!r} is not Key=Value (e.g. AlarmTopicArn=arn:aws:sns:...)")
        found[key] = value
    return found


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 1 with one line on stderr on any failure."""
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("deploy", help="upload dist/STAGE and create or update the stack")
    up.add_argument("stage")
    up.add_argument("--dist", type=Path, help="what `make package` wrote (default: dist/STAGE)")
    up.add_argument("--code-bucket", help="bucket for the code zips (default: sagedock-code-ACCOUNT-REGION)")
    up.add_argument("parameters", nargs="*", metavar="Key=Value", help="template parameters to set")
    down = commands.add_parser("destroy", help="empty the stack's buckets and delete it")
    down.add_argument("stage")
    down.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    session = boto3.session.Session()
    try:
        if args.command == "deploy":
            dist = args.dist or ROOT / "dist" / args.stage
            found = deploy(
                args.stage,
                dist,
                parse_parameters(args.parameters),
                session=session,
                code_bucket=args.code_bucket,
            )
            print("\n".join(next_steps(found)))
        else:
            destroy(args.stage, session=session, confirm=None if args.yes else input)
    except (DeployError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
