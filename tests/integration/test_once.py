"""At-most-once side effects (adapters/idempotency.py: Once) on a moto idempotency table."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from chalice.local import LambdaContext
from moto import mock_aws

from chalicelib.adapters import run_store as runs
from chalicelib.adapters.idempotency import Once
from chalicelib.domain.errors import StaleEvent

TABLE = "sagedock-idempotency-test"


@pytest.fixture
def once() -> Iterator[Once]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(**runs.idempotency_table_definition(TABLE))
        context = LambdaContext("sagedock-dev-test", memory_size=256, max_runtime_ms=60_000)
        yield Once(TABLE, dynamodb, context=lambda: context)


def test_a_replay_gets_the_first_result_without_acting_again(once: Once) -> None:
    calls: list[str] = []
    first = once("train:job-t1", lambda: calls.append("first") or "started")
    again = once("train:job-t1", lambda: calls.append("again") or "started twice")
    assert (first, again, calls) == ("started", "started", ["first"])


def test_other_keys_act_each(once: Once) -> None:
    assert [once(f"build:run:{n}", lambda n=n: n) for n in (1, 2)] == [1, 2]


def test_the_same_key_from_two_lambda_functions_acts_once(
    once: Once, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The build-finished and the image-pushed functions may both start one run's training job.
    calls: list[str] = []
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sagedock-dev-build_state_changed")
    once("train:job-t1", lambda: calls.append("build finished"))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sagedock-dev-image_pushed")
    once("train:job-t1", lambda: calls.append("image pushed"))
    assert calls == ["build finished"]


def test_a_delivery_meeting_one_in_progress_is_stale(once: Once) -> None:
    def nested() -> None:
        once("endpoint:run", lambda: None)

    with pytest.raises(StaleEvent, match="concurrent delivery"):
        once("endpoint:run", nested)


def test_a_failed_side_effect_is_not_recorded_so_a_retry_acts(once: Once) -> None:
    def throttled() -> str:
        raise RuntimeError("throttled")

    with pytest.raises(RuntimeError):
        once("build:run:1", throttled)
    assert once("build:run:1", lambda: "started") == "started"
