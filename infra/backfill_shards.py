"""Give every run and project summary of a runs table its `shard`, for the by_shard index (docs/deploy.md).

    python -m infra.backfill_shards TABLE [--state FILE] [--page-size N] [--region R]

Scans the table page by page (an admin tool: no request path scans) and sets `shard` on each run item
(`run#<n>` of its id) and project summary (`project#<n>` of its name) that has none, with a conditional
UpdateItem (`attribute_exists(run_id) AND attribute_not_exists(shard)`): an item written meanwhile by a
release that writes `shard` itself, or deleted, is left as it is. So a second pass changes nothing, and a
pass stopped anywhere goes on from the state file, which holds the scan's position after each page done.
Other items (`endpoint#...`, `succeeded#...`) are not listed and are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.adapters.run_store import PROJECT_KIND, PROJECT_PREFIX, RUN_KIND, shard_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class Counts:
    scanned: int = 0
    updated: int = 0
    already: int = 0  # had a shard already, or gained one (or vanished) between the scan and the update
    other: int = 0  # not a run nor a summary

    def __str__(self) -> str:
        return (
            f"scanned {self.scanned}, updated {self.updated}, already sharded {self.already}, "
            f"not listed {self.other}"
        )


def shard_for(item: dict[str, Any]) -> str | None:
    """The shard an item belongs in, or None for an item no listing reads."""
    item_id = item["run_id"]["S"]
    if "project" in item:  # a run (summaries have project_name instead)
        return shard_of(RUN_KIND, item_id)
    if item_id.startswith(PROJECT_PREFIX) and "project_name" in item:
        return shard_of(PROJECT_KIND, item["project_name"]["S"])
    return None


def load_state(path: Path | None) -> tuple[dict[str, Any] | None, bool]:
    """(where the scan goes on from, whether a pass already finished) as the state file says."""
    if path is None or not path.exists():
        return None, False
    state = json.loads(path.read_text())
    return state.get("start"), bool(state.get("done"))


def save_state(path: Path | None, start: dict[str, Any] | None, counts: Counts) -> None:
    if path is None:
        return
    state = {"start": start, "done": start is None, "counts": counts.__dict__}
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)  # a crash leaves the old state or the new one, never half of one


def backfill(
    client: DynamoDBClient,
    table: str,
    *,
    state: Path | None = None,
    page_size: int = 200,
    after_page: Callable[[Counts], None] = lambda _counts: None,
) -> Counts:
    """One pass over the table (or the rest of one, from `state`); returns what it did."""
    start, done = load_state(state)
    counts = Counts()
    if done:
        return counts
    while True:
        scan: dict[str, Any] = {
            "TableName": table,
            "Limit": page_size,
            "ProjectionExpression": "#id, #shard, #project, #name",
            "ExpressionAttributeNames": {
                "#id": "run_id",
                "#shard": "shard",
                "#project": "project",
                "#name": "project_name",
            },
            "ConsistentRead": True,
        }
        if start:
            scan["ExclusiveStartKey"] = start
        response = client.scan(**scan)  # type: ignore[arg-type]
        for item in response.get("Items", []):
            counts.scanned += 1
            shard = shard_for(item)
            if shard is None:
                counts.other += 1
            elif "shard" in item:
                counts.already += 1
            elif _set_shard(client, table, item["run_id"]["S"], shard):
                counts.updated += 1
            else:
                counts.already += 1
        start = response.get("LastEvaluatedKey")
        save_state(state, start, counts)
        after_page(counts)
        if not start:
            return counts


def _set_shard(client: DynamoDBClient, table: str, item_id: str, shard: str) -> bool:
    try:
        client.update_item(
            TableName=table,
            Key={"run_id": {"S": item_id}},
            UpdateExpression="SET #shard = :shard",
            ConditionExpression="attribute_exists(run_id) AND attribute_not_exists(#shard)",
            ExpressionAttributeNames={"#shard": "shard"},
            ExpressionAttributeValues={":shard": {"S": shard}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="the runs table, sagedock-<stage>-runs")
    parser.add_argument("--state", type=Path, help="resume from / record progress in this file")
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    import boto3

    client = boto3.client("dynamodb", region_name=args.region)
    counts = backfill(
        client,
        args.table,
        state=args.state,
        page_size=args.page_size,
        after_page=lambda c: print(c, file=sys.stderr),
    )
    print(f"{args.table}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
