"""The host's pip configuration and CA bundle, handed to image builds as a user behind a proxy would.

pip inside a build reads one generated `/etc/pip.conf`: the host's config files merged in pip's order, then
its `PIP_*` variables, with the CA bundle moved to a path of its own (an image's `ca-certificates` package
rewrites /etc/ssl/certs). The local paths those settings name (find-links, file:// indexes with their
parent, as their pages link to files beside them, constraints) are mounted read-only at the same paths;
settings naming a path that does not exist are dropped.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONFIG_FILES = (
    Path("/etc/pip.conf"),
    Path("/etc/xdg/pip/pip.conf"),
    Path.home() / ".config" / "pip" / "pip.conf",
    Path.home() / ".pip" / "pip.conf",
)
CA_BUNDLE_IN_BUILD = "/run/sagedock/host-ca.crt"
PATH_KEYS = ("find-links", "extra-index-url", "index-url", "constraint", "requirement", "cert")


def _merged(files: tuple[Path, ...], env: Mapping[str, str]) -> dict[str, str]:
    """The [global] settings pip would use: files in order, later ones win, then PIP_* variables."""
    settings: dict[str, str] = {}
    for path in files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except (configparser.Error, OSError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                settings.update(dict(parser.items(section)))
    for name, value in env.items():
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            settings[name[4:].lower().replace("_", "-")] = value
    if "cert" not in settings:
        bundle = env.get("SSL_CERT_FILE") or env.get("REQUESTS_CA_BUNDLE")
        if bundle:
            settings["cert"] = bundle
    return settings


def _local_path(value: str) -> Path | None:
    """The local file a setting's value names (a path or a file:// URL); None for a remote URL."""
    if value.startswith("file://"):
        return Path(unquote(urlsplit(value).path))
    if "://" in value:
        return None
    return Path(value)


def build_context(
    directory: Path, files: tuple[Path, ...] = CONFIG_FILES, env: Mapping[str, str] | None = None
) -> list[str]:
    """Write `directory/pip.conf`; the engine's `-v` arguments that give it (and its paths) to a build."""
    settings = _merged(files, os.environ if env is None else env)
    mounts: dict[str, str] = {}
    kept: dict[str, str] = {}
    for key, value in settings.items():
        if key not in PATH_KEYS:
            kept[key] = value
            continue
        values = []
        for item in value.split():
            path = _local_path(item)
            if path is None:
                values.append(item)
            elif path.exists():
                if key == "cert":
                    mounts[str(path.resolve())] = CA_BUNDLE_IN_BUILD
                    item = CA_BUNDLE_IN_BUILD
                else:
                    # an index's pages link to files beside it (../files/...): mount its parent too
                    source = path.parent if key.endswith("index-url") or not path.is_dir() else path
                    mounts[str(source.resolve())] = str(source)
                values.append(item)
        if values:
            kept[key] = " ".join(values)
    directory.mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser(interpolation=None)
    config["global"] = kept
    with (directory / "pip.conf").open("w") as handle:
        config.write(handle)
    mounts[str(directory / "pip.conf")] = "/etc/pip.conf"
    return [arg for source, target in mounts.items() for arg in ("-v", f"{source}:{target}:ro")]
