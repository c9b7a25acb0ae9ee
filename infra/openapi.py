"""The HTTP API's OpenAPI 3.1 document, built from the models the routes parse and return.

`python -m infra.openapi` writes docs/openapi.json; tests/unit/test_openapi.py fails when the file, the
app's routes or the models drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from chalicelib.domain import inference, names
from chalicelib.domain.models import Run
from chalicelib.http import api, inference_routes

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": sorted(properties),
    }


STRING = {"type": "string"}
TIMESTAMP = {"type": "string", "description": "ISO 8601 UTC with milliseconds and a Z"}
TOKEN = _nullable({"type": "string", "description": "pass back as next_token for the next page"})
STATUS = {"type": "string", "enum": [s.value for s in api.Status]}


def _schemas() -> dict[str, Any]:
    """Every schema: the run's from its pydantic model, the rest written against the routes' answers."""
    run = Run.model_json_schema(mode="serialization", ref_template=REF)
    defs = run.pop("$defs")
    run["properties"].pop("version")  # the lock version is internal (Run.public drops it)
    schemas: dict[str, Any] = {**defs, "Run": run}
    schemas["Error"] = {
        "type": "object",
        "description": "Every error the API answers; `errors` names each field of a bad request.",
        "properties": {
            "code": {"type": "string", "minLength": 1},
            "message": {"type": "string", "minLength": 1},
            "errors": {
                "type": "array",
                "items": _object({"field": STRING, "message": STRING}, "one field's problem"),
            },
        },
        "required": ["code", "message"],
    }
    schemas["Health"] = _object({"status": {"const": "ok"}}, "GET /health")
    schemas["Upload"] = _object(
        {
            "bucket": STRING,
            "key": {"type": "string", "pattern": f"^{names.UPLOAD_KEY_PATTERN.pattern}$"},
            "url": STRING,
            "fields": {"type": "object", "additionalProperties": STRING},
            "expires_in": {"type": "integer", "minimum": 1},
            "run_id": {"type": "string", "pattern": f"^{names.RUN_ID_PATTERN.pattern}$"},
        },
        "A presigned POST: send `fields` and then the zip as `file` to `url`; the upload creates `run_id`.",
    )
    schemas["RunPage"] = _object(
        {"runs": {"type": "array", "items": _ref("Run")}, "next_token": TOKEN}, "a page of runs"
    )
    schemas["LogEvent"] = _object({"timestamp": TIMESTAMP, "message": STRING}, "one line of a log stream")
    schemas["Logs"] = _object(
        {
            "run_id": STRING,
            "stage": _ref("Stage"),
            "source": _nullable(
                _object({"log_group": STRING, "log_stream": STRING}, "the CloudWatch Logs stream read")
            ),
            "events": {"type": "array", "items": _ref("LogEvent")},
            "next_token": _nullable({"type": "string", "description": "pass back for newer events only"}),
        },
        "The tail of a stage's log stream, oldest line first; source is null while the stage has none.",
    )
    schemas["ProjectSummary"] = _object(
        {"project": STRING, "latest_run_id": STRING, "status": STATUS, "updated_at": TIMESTAMP},
        "a project and its newest run",
    )
    schemas["ProjectPage"] = _object(
        {"projects": {"type": "array", "items": _ref("ProjectSummary")}, "next_token": TOKEN},
        "a page of projects, the one with the newest run first",
    )
    schemas["Project"] = _object(
        {
            "project": STRING,
            "latest_run": _nullable(_ref("Run")),
            "latest_successful_image": _nullable(
                _object(
                    {"run_id": STRING, "repository": STRING, "digest": STRING, "uri": _nullable(STRING)},
                    "the image of the newest SUCCEEDED run",
                )
            ),
            "endpoint": _nullable(
                _object(
                    {
                        "name": STRING,
                        "status": {"type": "string", "description": "DescribeEndpoint's EndpointStatus"},
                        "config_name": STRING,
                        "run_id": _nullable(STRING),
                    },
                    "the project's endpoint as SageMaker describes it now",
                )
            ),
        },
        "GET /projects/{project}",
    )
    schemas["AsyncInvocation"] = _object(
        {
            "inference_id": STRING,
            "output_location": {"type": "string", "description": "where SageMaker writes the answer"},
            "failure_location": {"type": "string", "description": "where SageMaker writes a failure"},
        },
        "POST /endpoints/{name}/async-invocations: the invocation is queued",
    )
    schemas["AsyncAnswer"] = {
        **_object(
            {
                "inference_id": STRING,
                "status": {"type": "string", "enum": ["pending", "completed", "failed"]},
                "location": {"type": "string", "description": "the object read (or awaited)"},
            },
            "an asynchronous invocation: pending, or its answer (completed) or failure (failed)",
        ),
    }
    schemas["AsyncAnswer"]["properties"] |= {
        "body": {"type": "string", "description": "a text answer or failure"},
        "body_base64": {"type": "string", "description": "a binary answer, base64-encoded"},
        "content_type": STRING,
    }
    schemas["Captures"] = _object(
        {
            "endpoint": STRING,
            "destination": {"type": "string", "description": "the variant's capture prefix read"},
            "records": {
                "type": "array",
                "description": "SageMaker's capture records (captureData, eventMetadata, eventVersion), "
                "newest first",
                "items": {"type": "object"},
            },
        },
        "GET /endpoints/{name}/captures",
    )
    return schemas


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI query parameters (unknown parameters are a 400)."""
    schema = model.model_json_schema(ref_template=REF)
    parameters = []
    for name, field in schema["properties"].items():
        field = {k: v for k, v in field.items() if k not in ("title", "default")}
        field = field["anyOf"][0] if "anyOf" in field else field  # optional: absent rather than null
        parameters.append({"name": name, "in": "query", "required": False, "schema": field})
    return parameters


def _path(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": f"^{pattern}$"},
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


ERRORS = {
    "400": "a bad path, query or body: `errors` names the fields",
    "404": "no such run or project",
    "409": "the run's state does not allow it",
    "413": "the body is larger than the endpoint accepts",
    "415": "an unsupported Content-Type",
    "502": "an AWS service or the model failed the request",
    "503": "AWS throttled or failed transiently: retry",
}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: _json("Error", ERRORS[status]) for status in statuses}


def _operation(summary: str, ok: dict[str, Any], *errors: str, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": ok, **_errors(*errors)}, **extra}


RUN_ID = _path("run_id", names.RUN_ID_PATTERN.pattern, "a run id, `<project>-<12 hex>`")
ENDPOINT = _path("name", names.SAGEMAKER_NAME_PATTERN.pattern, "a SageMaker endpoint name")


def build() -> dict[str, Any]:
    """The document, deterministic (sorted keys when written)."""
    upload_body = api.UploadRequest.model_json_schema(ref_template=REF)
    upload_body.pop("title", None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sagedock",
            "version": "1",
            "description": "From a source bundle to a live SageMaker endpoint. In AWS every route needs "
            "SigV4-signed requests (IAM auth); the local cloud serves them without. See docs/api.md.",
        },
        "paths": {
            "/health": {"get": _operation("liveness; touches no AWS service", _json("Health", "ok"))},
            "/uploads": {
                "post": _operation(
                    "a presigned POST for a new bundle, and the run id its upload will create",
                    _json("Upload", "the presigned upload"),
                    "400",
                    "415",
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": upload_body}},
                    },
                )
            },
            "/runs": {
                "get": _operation(
                    "runs, newest first, by project and status",
                    _json("RunPage", "a page of runs"),
                    "400",
                    "503",
                    parameters=_query(api.ListRunsQuery),
                )
            },
            "/runs/{run_id}": {
                "get": _operation(
                    "one run", _json("Run", "the run record"), "404", "503", parameters=[RUN_ID]
                )
            },
            "/runs/{run_id}/retry": {
                "post": _operation(
                    "restart a FAILED run from its failed stage",
                    _json("Run", "the run, restarted"),
                    "404",
                    "409",
                    "502",
                    "503",
                    parameters=[RUN_ID],
                )
            },
            "/runs/{run_id}/logs": {
                "get": _operation(
                    "the tail of a stage's logs; with next_token only newer lines",
                    _json("Logs", "the stage's log lines"),
                    "400",
                    "404",
                    "503",
                    parameters=[RUN_ID, *_query(api.LogsQuery)],
                )
            },
            "/projects": {
                "get": _operation(
                    "projects, the one with the newest run first",
                    _json("ProjectPage", "a page of projects"),
                    "400",
                    "503",
                    parameters=_query(api.ListProjectsQuery),
                )
            },
            "/projects/{project}": {
                "get": _operation(
                    "a project's latest run, latest successful image and endpoint",
                    _json("Project", "the project"),
                    "404",
                    "503",
                    parameters=[_path("project", names.PROJECT_REGEX, names.PROJECT_RULE)],
                )
            },
            "/projects/{project}/retrain": {
                "post": {
                    "summary": "a new run on the project's latest successful image, straight to training",
                    "parameters": [_path("project", names.PROJECT_REGEX, names.PROJECT_RULE)],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "description": "overrides of the manifest's train section (all optional)",
                                    "properties": {
                                        "hyperparameters": {"type": "object"},
                                        "channels": {"type": "object", "additionalProperties": STRING},
                                        "deploy": {},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Run", "the new run"),
                        **_errors("400", "404", "409", "415", "503"),
                    },
                }
            },
            "/endpoints/{name}/invocations": {
                "post": {
                    "summary": "forward the body and content type to the endpoint; its answer as it is",
                    "parameters": [
                        _path("name", names.SAGEMAKER_NAME_PATTERN.pattern, "a SageMaker endpoint name")
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            content_type: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                            for content_type in api.INVOCATION_CONTENT_TYPES
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the model's answer, in its content type",
                            "content": {"*/*": {"schema": {}}},
                        },
                        "4XX": _json("Error", "a bad request, or the model's own 4xx (code ModelError)"),
                        **_errors("400", "404", "413", "415", "502", "503"),
                    },
                }
            },
            "/endpoints/{name}/async-invocations": {
                "post": {
                    "summary": "put the body in S3 and queue it on the asynchronous endpoint",
                    "parameters": [ENDPOINT],
                    "requestBody": {
                        "required": True,
                        "content": {
                            content_type: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                            for content_type in api.INVOCATION_CONTENT_TYPES
                        },
                    },
                    "responses": {
                        "202": _json("AsyncInvocation", "queued: poll the answer by its inference id"),
                        **_errors("400", "404", "413", "415", "502", "503"),
                    },
                }
            },
            "/endpoints/{name}/async-invocations/{inference_id}": {
                "get": {
                    "summary": "an asynchronous invocation's answer or failure; 202 while pending",
                    "parameters": [
                        ENDPOINT,
                        _path("inference_id", inference.INFERENCE_ID_PATTERN.pattern, "the inference id"),
                    ],
                    "responses": {
                        "200": _json("AsyncAnswer", "the answer (completed) or the failure (failed)"),
                        "202": _json("AsyncAnswer", "pending: neither object exists yet"),
                        **_errors("400", "404", "502", "503"),
                    },
                }
            },
            "/endpoints/{name}/captures": {
                "get": _operation(
                    "the endpoint's newest captured records",
                    _json("Captures", "the records, newest first"),
                    "400",
                    "404",
                    "502",
                    "503",
                    parameters=[ENDPOINT, *_query(inference_routes.CapturesQuery)],
                )
            },
        },
        "components": {"schemas": _schemas()},
    }


def render() -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render())
    sys.stdout.write(f"wrote {DOCUMENT}\n")
