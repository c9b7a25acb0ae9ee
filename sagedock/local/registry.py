"""ECR's data plane in container mode: Debian's `docker-registry` (the reference Registry V2) on loopback.

Builds push to it and jobs and endpoints pull from it by digest, so the digest that reaches training and
the model is the registry's manifest digest, as with ECR. The engine reaches it through a
registries.conf of its own (CONTAINERS_REGISTRIES_CONF) that marks it plain HTTP.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from sagedock.programs import free_port

READY_WITHIN = 30.0
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class RegistryError(Exception):
    """The registry could not start, or did not answer as a Registry V2 does."""


def find_registry() -> str | None:
    """The `docker-registry` program (Debian's package of the reference registry), if installed."""
    return shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry", os.X_OK) else None
    )


class LocalRegistry:
    """A Registry V2 on 127.0.0.1:<free port>, storage under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>`: the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def registries_conf(self) -> Path:
        """The engine's registries.conf: this registry over plain HTTP, no short-name search."""
        return self.root / "registries.conf"

    def start(self) -> str:
        """Start it and wait until /v2/ answers; its host."""
        program = find_registry()
        if program is None:
            raise RegistryError("docker-registry is not installed (Debian: apt-get install docker-registry)")
        self.port = free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "storage")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host},
        }
        (self.root / "config.yml").write_text(json.dumps(config, indent=2))
        self.registries_conf.write_text(
            f'unqualified-search-registries = []\n\n[[registry]]\nlocation = "{self.host}"\ninsecure = true\n'
        )
        log = (self.root / "registry.log").open("ab")
        self._process = subprocess.Popen(
            [program, "serve", str(self.root / "config.yml")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RegistryError(
                    f"docker-registry exited with {self._process.returncode}: {self._log_tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self._get("/v2/")[0] == 200:
                    return self.host
            time.sleep(0.1)
        self.stop()
        raise RegistryError(f"docker-registry did not answer within {READY_WITHIN:.0f}s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the registry (its storage stays: it is the state dir's)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "registry.log").read_text(errors="replace")[-2000:]
        return ""

    def _get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers={"Accept": ", ".join(MANIFEST_TYPES)})
            reply = connection.getresponse()
            return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
        finally:
            connection.close()

    def manifest(self, repository: str, reference: str) -> tuple[str, str, bytes]:
        """(digest, media type, bytes) of a manifest, by tag or digest, as the registry serves it."""
        status, headers, body = self._get(f"/v2/{repository}/manifests/{reference}")
        if status != 200:
            raise LookupError(f"{self.host}/{repository}:{reference}: the registry answered {status}")
        media_type = headers.get("content-type", MANIFEST_TYPES[0]).split(";")[0]
        return headers.get("docker-content-digest", ""), media_type, body
