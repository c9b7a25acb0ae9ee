"""The `docker` and `aws` commands a buildspec runs, on the local CodeBuild's PATH in container mode.

`docker` runs the engine (podman) with what differs made as Docker does: a push records the registry's
manifest digest, which `docker inspect` then lists in RepoDigests (podman lists the digest of its own
stored manifest); builds get the host network and the host's pip configuration (sagedock.local.hostpip)
and no remote `--cache-from` (the engine's layer cache serves); `login` to the local registry, which
needs none, succeeds; containers are labelled with the local cloud that owns them. `aws ecr
get-login-password` answers from the emulator's ECR; nothing else of the AWS CLI is offered.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

from sagedock.local.containers import LABEL
from sagedock.local.hostpip import build_context

ENGINE_VAR = "SAGEDOCK_ENGINE_CLI"
STATE_VAR = "SAGEDOCK_SHIM_STATE"
REGISTRY_VAR = "SAGEDOCK_LOCAL_REGISTRY"
OWNER_VAR = "SAGEDOCK_CONTAINER_OWNER"


def install(bin_dir: Path) -> Path:
    """Write `docker` and `aws` into bin_dir (put it first on the build's PATH); bin_dir."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("docker", "aws"):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m sagedock.local.shims {name} \"$@\"\n")
        script.chmod(0o755)
    return bin_dir


def _state() -> Path:
    path = Path(os.environ[STATE_VAR])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pushed() -> dict[str, dict[str, str]]:
    path = _state() / "pushed.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _repository(ref: str) -> str:
    name = ref.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _without_cache_from(args: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--cache-from":
            skip = True
        elif not arg.startswith("--cache-from="):
            kept.append(arg)
    return kept


def _image_id(engine: str, ref: str) -> str | None:
    done = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def docker(args: list[str]) -> int:
    """`docker ARGS` as the buildspec means it."""
    engine = os.environ[ENGINE_VAR]
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "login":
        secret = sys.stdin.read() if "--password-stdin" in rest else ""
        if rest and rest[-1] == os.environ.get(REGISTRY_VAR):
            print("Login Succeeded")  # the local registry asks for no credentials
            return 0
        return subprocess.run([engine, "login", *rest], input=secret, text=True).returncode
    if command == "build":
        extra = ["--network", "host", *build_context(_state() / "pip")]
        return subprocess.run([engine, "build", *extra, *_without_cache_from(rest)]).returncode
    if command == "run":
        owner = os.environ.get(OWNER_VAR, "unknown")
        return subprocess.run([engine, "run", "--label", f"{LABEL}={owner}", *rest]).returncode
    if command == "push" and rest:
        return _push(engine, rest)
    if command == "inspect" and any("RepoDigests" in arg for arg in rest):
        return _repo_digests(engine, rest[-1])
    return subprocess.run([engine, command, *rest]).returncode


def _push(engine: str, args: list[str]) -> int:
    ref = args[-1]
    digest_file = _state() / "digest"
    done = subprocess.run([engine, "push", "--digestfile", str(digest_file), *args])
    if done.returncode != 0:
        return done.returncode
    digest = digest_file.read_text().strip()
    pushed = _pushed()
    pushed[ref] = {"digest": digest, "id": _image_id(engine, ref) or ""}
    (_state() / "pushed.json").write_text(json.dumps(pushed, indent=2))
    print(f"{ref.rsplit(':', 1)[-1]}: digest: {digest}")
    return 0


def _repo_digests(engine: str, ref: str) -> int:
    """RepoDigests as Docker has them after a push: `<repository>@<the registry's digest>`, one a line."""
    image_id = _image_id(engine, ref)
    if image_id is None:
        print(f"Error: no such image: {ref}", file=sys.stderr)
        return 1
    for pushed_ref, entry in _pushed().items():
        if entry["id"] == image_id:
            print(f"{_repository(pushed_ref)}@{entry['digest']}")
    return 0


def aws(args: list[str]) -> int:
    """`aws ecr get-login-password [--region R]`: the password of the emulator's ECR authorization token."""
    if args[:2] != ["ecr", "get-login-password"]:
        print(
            f"aws: only `ecr get-login-password` is available in the local cloud, not {args[:2]}",
            file=sys.stderr,
        )
        return 252
    import boto3

    region = args[args.index("--region") + 1] if "--region" in args[:-1] else None
    token = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    print(base64.b64decode(token["authorizationToken"]).decode().partition(":")[2])
    return 0


if __name__ == "__main__":
    name, *arguments = sys.argv[1:]
    sys.exit(docker(arguments) if name == "docker" else aws(arguments))
