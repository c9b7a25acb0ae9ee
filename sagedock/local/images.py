"""Local images by digest: what the build executor produces and the train and host executors run.

An image is the directory `build_local_image` makes; the store keeps it under its content-addressed digest,
the same digest the emulator's ECR records, so `repo@sha256:...` resolves to exactly what was built.
"""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagedock.image import LocalImage, build_local_image, load_local_image


@dataclass(frozen=True)
class ImageUri:
    """A registry image reference: `registry/repository[:tag][@sha256:...]`."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None


def parse_image_uri(uri: str) -> ImageUri:
    """Split an image reference; ValueError when it is not one."""
    name, _, digest = uri.strip().partition("@")
    registry, slash, path = name.partition("/")
    if not slash or not path or (digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest)):
        raise ValueError(f"not an image reference: {uri!r}")
    repository, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    return ImageUri(registry, repository, tag if colon else None, digest or None)


class ImageStore:
    """Built images on disk, one directory per digest."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def build(
        self, context: Path, *, dockerfile: str = "Dockerfile", build_args: Mapping[str, str] | None = None
    ) -> LocalImage:
        """Build `context` and keep the result under its digest (an identical image is stored once)."""
        scratch = self._root / f".building-{uuid.uuid4().hex}"
        try:
            image = build_local_image(context, scratch, dockerfile=dockerfile, build_args=build_args)
            final = self._path(image.digest)
            with self._lock:
                if not final.exists():
                    scratch.rename(final)
            return load_local_image(final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def get(self, digest: str) -> LocalImage:
        """The image with this digest; KeyError when none was built."""
        path = self._path(digest)
        if not path.is_dir():
            raise KeyError(digest)
        return load_local_image(path)

    def pull(self, uri: str, ecr: Any) -> LocalImage:
        """The image a registry reference names, found through the emulator's ECR as SageMaker pulls it.

        ValueError when `uri` is not an image reference; LookupError when ECR or this store lacks it.
        """
        ref = parse_image_uri(uri)
        image_id = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag or "latest"}
        try:
            described = ecr.describe_images(repositoryName=ref.repository, imageIds=[image_id])
            return self.get(ref.digest or described["imageDetails"][0]["imageDigest"])
        except Exception as exc:
            raise LookupError(f"{uri} is not in the registry or was not built here") from exc

    def _path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise KeyError(digest)
        return self._root / hexdigest
