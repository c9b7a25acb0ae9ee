"""What `serve` does: a lean pre-forking HTTP/1.1 server for SageMaker's inference contract.

This module and its transport (`http11.py`, `workers.py`) need no change for another model: what a request
body means, how a prediction is written out and which content types are accepted are `inference.py`'s.
The parent binds the port, loads the model once (`inference.load`) and forks one worker per CPU (see
`workers.py`). Per request there is no framework and no thread hand-off. Settings come from the environment:

  SAGEMAKER_BIND_TO_PORT   port to listen on (default 8080)
  SAGEDOCK_BIND_HOST       address to listen on (default 0.0.0.0)
  SAGEDOCK_WORKERS         worker processes (also MODEL_SERVER_WORKERS; default: one per usable CPU)
  SAGEDOCK_MAX_PAYLOAD_MB  largest request body accepted (default 32)
  SAGEDOCK_OPT_ML          root of the SageMaker tree (default /opt/ml); the model is in <root>/model
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from http11 import JSON, TEXT, HttpError, Request, choose_output, media_type, response
from workers import Master

# One thread per worker: the workers already fill the CPUs. Set before numpy is imported (by `inference`).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

Decoder = Callable[[bytes, int], list[list[float]]]
Encoder = Callable[[list[Any]], bytes]


class Scorer(Protocol):
    """What the server needs from the model: the row width and a batch prediction."""

    n_features: int

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Any]: ...


@dataclass(frozen=True)
class Config:
    """The server's settings, read once from the environment."""

    host: str
    port: int
    workers: int
    max_payload: int
    model_dir: str

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> Config:
        """Read and check the settings; a bad value raises ValueError naming the variable."""

        def number(name: str, default: int, minimum: int) -> int:
            text = env.get(name, "").strip()
            if not text:
                return default
            try:
                value = int(text)
            except ValueError:
                value = minimum - 1
            if value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {text!r}")
            return value

        workers = number("MODEL_SERVER_WORKERS", usable_cpus(), 1)
        return cls(
            host=env.get("SAGEDOCK_BIND_HOST", "0.0.0.0"),  # noqa: S104 - a container listens on all
            port=number("SAGEMAKER_BIND_TO_PORT", 8080, 1),
            workers=number("SAGEDOCK_WORKERS", workers, 1),
            max_payload=number("SAGEDOCK_MAX_PAYLOAD_MB", 32, 1) * 1024 * 1024,
            model_dir=os.path.join(env.get("SAGEDOCK_OPT_ML", "/opt/ml"), "model"),
        )


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Application:
    """Routes a request to its handler: the SageMaker inference endpoints."""

    def __init__(
        self,
        scorer: Scorer,
        config: Config,
        decoders: Mapping[str, Decoder],
        encoders: Mapping[str, Encoder],
    ) -> None:
        if not decoders or not encoders:
            raise ValueError("inference.DECODERS and inference.ENCODERS must each name a content type")
        self.scorer = scorer
        self.config = config
        self.decoders = dict(decoders)
        self.encoders = dict(encoders)
        self.accepted = " or ".join(self.decoders)
        self.execution_parameters = json.dumps(
            {"MaxConcurrentTransforms": config.workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
        ).encode()

    def handle(self, request: Request) -> bytes:
        """The response bytes for one request (never raises)."""
        keep = request.keep_alive
        try:
            if request.path == b"/invocations":
                if request.method != b"POST":
                    raise HttpError(405, "use POST /invocations")
                content_type, body = self.invoke(request)
                return response(200, body, content_type, keep)
            if request.path == b"/ping":
                if request.method not in (b"GET", b"HEAD"):
                    raise HttpError(405, "use GET /ping")
                return response(200, b"", JSON, keep)
            if request.path == b"/execution-parameters" and request.method == b"GET":
                return response(200, self.execution_parameters, JSON, keep)
            raise HttpError(404, "not found: the endpoints are GET /ping and POST /invocations")
        except HttpError as exc:
            return response(exc.status, f"{exc}\n".encode(), TEXT, keep and not exc.close)
        except Exception as exc:
            traceback.print_exc()
            return response(500, f"{type(exc).__name__}: {exc}\n".encode(), TEXT, keep)

    def invoke(self, request: Request) -> tuple[str, bytes]:
        """Score the request's rows: (content type, body)."""
        content_type = media_type(request.headers.get(b"content-type"))
        decoder = self.decoders.get(content_type)
        if decoder is None:
            shown = content_type or "none"
            raise HttpError(415, f"unsupported content type {shown!r}: send {self.accepted}")
        output = choose_output(request.headers.get(b"accept"), content_type, self.encoders)
        try:
            predictions = self.scorer.predict(decoder(request.body, self.scorer.n_features))
        except ValueError as exc:  # inference.InvalidRequest, or rows the model refuses
            raise HttpError(400, str(exc)) from None
        return output, self.encoders[output](predictions)


def main() -> int:
    """Entry point of the `serve` program."""
    try:
        config = Config.from_env()
    except ValueError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    listener = socket.create_server((config.host, config.port), backlog=2048)
    # Connections queue in the backlog while the model loads; they are answered once the workers run.
    import inference

    try:
        scorer = inference.load(Path(config.model_dir))
        app = Application(scorer, config, inference.DECODERS, inference.ENCODERS)
    except Exception as exc:
        print(f"serve: cannot load the model: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return Master(listener, app, config).run()
