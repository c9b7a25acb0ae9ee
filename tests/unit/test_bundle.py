"""The bundle inspector: each rejection proven by a zip crafted to break its rule; the range reader."""

from __future__ import annotations

import io
import os
import random
import re
import stat
import zipfile
from typing import Any

import pytest
from botocore.exceptions import ClientError
from bundles import (
    DOCKERFILE,
    entry_info,
    make_zip,
    patch_entry,
    patch_entry_count,
    project_zip,
    raw_name_entry,
    special_entry,
    symlink,
)

from chalicelib.adapters.instance_types import instance_types
from chalicelib.adapters.s3_bundle import S3Bundles, S3RangeReader
from chalicelib.domain.bundle import BundleLimits, BundleReport, inspect_bundle
from chalicelib.domain.errors import (
    BundleRejected,
    Conflict,
    ManifestInvalid,
    NotFound,
    SagedockError,
    TransientError,
    UpstreamError,
)
from chalicelib.settings import Settings

MiB = 1024 * 1024
LIMITS = BundleLimits(max_entries=50, max_uncompressed_bytes=64 * MiB, max_compression_ratio=200)


def inspect(data: bytes, limits: BundleLimits = LIMITS) -> BundleReport:
    return inspect_bundle(io.BytesIO(data), limits=limits, project="iris", instance_types=instance_types)


def rejection(data: bytes, code: str, limits: BundleLimits = LIMITS) -> str:
    """Inspect a bundle that must be rejected with `code`; the message, for the test to check."""
    with pytest.raises(BundleRejected) as caught:
        inspect(data, limits)
    assert caught.value.code == code, caught.value.message
    return caught.value.message


# --- bundles that pass ------------------------------------------------------------------------------


def test_a_minimal_bundle_passes_with_default_manifest() -> None:
    # Given a zip with a Dockerfile and code, and no sagedock.toml
    data = project_zip()

    # When it is inspected
    report = inspect(data)

    # Then it passes with the defaults, and the report tells its size
    assert report.dockerfile == "Dockerfile"
    assert report.has_manifest_file is False
    assert report.manifest.deploy.endpoint_name == "iris"
    assert report.entry_count == 2
    assert report.uncompressed_bytes == len(DOCKERFILE) + len("print('training')\n")
    assert 0 < report.compressed_bytes <= report.uncompressed_bytes + 10


def test_the_manifest_in_the_bundle_is_parsed_and_names_the_dockerfile() -> None:
    # Given a bundle whose sagedock.toml moves the Dockerfile and sets training options
    manifest = '[build]\ndockerfile = "docker/Dockerfile"\n[train]\ninstance_count = 2\n'
    data = project_zip(manifest=manifest, dockerfile="docker/Dockerfile")

    # When it is inspected
    report = inspect(data)

    # Then the manifest is the bundle's, and the Dockerfile is found where it says
    assert report.has_manifest_file is True
    assert report.dockerfile == "docker/Dockerfile"
    assert report.manifest.train.instance_count == 2


def test_directories_comments_stored_entries_and_leading_data_are_fine() -> None:
    # Given a zip made by another tool: directory entries, stored entries, a comment, and a stub before it
    data = b"#!/bin/sh\nexit 0\n" + make_zip(
        [("app/", b""), ("app/model.py", "x = 1\n"), ("Dockerfile", DOCKERFILE)],
        compression=zipfile.ZIP_STORED,
        comment=b"made by hand",
    )

    # When it is inspected, then it passes
    assert inspect(data).entry_count == 3


def test_a_small_file_that_compresses_well_is_not_a_bomb() -> None:
    # Given a bundle with 512 KiB of zeros: a ratio far above the limit, but below the size where it matters
    data = project_zip(("zeros.bin", bytes(512 * 1024)))

    # When it is inspected, then it passes
    assert inspect(data).uncompressed_bytes > 512 * 1024


def test_limits_come_from_the_settings() -> None:
    # Given settings with non-default bundle limits
    settings = Settings.model_validate(
        {
            "SAGEDOCK_SOURCE_BUCKET": "src",
            "SAGEDOCK_DATA_BUCKET": "data",
            "SAGEDOCK_ARTIFACT_BUCKET": "art",
            "SAGEDOCK_RUNS_TABLE": "runs",
            "SAGEDOCK_IDEMPOTENCY_TABLE": "idem",
            "SAGEDOCK_CODEBUILD_PROJECT": "build",
            "SAGEDOCK_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sm",
            "SAGEDOCK_MAX_BUNDLE_ENTRIES": "7",
            "SAGEDOCK_MAX_BUNDLE_UNCOMPRESSED_BYTES": "1000",
            "SAGEDOCK_MAX_COMPRESSION_RATIO": "50",
        }
    )

    # When limits are built from them, then they carry them
    limits = BundleLimits.from_settings(settings)
    assert (limits.max_entries, limits.max_uncompressed_bytes, limits.max_compression_ratio) == (7, 1000, 50)


def test_only_the_manifest_is_read_of_all_the_entries() -> None:
    # Given a bundle with a big payload after the manifest and the Dockerfile, and a file that logs reads
    data = project_zip(("weights.bin", os.urandom(4 * MiB)), manifest="[train]\ninstance_count = 1\n")
    payload = entry_info(data, "weights.bin")
    reads: list[tuple[int, int]] = []

    class LoggingFile(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            start = self.tell()
            chunk = super().read(size)
            reads.append((start, start + len(chunk)))
            return chunk

    # When it is inspected
    inspect_bundle(LoggingFile(data), limits=LIMITS, project="iris", instance_types=instance_types)

    # Then, besides the search for the end record in the last 64 KiB, no read touched the payload's data
    data_start = payload.header_offset + 30 + len("weights.bin")
    end_search = len(data) - (22 + 0xFFFF + 20 + 56)
    assert all(end <= data_start or start >= end_search for start, end in reads)
    assert sum(end - start for start, end in reads) < 100 * 1024


# --- not a zip, corrupt -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"PK", b"FROM python:3.11\n" * 100, os.urandom(100_000)])
def test_something_that_is_not_a_zip_is_rejected(data: bytes) -> None:
    # Given bytes that are not a zip: when inspected, then NotAZip says to upload a zip and how to make one
    message = rejection(data, "NotAZip")
    assert "not a zip" in message
    assert "zip -r" in message


def test_a_truncated_zip_is_corrupt() -> None:
    # Given a bundle whose upload was cut short
    data = project_zip(("data.bin", os.urandom(50_000)))[:30_000]

    # When inspected, then it is corrupt (it starts as a zip), and the message says to upload it again
    message = rejection(data, "CorruptZip")
    assert "cut short" in message


def test_a_damaged_central_directory_is_corrupt() -> None:
    # Given a bundle whose central directory is damaged
    data = bytearray(project_zip())
    data[data.rfind(b"PK\x01\x02")] ^= 0xFF

    # When inspected, then CorruptZip tells how to create it again
    assert "zip -r" in rejection(bytes(data), "CorruptZip")


def test_a_damaged_manifest_is_corrupt_and_named() -> None:
    # Given a bundle whose sagedock.toml's compressed bytes are damaged
    data = bytearray(project_zip(manifest="[train]\n" + "# padding\n" * 50))
    info = entry_info(bytes(data), "sagedock.toml")
    start = info.header_offset + 30 + len("sagedock.toml")
    data[start : start + 8] = b"\xff" * 8

    # When inspected, then the message names the manifest
    assert "sagedock.toml" in rejection(bytes(data), "CorruptZip")


def test_a_manifest_that_lies_about_its_size_is_not_trusted() -> None:
    # Given a sagedock.toml whose declared size is smaller than what it decompresses to
    data = project_zip(manifest="[train]\ninstance_count = 1\n" + "#" * 1000 + "\n")
    data = patch_entry(data, "sagedock.toml", file_size=10)

    # When inspected, then the inspector reads no more than declared and finds the checksum wrong
    assert "sagedock.toml" in rejection(data, "CorruptZip")


def test_a_stored_entry_with_two_different_sizes_is_corrupt() -> None:
    # Given a stored (uncompressed) entry that declares a larger size than its data
    data = make_zip([("Dockerfile", DOCKERFILE)], compression=zipfile.ZIP_STORED)
    data = patch_entry(data, "Dockerfile", file_size=10 * MiB)

    # When inspected, then it is corrupt, and named
    assert "'Dockerfile'" in rejection(data, "CorruptZip")


def test_an_entry_claiming_more_data_than_the_zip_holds_is_corrupt() -> None:
    # Given an entry declaring more compressed bytes than lie before the central directory
    data = project_zip(("model.py", "x = 1\n" * 100))
    data = patch_entry(data, "model.py", compress_size=1 * MiB)

    # When inspected, then it is corrupt, and named
    assert "'model.py'" in rejection(data, "CorruptZip")


def test_entries_sharing_their_data_are_an_overlap_bomb() -> None:
    # Given a zip where a second entry points at the first entry's data (the overlapping-file zip bomb)
    data = project_zip(("b.bin", bytes(1000)))
    data = patch_entry(data, "b.bin", header_offset=entry_info(data, "run.py").header_offset)

    # When inspected, then both entries are named
    message = rejection(data, "OverlappingEntries")
    assert "'run.py'" in message
    assert "'b.bin'" in message


# --- unsafe entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "/etc/cron.d/evil",
        "../evil.sh",
        "app/../../evil.sh",
        "..",
        "C:/Windows/evil.dll",
        "c:evil",
        "..\\evil.sh",
        "app\\..\\..\\evil.sh",
        "line\nbreak",
    ],
)
def test_an_entry_that_could_escape_the_build_directory_is_rejected(name: str) -> None:
    # Given a bundle with an entry whose path is absolute, climbs out, or plays separator tricks
    data = project_zip((name, b"#!/bin/sh\n"))

    # When inspected, then UnsafePath names the entry and says how to zip properly
    message = rejection(data, "UnsafePath")
    assert repr(name) in message
    assert "zip -r" in message


def test_a_nul_byte_cannot_hide_a_path_behind_a_harmless_name() -> None:
    # Given an entry named "ok.txt\0../../evil" (zipfile shows it as "ok.txt")
    data = project_zip(raw_name_entry("ok.txt\x00../../evil"))

    # When inspected, then the stored name is judged
    assert "control character" in rejection(data, "UnsafePath")


def test_a_symlink_is_rejected() -> None:
    # Given a bundle with a symbolic link to a file outside it
    data = project_zip(symlink("config.yaml", "/etc/passwd"))

    # When inspected, then Symlink names it and says to put the file itself in
    message = rejection(data, "Symlink")
    assert "'config.yaml'" in message
    assert "the file itself" in message


def test_a_device_or_pipe_entry_is_rejected() -> None:
    # Given a bundle holding a named pipe
    data = project_zip(special_entry("fifo", stat.S_IFIFO))

    # When inspected, then it is rejected and named
    assert "'fifo'" in rejection(data, "SpecialFile")


def test_an_encrypted_entry_is_rejected() -> None:
    # Given a bundle whose code is password-protected
    data = patch_entry(project_zip(), "run.py", flag_bits=0x1)

    # When inspected, then it says to zip without a password
    assert "without a password" in rejection(data, "Encrypted")


def test_an_exotic_compression_method_is_rejected() -> None:
    # Given an entry compressed with bzip2
    data = make_zip([("Dockerfile", DOCKERFILE)], compression=zipfile.ZIP_BZIP2)

    # When inspected, then it says which methods are accepted
    assert "deflate" in rejection(data, "UnsupportedCompression")


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("second", ["run.py", "./run.py", "././run.py"])
def test_the_same_path_twice_is_rejected(second: str) -> None:
    # Given two entries that unpack to the same path
    data = project_zip((second, "print('the other one')\n"))

    # When inspected, then DuplicateEntry names the path
    assert "'run.py'" in rejection(data, "DuplicateEntry")


# --- limits -----------------------------------------------------------------------------------------


def test_too_many_entries_are_rejected_from_the_end_record() -> None:
    # Given a bundle of 60 files and a limit of 50
    data = project_zip(*[(f"src/module_{i}.py", "") for i in range(58)])

    # When inspected, then TooManyEntries says what to leave out
    message = rejection(data, "TooManyEntries")
    assert "60 entries (limit 50)" in message
    assert "data bucket" in message


def test_an_end_record_understating_the_entries_does_not_hide_them() -> None:
    # Given a bundle of 60 files whose end record claims 3
    data = patch_entry_count(project_zip(*[(f"src/module_{i}.py", "") for i in range(58)]), 3)

    # When inspected, then the real count is judged
    assert "60 entries" in rejection(data, "TooManyEntries")


@pytest.mark.slow
def test_a_zip64_bundle_is_counted_from_its_zip64_end_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a bundle of 65,601 entries: the classic end record can count only 65,535, so it has a zip64 one
    data = make_zip([("Dockerfile", DOCKERFILE), *[(f"f/{i}", b"") for i in range(65_600)]])
    roomy = BundleLimits(max_entries=70_000, max_uncompressed_bytes=MiB, max_compression_ratio=200)
    tight = BundleLimits(max_entries=65_550, max_uncompressed_bytes=MiB, max_compression_ratio=200)

    # When inspected with room for its entries, then it passes
    assert inspect(data, roomy).entry_count == 65_601

    # When the limit lies between the classic count and the real one, then the zip64 count refuses it
    # before zipfile parses the central directory
    def must_not_parse(*_: object) -> None:
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(zipfile, "ZipFile", must_not_parse)
    assert "65601 entries (limit 65550)" in rejection(data, "TooManyEntries", tight)


def test_a_huge_central_directory_is_refused_before_it_is_read() -> None:
    # Given a bundle with few entries but very long names, and a small directory limit
    data = project_zip(*[("d" * 200 + f"/{i}.py", "") for i in range(10)])
    limits = BundleLimits(
        max_entries=50,
        max_uncompressed_bytes=MiB,
        max_compression_ratio=200,
        max_central_directory_bytes=1024,
    )

    # When inspected, then it is rejected as too many entries, explaining names count too
    assert "long names" in rejection(data, "TooManyEntries", limits)


def test_a_bundle_unpacking_beyond_the_size_limit_is_rejected() -> None:
    # Given 3 MiB of (incompressible) data and a 2 MiB limit
    data = project_zip(("data.bin", os.urandom(3 * MiB)))
    limits = BundleLimits(max_entries=50, max_uncompressed_bytes=2 * MiB, max_compression_ratio=200)

    # When inspected, then TooLarge tells where data belongs
    message = rejection(data, "TooLarge", limits)
    assert "limit 2097152" in message
    assert "data bucket" in message


def test_a_highly_compressed_big_entry_is_a_zip_bomb() -> None:
    # Given an entry of 20 MiB of zeros, which deflates about 1000:1
    data = project_zip(("padding.bin", bytes(20 * MiB)))

    # When inspected, then CompressionRatio names the entry and the ratio
    message = rejection(data, "CompressionRatio")
    assert "'padding.bin'" in message
    assert re.search(r"compresses \d+:1 \(limit 200:1\)", message)


def test_many_small_highly_compressed_entries_are_a_zip_bomb_too() -> None:
    # Given 8 entries of 512 KiB of zeros each: each below the size judged alone, 4 MiB together
    data = project_zip(*[(f"pad{i}.bin", bytes(512 * 1024)) for i in range(8)])

    # When inspected, then the bundle as a whole is judged
    assert "the bundle as a whole" in rejection(data, "CompressionRatio")


# --- the Dockerfile ---------------------------------------------------------------------------------


def test_a_bundle_without_a_dockerfile_is_rejected_with_a_hint() -> None:
    # Given a bundle with code but no Dockerfile
    data = make_zip([("run.py", "print(1)\n")])

    # When inspected, then the message says where it is expected and how to fix it
    message = rejection(data, "NoDockerfile")
    assert "no Dockerfile at 'Dockerfile'" in message
    assert "add a Dockerfile at the root" in message


def test_a_zipped_folder_gets_a_hint_to_zip_its_contents() -> None:
    # Given a zip of the project folder itself (everything under "iris/")
    data = make_zip([("iris/Dockerfile", DOCKERFILE), ("iris/run.py", "print(1)\n")])

    # When inspected, then the hint names the Dockerfile found and both fixes
    message = rejection(data, "NoDockerfile")
    assert "found 'iris/Dockerfile'" in message
    assert "contents of your project folder" in message
    assert "dockerfile = 'iris/Dockerfile'" in message


def test_the_dockerfile_is_sought_where_the_manifest_says() -> None:
    # Given a manifest pointing at a Dockerfile that is not there
    data = project_zip(manifest='[build]\ndockerfile = "docker/Dockerfile.gpu"\n')

    # When inspected, then the message names that path
    assert "no Dockerfile at 'docker/Dockerfile.gpu'" in rejection(data, "NoDockerfile")


@pytest.mark.parametrize(
    ("entry", "problem"), [(("Dockerfile", b""), "is empty"), (("Dockerfile/", b""), "directory")]
)
def test_an_empty_or_directory_dockerfile_is_rejected(entry: tuple[str, bytes], problem: str) -> None:
    # Given a bundle whose Dockerfile is empty, or a directory
    data = make_zip([entry, ("run.py", "print(1)\n")])

    # When inspected, then the message says so
    assert problem in rejection(data, "NoDockerfile")


# --- the manifest inside the bundle -----------------------------------------------------------------


def test_an_invalid_manifest_rejects_the_bundle_with_its_field_errors() -> None:
    # Given a bundle with a sagedock.toml that breaks two rules
    data = project_zip(manifest="[train]\ninstance_count = 0\n[deploy]\nendpoint_name = 'no_underscores'\n")

    # When inspected, then ManifestInvalid lists both fields
    with pytest.raises(ManifestInvalid) as caught:
        inspect(data)
    assert caught.value.code == "InvalidManifest"
    assert "train.instance_count: Input should be greater than 0" in caught.value.message
    assert "deploy.endpoint_name: 'no_underscores' is not a valid endpoint name" in caught.value.message


def test_an_oversized_manifest_is_refused_unread() -> None:
    # Given a sagedock.toml of 100 KiB (the cap is 64 KiB)
    data = project_zip(manifest="#" * (100 * 1024))

    # When inspected, then it is refused for its size
    with pytest.raises(ManifestInvalid, match="larger than 65536 bytes"):
        inspect(data)


# --- the S3 range reader, over a fake client --------------------------------------------------------


class FakeS3:
    """Serves one object's byte ranges and records every call."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        start, end = map(int, request["Range"].removeprefix("bytes=").split("-"))
        return {"Body": io.BytesIO(self.data[start : end + 1])}

    def head_object(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        return {"ContentLength": len(self.data)}


def reader_over(data: bytes, **options: Any) -> tuple[S3RangeReader, FakeS3]:
    client = FakeS3(data)
    return S3RangeReader(client, "bundles", "k.zip", size=len(data), **options), client  # type: ignore[arg-type]


def test_the_reader_reads_like_a_file() -> None:
    # Given an object and the same bytes in memory
    data = os.urandom(300_000)
    reader, _ = reader_over(data, block_size=4096, tail_size=10_000)
    expected = io.BytesIO(data)
    rng = random.Random(7)

    # When both are read at the same random places, then they agree
    for _ in range(300):
        offset, whence = rng.choice([(rng.randrange(0, 310_000), 0), (-rng.randrange(1, 20_000), 2)])
        size = rng.choice([-1, 0, 1, 22, 5000, 70_000])
        assert reader.seek(offset, whence) == expected.seek(offset, whence)
        assert reader.read(size) == expected.read(size)
        assert reader.tell() == expected.tell()
    buffer = bytearray(100)
    reader.seek(10)
    assert reader.readinto(buffer) == 100
    assert bytes(buffer) == data[10:110]


def test_the_tail_is_fetched_once_and_reads_ahead_are_kept() -> None:
    # Given a reader over a 1 MB object
    reader, client = reader_over(os.urandom(1_000_000), block_size=64 * 1024, tail_size=66 * 1024)

    # When the end is read three times and the start twice
    for _ in range(3):
        reader.seek(-22, 2)
        reader.read()
    reader.seek(0)
    reader.read(30)
    reader.read(1000)

    # Then one GET fetched the tail and one the block, and the counters say so
    assert [call["Range"] for call in client.calls] == ["bytes=932416-999999", "bytes=0-65535"]
    assert reader.stats().requests == 2
    assert reader.stats().bytes_fetched == 66 * 1024 + 64 * 1024


def test_a_read_running_into_the_tail_fetches_only_up_to_it() -> None:
    # Given a reader whose tail is cached
    reader, client = reader_over(os.urandom(200_000), block_size=1000, tail_size=50_000)
    reader.seek(-1, 2)
    reader.read()

    # When a read starts before the tail and ends inside it
    reader.seek(140_000)
    assert len(reader.read(20_000)) == 20_000

    # Then only the bytes before the tail were fetched again
    assert client.calls[-1]["Range"] == "bytes=140000-149999"


@pytest.mark.parametrize(
    ("options", "pin"),
    [
        ({"version_id": "v1"}, {"VersionId": "v1"}),
        ({"etag": '"abc"'}, {"IfMatch": '"abc"'}),
        ({"etag": "abc"}, {"IfMatch": '"abc"'}),
        ({}, {}),
    ],
)
def test_every_request_is_pinned_to_the_version_or_etag(options: dict[str, str], pin: dict[str, str]) -> None:
    # Given a reader told the object's version (or etag) and not its size
    client = FakeS3(os.urandom(1000))
    reader = S3RangeReader(client, "bundles", "k.zip", **options)  # type: ignore[arg-type]

    # When it is read
    reader.read()

    # Then the HEAD and the GET both carried the pin
    assert [call.keys() - {"Bucket", "Key", "Range"} for call in client.calls] == [pin.keys(), pin.keys()]
    assert all(call[name] == value for call in client.calls for name, value in pin.items())
    assert reader.size == 1000


def test_seeking_before_the_start_fails_like_a_file_and_a_closed_reader_refuses_reads() -> None:
    # Given a reader
    reader, _ = reader_over(b"0123456789")

    # When it seeks before the start, then OSError (what zipfile expects of a file)
    with pytest.raises(OSError, match="negative seek"):
        reader.seek(-11, 2)

    # When it is closed, then reads fail
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("NoSuchKey", 404, NotFound),
        ("NoSuchVersion", 404, NotFound),
        ("PreconditionFailed", 412, Conflict),
        ("SlowDown", 503, TransientError),
        ("AccessDenied", 403, UpstreamError),
    ],
)
def test_s3_failures_become_domain_errors(code: str, status: int, error: type[SagedockError]) -> None:
    # Given an S3 client that fails every GET with this error
    class FailingS3(FakeS3):
        def get_object(self, **request: Any) -> dict[str, Any]:
            response: Any = {
                "Error": {"Code": code, "Message": code},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
            raise ClientError(response, "GetObject")

    # When a bundle is inspected through it, then the matching domain error names the object
    with pytest.raises(error, match=re.escape("s3://bundles/k.zip")):
        S3Bundles(FailingS3(b"")).inspect("bundles", "k.zip", size=100, limits=LIMITS, project="iris")  # type: ignore[arg-type]


def test_an_empty_zip_is_rejected_for_its_missing_dockerfile() -> None:
    # Given a valid zip with no entries at all
    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()

    # Then it is rejected like any bundle without a Dockerfile (not an error of the inspector)
    assert "no Dockerfile" in rejection(buffer.getvalue(), "NoDockerfile")
