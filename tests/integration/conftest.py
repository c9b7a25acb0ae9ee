"""Fixtures of the integration tests: the app against a moto account (see moto_cloud.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_client import ticking_clock, to_deploying, upload
from moto_cloud import (
    PRIVATE_SETTINGS,
    REGION,
    SETTINGS,
    Cloud,
    InstallServices,
    make_bundle,
    open_cloud,
    services_installer,
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a region, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def cloud(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cloud]:
    """The app against a moto account in ECR mode."""
    yield from open_cloud(monkeypatch, tmp_path, SETTINGS)


@pytest.fixture
def private_cloud(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cloud]:
    """The app against a moto account in private-registry mode."""
    yield from open_cloud(monkeypatch, tmp_path, SETTINGS | PRIVATE_SETTINGS)


@pytest.fixture
def install_services() -> Iterator[InstallServices]:
    """Hand the app's handlers this test's own adapters through Services, for the test's duration only:
    `install_services(sagemaker=..., dynamodb=...)` returns the Services the handlers now use."""
    with services_installer() as install:
        yield install


@pytest.fixture
def runs(cloud: Cloud) -> dict[str, str]:
    """Five runs of two projects, created in this order: name -> run id."""
    ticking_clock(cloud)
    created = {
        "iris-building": upload(cloud, "bundles/iris/v1.zip"),
        "wine-building": upload(cloud, "bundles/wine/w1.zip"),
        "iris-failed": upload(cloud, "bundles/iris/v2.zip", make_bundle({"Dockerfile": None})),
        "iris-deploying": upload(cloud, "bundles/iris/v3.zip"),
        "wine-failed": upload(cloud, "bundles/wine/w2.zip", b"not a zip"),
    }
    to_deploying(cloud, created["iris-deploying"], "iris")
    return created
