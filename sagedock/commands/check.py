"""`sagedock check DIR|ZIP --project NAME`: every reason validate would refuse a bundle, before uploading it.

It runs the pipeline's own checks (chalicelib.domain.bundle's inspection, the manifest's SageMaker limits,
chalicelib.domain.preflight_rules) on the local folder or zip, and, where an account is in reach (the
running local cloud, or --data-bucket and the AWS environment), the channel and endpoint-ownership checks
too. Every problem is printed; exit 0 clean, 1 problems, 2 usage.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError

from chalicelib.domain.errors import SagedockError
from sagedock.client import Target
from sagedock.commands.submit import PROJECT_HELP, aws_client, project_name, zip_directory

if TYPE_CHECKING:
    from chalicelib.domain.manifest import Manifest
    from chalicelib.domain.preflight_rules import Problem


def register(subparsers: Any) -> None:
    """Add the `check` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="check a bundle (a directory or a zip) as the pipeline would, and print every problem",
        description=(
            "Inspect the bundle as the validate stage does (zip layout, Dockerfile, sagedock.toml and "
            "SageMaker's limits) and check that each training channel holds data and that the endpoint is "
            "not another project's. Exit 0 when nothing would be refused, 1 when something would, 2 on "
            "a usage error."
        ),
    )
    parser.add_argument("path", metavar="DIR|ZIP", type=Path)
    parser.add_argument("--project", required=True, type=project_name, help=PROJECT_HELP)
    parser.add_argument(
        "--data-bucket",
        help="the data bucket channels are read from (default: $SAGEDOCK_DATA_BUCKET, or the running "
        "local cloud's)",
    )
    parser.add_argument("--endpoint-url", help="an AWS endpoint override (default: $AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="the AWS region (default: $AWS_REGION)")
    parser.add_argument(
        "--offline", action="store_true", help="check the bundle only: no S3 or SageMaker look-ups"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print every problem (and what was not checked); the exit code."""
    path: Path = args.path
    if not path.exists():
        print(f"sagedock check: {path} does not exist", file=sys.stderr)
        return 2
    data = zip_directory(path) if path.is_dir() else path.read_bytes()
    account = None if args.offline else _account(args)
    problems, notes = check_bundle(data, args.project, account=account)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not problems:
        print(f"{path}: no problems found")
        return 0
    print(f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
    for problem in problems:
        print(f"  - {problem}")
    return 1


def _account(args: argparse.Namespace) -> tuple[Target, str] | None:
    """Where channels and endpoints are looked up: the flags and environment, else the local cloud."""
    bucket = args.data_bucket or os.environ.get("SAGEDOCK_DATA_BUCKET")
    if bucket:
        target = Target(
            api_url="",
            source_bucket=None,
            endpoint_url=args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"),
            region=args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "",
            local=False,
        )
        return target, bucket
    from sagedock.local.cloud import PROJECT_DIR, running_contract

    state = Path(os.environ.get("SAGEDOCK_LOCAL_STATE") or PROJECT_DIR / ".sagedock" / "local")
    contract = running_contract(state)
    if not contract.get("SAGEDOCK_DATA_BUCKET"):
        return None
    target = Target(
        api_url=contract.get("SAGEDOCK_API_URL", ""),
        source_bucket=None,
        endpoint_url=contract.get("AWS_ENDPOINT_URL"),
        region=contract.get("AWS_REGION", "us-east-1"),
        local=True,
        credentials=(contract.get("AWS_ACCESS_KEY_ID", ""), contract.get("AWS_SECRET_ACCESS_KEY", "")),
    )
    return target, contract["SAGEDOCK_DATA_BUCKET"]


def check_bundle(
    data: bytes, project: str, *, account: tuple[Target, str] | None = None
) -> tuple[list[str], list[str]]:
    """(problems as `CODE key: message` lines, notes on what could not be checked) for a bundle's bytes."""
    from chalicelib.adapters.instance_types import instance_types
    from chalicelib.domain import names
    from chalicelib.domain import preflight_rules as preflight
    from chalicelib.domain.bundle import BundleLimits, inspect_bundle
    from chalicelib.domain.errors import BundleRejected, ManifestInvalid
    from chalicelib.settings import Settings

    defaults = Settings.model_fields
    limits = BundleLimits(
        max_entries=defaults["max_bundle_entries"].default,
        max_uncompressed_bytes=defaults["max_bundle_uncompressed_bytes"].default,
        max_compression_ratio=defaults["max_compression_ratio"].default,
    )
    try:
        report = inspect_bundle(
            io.BytesIO(data), limits=limits, project=project, instance_types=instance_types
        )
    except ManifestInvalid as exc:
        # Inspection stops at the manifest; the Dockerfile it would have looked for next is checked here.
        return [f"{exc.code} {problem}" for problem in exc.problems] + _dockerfile_problem(data), []
    except BundleRejected as exc:
        return [f"{exc.code}: {exc.message}"], []
    found = preflight.name_problems(names.run_id_for(project, "bucket", "key", "version"))
    notes = []
    if account is None:
        notes.append(
            "training channels and the endpoint's owner not checked (offline, or no data bucket known: "
            "pass --data-bucket or start the local cloud)"
        )
    else:
        for what, check in _account_checks(account, report.manifest, project):
            try:
                found.extend(check())
            except (SagedockError, BotoCoreError) as exc:  # no credentials, no network: say so, go on
                notes.append(f"{what} not checked: {getattr(exc, 'message', exc)}")
    return [f"{problem.code} {problem.render()}" for problem in found], notes


def _account_checks(
    account: tuple[Target, str], manifest: Manifest, project: str
) -> list[tuple[str, Callable[[], list[Problem]]]]:
    """The checks that look at the account: the channels' data, and the endpoint's owner by its tag (the
    runs table is the API's, so from here the `sagedock:project` tag alone names the owner)."""
    from chalicelib.adapters.s3_channels import resolve_channels
    from chalicelib.adapters.sagemaker import SageMaker
    from chalicelib.domain import preflight_rules as preflight

    target, bucket = account

    def channels() -> list[Problem]:
        s3 = aws_client(target, "s3")
        return resolve_channels(s3, manifest, project=project, data_bucket=bucket)[1]

    def endpoint() -> list[Problem]:
        sagemaker = SageMaker(aws_client(target, "sagemaker"))
        return preflight.endpoint_problems(
            manifest, project, owner_run=lambda _: None, endpoint_tags=sagemaker.endpoint_tags
        )

    def model_data() -> list[Problem]:
        # Whether the bucket is one the deployment reads models from is its rule, checked at validate;
        # here, that the archive is there.
        from chalicelib.adapters.s3_model_data import model_data_problems

        uri = manifest.deploy.model_data
        if uri is None:
            return []
        where = (bucket, uri.removeprefix("s3://").split("/", 1)[0])
        return model_data_problems(aws_client(target, "s3"), uri, allowed_buckets=where)

    if manifest.serve_only:  # nothing trains: no channels to look for, a model archive instead
        return [("the model data", model_data), ("the endpoint's owner", endpoint)]
    return [("training channels", channels), ("the endpoint's owner", endpoint)]


def _dockerfile_problem(data: bytes) -> list[str]:
    """NoDockerfile when the zip lacks the Dockerfile its manifest names (or the default one)."""
    import tomllib
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        try:
            raw = tomllib.loads(archive.read("sagedock.toml").decode("utf-8-sig"))
        except (KeyError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            raw = {}
    build = raw.get("build")
    wanted = build.get("dockerfile") if isinstance(build, dict) else None
    path = wanted if isinstance(wanted, str) and wanted else "Dockerfile"
    return [] if path in names else [f"NoDockerfile: no Dockerfile at {path!r} in the bundle"]
