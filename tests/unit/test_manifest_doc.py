"""docs/manifest.md lists exactly the keys of the Manifest model, each with the default the model gives."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from chalicelib.domain.inference import AsyncConfig, CaptureConfig
from chalicelib.domain.manifest import Manifest, ServerlessConfig, parse_manifest
from chalicelib.domain.rollout import AutoscalingConfig, UpdateConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"
ROW = re.compile(r"^\| `(?P<key>[a-z_.]+)` \| (?P<default>[^|]*) \|", re.M)
PROJECT = "iris"


def documented() -> dict[str, str]:
    """key -> the Default cell, from the Keys table."""
    return {m["key"]: m["default"].strip() for m in ROW.finditer(DOC.read_text())}


def section_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (directly or as `Model | None`), if it is a section."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def model_keys(model: type[BaseModel] = Manifest, prefix: str = "") -> list[str]:
    """Every leaf key of the schema as a dotted path (a key as the TOML writes it: `async`, not `async_`)."""
    keys: list[str] = []
    for field_name, field in model.model_fields.items():
        name = field.alias or field_name
        section = section_of(field.annotation)
        keys += model_keys(section, f"{prefix}{name}.") if section else [f"{prefix}{name}"]
    return keys


REQUIRED = object()  # a key of an optional table that the table must give


def toml(value: Any) -> str:
    """A default as written in the doc: TOML, with the project shown as <project>."""
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = f'"{value}"'
    elif isinstance(value, dict):
        text = "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    else:
        text = str(value)
    return text.replace(PROJECT, "<project>")


def model_defaults() -> dict[str, str]:
    """key -> the default a manifest-less bundle of project iris gets (serverless: its own defaults)."""
    values = parse_manifest(None, project=PROJECT).model_dump(by_alias=True)
    values["deploy"]["serverless"] = ServerlessConfig().model_dump()
    values["deploy"]["async"] = AsyncConfig().model_dump()
    values["deploy"]["capture"] = CaptureConfig().model_dump()
    values["deploy"]["update"] = UpdateConfig().model_dump()
    values["deploy"]["autoscaling"] = {
        name: REQUIRED if field.is_required() else field.default
        for name, field in AutoscalingConfig.model_fields.items()
    }
    flat: dict[str, str] = {}
    for key in model_keys():
        value: Any = values
        for part in key.split("."):
            value = value[part]
        flat[key] = "required" if value is REQUIRED else "none" if value is None else f"`{toml(value)}`"
    return flat


def test_the_doc_lists_every_key_of_the_model_and_no_other() -> None:
    assert sorted(documented()) == sorted(model_keys())


def test_each_documented_default_is_the_models() -> None:
    assert documented() == model_defaults()


def test_every_error_code_the_doc_names_is_one_the_code_raises() -> None:
    text = DOC.read_text()
    violations = " ".join(row.rsplit("|", 2)[-2] for row in text.splitlines() if ROW.match(row))
    codes = set(re.findall(r"`([A-Z][A-Za-z]+)`", violations))
    codes |= set(re.findall(r"^\| `([A-Z][A-Za-z]+)` \|", text, re.M))  # the table of errors at validate
    chalicelib = DOC.parents[1] / "chalicelib"
    sources = "".join(
        (chalicelib / name).read_text()
        for name in (
            "domain/preflight_rules.py",
            "adapters/s3_channels.py",
            "domain/errors.py",
            "domain/bundle.py",
        )
    )
    assert {"InvalidManifest", "EmptyChannel", "EndpointOwned", "NameTooLong", "NoDockerfile"} <= codes
    assert [code for code in sorted(codes) if f'"{code}"' not in sources] == []
