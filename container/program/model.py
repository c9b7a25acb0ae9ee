"""The model of this sample: its hyperparameters, how it trains, how it is saved, loaded and asked.

This is the one file to change when you adapt the container to your own estimator; `trainer.py` and
`server.py` only rely on `parse_hyperparameters`, `fit`, `save`, `load` and `Predictor`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.tree import DecisionTreeClassifier

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


class HyperparameterError(ValueError):
    """A hyperparameter is unknown or its value cannot be used."""


class InvalidInput(ValueError):
    """A request's rows cannot be scored (wrong count of values, not a number, ...)."""


def _int_at_least(minimum: int, *, optional: bool = False) -> Callable[[str], int | None]:
    def parse(text: str) -> int | None:
        if optional and text.strip().lower() in ("", "none", "null"):
            return None
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or value < minimum:
            extra = ' or "none"' if optional else ""
            raise ValueError(f"expected an integer >= {minimum}{extra}, got {text!r}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return parse


@dataclass(frozen=True)
class Hyperparameter:
    """How one hyperparameter is read from its string form (SageMaker passes every value as a string)."""

    default: Any
    parse: Callable[[str], Any]


HYPERPARAMETERS: dict[str, Hyperparameter] = {
    "criterion": Hyperparameter("gini", _choice("gini", "entropy", "log_loss")),
    "max_depth": Hyperparameter(None, _int_at_least(1, optional=True)),
    "max_leaf_nodes": Hyperparameter(None, _int_at_least(2, optional=True)),
    "min_samples_split": Hyperparameter(2, _int_at_least(2)),
    "min_samples_leaf": Hyperparameter(1, _int_at_least(1)),
    "random_state": Hyperparameter(0, _int_at_least(0)),
}

# Keys SageMaker or its tuner may add on its own; they are not this model's to judge.
_FOREIGN_PREFIXES = ("sagemaker_", "_")


def parse_hyperparameters(raw: Mapping[str, object]) -> dict[str, Any]:
    """Typed values for every hyperparameter (defaults filled in); the error names the culprit."""
    params = {name: spec.default for name, spec in HYPERPARAMETERS.items()}
    for name, value in raw.items():
        if name.startswith(_FOREIGN_PREFIXES):
            continue
        spec = HYPERPARAMETERS.get(name)
        if spec is None:
            known = ", ".join(sorted(HYPERPARAMETERS))
            raise HyperparameterError(f"unknown hyperparameter {name!r}; this container accepts: {known}")
        try:
            params[name] = spec.parse(str(value))
        except ValueError as exc:
            raise HyperparameterError(f"hyperparameter {name}: {exc}") from exc
    return params


def fit(features: np.ndarray, labels: np.ndarray, params: Mapping[str, Any]) -> DecisionTreeClassifier:
    """Train the estimator on all rows."""
    return DecisionTreeClassifier(**params).fit(features, labels)


def save(estimator: DecisionTreeClassifier, model_dir: Path, params: Mapping[str, Any]) -> None:
    """Write the estimator and a small human-readable description of it into the model directory."""
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, model_dir / MODEL_FILE)
    metadata = {
        "estimator": type(estimator).__name__,
        "sklearn_version": sklearn.__version__,
        "n_features": int(estimator.n_features_in_),
        "classes": estimator.classes_.tolist(),
        "hyperparameters": dict(params),
    }
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def load(model_dir: Path) -> Predictor:
    """The predictor for the model that `save` wrote (raises with a readable message if it is missing)."""
    path = model_dir / MODEL_FILE
    if not path.is_file():
        present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir} (found: {present or 'nothing'})")
    return Predictor(joblib.load(path))


class Predictor:
    """Scores rows of numbers.

    A decision tree is asked through its fitted `tree_` directly: sklearn's `predict` spends ~100 us
    validating its input, which is most of the time of a one-row request. The shortcut gives the same
    answers as `predict` (the same float32 conversion, the same tree walk, the same argmax); rows that
    are not all finite go through `predict` itself, so missing values behave exactly as sklearn says.
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.n_features = int(estimator.n_features_in_)
        tree = getattr(estimator, "tree_", None)
        single_output = getattr(estimator, "n_outputs_", 1) == 1
        is_tree_classifier = isinstance(estimator, DecisionTreeClassifier)
        self._tree = tree if is_tree_classifier and single_output else None
        self._labels: list[Any] = estimator.classes_.tolist() if self._tree is not None else []

    def predict(self, rows: Sequence[Sequence[float]]) -> list[Any]:
        """One prediction (a JSON-able scalar) per row."""
        features = np.array(rows, dtype=np.float32)
        if self._tree is not None and np.isfinite(features).all():
            labels = self._labels
            return [labels[i] for i in self._tree.predict(features).argmax(axis=1).tolist()]
        try:
            predictions = self.estimator.predict(np.array(rows, dtype=np.float64))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        return list(predictions.tolist())
