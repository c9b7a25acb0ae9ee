"""Deterministic names: the same bundle object always yields the same run, job, model and config names."""

from __future__ import annotations

import hashlib
import re

BUNDLE_PREFIX = "bundles/"
# 1-40 lowercase letters, digits and hyphens, starting and ending with a letter or digit (an ECR repository
# and an endpoint name both accept it). Matched with fullmatch: `$` would accept a trailing newline.
PROJECT_REGEX = r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"
PROJECT_PATTERN = re.compile(PROJECT_REGEX)
PROJECT_RULE = "1-40 lowercase letters, digits or hyphens, starting and ending with a letter or digit"
# SageMaker resource names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
SAGEMAKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
RUN_ID_PATTERN = re.compile(PROJECT_REGEX + r"-[0-9a-f]{12}")
# A key POST /uploads chose for one upload: bundles/<project>/uploads/<32 hex upload id>/<name>.zip.
UPLOAD_NAME_REGEX = r"[A-Za-z0-9._-]{1,100}\.zip"
UPLOAD_KEY_PATTERN = re.compile(
    re.escape(BUNDLE_PREFIX) + PROJECT_REGEX + r"/uploads/[0-9a-f]{32}/" + UPLOAD_NAME_REGEX
)
DEFAULT_UPLOAD_NAME = "bundle.zip"


def project_from_key(key: str) -> str | None:
    """The `<project>` segment of `bundles/<project>/<name>`, or None when the key has no such shape."""
    if not key.startswith(BUNDLE_PREFIX):
        return None
    parts = key[len(BUNDLE_PREFIX) :].split("/")
    if len(parts) < 2 or not parts[0] or not parts[-1]:
        return None
    return parts[0]


def is_valid_project(project: str) -> bool:
    """Whether a project name can name an ECR repository and, by default, an endpoint."""
    return bool(PROJECT_PATTERN.fullmatch(project))


def upload_key(project: str, upload_id: str, name: str | None = None) -> str:
    """The one-time key of an upload through the API (its run id is then known before the upload)."""
    return f"{BUNDLE_PREFIX}{project}/uploads/{upload_id}/{name or DEFAULT_UPLOAD_NAME}"


def is_upload_key(key: str) -> bool:
    """Whether the key is one POST /uploads chose (it names its run alone, whatever its version)."""
    return bool(UPLOAD_KEY_PATTERN.fullmatch(key))


def run_id_for(project: str, bucket: str, key: str, version: str) -> str:
    """`<project>-<12 hex>`: stable for one bundle object (its version id, or its etag when unversioned).

    A key POST /uploads chose is used once, so it alone names the run: the API returns the run id before
    the upload, when the version id S3 will assign is not yet known. It doubles as the image tag and as
    the base of every SageMaker name, so it stays within 53 characters.
    """
    if is_upload_key(key):
        version = ""
    digest = hashlib.sha256(f"{bucket}\n{key}\n{version}".encode()).hexdigest()[:12]
    safe_project = project if is_valid_project(project) else "invalid"
    return f"{safe_project}-{digest}"


def retrain_run_id(project: str, request_id: str) -> str:
    """The run a retrain request starts: stable for one request (its event id), so a redelivery finds it."""
    return run_id_for(project, "sagedock.requests", "Retrain Request", request_id)


def is_run_id(value: str) -> bool:
    """Whether a string has the shape of a run id (cheap check before a table lookup)."""
    return bool(RUN_ID_PATTERN.fullmatch(value))


def training_job_name(run_id: str, attempt: int) -> str:
    """Training job names cannot be reused, so each attempt of the train stage gets its own."""
    return f"{run_id}-t{attempt}"


def run_id_from_training_job(name: str) -> str | None:
    """Invert training_job_name (used when an event carries no tags)."""
    base, sep, suffix = name.rpartition("-t")
    if not sep or not suffix.isdigit() or not is_run_id(base):
        return None
    return base


def model_name(run_id: str) -> str:
    """One model per run: the image digest and the artifact of that run."""
    return run_id


def endpoint_config_name(run_id: str, attempt: int = 1) -> str:
    """One endpoint config per run and attempt, so an endpoint event names the run (and the attempt) whose
    config it serves, and a retried deploy always asks for a change SageMaker will report on."""
    return run_id if attempt <= 1 else f"{run_id}-d{attempt}"


def ecr_repository(prefix: str, project: str) -> str:
    """The image repository of a project."""
    return f"{prefix}/{project}"


# The mutable tag each project repository keeps for the build cache (every other tag is immutable).
CACHE_TAG = "latest"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of an s3:// URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key
