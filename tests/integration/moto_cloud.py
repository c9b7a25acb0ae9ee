"""A moto account provisioned as the pipeline expects, the real Chalice app wired to it, and its helpers.

A module of its own (not conftest) so that tests import it by a name no other directory uses."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from chalice.test import BaseClient, Client
from moto import mock_aws

import app as app_module
from chalicelib import services as services_module
from chalicelib.adapters import run_store as runs_module
from tests.settings_env import PRIVATE, REQUIRED

REGION = "us-east-1"
SETTINGS = {**REQUIRED, "SAGEDOCK_ECR_PREFIX": "sagedock"}
PRIVATE_SETTINGS = PRIVATE
DOCKERFILE = (
    b'FROM python:3.11-slim\nCOPY program /opt/program\nENTRYPOINT ["python3", "/opt/program/entry.py"]\n'
)
MANIFEST = b"""
[train]
instance_type = "ml.m5.xlarge"
hyperparameters = { max_leaf_nodes = 5, criterion = "gini", prune = true }
[train.channels]
train = "iris/train/"
extra = "s3://elsewhere/extra/"
[deploy]
instance_type = "ml.m5.large"
startup_health_timeout_seconds = 300
"""

OTHER_DATA_BUCKET = "elsewhere"


def channel_data(settings: dict[str, str]) -> list[tuple[str, str]]:
    """(bucket, key) of one object under each channel of MANIFEST."""
    return [
        (settings["SAGEDOCK_DATA_BUCKET"], "iris/train/iris.csv"),
        (OTHER_DATA_BUCKET, "extra/part-0.csv"),
    ]


def make_bundle(files: dict[str, bytes] | None = None) -> bytes:
    """A zip with a Dockerfile and a manifest, unless `files` says otherwise (None drops a file)."""
    content: dict[str, bytes | None] = {
        "Dockerfile": DOCKERFILE,
        "sagedock.toml": MANIFEST,
        "program/entry.py": b"print('hello')\n",
    }
    content.update(files or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in content.items():
            if data is not None:
                archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class Recorder:
    """Wraps a boto3 client and records every call (name, arguments) before making it."""

    inner: Any
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_") or name in ("get_paginator", "get_waiter"):
            return attr

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return attr(**kwargs)

        return call

    def named(self, name: str) -> list[dict[str, Any]]:
        """The arguments of every call of one operation."""
        return [kwargs for called, kwargs in self.calls if called == name]


class Atomic:
    """Wraps a boto3 client so that its requests are applied one at a time.

    DynamoDB checks a write's condition and applies the write as one step; moto in process does not, so
    two threads could both pass one condition. Serialising the requests gives the tests the atomicity of
    each request that the real service guarantees and the pipeline relies on.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_") or name in ("get_paginator", "get_waiter"):
            return attr

        def call(**kwargs: Any) -> Any:
            with self._lock:
                return attr(**kwargs)

        return call


@dataclass
class Cloud:
    """The moto account, the app's test client and the recorded AWS calls."""

    client: Client
    s3: Any
    sagemaker: Recorder
    codebuild: Recorder
    ecr: Any
    settings: dict[str, str]

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """Put a bundle in the source bucket and return the `Object Created` event S3 would send."""
        from sagedock.eventshapes import s3_object_created

        bucket = self.settings["SAGEDOCK_SOURCE_BUCKET"]
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        return s3_object_created(
            bucket, key, size=len(body), etag=put["ETag"].strip('"'), version_id=put.get("VersionId")
        )

    def send(self, handler: str, event: dict[str, Any]) -> dict[str, Any]:
        """Deliver an event to one of the app's handlers, as Lambda would."""
        payload: dict[str, Any] = self.client.lambda_.invoke(handler, event).payload
        return payload

    def run(self, run_id: str) -> dict[str, Any]:
        """GET /runs/{run_id}."""
        response = self.client.http.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.body
        body: dict[str, Any] = json.loads(response.body)
        return body


def _provision(settings: dict[str, str]) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for name in ("SAGEDOCK_SOURCE_BUCKET", "SAGEDOCK_DATA_BUCKET", "SAGEDOCK_ARTIFACT_BUCKET"):
        s3.create_bucket(Bucket=settings[name])
    s3.put_bucket_versioning(
        Bucket=settings["SAGEDOCK_SOURCE_BUCKET"], VersioningConfiguration={"Status": "Enabled"}
    )
    # The data MANIFEST's channels read: a channel without data fails at validate (flows/preflight.py).
    s3.create_bucket(Bucket=OTHER_DATA_BUCKET)
    for bucket, key in channel_data(settings):
        s3.put_object(Bucket=bucket, Key=key, Body=b"5.1,3.5,1.4,0.2,setosa\n")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(**runs_module.table_definition(settings["SAGEDOCK_RUNS_TABLE"]))
    dynamodb.create_table(**runs_module.idempotency_table_definition(settings["SAGEDOCK_IDEMPOTENCY_TABLE"]))
    boto3.client("codebuild", region_name=REGION).create_project(
        name=settings["SAGEDOCK_CODEBUILD_PROJECT"],
        source={
            "type": "S3",
            "location": f"{settings['SAGEDOCK_SOURCE_BUCKET']}/bundles/",
            "buildspec": "version: 0.2",
        },
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole="arn:aws:iam::123456789012:role/sagedock-codebuild",
    )


class InstallServices(Protocol):
    """The `install_services` fixture: the app's handlers use these adapters (Services' keyword arguments,
    the rest built as in AWS) until the test ends."""

    def __call__(self, **adapters: Any) -> services_module.Services: ...


@contextmanager
def services_installer() -> Iterator[InstallServices]:
    """What `install_services` yields: each call installs a Services of the current settings; all of
    them are uninstalled when the block ends."""
    from chalicelib.settings import get_settings

    with ExitStack() as stack:

        def install(**adapters: Any) -> services_module.Services:
            made = services_module.Services(get_settings(), **adapters)
            return stack.enter_context(services_module.installed(made))

        yield install


def _reset_caches() -> None:
    services_module.reset()


@contextlib.contextmanager
def _environment_as_it_is(self: BaseClient, environment_variables: dict[str, str]) -> Iterator[None]:
    """The test client's calls run in the process environment itself.

    chalice.test swaps `os.environ` for a copy around each call. Handlers invoked from several threads at
    once (deliver_concurrently) then restore each other's copies, and `os.environ` can stay a plain dict
    for the rest of the process: os.environ changes no longer reach the real environment, so a process
    started later (a local cloud of the e2e tests in the same test worker) does not get them. With no
    project dir there are no stage variables to set, so leaving the environment alone changes nothing else.
    """
    assert not environment_variables, f"stage variables the test client would set: {environment_variables}"
    yield


def open_cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: dict[str, str]) -> Iterator[Cloud]:
    """Provision moto, wire the app to it with recorded CodeBuild and SageMaker clients, yield the Cloud."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(BaseClient, "_patched_env_vars", _environment_as_it_is)
    with mock_aws():
        _reset_caches()
        _provision(settings)
        sagemaker = Recorder(boto3.client("sagemaker", region_name=REGION))
        codebuild = Recorder(boto3.client("codebuild", region_name=REGION))
        from chalicelib.adapters.codebuild import CodeBuild
        from chalicelib.adapters.sagemaker import SageMaker
        from chalicelib.settings import get_settings

        wired = services_module.Services(
            get_settings(),
            dynamodb=Atomic(boto3.client("dynamodb", region_name=REGION)),
            # moto in process re-imports its S3 URL table on every S3 request, which two threads cannot
            # do at once ("module moto.s3.urls not in sys.modules"): its requests go one at a time too.
            s3=Atomic(boto3.client("s3", region_name=REGION)),
            codebuild=CodeBuild(codebuild, get_settings().codebuild_project),  # type: ignore[arg-type]
            sagemaker=SageMaker(sagemaker),  # type: ignore[arg-type]
        )
        # No project dir: the test client must not overlay .chalice/config.json's stage variables.
        with services_module.installed(wired), Client(app_module.app, project_dir=str(tmp_path)) as client:
            yield Cloud(
                client=client,
                s3=boto3.client("s3", region_name=REGION),
                sagemaker=sagemaker,
                codebuild=codebuild,
                ecr=boto3.client("ecr", region_name=REGION),
                settings=settings,
            )
    _reset_caches()
