"""Builds the registry_auth deployment zip: the runtime modules only, byte-for-byte reproducible.

Usage: python -m registry_auth.build OUT.zip   (prints the zip's size and sha256, to name its S3 key by)
This module itself is not in the zip: Lambda needs only what the handler imports.
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RUNTIME_MODULES = ("__init__.py", "handler.py")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources always give the same zip


def deployment_zip() -> bytes:
    """The zip Lambda runs: registry_auth/__init__.py and registry_auth/handler.py, nothing else."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in RUNTIME_MODULES:
            entry = zipfile.ZipInfo(f"{PACKAGE.name}/{name}", date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, (PACKAGE / name).read_bytes())
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Write the zip to the given path."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__.splitlines()[2] if __doc__ else "usage: python -m registry_auth.build OUT.zip")
        return 2
    data = deployment_zip()
    Path(args[0]).write_bytes(data)
    print(f"{args[0]}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
