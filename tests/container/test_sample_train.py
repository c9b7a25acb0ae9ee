"""The sample's `train`: hyperparameters, data, failure reasons, the model it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sample_bundle import IRIS

from sagedock.image import LocalImage
from sagedock.optml import layout_opt_ml
from sagedock.programs import run_train


def train(image: LocalImage, tmp_path: Path, hyperparameters: dict[str, str], channels: dict[str, Path]):  # type: ignore[no-untyped-def]
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters=hyperparameters, channels=channels)
    return opt_ml, run_train(image, opt_ml, timeout=120)


def test_train_writes_the_model_and_its_description(sample_image: LocalImage, tmp_path: Path) -> None:
    # Given the iris data and typed-as-strings hyperparameters
    # When train runs
    opt_ml, outcome = train(
        sample_image, tmp_path, {"max_leaf_nodes": "4", "criterion": "entropy"}, {"train": IRIS.parent}
    )

    # Then it succeeds and the model directory holds the estimator and its metadata
    assert outcome.ok and outcome.exit_code == 0
    metadata = json.loads((opt_ml / "model" / "metadata.json").read_text())
    assert metadata["hyperparameters"]["max_leaf_nodes"] == 4
    assert metadata["hyperparameters"]["criterion"] == "entropy"
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert (opt_ml / "model" / "model.joblib").is_file()


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"max_leaf_nodes": "abc"}, "hyperparameter max_leaf_nodes: expected an integer >= 2"),
        ({"max_leaf_nodes": "1"}, "hyperparameter max_leaf_nodes: expected an integer >= 2"),
        ({"criterion": "best"}, "hyperparameter criterion: expected one of gini, entropy, log_loss"),
        ({"max_depht": "3"}, "unknown hyperparameter 'max_depht'"),
    ],
)
def test_a_bad_hyperparameter_fails_with_a_message_naming_it(
    sample_image: LocalImage, tmp_path: Path, hyperparameters: dict[str, str], message: str
) -> None:
    # Given a hyperparameter the model cannot use
    # When train runs
    opt_ml, outcome = train(sample_image, tmp_path, hyperparameters, {"train": IRIS.parent})

    # Then it exits non-zero and the failure file starts with the human message, traceback after
    assert not outcome.ok and outcome.exit_code == 1
    assert outcome.failure_reason is not None and outcome.failure_reason.startswith(message)
    failure = (opt_ml / "output" / "failure").read_text()
    assert failure.index(message) < failure.index("Traceback")


def test_tuner_and_sagemaker_keys_are_not_judged(sample_image: LocalImage, tmp_path: Path) -> None:
    # Given keys the tuner or SageMaker may add
    hyperparameters = {"_tuning_objective_metric": "accuracy", "sagemaker_job_name": "x"}

    # When train runs
    _, outcome = train(sample_image, tmp_path, hyperparameters, {"train": IRIS.parent})

    # Then they are ignored
    assert outcome.ok, outcome.failure_reason


def test_a_missing_channel_is_named_with_the_channels_present(
    sample_image: LocalImage, tmp_path: Path
) -> None:
    # Given the data in a channel called "training" instead of "train"
    # When train runs
    _, outcome = train(sample_image, tmp_path, {}, {"training": IRIS.parent})

    # Then the reason says which channel is missing and which exist
    assert outcome.failure_reason is not None
    assert outcome.failure_reason.startswith("no channel 'train' (channels present: training)")


def test_a_non_numeric_feature_is_located(sample_image: LocalImage, tmp_path: Path) -> None:
    # Given a CSV with a header row
    data = tmp_path / "data"
    data.mkdir()
    (data / "iris.csv").write_text("species,a,b,c,d\n" + IRIS.read_text())

    # When train runs
    _, outcome = train(sample_image, tmp_path, {}, {"train": data})

    # Then the reason names the file, line and column
    assert outcome.failure_reason is not None
    assert outcome.failure_reason.startswith("train/iris.csv line 1 column 2: 'a' is not a number")


def test_all_csv_files_of_the_channel_are_read(sample_image: LocalImage, tmp_path: Path) -> None:
    # Given the data split over two files (and a README that is not data)
    data = tmp_path / "data"
    (data / "part").mkdir(parents=True)
    lines = IRIS.read_text().splitlines(keepends=True)
    (data / "a.csv").write_text("".join(lines[:75]))
    (data / "part" / "b.csv").write_text("".join(lines[75:]))
    (data / "README.md").write_text("not data\n")
    logged: list[str] = []

    # When train runs
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={}, channels={"train": data})
    outcome = run_train(sample_image, opt_ml, timeout=120, log=logged.append)

    # Then every row of both files is used
    assert outcome.ok, outcome.failure_reason
    assert any("150 rows from 2 file(s)" in line for line in logged)


def test_the_shipped_manifest_is_valid_and_its_hyperparameters_train(
    sample_image: LocalImage, tmp_path: Path
) -> None:
    # Given the sample's sagedock.toml, validated as the pipeline validates it
    from chalicelib.domain.manifest import as_string, parse_manifest
    from sagedock.contract import manifest_hyperparameters

    manifest = parse_manifest((IRIS.parents[1] / "sagedock.toml").read_text(), project="iris")
    hyperparameters = manifest_hyperparameters(IRIS.parents[1])

    # Then the check sends them as the pipeline does, and the sample trains with them
    assert hyperparameters == {k: as_string(v) for k, v in manifest.train.hyperparameters.items()}
    assert manifest.train.channels == {"train": "iris/train/"}
    _, outcome = train(sample_image, tmp_path, hyperparameters, {"train": IRIS.parent})
    assert outcome.ok, outcome.failure_reason
