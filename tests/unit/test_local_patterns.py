"""EventBridge pattern matching as the local router applies it (moto's matcher): the semantics rules rely on.

Where moto and EventBridge part, the case says what EventBridge does (AWS docs "Content filtering in
Amazon EventBridge event patterns" and "Arrays in Amazon EventBridge event patterns"; aws/event-ruler, the
engine behind them) and is marked `xfail(strict=True)`: the router follows moto there, none of the app's
own patterns has that shape (test_the_apps_patterns_use_only_shapes_moto_matches_as_eventbridge_does), and
a moto release that fixes the case turns the mark into a failure, so the note is dropped then.
"""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import Chalice, CloudWatchEvent

from sagedock.local.router import PatternError, Router, subscriptions

S3_EVENT = {
    "version": "0",
    "id": "e1",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2025-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::src", "arn:aws:s3:::other"],
    "detail": {
        "bucket": {"name": "src"},
        "object": {"key": "bundles/demo/a.zip", "size": 5, "etag": "abc"},
        "reason": "PutObject",
        "tags": [{"key": "team", "value": "ml"}, {"key": "env", "value": "dev"}],
        "flag": None,
        "ok": True,
    },
}


def _router(pattern: dict[str, Any]) -> Router:
    app = Chalice(app_name="pattern-test")

    @app.on_cw_event(pattern, name="handler")
    def handler(event: CloudWatchEvent) -> None:  # never invoked: only matched
        raise AssertionError(event)

    return Router(app, workers=1)


def routed(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether the router would invoke a handler registered with `pattern` for `event`."""
    router = _router(pattern)
    try:
        return router.matching(event) == ["handler"]
    finally:
        router.close()


def _moto_differs(reason: str) -> Any:
    return pytest.mark.xfail(strict=True, reason=f"moto 5.2.5 differs from EventBridge: {reason}")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"source": ["aws.s3"]}, True),
        ({"source": ["aws.ecr", "aws.s3"]}, True),
        ({"source": ["aws.ecr"]}, False),
        ({"detail-type": ["Object Created"], "detail": {"bucket": {"name": ["src"]}}}, True),
        ({"detail": {"object": {"key": [{"prefix": "bundles/"}]}}}, True),
        ({"detail": {"object": {"key": [{"prefix": "other/"}]}}}, False),
        ({"detail": {"object": {"key": [{"suffix": ".zip"}]}}}, True),
        ({"detail": {"object": {"key": [{"prefix": {"equals-ignore-case": "BUNDLES/"}}]}}}, True),
        ({"detail": {"reason": [{"equals-ignore-case": "putobject"}]}}, True),
        ({"detail": {"reason": [{"anything-but": "PutObject"}]}}, False),
        ({"detail": {"reason": [{"anything-but": ["CopyObject", "POST Object"]}]}}, True),
        ({"detail": {"reason": [{"anything-but": {"prefix": "Put"}}]}}, False),
        ({"detail": {"missing": [{"anything-but": "x"}]}}, False),
        ({"detail": {"object": {"etag": [{"exists": True}]}}}, True),
        ({"detail": {"object": {"version-id": [{"exists": True}]}}}, False),
        ({"detail": {"object": {"version-id": [{"exists": False}]}}}, True),
        ({"detail": {"object": {"size": [{"numeric": [">", 0, "<=", 5]}]}}}, True),
        ({"detail": {"object": {"size": [{"numeric": ["<", 5]}]}}}, False),
        ({"detail": {"object": {"size": [5.0]}}}, True),
        ({"detail": {"object": {"key": [{"wildcard": "bundles/*/a.zip"}]}}}, True),
        ({"resources": ["arn:aws:s3:::other"]}, True),
        pytest.param(
            {"detail": {"tags": {"key": ["env"]}}},
            True,
            marks=_moto_differs("an array of objects is crushed into its parent field by EventBridge"),
        ),
        ({"detail": {"tags": {"key": ["prod"]}}}, False),
        ({"detail": {"flag": [None]}}, True),
        ({"detail": {"ok": [True]}}, True),
        ({"detail": {"ok": ["true"]}}, False),
        ({"$or": [{"source": ["aws.ecr"]}, {"detail": {"reason": ["PutObject"]}}]}, True),
        ({"$or": [{"source": ["aws.ecr"]}, {"detail": {"reason": ["CopyObject"]}}]}, False),
        ({"detail": {"bucket": ["src"]}}, False),  # a value list never matches an object
        ({}, True),
        # `exists` only looks at leaf fields: an object is neither present nor absent to it. (The
        # hand-written matcher sagedock had before moto's said the opposite for both.)
        ({"detail": {"bucket": [{"exists": True}]}}, False),
        ({"detail": {"bucket": [{"exists": False}]}}, True),
        pytest.param(
            {"detail": {"ok": [1]}},
            False,
            marks=_moto_differs("the JSON literal true is not the number 1 (Python's True == 1)"),
        ),
        pytest.param(
            {"detail": {"ok": [{"numeric": [">", 0]}]}},
            False,
            marks=_moto_differs("numeric matching works only on JSON numbers, not on true"),
        ),
    ],
)
def test_a_pattern_matches_as_eventbridge_would(pattern: dict[str, Any], expected: bool) -> None:
    # Given an S3 event, When a pattern is applied, Then it matches when EventBridge would deliver it
    assert routed(pattern, S3_EVENT) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": "aws.s3"},
        {"source": []},
        pytest.param(
            {"detail": {"object": {"key": [{"prefix": "a", "suffix": "b"}]}}},
            marks=_moto_differs("PutRule refuses a filter with two operators; moto uses the first"),
        ),
        pytest.param(
            {"detail": {"object": {"key": [{"nonsense": "x"}]}}},
            marks=_moto_differs("PutRule refuses an unknown filter; moto matches any value with it"),
        ),
        pytest.param(
            {"detail": {"object": {"size": [{"numeric": [">"]}]}}},
            marks=_moto_differs("PutRule refuses a numeric filter without its bound; moto ignores it"),
        ),
    ],
)
def test_a_pattern_eventbridge_would_refuse_is_an_error(pattern: dict[str, Any]) -> None:
    # Given a handler whose pattern EventBridge would refuse, When the router is made, Then it says which
    with pytest.raises(PatternError, match=r"^handler: event pattern refused: "):
        _router(pattern)


def _filters(pattern: Any) -> list[Any]:
    """Every value filter in a pattern (the items of its arrays), however deep."""
    if isinstance(pattern, dict):
        return [f for value in pattern.values() for f in _filters(value)]
    return list(pattern)


def test_the_apps_patterns_use_only_shapes_moto_matches_as_eventbridge_does() -> None:
    # Given the app's registered patterns (what the deployed rules use)
    import app

    filters = [f for s in subscriptions(app.app) for f in _filters(s.pattern)]

    # Then each filter is an exact string or a string prefix: shapes where moto and EventBridge agree
    # (the cases above); a new shape needs its case here first.
    assert filters
    for flt in filters:
        assert isinstance(flt, str) or (
            isinstance(flt, dict) and list(flt) == ["prefix"] and isinstance(flt["prefix"], str)
        ), flt
