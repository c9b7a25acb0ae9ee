"""The runs table: run records with optimistic locking, listing by project or time, endpoint ownership."""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.clients import error_code, translate
from chalicelib.domain.errors import BadRequest, ConcurrentUpdate, Conflict, NotFound, StaleEvent
from chalicelib.domain.models import Run, Status
from chalicelib.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.ports import OutboxPort

# Key schema (infra/ and the local cloud create the table with exactly this).
PARTITION_KEY = "run_id"
BY_PROJECT_INDEX = "by_project"  # project (S) + created_at (S)
BY_CREATED_INDEX = "by_created"  # kind (S) + created_at (S): every run, newest first
# pending (S) + created_at (S): sparse, only the runs with unpublished events (a few at most, so one key)
BY_PENDING_INDEX = "by_pending"
# scan_wait (S) + created_at (S): sparse, only the BUILDING runs waiting for their image's scan
BY_SCAN_WAIT_INDEX = "by_scan_wait"
SCAN_WAIT_STATUSES = frozenset({Status.BUILDING, Status.TRAINING})
RUN_KIND = "run"
ENDPOINT_PREFIX = "endpoint#"
# One summary item per project (kind "project" in by_created, sorted by its latest run's created_at) and
# one pointer to its latest SUCCEEDED run: GET /projects lists projects without reading their runs.
PROJECT_KIND = "project"
PROJECT_PREFIX = "project#"
SUCCEEDED_PREFIX = "succeeded#"
MAX_UPDATE_ATTEMPTS = 8
MAX_LIST_QUERIES = 20


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments for the runs table (the one place that knows its schema)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "run_id", "AttributeType": "S"},
            {"AttributeName": "project", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "created_at", "AttributeType": "S"},
            {"AttributeName": "pending", "AttributeType": "S"},
            {"AttributeName": "scan_wait", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": hash_key, "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": projection},
            }
            for index, hash_key, projection in (
                (BY_PROJECT_INDEX, "project", "ALL"),
                (BY_CREATED_INDEX, "kind", "ALL"),
                (BY_PENDING_INDEX, "pending", "KEYS_ONLY"),  # the sweeper reads the run itself
                (BY_SCAN_WAIT_INDEX, "scan_wait", "KEYS_ONLY"),
            )
        ],
    }


def idempotency_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments for the idempotency table (powertools' default key `id`)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    }


def _item(run: Run) -> dict[str, Any]:
    item = {
        "run_id": {"S": run.run_id},
        "kind": {"S": RUN_KIND},
        "project": {"S": run.project},
        "status": {"S": run.status.value},
        "created_at": {"S": run.created_at},
        "updated_at": {"S": run.updated_at},
        "version": {"N": str(run.version)},
        "record": {"S": run.model_dump_json(exclude={"version"})},
    }
    if run.outbox:  # only runs with unpublished events are in the sparse index the sweeper reads
        item["pending"] = {"S": RUN_KIND}
    if run.status in SCAN_WAIT_STATUSES and run.scan is not None and run.scan.waiting_since:
        item["scan_wait"] = {"S": RUN_KIND}  # found by the scan sweeper until its training job exists
    return item


def _run(item: dict[str, Any]) -> Run:
    record = json.loads(item["record"]["S"])
    record["version"] = int(item["version"]["N"])
    return Run.model_validate(record)


def encode_token(key: dict[str, Any]) -> str:
    """An opaque pagination token for a DynamoDB LastEvaluatedKey."""
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """The LastEvaluatedKey inside a token; BadRequest when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken") from exc
    valid = isinstance(key, dict) and all(
        isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in key.values()
    )
    if not valid:
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken")
    result: dict[str, Any] = key
    return result


def _check_start_key(key: dict[str, Any], project: str | None, kind: str = RUN_KIND) -> None:
    """A token must be a position in the very index (and project) being listed."""
    if project:
        valid = set(key) == {"run_id", "created_at", "project"} and key["project"]["S"] == project
    else:
        valid = set(key) == {"run_id", "created_at", "kind"} and key["kind"]["S"] == kind
    if not valid:
        raise BadRequest("next_token does not belong to this query", code="InvalidToken")


class RunStore:
    """Runs in DynamoDB; every write is conditional, so concurrent and replayed events cannot clobber.

    With an outbox, each transition's event is written in the transition's own write and published after it.
    """

    def __init__(self, client: DynamoDBClient, table: str, outbox: OutboxPort | None = None) -> None:
        self._client = client
        self._table = table
        self._outbox = outbox

    def create(self, run: Run) -> tuple[Run, bool]:
        """Insert a new run; if it exists already (a duplicate event), return the stored one and False."""
        claim = ""
        if self._outbox is not None:
            run, claim = self._outbox.stage(None, run)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_item(run),
                ConditionExpression="attribute_not_exists(run_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return self.get(run.run_id), False
            raise translate(exc, "recording the run") from exc
        self._summarise(run)
        if self._outbox is not None:
            self._outbox.flush(self, run, claim)
        return run, True

    def get(self, run_id: str) -> Run:
        """The run, or NotFound."""
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"run_id": {"S": run_id}}, ConsistentRead=True
            )
        except ClientError as exc:
            raise translate(exc, "reading the run") from exc
        item = response.get("Item")
        if not item or "record" not in item:
            raise NotFound(f"no run {run_id}")
        return _run(item)

    def find(self, run_id: str) -> Run | None:
        """The run, or None."""
        try:
            return self.get(run_id)
        except NotFound:
            return None

    def save(self, run: Run, *, expected_version: int) -> Run:
        """Write `run` if nobody else wrote since `expected_version`; ConcurrentUpdate otherwise."""
        stored = run.model_copy(update={"version": expected_version + 1})
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_item(stored),
                ConditionExpression="version = :expected",
                ExpressionAttributeValues={":expected": {"N": str(expected_version)}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConcurrentUpdate(f"run {run.run_id} changed while it was being updated") from exc
            raise translate(exc, "updating the run") from exc
        return stored

    def update(self, run_id: str, change: Callable[[Run], Run]) -> Run:
        """Read, apply a pure transition, write conditionally; re-read and re-apply on a lost race.

        `change` raises StaleEvent when the transition no longer applies; that propagates to the caller.
        """
        for _ in range(MAX_UPDATE_ATTEMPTS):
            current = self.get(run_id)
            try:
                new = change(current)
            except StaleEvent:
                if self._outbox is not None:  # a later event of the run: publish what a failed writer left
                    self._outbox.recover(self, current)
                raise
            claim = ""
            if self._outbox is not None:
                new, claim = self._outbox.stage(current, new)
            try:
                stored = self.save(new, expected_version=current.version)
            except ConcurrentUpdate:
                continue
            if stored.status != current.status:  # the summary shows the status: only a new one changes it
                self._summarise(stored)
            if self._outbox is not None:
                self._outbox.flush(self, stored, claim)
            return stored
        raise StaleEvent(f"run {run_id} kept changing; gave up after {MAX_UPDATE_ATTEMPTS} attempts")

    def list(
        self, *, project: str | None, status: Status | None, limit: int, next_token: str | None
    ) -> tuple[list[Run], str | None]:
        """Runs newest first, for one project or all, optionally of one status; with a next token."""
        query: dict[str, Any] = {"TableName": self._table, "ScanIndexForward": False}
        if project:
            query |= {
                "IndexName": BY_PROJECT_INDEX,
                "KeyConditionExpression": "project = :p",
                "ExpressionAttributeValues": {":p": {"S": project}},
            }
        else:
            query |= {
                "IndexName": BY_CREATED_INDEX,
                "KeyConditionExpression": "kind = :k",
                "ExpressionAttributeValues": {":k": {"S": RUN_KIND}},
            }
        if status:
            query["FilterExpression"] = "#status = :s"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"][":s"] = {"S": status.value}
        start = decode_token(next_token) if next_token else None
        if start is not None:
            _check_start_key(start, project)
        runs: list[Run] = []
        for _ in range(MAX_LIST_QUERIES):
            # Limit counts items examined, so asking only for what is missing never skips past the page.
            page = dict(query, Limit=limit - len(runs))
            if start:
                page["ExclusiveStartKey"] = start
            response = self._query(page, "listing runs")
            runs.extend(_run(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or len(runs) >= limit:
                break
        return runs, encode_token(start) if start else None

    def _query(self, query: dict[str, Any], doing: str) -> dict[str, Any]:
        """One page of an index; DynamoDB refusing a start key means a token of another listing."""
        try:
            response: dict[str, Any] = self._client.query(**query)  # type: ignore[assignment]
        except ClientError as exc:
            if error_code(exc) == "ValidationException" and "ExclusiveStartKey" in query:
                raise BadRequest("next_token does not belong to this query", code="InvalidToken") from exc
            raise translate(exc, doing) from exc
        return response

    def with_pending_events(self, limit: int = 100) -> tuple[str, ...]:
        """The ids of runs whose outbox holds events not yet published (oldest first)."""
        return self._sparse(BY_PENDING_INDEX, "pending", limit, "listing runs with unpublished events")

    def waiting_for_scan(self, limit: int = 100) -> tuple[str, ...]:
        """Ids of runs waiting for their image's scan, or for the training job it allowed (oldest first)."""
        return self._sparse(BY_SCAN_WAIT_INDEX, "scan_wait", limit, "listing runs waiting for a scan")

    def _sparse(self, index: str, key: str, limit: int, doing: str) -> tuple[str, ...]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": {"#k": key},
            "ExpressionAttributeValues": {":k": {"S": RUN_KIND}},
            "Limit": limit,
        }
        return tuple(item["run_id"]["S"] for item in self._query(query, doing).get("Items", []))

    def set_endpoint_owner(self, endpoint_name: str, run_id: str, *, take_over: bool = False) -> None:
        """Record which run last changed an endpoint (endpoint events are matched through this).

        Unless `take_over`, only when no run of another project recorded it: the item is absent, or its
        owner is a run id of the same project (`<project>-<12 hex>`: same length, same text before the
        hex, which no other project's id has); Conflict otherwise. A replay of the same deploy passes.
        """
        condition: dict[str, Any] = {}
        if not take_over:
            condition = {
                "ConditionExpression": "attribute_not_exists(run_id) OR "
                "(begins_with(#owner, :project) AND size(#owner) = :length)",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {
                    ":project": {"S": run_id[:-12]},
                    ":length": {"N": str(len(run_id))},
                },
            }
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"run_id": {"S": ENDPOINT_PREFIX + endpoint_name}, "owner": {"S": run_id}},
                **condition,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise Conflict(f"endpoint {endpoint_name} was recorded by another project's run") from exc
            raise translate(exc, "recording the endpoint's deployment") from exc

    def endpoint_owner(self, endpoint_name: str) -> str | None:
        """The run that last changed this endpoint, if any."""
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"run_id": {"S": ENDPOINT_PREFIX + endpoint_name}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise translate(exc, "reading the endpoint's deployment") from exc
        item = response.get("Item")
        return item["owner"]["S"] if item else None

    # --- projects -----------------------------------------------------------------------------------------
    def _summarise(self, run: Run) -> None:
        """Point the project's summary (and, once SUCCEEDED, its latest success) at this run: on creation and
        on each change of status (one write per step, not per save, to spend little of the retry quota).

        Conditional, so a late write of an older run, or of an older version of this run, changes nothing.
        A failed write is logged and skipped: the run itself is recorded, and GET /projects/{project}
        reads the runs; only the listing's status lags until the project's next transition.
        """
        newer = "attribute_not_exists(run_id) OR created_at < :c OR (latest_run_id = :r AND run_version < :v)"
        values = {":c": {"S": run.created_at}, ":r": {"S": run.run_id}, ":v": {"N": str(run.version)}}
        items = [
            {
                "run_id": {"S": PROJECT_PREFIX + run.project},
                "kind": {"S": PROJECT_KIND},
                "project_name": {"S": run.project},
                "status": {"S": run.status.value},
            }
        ]
        if run.status == Status.SUCCEEDED:
            items.append({"run_id": {"S": SUCCEEDED_PREFIX + run.project}})
        for item in items:
            item |= {
                "created_at": {"S": run.created_at},
                "updated_at": {"S": run.updated_at},
                "latest_run_id": {"S": run.run_id},
                "run_version": {"N": str(run.version)},
            }
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression=newer,
                    ExpressionAttributeValues=values,
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    logger.warning("could not update %s: %s", item["run_id"]["S"], error_code(exc))

    def list_projects(
        self, *, limit: int, next_token: str | None
    ) -> tuple[builtins.list[dict[str, Any]], str | None]:
        """Projects, the one with the newest run first: {project, latest_run_id, status, updated_at}."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": BY_CREATED_INDEX,
            "KeyConditionExpression": "kind = :k",
            "ExpressionAttributeValues": {":k": {"S": PROJECT_KIND}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if next_token:
            start = decode_token(next_token)
            _check_start_key(start, None, PROJECT_KIND)
            query["ExclusiveStartKey"] = start
        response = self._query(query, "listing projects")
        projects = [
            {
                "project": item["project_name"]["S"],
                "latest_run_id": item["latest_run_id"]["S"],
                "status": item["status"]["S"],
                "updated_at": item["updated_at"]["S"],
            }
            for item in response.get("Items", [])
        ]
        last = response.get("LastEvaluatedKey")
        return projects, encode_token(last) if last else None

    def latest_run(self, project: str) -> Run | None:
        """The project's newest run, or None when it has none."""
        runs, _token = self.list(project=project, status=None, limit=1, next_token=None)
        return runs[0] if runs else None

    def latest_succeeded(self, project: str) -> Run | None:
        """The project's newest SUCCEEDED run, or None."""
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"run_id": {"S": SUCCEEDED_PREFIX + project}}, ConsistentRead=True
            )
        except ClientError as exc:
            raise translate(exc, "reading the project's latest success") from exc
        item = response.get("Item")
        return self.find(item["latest_run_id"]["S"]) if item else None
