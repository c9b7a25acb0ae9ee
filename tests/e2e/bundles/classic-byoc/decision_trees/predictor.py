"""The Flask app gunicorn serves: /ping says whether the model loads, /invocations scores CSV rows."""

import io
import os
import pickle

import flask

prefix = "/opt/ml/"
model_path = os.path.join(prefix, "model")


class ScoringService:
    model = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            with open(os.path.join(model_path, "decision-tree-model.pkl"), "rb") as inp:
                cls.model = pickle.load(inp)
        return cls.model

    @classmethod
    def predict(cls, rows):
        return cls.get_model().predict(rows)


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    health = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if health else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    text = flask.request.data.decode("utf-8")
    rows = [[float(value) for value in line.split(",")] for line in io.StringIO(text) if line.strip()]
    print(f"Invoked with {len(rows)} records")
    predictions = ScoringService.predict(rows)
    out = io.StringIO()
    for label in predictions:
        out.write(f"{label}\n")
    return flask.Response(response=out.getvalue(), status=200, mimetype="text/csv")
