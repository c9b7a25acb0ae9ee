"""The runs table: run records with optimistic locking, listing by project or time, endpoint ownership."""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import zlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

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
# shard (S) + created_at (S): every run (`run#<n>`) and project summary (`project#<n>`), n = crc32 of the
# run id (or project name) mod SHARDS; listed newest first by merging the SHARDS partitions.
BY_SHARD_INDEX = "by_shard"
SHARDS = 8
# kind (S) + created_at (S): the one-partition listing the sharded index replaces. Written and read only by a
# stage whose SAGEDOCK_RUNS_LISTING_INDEX is by_created (while it migrates: docs/deploy.md).
BY_CREATED_INDEX = "by_created"
ListingIndex = Literal["by_shard", "by_created"]
# pending (S) + created_at (S): sparse, only the runs with unpublished events (`run#<n>`, n as above)
BY_PENDING_INDEX = "by_pending"
# scan_wait (S) + created_at (S): sparse, only the BUILDING runs waiting for their image's scan (`run#<n>`)
BY_SCAN_WAIT_INDEX = "by_scan_wait"
SCAN_WAIT_STATUSES = frozenset({Status.BUILDING, Status.TRAINING})
RUN_KIND = "run"
ENDPOINT_PREFIX = "endpoint#"
# One summary item per project (`project#<n>` in by_shard, sorted by its latest run's created_at) and
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
            {"AttributeName": "shard", "AttributeType": "S"},
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
                (BY_SHARD_INDEX, "shard", "ALL"),
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


def shard_of(kind: str, key: str) -> str:
    """The by_shard partition of a run (key: its id) or a project summary (key: the project's name)."""
    return f"{kind}#{zlib.crc32(key.encode()) % SHARDS}"


def run_item(run: Run, listing: ListingIndex = "by_shard") -> dict[str, Any]:
    """The table item of a run (also what a bulk load of runs writes)."""
    shard = shard_of(RUN_KIND, run.run_id)
    item = {
        "run_id": {"S": run.run_id},
        "shard": {"S": shard},
        "project": {"S": run.project},
        "status": {"S": run.status.value},
        "created_at": {"S": run.created_at},
        "updated_at": {"S": run.updated_at},
        "version": {"N": str(run.version)},
        "record": {"S": run.model_dump_json(exclude={"version"})},
    }
    if listing == "by_created":  # a stage still listing from the one-partition index
        item["kind"] = {"S": RUN_KIND}
    if run.outbox:  # only runs with unpublished events are in the sparse index the sweeper reads
        item["pending"] = {"S": shard}
    if run.status in SCAN_WAIT_STATUSES and run.scan is not None and run.scan.waiting_since:
        item["scan_wait"] = {"S": shard}  # found by the scan sweeper until its training job exists
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


# A shard's place in a merged listing: from its newest item ("top"), after (created_at, run_id), or read out.
Position = Literal["top", "done"] | tuple[str, str]


def encode_positions(kind: str, positions: builtins.list[Position]) -> str:
    """An opaque token for a merged listing: one position per by_shard partition."""
    body = {"k": kind, "p": [p if isinstance(p, str) else list(p) for p in positions]}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_positions(token: str, kind: str) -> builtins.list[Position]:
    """The positions inside a merged listing's token; BadRequest when it is not one of this listing's."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken") from exc
    raw = body.get("p") if isinstance(body, dict) else None
    if not isinstance(raw, builtins.list) or len(raw) != SHARDS or not isinstance(body.get("k"), str):
        raise BadRequest("next_token is not a token this API returned", code="InvalidToken")
    if body["k"] != kind:
        raise BadRequest("next_token does not belong to this query", code="InvalidToken")
    positions: builtins.list[Position] = []
    for shard, entry in enumerate(raw):
        if entry in ("top", "done"):
            positions.append(entry)
            continue
        if not (
            isinstance(entry, builtins.list)
            and len(entry) == 2
            and all(isinstance(part, str) for part in entry)
            and _shard_number(kind, entry[1]) == shard
        ):
            raise BadRequest("next_token is not a token this API returned", code="InvalidToken")
        positions.append((entry[0], entry[1]))
    return positions


def _shard_number(kind: str, item_id: str) -> int | None:
    """Which shard an item id belongs in (a summary's id is `project#<name>`); None for no such item."""
    if kind == PROJECT_KIND:
        if not item_id.startswith(PROJECT_PREFIX):
            return None
        item_id = item_id.removeprefix(PROJECT_PREFIX)
    return zlib.crc32(item_id.encode()) % SHARDS


def summary_items(run: Run, listing: ListingIndex = "by_shard") -> builtins.list[dict[str, Any]]:
    """The project summary items that point at `run`: the project's, and once SUCCEEDED its latest success."""
    summary = {
        "run_id": {"S": PROJECT_PREFIX + run.project},
        "shard": {"S": shard_of(PROJECT_KIND, run.project)},
        "project_name": {"S": run.project},
        "status": {"S": run.status.value},
    }
    if listing == "by_created":
        summary["kind"] = {"S": PROJECT_KIND}
    items = [summary]
    if run.status == Status.SUCCEEDED:
        items.append({"run_id": {"S": SUCCEEDED_PREFIX + run.project}})
    for item in items:
        item |= {
            "created_at": {"S": run.created_at},
            "updated_at": {"S": run.updated_at},
            "latest_run_id": {"S": run.run_id},
            "run_version": {"N": str(run.version)},
        }
    return items


class _ShardStream:
    """One by_shard partition read newest first in chunks, for a k-way merge of all of them."""

    def __init__(self, query: dict[str, Any], shard: str, position: Position, chunk: int) -> None:
        names, values = query.get("ExpressionAttributeNames", {}), query.get("ExpressionAttributeValues", {})
        self._query = query | {
            "KeyConditionExpression": "#shard = :shard",
            "ExpressionAttributeNames": names | {"#shard": "shard"},
            "ExpressionAttributeValues": values | {":shard": {"S": shard}},
            "Limit": chunk,
        }
        self._shard = shard
        self._buffer: deque[dict[str, Any]] = deque()
        self._more = position != "done"  # DynamoDB may hold items after the buffer
        self._next: dict[str, Any] | None = None if isinstance(position, str) else self._key(*position)
        self._resume = position  # the position before the buffer's first item

    def _key(self, created_at: str, item_id: str) -> dict[str, Any]:
        return {"run_id": {"S": item_id}, "shard": {"S": self._shard}, "created_at": {"S": created_at}}

    def head(self, fetch: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        """The newest unread item; None when read out. Reads on through `fetch` (which raises KeyError when
        the page may query no more) while the buffer is empty."""
        while not self._buffer and self._more:
            page = dict(self._query, ExclusiveStartKey=self._next) if self._next else dict(self._query)
            response = fetch(page)
            self._resume = self._position_of(self._next)
            self._buffer.extend(response.get("Items", []))
            self._next = response.get("LastEvaluatedKey")
            self._more = self._next is not None
        return self._buffer[0] if self._buffer else None

    def pop(self) -> dict[str, Any]:
        item = self._buffer.popleft()
        self._resume = (item["created_at"]["S"], item["run_id"]["S"])
        return item

    def position(self) -> Position:
        """Where the next page goes on from in this shard."""
        if self._buffer:
            return self._resume
        return self._position_of(self._next) if self._more else "done"

    @staticmethod
    def _position_of(key: dict[str, Any] | None) -> Position:
        return "top" if key is None else (key["created_at"]["S"], key["run_id"]["S"])


class RunStore:
    """Runs in DynamoDB; every write is conditional, so concurrent and replayed events cannot clobber.

    With an outbox, each transition's event is written in the transition's own write and published after it.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        outbox: OutboxPort | None = None,
        *,
        listing: ListingIndex = "by_shard",
    ) -> None:
        self._client = client
        self._table = table
        self._outbox = outbox
        self._listing = listing

    def create(self, run: Run) -> tuple[Run, bool]:
        """Insert a new run; if it exists already (a duplicate event), return the stored one and False."""
        claim = ""
        if self._outbox is not None:
            run, claim = self._outbox.stage(None, run)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=run_item(run, self._listing),
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
                Item=run_item(stored, self._listing),
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
        if status:
            query["FilterExpression"] = "#status = :s"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"] = {":s": {"S": status.value}}
        if not project and self._listing == "by_shard":
            items, token = self._merged(query, RUN_KIND, limit, next_token, "listing runs")
            return [_run(item) for item in items], token
        values = query.get("ExpressionAttributeValues", {})
        if project:
            query |= {
                "IndexName": BY_PROJECT_INDEX,
                "KeyConditionExpression": "project = :p",
                "ExpressionAttributeValues": values | {":p": {"S": project}},
            }
        else:
            query |= {
                "IndexName": BY_CREATED_INDEX,
                "KeyConditionExpression": "kind = :k",
                "ExpressionAttributeValues": values | {":k": {"S": RUN_KIND}},
            }
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

    def _merged(
        self, query: dict[str, Any], kind: str, limit: int, next_token: str | None, doing: str
    ) -> tuple[builtins.list[dict[str, Any]], str | None]:
        """Up to `limit` items of by_shard's `kind` partitions, newest first: a k-way merge of one Query
        stream per shard, each read in chunks of about its share of the page, so a page reads about
        `limit` + 2 * SHARDS items in SHARDS queries or a few more (at most SHARDS + MAX_LIST_QUERIES)."""
        positions: builtins.list[Position] = (
            decode_positions(next_token, kind) if next_token else ["top"] * SHARDS
        )
        chunk = -(-limit // SHARDS) + 2
        base = query | {"IndexName": BY_SHARD_INDEX}
        streams = [_ShardStream(base, f"{kind}#{n}", positions[n], chunk) for n in range(SHARDS)]
        budget = SHARDS + MAX_LIST_QUERIES

        def fetch(page: dict[str, Any]) -> dict[str, Any]:
            nonlocal budget
            if budget <= 0:
                raise KeyError("the page's queries are spent")
            budget -= 1
            return self._query(page, doing)

        items: builtins.list[dict[str, Any]] = []
        while len(items) < limit:
            try:
                heads = [(stream.head(fetch), n) for n, stream in enumerate(streams)]
            except KeyError:  # a shard's next item is unknown and the budget is spent: the page ends here
                break
            present = [(item["created_at"]["S"], -n) for item, n in heads if item is not None]
            if not present:
                break
            _created, newest = max(present)
            items.append(streams[-newest].pop())
        ends = [stream.position() for stream in streams]
        return items, None if all(end == "done" for end in ends) else encode_positions(kind, ends)

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
        """The oldest `limit` of a sparse index, over its shards and the one-partition value written before
        the index was sharded (`run`), which only a stage that has not rewritten those runs still holds."""
        found: builtins.list[tuple[str, str]] = []
        for value in (RUN_KIND, *(f"{RUN_KIND}#{n}" for n in range(SHARDS))):
            query: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": index,
                "KeyConditionExpression": "#k = :k",
                "ExpressionAttributeNames": {"#k": key},
                "ExpressionAttributeValues": {":k": {"S": value}},
                "Limit": limit,
            }
            found.extend(
                (item["created_at"]["S"], item["run_id"]["S"])
                for item in self._query(query, doing).get("Items", [])
            )
        return tuple(run_id for _created, run_id in sorted(found)[:limit])

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
        items = summary_items(run, self._listing)
        for item in items:
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
        query: dict[str, Any] = {"TableName": self._table, "ScanIndexForward": False}
        if self._listing == "by_shard":
            items, token = self._merged(query, PROJECT_KIND, limit, next_token, "listing projects")
        else:
            query |= {
                "IndexName": BY_CREATED_INDEX,
                "KeyConditionExpression": "kind = :k",
                "ExpressionAttributeValues": {":k": {"S": PROJECT_KIND}},
                "Limit": limit,
            }
            if next_token:
                start = decode_token(next_token)
                _check_start_key(start, None, PROJECT_KIND)
                query["ExclusiveStartKey"] = start
            response = self._query(query, "listing projects")
            items = response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            token = encode_token(last) if last else None
        projects = [
            {
                "project": item["project_name"]["S"],
                "latest_run_id": item["latest_run_id"]["S"],
                "status": item["status"]["S"],
                "updated_at": item["updated_at"]["S"],
            }
            for item in items
        ]
        return projects, token

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
