"""What inspecting a bundle costs in S3 reads: bytes, GETs and time for 1 MB to 1 GB bundles, on moto.

Usage: python bench/bench_bundle_bytes.py [--sizes 1,100,1024] [--repeat 5]   (sizes in MiB)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.adapters.s3_bundle import S3Bundles  # noqa: E402
from chalicelib.domain.bundle import BundleLimits  # noqa: E402
from tests.integration.test_bundle_s3 import observe, write_random_bundle  # noqa: E402

REGION = "us-east-1"
BUCKET = "sagedock-bench"
MiB = 1024 * 1024
LIMITS = BundleLimits(max_entries=10_000, max_uncompressed_bytes=4 * 1024 * MiB, max_compression_ratio=200)
COLUMNS = ("bundle", "manifest", "object bytes", "fetched", "GETs", "fetched/size", "first ms", "median ms")


def measure(client: Any, path: Path, key: str, repeat: int) -> tuple[int, int, int, float, float]:
    """Upload one bundle, inspect it `repeat` times; the bytes, GETs and times of the inspection."""
    client.upload_file(str(path), BUCKET, key)
    size = path.stat().st_size
    traffic = observe(client)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        _, stats = S3Bundles(client).inspect(BUCKET, key, size=size, limits=LIMITS, project="bench")
        times.append((time.perf_counter() - start) * 1000)
    if traffic.bytes_received != stats.bytes_fetched * repeat:
        raise SystemExit(
            f"counters disagree: reader {stats.bytes_fetched} x {repeat}, S3 {traffic.bytes_received}"
        )
    return size, stats.bytes_fetched, stats.requests, times[0], statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1024", help="bundle sizes in MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="inspections per bundle (the median is shown)")
    options = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(name, value)

    rows = []
    with mock_aws(), tempfile.TemporaryDirectory() as scratch:
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        for mib in (int(size) for size in options.sizes.split(",")):
            for manifest_last in (False, True):
                path = Path(scratch) / "bundle.zip"
                write_random_bundle(path, mib * MiB, manifest_last=manifest_last)
                key = f"bundles/bench/{mib}-{manifest_last}.zip"
                size, fetched, gets, first, median = measure(client, path, key, options.repeat)
                path.unlink()
                client.delete_object(Bucket=BUCKET, Key=key)
                placement = "last" if manifest_last else "first"
                rows.append(
                    (
                        f"{mib} MiB",
                        placement,
                        f"{size:,}",
                        f"{fetched:,}",
                        str(gets),
                        f"{fetched / size:.6f}",
                        f"{first:.1f}",
                        f"{median:.1f}",
                    )
                )
                print(f"measured {mib} MiB, manifest {placement}", file=sys.stderr)

    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
    for row in (COLUMNS, *rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
