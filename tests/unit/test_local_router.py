"""The local Lambda service: events reach exactly the handlers whose registered patterns match them."""

from __future__ import annotations

import threading
from typing import Any

from chalice.app import Chalice, CloudWatchEvent

from sagedock import eventshapes as events
from sagedock.local.router import Router, subscriptions


def _app() -> tuple[Chalice, dict[str, list[Any]], dict[str, int]]:
    app = Chalice(app_name="router-test")
    seen: dict[str, list[Any]] = {"uploads": [], "pushes": [], "flaky": []}
    failures = {"flaky": 1}
    lock = threading.Lock()

    @app.on_cw_event({"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": "bundles/"}]}}})
    def uploads(event: CloudWatchEvent) -> None:
        with lock:
            seen["uploads"].append(
                (event.event_id, event.detail["object"]["key"], event.context.function_name)
            )

    @app.on_cw_event({"source": ["aws.ecr"], "detail": {"action-type": ["PUSH"]}}, name="pushes")
    def on_push(event: CloudWatchEvent) -> None:
        seen["pushes"].append(event.detail["image-tag"])

    @app.on_cw_event({"source": ["aws.ecr"], "detail": {"image-tag": [{"prefix": "flaky"}]}})
    def flaky(event: CloudWatchEvent) -> None:
        with lock:
            seen["flaky"].append(event.event_id)
            if failures["flaky"]:
                failures["flaky"] -= 1
                raise RuntimeError("transient")

    @app.route("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app, seen, failures


def _upload(key: str) -> dict[str, Any]:
    return events.s3_object_created(
        bucket="b", key=key, size=1, etag="e", version_id="v", sequencer="1", request_id="r"
    )


def test_the_subscriptions_are_the_apps_own_event_handlers() -> None:
    app, _, _ = _app()
    assert {s.name for s in subscriptions(app)} == {"uploads", "pushes", "flaky"}


def test_an_event_reaches_only_the_matching_handlers_with_a_lambda_context() -> None:
    # Given the app's router
    app, seen, _ = _app()
    router = Router(app, workers=2, retry_delays=())
    try:
        # When an upload under bundles/ and one elsewhere arrive
        upload = _upload("bundles/demo/a.zip")
        assert router.deliver(upload) == ["uploads"]
        assert router.deliver(_upload("elsewhere/a.zip")) == []
        assert router.drain(5)
    finally:
        router.close()
    # Then only the first reached the handler, as a CloudWatchEvent with a context named after the function
    assert seen["uploads"] == [(upload["id"], "bundles/demo/a.zip", "uploads")]


def test_a_failing_invocation_is_retried_like_an_async_lambda_invoke() -> None:
    app, seen, _ = _app()
    router = Router(app, workers=1, retry_delays=(0.01, 0.01))
    try:
        push = events.ecr_image_action(repository="r", digest="sha256:" + "c" * 64, tag="flaky-1")
        assert sorted(router.deliver(push)) == ["flaky", "pushes"]
        assert router.drain(5)
    finally:
        router.close()
    assert seen["flaky"] == [push["id"], push["id"]]
    flaky = [i for i in router.invocations if i.function == "flaky"]
    assert flaky[0].attempts == 2
    assert flaky[0].error is None


def test_a_closed_router_takes_no_more_events() -> None:
    app, seen, _ = _app()
    router = Router(app)
    router.close()
    assert router.deliver(_upload("bundles/demo/b.zip")) == []
    assert seen["uploads"] == []
