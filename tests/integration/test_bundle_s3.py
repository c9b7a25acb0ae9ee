"""The inspector against S3 (moto): a 100 MB bundle costs a few ranged GETs, and versions pin every read."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.s3_bundle import S3Bundles
from chalicelib.domain.bundle import BundleLimits
from chalicelib.domain.errors import BundleRejected, Conflict, NotFound

REGION = "eu-west-1"
BUCKET = "sagedock-source"
KEY = "bundles/iris/big.zip"
KiB = 1024
MiB = 1024 * KiB
LIMITS = BundleLimits(max_entries=10_000, max_uncompressed_bytes=4 * 1024 * MiB, max_compression_ratio=200)
DOCKERFILE = 'FROM python:3.11-slim\nCOPY . /opt/program\nENTRYPOINT ["python", "/opt/program/train.py"]\n'


def manifest(instance_count: int) -> str:
    return f"[train]\ninstance_count = {instance_count}\nhyperparameters = {{ depth = 5 }}\n"


def write_random_bundle(
    path: Path, size: int, *, manifest_last: bool = False, instance_count: int = 2
) -> int:
    """Write a bundle of about `size` bytes, mostly incompressible payload, and return its exact size.

    The payload entries are stored (random bytes do not compress), written 1 MiB at a time.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        if not manifest_last:
            archive.writestr("sagedock.toml", manifest(instance_count))
        archive.writestr("Dockerfile", DOCKERFILE)
        archive.writestr("train.py", "print('training')\n")
        remaining, part = size, 0
        while remaining > 2 * KiB:
            info = zipfile.ZipInfo(f"data/part-{part:03d}.bin")
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w") as entry:
                for _ in range(min(remaining, 32 * MiB) // MiB or 1):
                    entry.write(os.urandom(min(MiB, remaining)))
                    remaining -= min(MiB, remaining)
            part += 1
        if manifest_last:
            archive.writestr("sagedock.toml", manifest(instance_count))
    return path.stat().st_size


@dataclass
class S3Traffic:
    """What a client sent and received, as botocore's own events saw it."""

    gets: list[dict[str, Any]] = field(default_factory=list)
    content_lengths: list[int] = field(default_factory=list)

    @property
    def bytes_received(self) -> int:
        return sum(self.content_lengths)


def observe(client: Any) -> S3Traffic:
    """Record every GetObject's parameters and the Content-Length of its answer."""
    traffic = S3Traffic()

    def on_params(params: dict[str, Any], **_: Any) -> None:
        traffic.gets.append(dict(params))

    def on_response(parsed: dict[str, Any], **_: Any) -> None:
        traffic.content_lengths.append(parsed["ContentLength"])

    client.meta.events.register("provide-client-params.s3.GetObject", on_params)
    client.meta.events.register("after-call.s3.GetObject", on_response)
    return traffic


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An S3 client inside moto, with fake credentials, and the source bucket created."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


@pytest.fixture(scope="module", params=[False, True], ids=["manifest-first", "manifest-last"])
def big_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundles") / "big.zip"
    write_random_bundle(path, 100 * MiB, manifest_last=request.param)
    return path


@pytest.mark.slow
def test_a_100_mb_bundle_is_inspected_from_under_256_kib(s3: Any, big_bundle: Path) -> None:
    # Given a 100 MB bundle in S3, and a client whose traffic is observed
    s3.upload_file(str(big_bundle), BUCKET, KEY)
    size = big_bundle.stat().st_size
    traffic = observe(s3)

    # When it is inspected, its size known from the event
    report, stats = S3Bundles(s3).inspect(BUCKET, KEY, size=size, limits=LIMITS, project="iris")

    # Then it passes with its own manifest
    assert report.manifest.train.instance_count == 2
    assert report.entry_count == 3 + 4  # sagedock.toml, Dockerfile, train.py and four 32 MiB-or-less parts
    assert report.uncompressed_bytes > 99 * MiB

    # And the reader's counters and S3's own answers agree on a cost of at most 256 KiB in ranged GETs
    assert size >= 100 * MiB
    assert stats.bytes_fetched == traffic.bytes_received <= 256 * KiB
    assert stats.requests == len(traffic.gets) <= 3
    assert all(get["Range"].startswith("bytes=") for get in traffic.gets)
    assert stats.fraction < 0.003


def test_each_read_of_a_versioned_bundle_asks_for_the_version_given(s3: Any, tmp_path: Path) -> None:
    # Given a versioned bucket where a bundle was overwritten by another
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    versions = []
    for count in (3, 7):
        path = tmp_path / f"v{count}.zip"
        write_random_bundle(path, 1 * MiB, instance_count=count)
        versions.append(s3.put_object(Bucket=BUCKET, Key=KEY, Body=path.read_bytes())["VersionId"])
    traffic = observe(s3)

    # When the first version is inspected (without its size: a HEAD finds it)
    report, stats = S3Bundles(s3).inspect(BUCKET, KEY, version_id=versions[0], limits=LIMITS, project="iris")

    # Then it is the first upload that was read, by GETs each naming that version
    assert report.manifest.train.instance_count == 3
    assert traffic.gets
    assert all(get["VersionId"] == versions[0] for get in traffic.gets)
    assert stats.requests == len(traffic.gets) + 1

    # And the second version reads as the second upload
    second, _ = S3Bundles(s3).inspect(BUCKET, KEY, version_id=versions[1], limits=LIMITS, project="iris")
    assert second.manifest.train.instance_count == 7


def test_an_overwritten_bundle_is_not_read_under_a_stale_etag(s3: Any, tmp_path: Path) -> None:
    # Given a bundle uploaded, its etag noted as the event gives it (unquoted), then overwritten
    path = tmp_path / "bundle.zip"
    write_random_bundle(path, 256 * KiB)
    etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=path.read_bytes())["ETag"].strip('"')
    report, _ = S3Bundles(s3).inspect(BUCKET, KEY, etag=etag, limits=LIMITS, project="iris")
    assert report.dockerfile == "Dockerfile"
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"not the same bundle")

    # When it is inspected under the first etag, then Conflict: the new upload has a run of its own
    with pytest.raises(Conflict, match="replaced while it was inspected"):
        S3Bundles(s3).inspect(BUCKET, KEY, etag=etag, limits=LIMITS, project="iris")


def test_a_missing_bundle_is_not_found_and_a_bad_one_rejected(s3: Any) -> None:
    # Given no object at one key and a text file at another
    s3.put_object(Bucket=BUCKET, Key="bundles/iris/notes.zip", Body=b"just some notes\n" * 10)

    # When they are inspected, then NotFound for the first and NotAZip for the second
    with pytest.raises(NotFound, match="does not exist"):
        S3Bundles(s3).inspect(BUCKET, "bundles/iris/gone.zip", limits=LIMITS, project="iris")
    with pytest.raises(BundleRejected) as caught:
        S3Bundles(s3).inspect(BUCKET, "bundles/iris/notes.zip", limits=LIMITS, project="iris")
    assert caught.value.code == "NotAZip"
