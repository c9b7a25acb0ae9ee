"""Bundle inspection: judge an uploaded zip from its central directory, fetched with ranged S3 GETs.

A bad bundle must fail before a build is paid for, and judging it must not cost a download of the
whole object: `zipfile` over `S3RangeReader` reads the end record, the central directory and, of the
entries, only `sagedock.toml` (capped). Every rejection is a `BundleRejected` whose `code` is one of

    NotAZip, CorruptZip, OverlappingEntries, TooManyEntries, TooLarge, CompressionRatio, UnsafePath,
    Symlink, SpecialFile, DuplicateEntry, Encrypted, UnsupportedCompression, NoDockerfile,
    InvalidManifest (a ManifestInvalid)

and whose message says what to change. The declared sizes in the central directory are not taken on
trust where that matters: the entries' compressed data must lie, disjoint, before the central directory
(this bounds them by the object's real size and catches overlapping-entry zip bombs), only stored and
deflated entries are accepted (so an entry cannot expand by more than deflate's ~1032:1 over its real
compressed bytes), and sagedock.toml is decompressed only up to its cap whatever its header says.
"""

from __future__ import annotations

import io
import posixpath
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from chalicelib.domain.errors import BundleRejected, ManifestInvalid
from chalicelib.domain.manifest import MANIFEST_NAME, Manifest, parse_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from chalicelib.domain.limits import InstanceTypes
    from chalicelib.settings import Settings

KiB: Final = 1024
MiB: Final = 1024 * KiB

# The end record is within the last 22 + 65535 (comment) bytes, the zip64 locator and record before it.
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_EOCD_SEARCH_BYTES: Final = _EOCD.size + 0xFFFF + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size
_LOCAL_HEADER_BYTES: Final = 30
_ENCRYPTED: Final = 0x1
_DRIVE: Final = re.compile(r"[A-Za-z]:")

_REZIP_HINT: Final = (
    "create the zip again from inside your project folder: cd project && zip -r ../bundle.zip ."
)


class SeekableReader(Protocol):
    """What inspect_bundle reads from: an open binary file, a BytesIO, an S3RangeReader."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ReadStats:
    """What inspecting one S3 object cost."""

    object_size: int
    bytes_fetched: int
    requests: int

    @property
    def fraction(self) -> float:
        """Bytes fetched over the object's size."""
        return self.bytes_fetched / self.object_size if self.object_size else 0.0


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """What a bundle may hold; beyond any of these it is rejected before it is built."""

    max_entries: int
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_manifest_bytes: int = 64 * KiB
    max_central_directory_bytes: int = 16 * MiB
    # Small files compress well legitimately; the ratio is judged only for entries (and totals) this big.
    ratio_check_min_bytes: int = 1 * MiB

    @classmethod
    def from_settings(cls, settings: Settings) -> BundleLimits:
        """The limits configured for this deployment."""
        return cls(
            max_entries=settings.max_bundle_entries,
            max_uncompressed_bytes=settings.max_bundle_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
        )


@dataclass(frozen=True, slots=True)
class BundleReport:
    """A bundle that passed inspection: its manifest (defaults filled in) and its size."""

    manifest: Manifest
    has_manifest_file: bool
    dockerfile: str
    entry_count: int
    uncompressed_bytes: int
    compressed_bytes: int


def inspect_bundle(
    fileobj: SeekableReader,
    *,
    limits: BundleLimits,
    project: str,
    instance_types: Callable[[], InstanceTypes],
) -> BundleReport:
    """Validate a bundle from its central directory and its sagedock.toml, raising BundleRejected; the
    manifest's instance types are judged against the SageMaker lists `instance_types` answers (asked only
    when the manifest names one)."""
    directory_start = _read_directory_record(fileobj, limits)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, EOFError) as exc:
        raise BundleRejected(f"the zip is corrupt ({exc}): {_REZIP_HINT}", code="CorruptZip") from exc
    with archive:
        entries = archive.infolist()
        files = _check_entries(entries, limits)
        _check_layout(entries, directory_start)
        uncompressed, compressed = _check_sizes(entries, limits)
        manifest_entry = files.get(MANIFEST_NAME)
        text = _read_manifest(archive, manifest_entry, limits)
        manifest = parse_manifest(text, project=project, instance_types=instance_types)
        dockerfile = _check_dockerfile(files, manifest.build.dockerfile)
    return BundleReport(
        manifest=manifest,
        has_manifest_file=manifest_entry is not None,
        dockerfile=dockerfile,
        entry_count=len(entries),
        uncompressed_bytes=uncompressed,
        compressed_bytes=compressed,
    )


def _read_directory_record(fileobj: SeekableReader, limits: BundleLimits) -> int:
    """Where the central directory starts. The end record is read here first, before zipfile reads the
    whole directory, to refuse a huge one unread."""
    size = fileobj.seek(0, io.SEEK_END)
    window = min(size, _EOCD_SEARCH_BYTES)
    fileobj.seek(size - window)
    tail = fileobj.read(window)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        fileobj.seek(0)
        if fileobj.read(4) == b"PK\x03\x04":
            raise BundleRejected(
                "the zip has no end record: the upload was probably cut short; upload the bundle again",
                code="CorruptZip",
            )
        raise BundleRejected(
            "the bundle is not a zip file: upload a zip of your project folder's contents, made with "
            "cd project && zip -r ../bundle.zip .",
            code="NotAZip",
        )
    _, disk, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, at)
    start: int = size - window + at - cd_size
    locator = at - _ZIP64_LOCATOR.size
    if locator >= 0 and tail.startswith(b"PK\x06\x07", locator):
        record = locator - _ZIP64_EOCD.size
        if record < 0 or not tail.startswith(b"PK\x06\x06", record):
            raise BundleRejected(f"the zip's zip64 end record is missing: {_REZIP_HINT}", code="CorruptZip")
        _, _, _, _, disk, _, _, entries, cd_size, _ = _ZIP64_EOCD.unpack_from(tail, record)
        start = size - window + record - cd_size
    if disk != 0:
        raise BundleRejected("split (multi-part) zips are not supported: upload one .zip", code="CorruptZip")
    if start < 0:
        raise BundleRejected(f"the zip's central directory is cut off: {_REZIP_HINT}", code="CorruptZip")
    if entries > limits.max_entries:
        raise _too_many(entries, limits)
    if cd_size > limits.max_central_directory_bytes:
        raise BundleRejected(
            f"the zip's central directory is {cd_size} bytes (limit {limits.max_central_directory_bytes}): "
            "it has too many entries or very long names; leave data out of the bundle (put it in the data "
            "bucket) and keep file names short",
            code="TooManyEntries",
        )
    return start


def _too_many(count: int, limits: BundleLimits) -> BundleRejected:
    return BundleRejected(
        f"the bundle has {count} entries (limit {limits.max_entries}): leave data, virtual environments "
        "and caches out of it (training data belongs in the data bucket)",
        code="TooManyEntries",
    )


def _check_entries(entries: list[zipfile.ZipInfo], limits: BundleLimits) -> dict[str, zipfile.ZipInfo]:
    """Reject entries that could escape the build directory or that the build cannot unpack."""
    if len(entries) > limits.max_entries:
        raise _too_many(len(entries), limits)
    for info in entries:
        name = info.orig_filename
        problem = _path_problem(name)
        if problem:
            raise BundleRejected(
                f"entry {name!r} {problem}, so unpacking it could write outside the build directory: "
                f"{_REZIP_HINT}",
                code="UnsafePath",
            )
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise BundleRejected(
                f"entry {name!r} is a symbolic link, which could point outside the build: put the file "
                "itself in the bundle (zip follows links unless given -y/--symlinks)",
                code="Symlink",
            )
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleRejected(
                f"entry {name!r} is not a regular file or directory (a device, pipe or socket): remove it",
                code="SpecialFile",
            )
        if info.flag_bits & _ENCRYPTED:
            raise BundleRejected(
                f"entry {name!r} is encrypted and the build cannot unpack it: zip without a password",
                code="Encrypted",
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleRejected(
                f"entry {name!r} uses compression method {info.compress_type}; only deflate and stored "
                "are accepted: re-create the zip with the default (deflate) compression",
                code="UnsupportedCompression",
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise BundleRejected(
                f"entry {name!r} is stored uncompressed but declares {info.file_size} bytes in "
                f"{info.compress_size}: the zip is corrupt; {_REZIP_HINT}",
                code="CorruptZip",
            )
    files = {posixpath.normpath(info.filename): info for info in entries}
    if len(files) < len(entries):
        twice = [
            name for name, n in Counter(posixpath.normpath(i.filename) for i in entries).items() if n > 1
        ]
        raise BundleRejected(
            f"the bundle holds {twice[0]!r} more than once, and which copy the build would use is "
            f"undefined: {_REZIP_HINT}",
            code="DuplicateEntry",
        )
    return files


def _path_problem(name: str) -> str | None:
    if not name:
        return "has an empty name"
    if any(ord(char) < 32 for char in name):
        return "has a control character (such as NUL) in its name"
    if "\\" in name:
        return "has a backslash in its name (a directory separator to some tools, written by some on Windows)"
    if name.startswith("/"):
        return "has an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "has a '..' path component"
    return None


def _check_layout(entries: list[zipfile.ZipInfo], directory_start: int) -> None:
    """Each entry's data must lie before the central directory and apart from the next entry's header.

    The test uses the smallest possible extent (header + declared compressed size), so it is exact
    about what it rejects: entries sharing data (the overlapping-file zip bomb) or claiming bytes that
    are not there.
    """
    ordered = sorted(entries, key=lambda info: info.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None], strict=False):
        end = info.header_offset + _LOCAL_HEADER_BYTES + info.compress_size
        limit = following.header_offset if following else directory_start
        if end > limit and following is not None:
            raise BundleRejected(
                f"entries {info.orig_filename!r} and {following.orig_filename!r} overlap in the zip, a "
                f"zip bomb pattern: {_REZIP_HINT}",
                code="OverlappingEntries",
            )
        if end > limit:
            raise BundleRejected(
                f"entry {info.orig_filename!r} claims {info.compress_size} compressed bytes that are not "
                f"in the zip (truncated or corrupt): {_REZIP_HINT}",
                code="CorruptZip",
            )


def _check_sizes(entries: list[zipfile.ZipInfo], limits: BundleLimits) -> tuple[int, int]:
    """Totals within the limits, and no entry (nor the whole) compressed suspiciously well."""
    uncompressed = sum(info.file_size for info in entries)
    compressed = sum(info.compress_size for info in entries)
    if uncompressed > limits.max_uncompressed_bytes:
        raise BundleRejected(
            f"the bundle unpacks to {uncompressed} bytes (limit {limits.max_uncompressed_bytes}): leave "
            "data and model files out of it (training data belongs in the data bucket)",
            code="TooLarge",
        )
    sized = [(info.file_size, info.compress_size, repr(info.orig_filename)) for info in entries]
    for size, packed, what in [*sized, (uncompressed, compressed, "the bundle as a whole")]:
        ratio = size / max(packed, 1)
        if size >= limits.ratio_check_min_bytes and ratio > limits.max_compression_ratio:
            raise BundleRejected(
                f"{what} compresses {ratio:.0f}:1 (limit {limits.max_compression_ratio:.0f}:1), the mark "
                "of a zip bomb: leave generated or padded files out of the bundle",
                code="CompressionRatio",
            )
    return uncompressed, compressed


def _read_manifest(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo | None, limits: BundleLimits
) -> bytes | None:
    """The bytes of sagedock.toml, decompressed no further than its cap whatever the zip declares."""
    if info is None:
        return None
    if info.is_dir():
        raise ManifestInvalid(f"{MANIFEST_NAME} is a directory in the bundle: it must be a file")
    too_big = ManifestInvalid(
        f"{MANIFEST_NAME} is larger than {limits.max_manifest_bytes} bytes: it holds settings only; "
        "move data into the data bucket"
    )
    if info.file_size > limits.max_manifest_bytes:
        raise too_big
    try:
        with archive.open(info) as stream:
            data = stream.read(limits.max_manifest_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise BundleRejected(
            f"{MANIFEST_NAME} cannot be read from the zip ({exc}): {_REZIP_HINT}", code="CorruptZip"
        ) from exc
    if len(data) > limits.max_manifest_bytes:
        raise too_big
    return data


def _check_dockerfile(files: dict[str, zipfile.ZipInfo], path: str) -> str:
    info = files.get(path)
    if info is not None and not info.is_dir() and info.file_size > 0:
        return path
    if info is not None:
        problem = "is a directory" if info.is_dir() else "is empty"
        raise BundleRejected(
            f"{path!r} in the bundle {problem}: it must be your Dockerfile", code="NoDockerfile"
        )
    wanted = posixpath.basename(path).lower()
    elsewhere = sorted(
        name
        for name, found in files.items()
        if posixpath.basename(name).lower() == wanted and not found.is_dir()
    )
    if elsewhere:
        hint = (
            f"found {', '.join(repr(name) for name in elsewhere[:3])}: zip the contents of your project "
            f"folder rather than the folder itself, or set dockerfile = {elsewhere[0]!r} under [build] "
            f"in {MANIFEST_NAME}"
        )
    else:
        hint = (
            f"add a Dockerfile at the root of the zip, or set dockerfile under [build] in {MANIFEST_NAME} to "
            "its path inside the zip"
        )
    raise BundleRejected(f"no Dockerfile at {path!r} in the bundle; {hint}", code="NoDockerfile")
