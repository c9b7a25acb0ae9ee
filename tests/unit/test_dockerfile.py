"""The Dockerfile parser: what `docker run` would see, and errors that name their line."""

from __future__ import annotations

import textwrap

import pytest

from sagedock.dockerfile import DEFAULT_PATH, DockerfileError, ImageSpec, parse_dockerfile


def parse(text: str, **build_args: str) -> ImageSpec:
    return parse_dockerfile(textwrap.dedent(text).lstrip(), build_args or None)


def test_env_in_both_syntaxes_with_variable_expansion() -> None:
    # Given ENV in the KEY=VALUE and the legacy KEY VALUE forms, with $VAR and ${VAR}
    spec = parse(
        """
        FROM python:3.11-slim
        ENV PATH=/opt/program:$PATH APP="/opt/my app"
        ENV GREETING hello world
        ENV BIN=${APP}/bin EMPTY=${NOPE:-fallback} SET=${APP:+yes}
        """
    )

    # Then values are expanded against what was defined before
    assert spec.env["PATH"] == f"/opt/program:{DEFAULT_PATH}"
    assert spec.env["APP"] == "/opt/my app"
    assert spec.env["GREETING"] == "hello world"
    assert spec.env["BIN"] == "/opt/my app/bin"
    assert spec.env["EMPTY"] == "fallback"
    assert spec.env["SET"] == "yes"


def test_env_values_of_one_instruction_see_the_environment_before_it() -> None:
    # Given one ENV that redefines a variable and uses it
    spec = parse(
        """
        FROM scratch
        ENV A=old
        ENV A=new B=$A
        """
    )

    # Then B got the value from before the instruction, as Docker does
    assert spec.env["B"] == "old"


def test_arg_defaults_build_args_and_global_args() -> None:
    # Given a global ARG used in FROM and redeclared in the stage, and a stage ARG
    text = """
        ARG BASE_IMAGE=python:3.11-slim
        ARG VERSION=1
        FROM ${BASE_IMAGE}
        ARG VERSION
        ARG MODE=fast
        ENV VERSION=$VERSION MODE=$MODE UNSEEN=${BASE_IMAGE:-none}
        """

    # When parsed without and with build args
    plain = parse(text)
    overridden = parse(text, VERSION="2", MODE="slow")

    # Then defaults apply, build args override, and undeclared global args are not visible in the stage
    assert plain.env["VERSION"] == "1" and plain.env["MODE"] == "fast"
    assert plain.env["UNSEEN"] == "none"
    assert plain.stages[0].base == "python:3.11-slim"
    assert overridden.env["VERSION"] == "2" and overridden.env["MODE"] == "slow"


def test_workdir_is_relative_to_the_previous_one() -> None:
    spec = parse(
        """
        FROM scratch
        ENV ROOT=/opt
        WORKDIR $ROOT/program
        WORKDIR sub/../code
        """
    )
    assert spec.workdir == "/opt/program/code"


def test_exec_and_shell_forms_and_the_shell_instruction() -> None:
    # Given a shell-form ENTRYPOINT after SHELL, and an exec-form CMD
    spec = parse(
        """
        FROM scratch
        SHELL ["/bin/bash", "-c"]
        ENTRYPOINT exec python /opt/program/main.py
        CMD ["serve"]
        """
    )

    # Then the shell form is wrapped in the SHELL, the exec form kept as is
    assert spec.entrypoint == ["/bin/bash", "-c", "exec python /opt/program/main.py"]
    assert spec.cmd == ["serve"]


def test_docker_run_semantics_for_train_and_serve() -> None:
    # Given one image with an ENTRYPOINT and one with only a CMD
    with_entrypoint = parse('FROM scratch\nENTRYPOINT ["python3", "/opt/program/main.py"]\nCMD ["serve"]\n')
    cmd_only = parse('FROM scratch\nCMD ["serve"]\n')

    # Then `docker run IMAGE train` appends to the ENTRYPOINT, or replaces the CMD
    assert with_entrypoint.command("train") == ["python3", "/opt/program/main.py", "train"]
    assert with_entrypoint.command() == ["python3", "/opt/program/main.py", "serve"]
    assert cmd_only.command("train") == ["train"]
    assert cmd_only.command() == ["serve"]


def test_entrypoint_resets_an_inherited_cmd_but_not_its_own() -> None:
    spec = parse(
        """
        FROM scratch AS base
        CMD ["serve"]
        FROM base AS reset
        ENTRYPOINT ["/entry"]
        FROM base
        CMD ["own"]
        ENTRYPOINT ["/entry"]
        """
    )
    assert spec.stages[1].cmd == []
    assert spec.cmd == ["own"]


def test_copy_steps_with_flags_json_form_and_workdir() -> None:
    # Given COPY and ADD in every form
    spec = parse(
        """
        FROM scratch AS build
        FROM scratch
        WORKDIR /opt/program
        COPY --chown=1000:1000 --chmod=755 train serve ./
        COPY ["my file.txt", "/data/"]
        COPY --from=build /opt/venv /opt/venv
        ADD model.tar /opt/ml/model/
        """
    )

    # Then sources, destinations (resolved against WORKDIR) and flags are recorded
    first, second, third, fourth = spec.copies
    assert (first.sources, first.dest, first.chown, first.chmod) == (
        ["train", "serve"],
        "/opt/program/",
        "1000:1000",
        "755",
    )
    assert (second.sources, second.dest) == (["my file.txt"], "/data/")
    assert (third.from_stage, third.sources, third.dest) == ("0", ["/opt/venv"], "/opt/venv")
    assert (fourth.instruction, fourth.dest) == ("ADD", "/opt/ml/model/")


def test_multi_stage_the_last_stage_is_the_image_and_inherits_its_base_stage() -> None:
    spec = parse(
        """
        FROM python:3.11 AS builder
        ENV BUILD_ONLY=1
        RUN pip install numpy
        FROM builder AS runtime
        LABEL a=1
        FROM python:3.11-slim
        COPY --from=runtime /x /x
        LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
        """
    )
    assert [stage.name for stage in spec.stages] == ["builder", "runtime", None]
    assert spec.stages[1].base_stage == 0 and spec.stages[1].env["BUILD_ONLY"] == "1"
    assert spec.stages[0].run_steps == 1
    assert "BUILD_ONLY" not in spec.env
    assert spec.labels == {"com.amazonaws.sagemaker.capabilities.accept-bind-to-port": "true"}
    assert spec.copies[0].from_stage == "1"


def test_continuations_comments_heredocs_and_the_escape_directive() -> None:
    # Given a continuation with a comment inside, a RUN here-document and backtick escapes
    spec = parse(
        """
        # escape=`
        FROM scratch
        ENV A=1 `
        # a comment inside the continuation
            B=2
        RUN <<EOF
        FROM not-an-instruction
        EOF
        USER nobody
        STOPSIGNAL SIGINT
        EXPOSE 8080
        """
    )
    assert (spec.env["A"], spec.env["B"]) == ("1", "2")
    assert len(spec.stages) == 1 and spec.stages[0].run_steps == 1
    assert (spec.user, spec.stop_signal) == ("nobody", "SIGINT")


def test_continuations_join_as_buildkit_does_and_every_here_document_is_consumed() -> None:
    # Given a continuation inside a word, and one RUN with two here-documents
    spec = parse(
        """
        FROM scratch
        ENV GREETING=hel\\
        lo
        RUN <<ONE <<TWO bash
        FROM not-an-instruction
        ONE
        CMD ["not an instruction either"]
        TWO
        CMD ["serve"]
        """
    )

    # Then only the escape and the line break are removed, and both bodies are skipped
    assert spec.env["GREETING"] == "hello"
    assert spec.stages[0].run_steps == 1 and spec.cmd == ["serve"]


def test_the_escape_directive_is_also_the_escape_of_shell_words() -> None:
    # Given the backtick as escape character: a backslash is then an ordinary character
    spec = parse(
        """
        # escape=`
        FROM scratch
        ENV DIR=C:\\opt\\program TICK=a``b
        """
    )
    assert (spec.env["DIR"], spec.env["TICK"]) == ("C:\\opt\\program", "a`b")


def test_the_spec_survives_a_round_trip_through_json() -> None:
    spec = parse("FROM scratch AS a\nCOPY x /x\nFROM a\nCOPY --from=a /x /y\nCMD serve\n")
    assert ImageSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "no FROM instruction"),
        ("ENV A=1\nFROM scratch\n", 1, "ENV before the first FROM"),
        ("FROM scratch\n\nFROBNICATE now\n", 3, "unknown instruction FROBNICATE"),
        ("FROM scratch\nCOPY --from=elsewhere:latest /a /b\n", 2, "names no earlier stage"),
        ("FROM scratch\nCOPY --exclude=*.pyc . /app\n", 2, "--exclude is not supported"),
        ("FROM scratch\nADD https://example.com/x.tgz /x\n", 2, "from a URL"),
        ("FROM scratch\nCOPY a b /dest\n", 2, "needs a directory (ending in /)"),
        ("FROM scratch\nCOPY onlyone\n", 2, "at least one source and a destination"),
        ("FROM scratch\nENV A\n", 2, "ENV expects KEY=VALUE"),
        ("FROM scratch\nENV A=${B\n", 2, "unclosed ${"),
        ("FROM scratch\nENV A=${B%%x}\n", 2, "unsupported substitution"),
        ("FROM scratch\nSHELL /bin/bash -c\n", 2, "SHELL needs a JSON array"),
        ("FROM a AS x\nFROM b AS x\n", 2, "duplicate stage name"),
        ("FROM scratch\nWORKDIR /a /b\n", 2, "exactly one path"),
        ("FROM scratch\nCOPY <<EOF /x\nhi\nEOF\n", 2, "here-document is not supported"),
        ("FROM scratch\nRUN <<EOF\nnever closed\n", 2, "never closed"),
        ('FROM scratch\nLABEL "unterminated\n', 2, 'unmatched "'),
    ],
)
def test_errors_name_their_line(text: str, line: int, message: str) -> None:
    # Given a broken Dockerfile
    # When it is parsed
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile(text)

    # Then the error is a ValueError starting with the line number and saying what is wrong
    assert isinstance(caught.value, ValueError)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert message in str(caught.value)


def test_the_sample_dockerfile() -> None:
    # Given the shipped sample Dockerfile
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "container" / "Dockerfile").read_text()

    # When parsed
    spec = parse_dockerfile(text)

    # Then train and serve run through the exec-form entrypoint, from /opt/program on PATH
    assert spec.command("train") == ["/usr/bin/env", "--", "train"]
    assert spec.env["PATH"].startswith("/opt/program:")
    assert spec.labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert spec.env["PYTHONUNBUFFERED"] == "1"
