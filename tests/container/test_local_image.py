"""Building an image into a directory, the /opt/ml tree, model packing and how programs are found."""

from __future__ import annotations

import json
import os
import stat
import tarfile
import textwrap
from pathlib import Path

import pytest

from sagedock import sandbox
from sagedock.image import ContractError, LocalImage, build_local_image, load_local_image
from sagedock.optml import layout_opt_ml, pack_model, unpack_model
from sagedock.programs import run_train


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip())
        if content.startswith("#!"):
            path.chmod(0o755)
    return root


def test_copy_semantics_dockerignore_and_stages(tmp_path: Path) -> None:
    # Given a context with a .dockerignore and a Dockerfile using files, folders, globs and stages
    context = write(
        tmp_path / "ctx",
        {
            "Dockerfile": """
                FROM python:3.11 AS build
                COPY lib/ /src/lib/
                RUN pip install --target /deps something
                FROM python:3.11-slim
                WORKDIR /app
                COPY *.py ./
                COPY lib /app/lib
                COPY --chmod=755 tool.sh /usr/local/bin/tool
                COPY --from=build /src/lib/a.py /from-build/
                COPY --from=build /deps /deps
                """,
            ".dockerignore": "**/*.pyc\nlib/secret.txt\n",
            "main.py": "print('main')\n",
            "util.py": "",
            "tool.sh": "echo tool\n",
            "lib/a.py": "",
            "lib/a.pyc": "",
            "lib/secret.txt": "",
        },
    )

    # When it is built
    image = build_local_image(context, tmp_path / "image")

    # Then the last stage's files are below the root, as Docker would place them
    root = image.root
    assert sorted(p.name for p in (root / "app").iterdir()) == ["lib", "main.py", "util.py"]
    assert sorted(p.name for p in (root / "app" / "lib").iterdir()) == ["a.py"]
    assert os.access(root / "usr/local/bin/tool", os.X_OK)
    assert (root / "from-build" / "a.py").is_file()
    # And what only a RUN step could have made is noted, not invented
    assert any("/deps from stage build comes from its RUN steps" in note for note in image.notes)
    assert not (root / "deps").exists()


def test_the_digest_is_content_addressed_and_the_image_can_be_reopened(tmp_path: Path) -> None:
    # Given a tiny context
    context = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY a.txt /a.txt\n", "a.txt": "one"})

    # When it is built twice, then changed and built again
    first = build_local_image(context, tmp_path / "one")
    second = build_local_image(context, tmp_path / "two")
    (context / "a.txt").write_text("two")
    changed = build_local_image(context, tmp_path / "one")

    # Then the same content gives the same digest, other content another one
    assert first.digest == second.digest != changed.digest
    assert len(first.digest) == len("sha256:") + 64
    # And the image can be reopened from its directory
    reopened = load_local_image(tmp_path / "one")
    assert (reopened.digest, reopened.spec, reopened.root) == (changed.digest, changed.spec, changed.root)


def test_a_missing_copy_source_names_the_line(tmp_path: Path) -> None:
    context = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n\nCOPY nothere /x\n"})
    with pytest.raises(ContractError, match=r"line 3: COPY nothere: no such file in the build context"):
        build_local_image(context, tmp_path / "image")


def test_a_copy_outside_the_context_is_refused(tmp_path: Path) -> None:
    context = write(tmp_path / "ctx", {"Dockerfile": "FROM scratch\nCOPY ../secret /x\n"})
    with pytest.raises(ContractError, match="outside the build context"):
        build_local_image(context, tmp_path / "image")


def test_layout_opt_ml_is_what_sagemaker_writes(tmp_path: Path) -> None:
    # Given hyperparameters (as strings) and a channel folder
    data = write(tmp_path / "data", {"part-1.csv": "a,1\n"})

    # When the tree is laid out
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(
        opt_ml, hyperparameters={"depth": "3"}, channels={"train": data}, instance_type="ml.c5.xlarge"
    )

    # Then the config files and the channel data are where SageMaker puts them
    config = opt_ml / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == {"depth": "3"}
    assert json.loads((config / "inputdataconfig.json").read_text())["train"]["TrainingInputMode"] == "File"
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1" and resources["hosts"] == ["algo-1"]
    assert resources["current_instance_type"] == "ml.c5.xlarge"
    assert (opt_ml / "input" / "data" / "train" / "part-1.csv").read_text() == "a,1\n"
    assert (opt_ml / "model").is_dir() and (opt_ml / "output").is_dir()


def test_a_bad_channel_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="invalid channel name"):
        layout_opt_ml(tmp_path, hyperparameters={}, channels={"no/slash": tmp_path})


def test_the_model_is_packed_reproducibly_and_unpacked_read_only(tmp_path: Path) -> None:
    # Given a model directory with a nested file
    opt_ml = tmp_path / "opt_ml"
    write(opt_ml / "model", {"model.bin": "weights", "extra/vocab.txt": "a b"})

    # When it is packed twice and unpacked
    first = pack_model(opt_ml, tmp_path / "one.tar.gz")
    second = pack_model(opt_ml, tmp_path / "two.tar.gz")
    target = tmp_path / "served" / "model"
    unpack_model(first, target)

    # Then the archives are identical, relative, and the unpacked tree is read-only
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as archive:
        assert archive.getnames() == ["extra", "extra/vocab.txt", "model.bin"]
    assert (target / "extra" / "vocab.txt").read_text() == "a b"
    assert not stat.S_IMODE((target / "model.bin").stat().st_mode) & 0o222
    assert not stat.S_IMODE(target.stat().st_mode) & 0o222


def image_and_job(tmp_path: Path, files: dict[str, str]) -> tuple[LocalImage, Path]:
    """An image built from `files` and an empty training job's /opt/ml tree."""
    image = build_local_image(write(tmp_path / "ctx", files), tmp_path / "image")
    opt_ml = tmp_path / "opt_ml"
    layout_opt_ml(opt_ml, hyperparameters={}, channels={})
    return image, opt_ml


def test_image_paths_in_argv_are_mapped_below_the_root(tmp_path: Path) -> None:
    # Given an exec-form ENTRYPOINT naming an image-absolute script and an /opt/ml path
    image, opt_ml = image_and_job(
        tmp_path,
        {
            "Dockerfile": """
                FROM python:3.11-slim
                COPY main.py /opt/program/main.py
                ENV MODE=local
                ENTRYPOINT ["python3", "/opt/program/main.py", "/opt/ml/model"]
                """,
            "main.py": """
                import os, sys
                target = sys.argv[1]
                os.makedirs(target, exist_ok=True)
                with open(os.path.join(target, "args.txt"), "w") as f:
                    f.write(" ".join(sys.argv[2:]) + " " + os.environ["MODE"] + " " + os.getcwd())
                """,
        },
    )

    # When `train` runs
    outcome = run_train(image, opt_ml, timeout=60)

    # Then the script ran in the image's WORKDIR (/ at its real path in a sandbox, else the image root),
    # wrote into the job's /opt/ml, with the image's env
    assert outcome.ok, outcome.failure_reason
    workdir = "/" if sandbox.support().available else str(image.root)
    assert (opt_ml / "model" / "args.txt").read_text() == f"train local {workdir}"


def test_shell_form_entrypoints_get_their_paths_mapped_too(tmp_path: Path) -> None:
    image, opt_ml = image_and_job(
        tmp_path,
        {
            "Dockerfile": 'FROM scratch\nCOPY run.sh /opt/run.sh\nENTRYPOINT sh /opt/run.sh "$0"\n',
            "run.sh": 'mkdir -p "$SAGEDOCK_OPT_ML/model" && echo "$1" > "$SAGEDOCK_OPT_ML/model/which"\n',
        },
    )

    outcome = run_train(image, opt_ml, timeout=60)

    assert outcome.ok, outcome.failure_reason
    assert (opt_ml / "model" / "which").read_text() == "train\n"


def test_a_program_missing_from_path_is_explained(tmp_path: Path) -> None:
    image, opt_ml = image_and_job(tmp_path, {"Dockerfile": 'FROM scratch\nCMD ["serve"]\n'})

    outcome = run_train(image, opt_ml, timeout=60)

    assert not outcome.ok and outcome.exit_code is None
    assert outcome.failure_reason is not None
    assert "train: not found on the image's PATH" in outcome.failure_reason


def test_a_train_that_hangs_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    image, opt_ml = image_and_job(
        tmp_path,
        {
            "Dockerfile": "FROM scratch\nCOPY train /usr/local/bin/train\n",
            "train": "#!/bin/sh\nsleep 60 &\nsleep 60\n",
        },
    )

    outcome = run_train(image, opt_ml, timeout=1)

    assert not outcome.ok
    assert outcome.failure_reason == "train did not finish within 1 s and was stopped"
