"""The login registry_auth returns opens a real Docker Registry HTTP API V2 over TLS, and nothing else does.

The test starts Debian's `docker-registry` (the reference registry, distribution) on loopback with htpasswd
basic auth and a certificate from a CA it creates, keeps the login in (emulated) Secrets Manager, and has
the handler hand it over as SageMaker would receive it. With that login it pushes an image (config blob,
layer blob, manifest) through the registry API and pulls the manifest back by digest.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import http.client
import io
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto import mock_aws

from registry_auth import handler as registry_auth
from sagedock.local.images import parse_image_uri

REGISTRY = shutil.which("docker-registry") or next(
    (path for path in ("/usr/bin/docker-registry",) if os.access(path, os.X_OK)), None
)
HTPASSWD = shutil.which("htpasswd")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        REGISTRY is None,
        reason="docker-registry is not installed (Debian: apt-get install docker-registry apache2-utils)",
    ),
    pytest.mark.skipif(
        HTPASSWD is None, reason="htpasswd is not installed (Debian: apt-get install apache2-utils)"
    ),
]

USERNAME = "sagemaker-puller"
REPOSITORY = "sagedock/iris"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
READY_WITHIN_SECONDS = 30.0


@dataclass(frozen=True)
class Response:
    """An HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


@dataclass(frozen=True)
class Registry:
    """A running registry: where it listens and how to talk to it over TLS trusting only the test's CA."""

    host: str
    port: int
    context: ssl.SSLContext

    def request(
        self,
        method: str,
        target: str,
        *,
        login: tuple[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        headers = dict(headers or {})
        if login is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=10)
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()


# --- fixtures: a CA and certificate, the htpasswd file, the registry process, the login via the handler


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None
) -> x509.CertificateBuilder:
    """A day-long certificate of `key` for `subject` by `issuer` (itself when None), not signed yet."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _write_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signs for 127.0.0.1 and localhost: (ca.pem, cert.pem, key.pem)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key_usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    ca_cert = (
        _certificate("sagedock test CA", ca_key, None)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
                **key_usage,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = (
        _certificate("localhost", server_key, ca_cert.subject)
        .add_extension(x509.SubjectAlternativeName(loopback), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


def _write_htpasswd(path: Path, username: str, password: str) -> None:
    """A bcrypt entry (the only scheme the registry accepts), the password given on stdin, not argv."""
    assert HTPASSWD is not None
    entry = subprocess.run(
        [HTPASSWD, "-n", "-i", "-B", username], input=password, capture_output=True, text=True, check=True
    ).stdout
    assert entry.startswith(f"{username}:$2")
    path.write_text(entry.strip() + "\n")


def _wait_until_ready(process: subprocess.Popen[bytes], registry: Registry, log: Path) -> None:
    """Poll GET /v2/ until the registry answers (401 without a login), the process dies, or time runs out."""
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if registry.request("GET", "/v2/").status == 401:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    pytest.fail(
        f"docker-registry did not answer within {READY_WITHIN_SECONDS:.0f}s:\n{log.read_text()[-4000:]}"
    )


@pytest.fixture(scope="module")
def password() -> str:
    return "pw-" + secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, password: str) -> Iterator[Registry]:
    """Given docker-registry on a free loopback port: TLS from the test CA, htpasswd auth, storage in tmp."""
    assert REGISTRY is not None
    directory = tmp_path_factory.mktemp("registry")
    ca_pem, cert_pem, key_pem = _write_tls(directory)
    _write_htpasswd(directory / "htpasswd", USERNAME, password)
    port = _free_port()
    config = {  # JSON is YAML, which is what the registry reads
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(cert_pem), "key": str(key_pem)},
        },
        "auth": {"htpasswd": {"realm": "sagedock-test", "path": str(directory / "htpasswd")}},
    }
    (directory / "config.yml").write_text(json.dumps(config, indent=2))
    context = ssl.create_default_context(cafile=str(ca_pem))
    running = Registry("127.0.0.1", port, context)
    log = directory / "registry.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [REGISTRY, "serve", str(directory / "config.yml")],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_until_ready(process, running, log)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def login(password: str) -> tuple[str, str]:
    """The login as SageMaker gets it: stored in Secrets Manager, returned by the registry_auth handler."""
    saved = {name: os.environ.get(name) for name in ("AWS_DEFAULT_REGION", registry_auth.SECRET_ID_ENV)}
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    registry_auth.clear_cache()
    try:
        with mock_aws():
            arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
                Name="sagedock/registry",
                SecretString=json.dumps({"username": USERNAME, "password": password}),
            )["ARN"]
            os.environ[registry_auth.SECRET_ID_ENV] = arn
            credentials = registry_auth.handler({}, None)["Credentials"]
    finally:
        registry_auth.clear_cache()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return credentials["Username"], credentials["Password"]


# --- an image, built in memory: a layer (gzipped tar), its config, and the manifest naming both by digest ---


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer() -> tuple[bytes, bytes]:
    """(the uncompressed tar, the gzipped layer blob) holding one executable `serve` script."""
    script = b"#!/bin/sh\nexec python3 -m predictor\n"
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("opt/program/serve")
        info.size, info.mode, info.mtime = len(script), 0o755, 0
        archive.addfile(info, io.BytesIO(script))
    tar = tar_buffer.getvalue()
    return tar, gzip.compress(tar, mtime=0)


def _image() -> tuple[bytes, bytes, bytes]:
    """(config blob, layer blob, manifest) of a one-layer linux/amd64 image."""
    tar, layer = _layer()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/opt/program/serve"], "WorkingDir": "/opt/program"},
            "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]},
            "history": [{"created_by": "sagedock test"}],
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _digest(layer),
                }
            ],
        },
        indent=3,  # the registry must hand back these exact bytes, whitespace and all
    ).encode()
    return config, layer, manifest


def _push_blob(registry: Registry, login: tuple[str, str], blob: bytes) -> str:
    """Upload a blob: POST starts an upload session, PUT to its Location with ?digest= completes it."""
    started = registry.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/", login=login, body=b"")
    assert started.status == 202, started.body
    location = urlsplit(started.headers["Location"])
    digest = _digest(blob)
    target = (
        f"{location.path}?{location.query}&digest={digest}"
        if location.query
        else f"{location.path}?digest={digest}"
    )
    finished = registry.request(
        "PUT", target, login=login, body=blob, headers={"Content-Type": "application/octet-stream"}
    )
    assert finished.status == 201, finished.body
    assert finished.headers["Docker-Content-Digest"] == digest
    return digest


# --- the tests --------------------------------------------------------------------------------------------


def test_the_login_from_the_handler_opens_the_registry(registry: Registry, login: tuple[str, str]) -> None:
    response = registry.request("GET", "/v2/", login=login)

    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(None, id="no-login"),
        pytest.param((USERNAME, "not-the-password"), id="wrong-password"),
        pytest.param(("someone-else", "not-the-password"), id="wrong-username"),
        pytest.param((USERNAME, ""), id="empty-password"),
    ],
)
def test_anything_else_is_refused(registry: Registry, login: tuple[str, str], attempt: Any) -> None:
    response = registry.request("GET", "/v2/", login=attempt)

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="sagedock-test"')


def test_a_password_one_character_short_is_refused(registry: Registry, login: tuple[str, str]) -> None:
    username, password = login

    assert registry.request("GET", "/v2/", login=(username, password[:-1])).status == 401


def test_the_registry_is_served_over_tls_only_to_clients_trusting_its_ca(registry: Registry) -> None:
    untrusting = Registry(registry.host, registry.port, ssl.create_default_context())

    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.request("GET", "/v2/")


def test_an_image_pushed_with_the_login_is_pulled_back_by_digest(
    registry: Registry, login: tuple[str, str]
) -> None:
    config, layer, manifest = _image()
    config_digest = _push_blob(registry, login, config)
    layer_digest = _push_blob(registry, login, layer)
    for digest, size in ((config_digest, len(config)), (layer_digest, len(layer))):
        exists = registry.request("HEAD", f"/v2/{REPOSITORY}/blobs/{digest}", login=login)
        assert exists.status == 200
        assert int(exists.headers["Content-Length"]) == size

    pushed = registry.request(
        "PUT",
        f"/v2/{REPOSITORY}/manifests/run-0001",
        login=login,
        body=manifest,
        headers={"Content-Type": MANIFEST_V2},
    )
    assert pushed.status == 201, pushed.body
    manifest_digest = pushed.headers["Docker-Content-Digest"]
    assert manifest_digest == _digest(manifest)

    # What the pipeline hands SageMaker: host/repository@sha256:..., never a tag.
    # The image is pulled back through the reference as an image-reference parser reads it.
    image = parse_image_uri(f"{registry.host}:{registry.port}/{REPOSITORY}@{manifest_digest}")
    assert (image.registry, image.repository, image.tag) == (
        f"{registry.host}:{registry.port}",
        REPOSITORY,
        None,
    )
    repository, digest = image.repository, image.digest

    pulled = registry.request(
        "GET", f"/v2/{repository}/manifests/{digest}", login=login, headers={"Accept": MANIFEST_V2}
    )
    assert pulled.status == 200
    assert pulled.body == manifest
    assert pulled.headers["Docker-Content-Digest"] == manifest_digest
    assert pulled.headers["Content-Type"] == MANIFEST_V2

    blob = registry.request("GET", f"/v2/{repository}/blobs/{layer_digest}", login=login)
    assert blob.status == 200
    assert blob.body == layer

    anonymous = registry.request(
        "GET", f"/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_V2}
    )
    assert anonymous.status == 401
