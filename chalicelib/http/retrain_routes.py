"""POST /projects/{project}/retrain: a retrain over HTTP (a blueprint of its own, in the API Lambda)."""

from __future__ import annotations

import uuid

from chalice.app import Blueprint, Response

from chalicelib.domain.errors import BadRequest, NotFound
from chalicelib.http.api import iam, json_errors
from chalicelib.services import get_services

retrain_api = Blueprint(__name__)


@retrain_api.route("/projects/{project}/retrain", methods=["POST"], authorizer=iam)
@json_errors
def retrain_project(project: str) -> Response:
    """Start a run on the project's latest successful image: 202 and the run; 400/404/409 when it cannot."""
    from chalicelib.domain import names
    from chalicelib.flows import retrain

    if not names.is_valid_project(project):
        raise NotFound(f"no project {project}")
    try:
        body = retrain_api.current_request.json_body or {}
    except Exception as exc:  # chalice raises BadRequestError for unparsable JSON
        raise BadRequest("the body is not valid JSON", code="BadRequest") from exc
    if not isinstance(body, dict) or "project" in body:
        raise BadRequest(
            "the body is an object with hyperparameters, channels and deploy (all optional); "
            "the project is the one in the path",
            code="BadRequest",
        )
    request = retrain.RetrainRequest.model_validate({**body, "project": project})
    run = retrain.start(get_services(), request, request_id=uuid.uuid4().hex)
    return Response(body=run.public(), status_code=202, headers={"Content-Type": "application/json"})
