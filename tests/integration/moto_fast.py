"""moto's DynamoDB, made fast enough for a table of 10,000 items (the paging test and bench_runs_paging)."""

from __future__ import annotations

from typing import Any

import pytest


def sort_each_table_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's Query sorts every item of the table and compares each with the key on every call (10,000
    here, ~0.3 s a call). Keep the sorted list, and for an index Query on one partition value the items
    that have it, until the table's next put or delete: what moto would find again, so the Query itself
    (its key conditions, order, Limit, ExclusiveStartKey and filters) still runs as moto runs it."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    cache: dict[tuple[int, str, str], list[Any]] = {}
    partition: list[tuple[str, str] | None] = [None]
    all_items, query, put_item, delete_item = Table.all_items, Table.query, Table.put_item, Table.delete_item

    def cached(self: Table) -> list[Any]:
        attr, value = partition[0] or ("", "")
        key = (id(self), attr, value)
        if key not in cache:
            items = cache.get((id(self), "", "")) or all_items(self)
            cache[(id(self), "", "")] = items
            cache[key] = [i for i in items if not attr or getattr(i.attrs.get(attr), "value", None) == value]
        return cache[key]

    def one_partition(self: Table, *args: Any, **kwargs: Any) -> Any:
        conditions = kwargs.get("hash_key_conditions") or []
        index_name = kwargs.get("index_name") or (args[7] if len(args) > 7 else None)
        if index_name and len(conditions) == 1 and conditions[0][1].type == "S":
            partition[0] = (conditions[0][0], conditions[0][1].value)
        try:
            return query(self, *args, **kwargs)
        finally:
            partition[0] = None

    def put(self: Table, *args: Any, **kwargs: Any) -> Any:
        for key in [key for key in cache if key[0] == id(self)]:
            del cache[key]
        return put_item(self, *args, **kwargs)

    def delete(self: Table, *args: Any, **kwargs: Any) -> Any:
        for key in [key for key in cache if key[0] == id(self)]:
            del cache[key]
        return delete_item(self, *args, **kwargs)

    # A string's cast_value is the string: compare strings without the five type checks it makes first.
    eq, ne, lt = DynamoType.__eq__, DynamoType.__ne__, DynamoType.__lt__

    def fast_eq(self: DynamoType, other: DynamoType) -> bool:
        return self.value == other.value if self.type == other.type == "S" else eq(self, other)

    def fast_ne(self: DynamoType, other: DynamoType) -> bool:
        return self.value != other.value if self.type == other.type == "S" else ne(self, other)

    def fast_lt(self: DynamoType, other: DynamoType) -> bool:
        return bool(self.value < other.value) if self.type == other.type == "S" else lt(self, other)

    monkeypatch.setattr(DynamoType, "__eq__", fast_eq)
    monkeypatch.setattr(DynamoType, "__ne__", fast_ne)
    monkeypatch.setattr(DynamoType, "__lt__", fast_lt)
    monkeypatch.setattr(Table, "all_items", cached)
    monkeypatch.setattr(Table, "query", one_partition)
    monkeypatch.setattr(Table, "put_item", put)
    monkeypatch.setattr(Table, "delete_item", delete)
