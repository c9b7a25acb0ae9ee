"""docs/openapi.json and docs/api.md describe exactly the routes the app serves, and the document is the one
infra/openapi.py builds from the models (regenerate with `python -m infra.openapi`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

from infra import openapi

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def app_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every route the Chalice app serves."""
    import app

    return {(method, path) for path, entries in app.app.routes.items() for method in entries}


def document() -> dict:
    return json.loads(openapi.DOCUMENT.read_text())


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert openapi.DOCUMENT.read_text() == openapi.render(), (
        "docs/openapi.json is stale: run `.venv/bin/python -m infra.openapi` and commit it"
    )


def test_the_document_has_exactly_the_apps_routes_and_methods() -> None:
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == app_routes(), "add the route to infra/openapi.py (and docs/api.md), or drop it there"


def test_every_schema_is_valid_json_schema_and_every_ref_resolves() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(schemas), refs - set(schemas)


def test_every_operation_documents_its_success_and_errors_in_the_error_schema() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"200", "202"} & set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_the_path_parameters_are_the_routes_own() -> None:
    for path, item in document()["paths"].items():
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path


# --- docs/api.md --------------------------------------------------------------------------------------
def test_api_md_documents_every_route_and_only_the_routes() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    headings = set(re.findall(r"^### `([A-Z]+) (/\S*)`", text, re.M))
    routes = app_routes()
    assert headings == routes, (
        f"docs/api.md lacks {sorted(routes - headings)}, has extra {sorted(headings - routes)}"
    )


def test_api_md_names_every_error_status_the_document_uses() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    statuses = {
        status
        for item in document()["paths"].values()
        for operation in item.values()
        for status in operation["responses"]
        if status[0] in "45" and status[1:].isdigit()
    }
    for status in statuses | {"405"}:
        assert re.search(rf"\b{status}\b", text), f"docs/api.md does not explain status {status}"
