"""The classic SageMaker sample's inference app, for comparison: Flask, pandas parsing on every request.

Written after the shape of the decision-trees sample (nginx -> gunicorn -> this Flask app), only as the
baseline of bench/bench_serve.py; the model is the same joblib file the sample container serves.
"""

from __future__ import annotations

import io
import os

import flask
import joblib
import pandas as pd

MODEL_DIR = os.path.join(os.environ.get("SAGEDOCK_OPT_ML", "/opt/ml"), "model")


class ScoringService:
    """Loads the model on first use and keeps it."""

    model = None

    @classmethod
    def get_model(cls):  # type: ignore[no-untyped-def]
        if cls.model is None:
            cls.model = joblib.load(os.path.join(MODEL_DIR, "model.joblib"))
        return cls.model

    @classmethod
    def predict(cls, frame):  # type: ignore[no-untyped-def]
        return cls.get_model().predict(frame.values)


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():  # type: ignore[no-untyped-def]
    healthy = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if healthy else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations():  # type: ignore[no-untyped-def]
    if flask.request.content_type != "text/csv":
        return flask.Response(
            response="This predictor only supports CSV data", status=415, mimetype="text/plain"
        )
    frame = pd.read_csv(io.StringIO(flask.request.data.decode("utf-8")), header=None)
    predictions = ScoringService.predict(frame)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")
