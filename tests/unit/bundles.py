"""Crafted bundles for the inspector's tests: good ones, and each bad kind a user or attacker could send."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from collections.abc import Iterable

DOCKERFILE = 'FROM python:3.11-slim\nCOPY . /opt/program\nENTRYPOINT ["python", "/opt/program/run.py"]\n'
TRAIN = "print('training')\n"

Entry = tuple[str | zipfile.ZipInfo, bytes | str]

# Offsets of the fields a test may rewrite in a central directory record (APPNOTE 4.3.12).
_CENTRAL_FIELDS = {
    "flag_bits": (8, "<H"),
    "compress_type": (10, "<H"),
    "compress_size": (20, "<L"),
    "file_size": (24, "<L"),
    "external_attr": (38, "<L"),
    "header_offset": (42, "<L"),
}


def make_zip(
    entries: Iterable[Entry], *, compression: int = zipfile.ZIP_DEFLATED, comment: bytes = b""
) -> bytes:
    """A zip of the entries in order (names may repeat), as bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.comment = comment
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def project_zip(*extra: Entry, manifest: str | None = None, dockerfile: str = "Dockerfile") -> bytes:
    """A well-formed bundle: a Dockerfile, a training script, an optional sagedock.toml, then `extra`."""
    entries: list[Entry] = [(dockerfile, DOCKERFILE), ("run.py", TRAIN)]
    if manifest is not None:
        entries.insert(0, ("sagedock.toml", manifest))
    return make_zip([*entries, *extra])


def special_entry(name: str, kind: int, data: bytes | str = b"") -> Entry:
    """An entry whose unix mode says symlink (stat.S_IFLNK), fifo, device..., as `zip -y` would store it."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | 0o777) << 16
    return info, data


def symlink(name: str, target: str) -> Entry:
    """A symbolic link entry: the link's target is its data."""
    return special_entry(name, stat.S_IFLNK, target)


def raw_name_entry(name: str, data: bytes | str = b"x") -> Entry:
    """An entry whose stored name is exactly `name`, NUL bytes included (ZipInfo() would cut at a NUL)."""
    info = zipfile.ZipInfo("placeholder")
    info.filename = name
    return info, data


def _central_records(data: bytes) -> dict[str, int]:
    """The offset of each central directory record, by entry name."""
    end = data.rfind(b"PK\x05\x06")
    count, _, offset = struct.unpack_from("<HLL", data, end + 10)
    records = {}
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack_from("<3H", data, offset + 28)
        records[data[offset + 46 : offset + 46 + name_length].decode("utf-8", "replace")] = offset
        offset += 46 + name_length + extra_length + comment_length
    return records


def patch_entry(data: bytes, name: str, **fields: int) -> bytes:
    """Rewrite fields of one entry's central directory record (what a hand-crafted zip could say)."""
    patched = bytearray(data)
    record = _central_records(data)[name]
    for field, value in fields.items():
        offset, fmt = _CENTRAL_FIELDS[field]
        struct.pack_into(fmt, patched, record + offset, value)
    return bytes(patched)


def patch_entry_count(data: bytes, count: int) -> bytes:
    """Make the end record declare `count` entries, whatever the central directory holds."""
    patched = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", patched, end + 8, count, count)
    return bytes(patched)


def entry_info(data: bytes, name: str) -> zipfile.ZipInfo:
    """The central directory's view of one entry."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.getinfo(name)
