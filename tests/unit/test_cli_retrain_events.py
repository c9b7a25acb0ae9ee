"""`sagedock retrain` builds the request from its flags; `sagedock events` prints one line per event."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagedock.cli import build_parser, main
from sagedock.commands import events, retrain


def test_retrain_sends_only_the_overrides_given() -> None:
    args = build_parser().parse_args(
        [
            "retrain",
            "iris",
            "-p",
            "max_leaf_nodes=8",
            "-p",
            "criterion=entropy",
            "--channel",
            "train=iris/new/",
        ]
    )
    assert retrain.overrides(args) == {
        "hyperparameters": {"max_leaf_nodes": "8", "criterion": "entropy"},
        "channels": {"train": "iris/new/"},
    }
    assert retrain.overrides(build_parser().parse_args(["retrain", "iris", "--no-deploy"])) == {
        "deploy": False
    }
    assert retrain.overrides(build_parser().parse_args(["retrain", "iris"])) == {}


@pytest.mark.parametrize(
    ("argv", "hint"),
    [(["retrain", "iris", "-p", "novalue"], "NAME=VALUE"), (["retrain", "Not_Valid"], "invalid project")],
)
def test_retrain_usage_errors_exit_2(argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert hint in capsys.readouterr().err


def test_events_without_a_queue_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SAGEDOCK_EVENTS_QUEUE_URL", raising=False)
    monkeypatch.setenv("SAGEDOCK_LOCAL_STATE", str(tmp_path))
    assert main(["events"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--queue-url" in err and "sagedock local up" in err


def test_an_event_is_one_line_with_the_error_of_a_failure() -> None:
    event = {
        "time": "2026-11-21T12:09:02Z",
        "detail": {
            "run_id": "iris-3f2a9c0d41b7",
            "status": "FAILED",
            "previous_status": "TRAINING",
            "stage": "train",
            "error": {"stage": "train", "code": "TrainingFailed", "message": "OOM"},
        },
    }
    line = events.describe(event)
    assert "\n" not in line
    assert "iris-3f2a9c0d41b7" in line and "TRAINING -> FAILED" in line and "TrainingFailed: OOM" in line
