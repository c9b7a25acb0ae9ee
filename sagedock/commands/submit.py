"""`sagedock submit DIR|ZIP --project NAME [--follow]`: upload a bundle and, optionally, follow its run."""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.domain.names import PROJECT_RULE, is_valid_project, run_id_for
from sagedock.client import (
    ApiClient,
    ApiError,
    Target,
    add_target_arguments,
    post_form,
    target_from_args,
)
from sagedock.commands.status import error_text
from sagedock.exitcodes import EXIT_FAILED, EXIT_USAGE, CliError
from sagedock.output import add_follow_arguments

PROJECT_HELP = f"names the ECR repository and, by default, the endpoint: {PROJECT_RULE}"
SKIPPED_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}
RUN_POLL_SECONDS = 0.5
# Zip entries get a fixed time so the same directory always makes the same bundle bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class SubmitError(Exception):
    """The bundle cannot be submitted as it is; the message says why."""


@dataclass(frozen=True)
class Submission:
    """An uploaded bundle and the run it starts."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    run_id: str


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("submit", help="upload a bundle (a directory or a zip) and start a run")
    parser.add_argument("path", metavar="DIR|ZIP", type=Path)
    parser.add_argument("--project", required=True, type=project_name, help=PROJECT_HELP)
    add_follow_arguments(parser)
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def project_name(value: str) -> str:
    """--project, checked before anything else (so a typo is named even with no API to talk to)."""
    if not is_valid_project(value):
        raise argparse.ArgumentTypeError(f"invalid project {value!r}: {PROJECT_HELP}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        target = target_from_args(args)
        submission = submit(args.path, args.project, target, say=print)
    except SubmitError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if not args.follow:
        return 0
    return follow_to_the_end(ApiClient(target), submission.run_id, timeout=args.timeout)


def follow_to_the_end(client: ApiClient, run_id: str, *, timeout: float) -> int:
    """Follow the run (live on a terminal, line by line otherwise); 0 if it SUCCEEDED, 1 if it FAILED."""
    from sagedock.follow import follow_view, watch

    sys.stdout.flush()
    record = watch(client, run_id, follow_view(run_id), timeout=timeout)
    if record.get("status") != "SUCCEEDED":
        print(
            f"run {run_id} FAILED: {error_text(record)} (`sagedock logs {run_id}` shows the stage's log)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def bundle_bytes(path: Path) -> bytes:
    """The zip to upload: a directory is zipped (refused without its Dockerfile), a zip is checked."""
    if path.is_dir():
        dockerfile = _dockerfile_name(path / "sagedock.toml")
        if not (path / dockerfile).is_file():
            raise SubmitError(
                f"{path} has no {dockerfile}: a bundle needs one at its root (see docs/local-cloud.md)"
            )
        return zip_directory(path)
    if not path.is_file():
        raise SubmitError(f"{path} is neither a directory nor a file")
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            manifest = archive.read("sagedock.toml").decode() if "sagedock.toml" in names else ""
    except zipfile.BadZipFile as exc:
        raise SubmitError(f"{path} is not a zip file") from exc
    dockerfile = _dockerfile_name_from_text(manifest)
    if dockerfile not in names:
        raise SubmitError(f"{path} has no {dockerfile} at its root: a bundle needs one")
    return data


def _dockerfile_name(manifest: Path) -> str:
    return _dockerfile_name_from_text(manifest.read_text() if manifest.is_file() else "")


def _dockerfile_name_from_text(text: str) -> str:
    try:
        name = tomllib.loads(text).get("build", {}).get("dockerfile", "Dockerfile") if text else "Dockerfile"
    except tomllib.TOMLDecodeError as exc:
        raise SubmitError(f"sagedock.toml is not valid TOML: {exc}") from exc
    return str(name)


def zip_directory(root: Path) -> bytes:
    """The directory as a zip, in a stable order with fixed times (same tree, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if (
                any(part in SKIPPED_DIRS for part in relative.parts)
                or path.is_symlink()
                or not path.is_file()
            ):
                continue
            if path.suffix == ".pyc":
                continue
            info = zipfile.ZipInfo(relative.as_posix(), date_time=ZIP_TIME)
            info.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def submit(path: Path, project: str, target: Target, *, say: Callable[[str], Any] = print) -> Submission:
    """Upload the bundle under bundles/<project>/ and work out the run it starts."""
    if not is_valid_project(project):
        raise SubmitError(f"invalid project {project!r}: {PROJECT_HELP}")
    data = bundle_bytes(path)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{hashlib.sha256(data).hexdigest()[:8]}.zip"
    announced: str | None = None
    if target.source_bucket:
        bucket, key = target.source_bucket, f"bundles/{project}/{name}"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = _s3(target).put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/zip")
        except (BotoCoreError, ClientError) as exc:
            raise SubmitError(f"could not upload to s3://{bucket}/{key}: {exc}") from exc
        etag, version_id = str(answer.get("ETag", "")).strip('"'), answer.get("VersionId")
    else:
        bucket, key, etag, version_id, announced = _presigned_upload(target, project, name, data)
    say(f"uploaded s3://{bucket}/{key} ({len(data)} bytes)")
    if announced:  # POST /uploads names the run the upload starts
        run_id = announced
    elif version_id or etag:
        run_id = run_id_for(project, bucket, key, version_id or etag)
    else:  # the upload's answer did not identify the object version: ask the API which run it started
        run_id = _run_of(ApiClient(target), project, key)
    say(f"run {run_id}")
    return Submission(bucket, key, version_id, etag, run_id)


def _presigned_upload(
    target: Target, project: str, name: str, data: bytes
) -> tuple[str, str, str, str | None, str | None]:
    """Upload through the API's POST /uploads (no S3 rights needed): (bucket, key, etag, version id, run id).

    An API that cannot be reached is left to the caller (exit 3); S3 refusing the form is a SubmitError.
    """
    upload = ApiClient(target).create_upload(project, name)
    try:
        headers = post_form(upload["url"], upload["fields"], name, data)
    except ApiError as exc:
        if exc.status == 0:
            raise
        raise SubmitError(f"the upload to {upload['url']} was refused: {exc}") from exc
    return (
        upload["bucket"],
        upload["key"],
        headers.get("etag", "").strip('"'),
        headers.get("x-amz-version-id"),
        upload.get("run_id"),
    )


def _run_of(client: ApiClient, project: str, key: str, timeout: float = 60) -> str:
    """The run the API lists for a bundle object, once the pipeline has recorded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in client.iter_runs(project=project):
            if (record.get("source") or {}).get("key") == key:
                return str(record["run_id"])
        time.sleep(RUN_POLL_SECONDS)
    raise SubmitError(f"no run was recorded for {key} within {timeout:.0f}s")


def _s3(target: Target) -> Any:
    return aws_client(target, "s3")


def aws_client(target: Target, service: str) -> Any:
    """A boto3 client of the target's account: the local cloud's emulator, or the environment's."""
    import boto3

    keys = {}
    if target.credentials:
        keys = {"aws_access_key_id": target.credentials[0], "aws_secret_access_key": target.credentials[1]}
    session = boto3.session.Session(**keys)  # type: ignore[arg-type]
    return session.client(service, endpoint_url=target.endpoint_url, region_name=target.region)  # type: ignore[call-overload]
