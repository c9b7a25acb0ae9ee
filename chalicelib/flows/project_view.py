"""A project as its users see it: its latest run, the image it last shipped, and its endpoint now."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.errors import NotFound
from chalicelib.services import Services


def project_view(project: str, svc: Services) -> dict[str, Any]:
    """GET /projects/{project}: read from the runs themselves, so it is never behind a summary item."""
    latest = svc.runs.latest_run(project)
    if latest is None:
        raise NotFound(f"no project {project}: it has no runs (upload a bundle to bundles/{project}/)")
    succeeded = svc.runs.latest_succeeded(project)
    image = None
    if succeeded is not None and succeeded.image is not None and succeeded.image.digest:
        image = {
            "run_id": succeeded.run_id,
            "repository": succeeded.image.repository,
            "digest": succeeded.image.digest,
            "uri": succeeded.image.uri,
        }
    endpoint = None
    name = (succeeded.endpoint_name if succeeded else None) or latest.endpoint_name
    if name:
        state = svc.sagemaker.describe_endpoint(name)
        if state is not None:
            endpoint = {
                "name": name,
                "status": state.status,
                "config_name": state.config_name,
                "run_id": svc.runs.endpoint_owner(name),
            }
    return {
        "project": project,
        "latest_run": latest.public(),
        "latest_successful_image": image,
        "endpoint": endpoint,
    }
