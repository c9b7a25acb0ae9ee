"""The base image Dockerfiles start FROM, built where no registry can be pulled (`make base-image`).

It bootstraps Debian bookworm with mmdebstrap (python3.11, venv, pip, CA certificates), makes `python` and
`pip` resolve as in the official `python:3.11-slim-bookworm` (pip installs system-wide there), and imports
the tarball under that name. The tarball is cached under a key made of the recipe, so a second run only
imports it (or does nothing when the engine already holds the image built from the same recipe).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("SAGEDOCK_CACHE_DIR", "/var/cache/sagedock"))
KEY_LABEL = "org.sagedock.base-recipe"


class BaseImageError(Exception):
    """The base image could not be built or imported."""


@dataclass(frozen=True)
class Recipe:
    """Everything the image depends on: its hash names the cached tarball."""

    name: str = "python:3.11-slim-bookworm"
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    packages: tuple[str, ...] = (
        "python3",
        "python3-venv",
        "python3-pip",
        "python-is-python3",
        "ca-certificates",
    )
    env: tuple[str, ...] = (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        "PYTHON_VERSION=3.11",
        # The official image's pip installs into the system interpreter; Debian's refuses without this.
        "PIP_BREAK_SYSTEM_PACKAGES=1",
    )
    cmd: tuple[str, ...] = ("python3",)
    # Hooks run by mmdebstrap on the finished tree ($1): slim it like the official image.
    customize: tuple[str, ...] = field(
        default=(
            'ln -sf /usr/bin/pip3 "$1/usr/local/bin/pip"',
            'ln -sf /usr/bin/python3 "$1/usr/local/bin/python3"',
            'ln -sf /usr/bin/python3 "$1/usr/local/bin/python"',
            'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
            'rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/*',
        )
    )

    @property
    def key(self) -> str:
        """A short hash of the recipe (and of this builder's version of it)."""
        text = json.dumps({"v": 1, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def engine_has(engine: str, recipe: Recipe) -> bool:
    """Whether the engine holds the image, built from this very recipe."""
    probe = subprocess.run(
        [engine, "image", "inspect", "--format", '{{ index .Labels "' + KEY_LABEL + '" }}', recipe.name],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == recipe.key


def bootstrap(recipe: Recipe, tarball: Path) -> None:
    """Write the root file system tarball with mmdebstrap (atomically: a partial tarball is never cached)."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise BaseImageError("mmdebstrap is not installed (Debian: apt-get install mmdebstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    argv = [
        mmdebstrap,
        "--variant=minbase",
        "--format=tar",
        "--include=" + ",".join(recipe.packages),
        *(f"--customize-hook={hook}" for hook in recipe.customize),
        recipe.suite,
        str(partial),
        recipe.mirror,
    ]
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BaseImageError(f"mmdebstrap exited with {done.returncode}")
    partial.replace(tarball)


def import_image(engine: str, recipe: Recipe, tarball: Path) -> None:
    """Import the tarball under the recipe's name, with the ENV, CMD and recipe label an image carries."""
    changes = [f"ENV {pair}" for pair in recipe.env]
    changes += [f"CMD {json.dumps(list(recipe.cmd))}", f"LABEL {KEY_LABEL}={recipe.key}"]
    argv = [engine, "import", *(arg for c in changes for arg in ("--change", c)), str(tarball), recipe.name]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BaseImageError(f"{engine} import failed: {done.stderr.strip()}")


def ensure(engine: str = "podman", recipe: Recipe | None = None, cache: Path = DEFAULT_CACHE) -> str:
    """Make the engine hold the base image; says what it did (present, imported from cache, built)."""
    recipe = recipe or Recipe()
    if engine_has(engine, recipe):
        return f"{recipe.name}: present (recipe {recipe.key})"
    tarball = cache / f"base-{recipe.key}.tar"
    built = not tarball.is_file()
    if built:
        bootstrap(recipe, tarball)
        for stale in cache.glob("base-*.tar"):
            if stale != tarball:
                stale.unlink(missing_ok=True)  # another recipe's: never imported again
    import_image(engine, recipe, tarball)
    return f"{recipe.name}: {'built' if built else 'imported from'} {tarball} (recipe {recipe.key})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagedock.local.baseimage", description=__doc__)
    parser.add_argument("--engine", default="podman", help="the engine's command (default: podman)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"tarball cache ({DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    try:
        print(ensure(args.engine, cache=args.cache))
    except (BaseImageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
