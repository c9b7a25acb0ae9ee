"""EventBridge pattern matching as the local cloud routes events: the semantics rules rely on."""

from __future__ import annotations

import pytest

from sagedock.local.patterns import PatternError, matches

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
        ({"detail": {"tags": {"key": ["env"]}}}, True),
        ({"detail": {"tags": {"key": ["prod"]}}}, False),
        ({"detail": {"flag": [None]}}, True),
        ({"detail": {"ok": [True]}}, True),
        ({"detail": {"ok": ["true"]}}, False),
        ({"$or": [{"source": ["aws.ecr"]}, {"detail": {"reason": ["PutObject"]}}]}, True),
        ({"$or": [{"source": ["aws.ecr"]}, {"detail": {"reason": ["CopyObject"]}}]}, False),
        ({"detail": {"bucket": ["src"]}}, False),  # a value list never matches an object
        ({}, True),
    ],
)
def test_a_pattern_matches_as_eventbridge_would(pattern: dict[str, object], expected: bool) -> None:
    # Given an S3 event, When a pattern is applied, Then it matches when EventBridge would deliver it
    assert matches(pattern, S3_EVENT) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": "aws.s3"},
        {"source": []},
        {"detail": {"object": {"key": [{"prefix": "a", "suffix": "b"}]}}},
        {"detail": {"object": {"key": [{"nonsense": "x"}]}}},
        {"detail": {"object": {"size": [{"numeric": [">"]}]}}},
    ],
)
def test_a_pattern_eventbridge_would_refuse_is_an_error(pattern: dict[str, object]) -> None:
    with pytest.raises(PatternError):
        matches(pattern, S3_EVENT)
