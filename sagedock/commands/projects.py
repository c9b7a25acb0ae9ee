"""`sagedock projects` and `sagedock project NAME`: what each project has live, and its latest run."""

from __future__ import annotations

import argparse
from typing import Any

from sagedock.client import ApiClient, add_target_arguments, target_from_args
from sagedock.commands.runs import MAX_LIMIT
from sagedock.commands.status import error_text
from sagedock.output import add_output_argument, int_between, print_json, print_page


def register(subparsers: Any) -> None:
    listing = subparsers.add_parser("projects", help="list projects with their latest run's status")
    listing.add_argument(
        "--limit",
        type=int_between(1, MAX_LIMIT),
        default=50,
        help="at most this many projects, 1-100 (default 50)",
    )
    listing.add_argument("--next-token", help="the next page: the token a previous page ended with")
    add_output_argument(listing)
    add_target_arguments(listing)
    listing.set_defaults(func=list_projects)

    one = subparsers.add_parser(
        "project", help="show a project: latest run, latest successful image, endpoint and its status"
    )
    one.add_argument("project", metavar="NAME")
    add_output_argument(one)
    add_target_arguments(one)
    one.set_defaults(func=show_project)


def list_projects(args: argparse.Namespace) -> int:
    page = ApiClient(target_from_args(args)).list_projects(limit=args.limit, next_token=args.next_token)
    headers = ("PROJECT", "STATUS", "LATEST RUN", "UPDATED")
    print_page(page, args.output, items="projects", headers=headers, row=_row)
    return 0


def _row(project: dict[str, Any]) -> tuple[Any, ...]:
    return (
        project.get("project"),
        project.get("status"),
        project.get("latest_run_id"),
        _when(project.get("updated_at")),
    )


def show_project(args: argparse.Namespace) -> int:
    body = ApiClient(target_from_args(args)).get_project(args.project)
    if args.output == "json":
        print_json(body)
    else:
        print(describe(body))
    return 0


def describe(body: dict[str, Any]) -> str:
    """A project for people: its endpoint, the image that serves or would, and where its latest run is."""
    run = body.get("latest_run") or {}
    image = body.get("latest_successful_image") or {}
    endpoint = body.get("endpoint") or {}
    rows: list[tuple[str, Any]] = [("project", body.get("project"))]
    if endpoint:
        rows += [
            ("endpoint", f"{endpoint.get('name')} {endpoint.get('status')}"),
            ("endpoint config", endpoint.get("config_name")),
            ("deployed by run", endpoint.get("run_id")),
        ]
    else:
        rows.append(("endpoint", "none"))
    if image:
        rows += [
            ("latest image", image.get("uri") or image.get("repository")),
            ("built by run", image.get("run_id")),
        ]
    else:
        rows.append(("latest image", "none succeeded yet"))
    if run:
        rows += [
            ("latest run", f"{run.get('run_id')} {run.get('status')}"),
            ("updated", _when(run.get("updated_at"))),
        ]
        if run.get("status") == "FAILED":
            rows.append(("error", error_text(run)))
    else:
        rows.append(("latest run", "none"))
    return "\n".join(f"{name + ':':<17}{value}" for name, value in rows if value)


def _when(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")
