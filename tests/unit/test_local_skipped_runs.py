"""Process mode says what it did not do: each skipped RUN step in the build log, a missing module named."""

from __future__ import annotations

import io
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from sagedock.image import LocalImage, build_local_image, missing_module_hint, skipped_run_steps
from sagedock.local.build import BuildExecutor
from sagedock.local.emulator import DUMMY_CREDENTIALS, Emulator
from sagedock.local.images import ImageStore
from sagedock.local.provision import Resources, provision
from sagedock.optml import layout_opt_ml
from sagedock.programs import FAILURE_REASON_LIMIT, run_train

CLASSIC = Path(__file__).resolve().parents[1] / "e2e" / "bundles" / "classic-byoc"
MEANING = "(what it installs must already be on this host)"
CLASSIC_STEPS = [
    "apt-get update && apt-get install -y --no-install-recommends nginx ca-certificates "
    "&& rm -rf /var/lib/apt/lists/*",
    "pip install --no-cache-dir flask==3.1.3 gunicorn==27.0.1",
    "pip install --no-cache-dir scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1 joblib==1.6.0 "
    "threadpoolctl==3.8.0",
    "chmod +x /opt/program/train /opt/program/serve",
]


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip())
        if content.lstrip().startswith("#!"):
            path.chmod(0o755)
    return root


def test_the_classic_bundle_gets_one_note_per_run_step_in_order(tmp_path: Path) -> None:
    # When the classic bring-your-own-container bundle is built without an engine
    image = build_local_image(CLASSIC, tmp_path / "image")
    # Then each of its four RUN steps is named once, with its command and what skipping it means
    expected = [
        f"RUN step {number} of stage 1 not executed: {command} {MEANING}"
        for number, command in enumerate(CLASSIC_STEPS, start=1)
    ]
    assert [note for note in image.notes if note.startswith("RUN step")] == expected
    assert (
        "RUN step 2 of stage 1 not executed: pip install --no-cache-dir flask==3.1.3 gunicorn==27.0.1 "
        f"{MEANING}" in image.notes
    )


def test_stages_are_told_apart_and_a_stage_outside_the_image_means_something_else(tmp_path: Path) -> None:
    # Given a builder stage, a base stage and a final stage built on the base
    context = write(
        tmp_path / "ctx",
        {
            "Dockerfile": """
                FROM python:3.11 AS build
                RUN pip wheel --wheel-dir /wheels numpy
                FROM python:3.11-slim AS base
                RUN pip install requests
                FROM base
                RUN echo done
            """,
        },
    )
    image = build_local_image(context, tmp_path / "image")
    steps = skipped_run_steps(image.spec)
    # Then each step is numbered within its stage, and only the builder's is outside the image
    assert [(s.stage, s.number, s.command, s.in_image) for s in steps] == [
        ("stage 1 (build)", 1, "pip wheel --wheel-dir /wheels numpy", False),
        ("stage 2 (base)", 1, "pip install requests", True),
        ("stage 3", 1, "echo done", True),
    ]
    assert image.notes[0] == (
        "RUN step 1 of stage 1 (build) not executed: pip wheel --wheel-dir /wheels numpy "
        "(what it makes is not in the image: a COPY --from of it must already be on this host)"
    )
    assert image.notes[2] == f"RUN step 1 of stage 3 not executed: echo done {MEANING}"


@pytest.fixture
def provisioned() -> Iterator[tuple[Emulator, Resources]]:
    """The emulator with every resource the local cloud creates (its CodeBuild project among them)."""
    emulator, resources = Emulator(), Resources()
    url = emulator.start()
    try:
        provision(boto3.session.Session(**DUMMY_CREDENTIALS, region_name=resources.region), url, resources)
        yield emulator, resources
    finally:
        emulator.stop()


def _zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def test_the_build_log_and_its_log_stream_list_each_skipped_run_step(
    provisioned: tuple[Emulator, Resources], tmp_path: Path
) -> None:
    # Given the local CodeBuild, a repository and the classic bundle uploaded as a source
    emulator, resources = provisioned
    source = f"{resources.source_bucket}/bundles/classic.zip"
    emulator.client("s3").put_object(
        Bucket=resources.source_bucket, Key="bundles/classic.zip", Body=_zip(CLASSIC)
    )
    emulator.client("ecr").create_repository(repositoryName="classic")
    codebuild = emulator.client("codebuild")
    executor = BuildExecutor(emulator, ImageStore(tmp_path / "images"), tmp_path / "builds")
    executor.install()
    try:
        # When a build of it is started and runs to its end
        build_id = codebuild.start_build(
            projectName=resources.codebuild_project,
            sourceLocationOverride=f"arn:aws:s3:::{source}",
            environmentVariablesOverride=[
                {"name": "IMAGE_REPO", "value": "classic", "type": "PLAINTEXT"},
                {"name": "IMAGE_TAG", "value": "r1", "type": "PLAINTEXT"},
            ],
        )["build"]["id"]
        deadline = time.monotonic() + 60
        while True:
            build = codebuild.batch_get_builds(ids=[build_id])["builds"][0]
            if build["buildComplete"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        executor.close()
    assert build["buildStatus"] == "SUCCEEDED"
    # Then its log file and its CloudWatch stream say, once each, which RUN steps were not executed
    expected = [
        f"process mode: RUN step {number} of stage 1 not executed: {command} {MEANING}"
        for number, command in enumerate(CLASSIC_STEPS, start=1)
    ]
    log_file = tmp_path / "builds" / "logs" / f"{build_id.replace(':', '-')}.log"
    file_lines = log_file.read_text().splitlines()
    stream = emulator.client("logs").get_log_events(
        logGroupName=f"/aws/codebuild/{resources.codebuild_project}",
        logStreamName=build_id.split(":", 1)[-1],
        startFromHead=True,
    )
    stream_lines = [event["message"].rstrip("\n") for event in stream["events"]]
    for lines in (file_lines, stream_lines):
        assert [line for line in lines if line.startswith("process mode: RUN")] == expected
        assert lines.index(expected[-1]) < next(i for i, x in enumerate(lines) if "Built image" in x)


def _image_with_train(tmp_path: Path, dockerfile: str, train: str) -> LocalImage:
    context = write(tmp_path / "ctx", {"Dockerfile": dockerfile, "program/train": train})
    return build_local_image(context, tmp_path / "image")


DOCKERFILE = """
    FROM python:3.11-slim
    RUN apt-get update && apt-get install -y curl
    RUN pip install --no-cache-dir sagedock_absent_module==1.0 requests==2.32.3
    COPY program /opt/program
    ENV PATH="/opt/program:${PATH}"
"""


def test_a_train_failing_on_a_missing_module_names_it_and_the_run_step(tmp_path: Path) -> None:
    # Given an image whose train imports a module only a skipped RUN step would install
    image = _image_with_train(
        tmp_path, DOCKERFILE, "#!/usr/bin/env python3\nimport sagedock_absent_module.core\n"
    )
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={}, channels={})
    # When it is run
    outcome = run_train(image, opt_ml, timeout=60)
    # Then the failure reason keeps the output and names the module and the step that installs it
    assert not outcome.ok and outcome.exit_code == 1
    reason = outcome.failure_reason or ""
    assert "ModuleNotFoundError: No module named 'sagedock_absent_module'" in reason
    assert reason.endswith(
        "Python module 'sagedock_absent_module' is missing on this host: the image was built without a "
        "container engine, so its RUN steps were not executed (RUN step 2 of stage 1, which names it; "
        "see the build log) and what they install must already be installed here"
    )
    assert len(reason) <= FAILURE_REASON_LIMIT


def test_a_long_failure_file_is_cut_to_the_limit_but_the_hint_is_kept_whole(tmp_path: Path) -> None:
    # Given a train that writes a long failure file ending in a ModuleNotFoundError of an unnamed module
    train = """\
        #!/usr/bin/env python3
        import os, sys
        with open(os.path.join(os.environ["SAGEDOCK_OPT_ML"], "output", "failure"), "w") as out:
            out.write("x" * 3000 + "\\nModuleNotFoundError: No module named 'yaml'\\n")
        sys.exit(2)
    """
    image = _image_with_train(tmp_path, DOCKERFILE, textwrap.dedent(train))
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={}, channels={})
    outcome = run_train(image, opt_ml, timeout=60)
    reason = outcome.failure_reason or ""
    # Then the reason is within SageMaker's limit, starts with what the program wrote and ends with the hint
    assert len(reason) == FAILURE_REASON_LIMIT and reason.startswith("xxxx")
    assert reason.endswith(
        "(2 RUN step(s): RUN step 1 of stage 1, RUN step 2 of stage 1; see the build log) and what they "
        "install must already be installed here"
    )
    assert "Python module 'yaml' is missing on this host" in reason


def test_the_hint_matches_pip_names_and_says_when_no_run_step_could_have_installed_it(tmp_path: Path) -> None:
    image = _image_with_train(tmp_path, DOCKERFILE, "#!/bin/sh\nexit 1\n")
    output = (
        "Traceback (most recent call last):\n"
        "ModuleNotFoundError: No module named 'Sagedock_Absent_Module.sub'"
    )
    assert "(RUN step 2 of stage 1, which names it;" in (missing_module_hint(image, output) or "")
    assert missing_module_hint(image, "ValueError: bad input") is None
    bare = _image_with_train(tmp_path / "bare", "FROM scratch\nCOPY program /opt/program\n", "#!/bin/sh\n")
    assert missing_module_hint(bare, "No module named 'flask'") == (
        "Python module 'flask' is missing on this host: install it here "
        "(the image has no RUN step that could have installed it)"
    )


def test_a_train_failing_for_another_reason_gets_no_module_hint(tmp_path: Path) -> None:
    image = _image_with_train(tmp_path, DOCKERFILE, "#!/bin/sh\necho 'disk full' >&2\nexit 3\n")
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={}, channels={})
    outcome = run_train(image, opt_ml, timeout=60)
    assert outcome.failure_reason == (
        "train exited with code 3 without writing /opt/ml/output/failure; last output: disk full"
    )
