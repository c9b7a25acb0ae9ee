"""Reads a Dockerfile into what running its image needs, so an image can be run without a container engine.

Only what decides how `train` and `serve` start is kept: the files COPY/ADD put in the image (per stage,
for multi-stage builds), ENV, ARG, WORKDIR, LABEL, SHELL, USER, STOPSIGNAL and ENTRYPOINT/CMD. RUN steps
are recorded (so the build log can name each one) but not run: in process mode their effects come from the
local environment.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# What `docker run` has in PATH when the base image sets none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ("/bin/sh", "-c")

_IGNORED = frozenset({"EXPOSE", "VOLUME", "HEALTHCHECK", "ONBUILD", "MAINTAINER"})
_KNOWN = frozenset(
    {"FROM", "ARG", "ENV", "LABEL", "WORKDIR", "COPY", "ADD", "RUN", "ENTRYPOINT", "CMD", "SHELL"}
    | {"USER", "STOPSIGNAL"}
    | _IGNORED
)
_COPY_FLAGS = frozenset({"from", "chown", "chmod", "link"})
_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBSTITUTION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])(.*))?", re.S)
_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?\s*")


class DockerfileError(ValueError):
    """The Dockerfile cannot be read; the message starts with the line number."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class CopyStep:
    """One COPY or ADD: sources (context-relative, or paths in stage `from_stage`) to an image path."""

    sources: list[str]
    dest: str
    line: int
    instruction: str = "COPY"
    from_stage: str | None = None
    chown: str | None = None
    chmod: str | None = None


@dataclass(frozen=True)
class Stage:
    """One FROM ... section; `base_stage` is the index of the earlier stage it builds on, if any."""

    index: int
    name: str | None
    base: str
    base_stage: int | None
    copies: list[CopyStep]
    run_steps: int
    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    labels: dict[str, str]
    user: str | None = None
    stop_signal: str | None = None
    run_commands: list[str] = field(default_factory=list)  # each RUN's command, whitespace collapsed


@dataclass(frozen=True)
class ImageSpec:
    """The final image as `docker run` sees it, plus every stage needed to build its files."""

    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    labels: dict[str, str]
    copies: list[CopyStep]
    stages: list[Stage] = field(default_factory=list)
    user: str | None = None
    stop_signal: str | None = None

    def command(self, *args: str) -> list[str]:
        """The argv of `docker run IMAGE ARGS...`: appended to ENTRYPOINT, or replacing CMD if none."""
        if self.entrypoint:
            return [*self.entrypoint, *(args or self.cmd)]
        return list(args or self.cmd)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (see `from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageSpec:
        """The spec back from `to_dict`'s output."""
        stages = [
            Stage(**{**stage, "copies": [CopyStep(**step) for step in stage["copies"]]})
            for stage in data.get("stages", [])
        ]
        copies = [CopyStep(**step) for step in data["copies"]]
        return cls(**{**data, "copies": copies, "stages": stages})


# ---------------------------------------------------------------- lines


@dataclass(frozen=True)
class _Instruction:
    line: int
    keyword: str
    args: str
    heredocs: int = 0
    escape: str = "\\"  # the escape directive's character, also the shell words' escape


def _directives(lines: Sequence[str]) -> tuple[str, int]:
    """The escape character from the parser directives at the top, and how many lines they take."""
    escape = "\\"
    count = 0
    for text in lines:
        match = re.fullmatch(r"\s*#\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(\S+)\s*", text)
        if not match:
            break
        if match.group(1).lower() == "escape":
            if match.group(2) not in ("\\", "`"):
                raise DockerfileError(count + 1, f"invalid escape directive {match.group(2)!r}")
            escape = match.group(2)
        count += 1
    return escape, count


def _ignored(line: str) -> bool:
    """An empty or comment line: dropped, also inside a continuation (as BuildKit does)."""
    text = line.strip()
    return not text or text.startswith("#")


def _instructions(text: str) -> list[_Instruction]:
    """Logical instructions as BuildKit's parser reads them (tests/unit/dockerfiles is the check):
    continuations joined by removing the escape and the line break only, comment and empty lines dropped,
    here-documents consumed."""
    lines = text.splitlines()
    escape, start = _directives(lines)
    continued = re.compile(re.escape(escape) + r"[ \t]*$")
    result: list[_Instruction] = []
    index = start
    while index < len(lines):
        first = index
        index += 1
        if _ignored(lines[first]):
            continue
        joined, more = continued.subn("", lines[first].lstrip())
        while more and index < len(lines):
            if not _ignored(lines[index]):
                part, more = continued.subn("", lines[index])
                joined += part
            index += 1
        keyword, *rest = joined.split(None, 1)
        keyword, args = keyword.upper(), "".join(rest)
        heredocs = _HEREDOC.findall(args) if keyword in ("RUN", "COPY", "ADD") else []
        for strip_tabs, _quote, terminator in heredocs:
            while index < len(lines):
                body = lines[index].lstrip("\t") if strip_tabs else lines[index]
                index += 1
                if body == terminator:
                    break
            else:
                raise DockerfileError(first + 1, f"here-document {terminator!r} is never closed")
        result.append(_Instruction(first + 1, keyword, args.strip(), len(heredocs), escape))
    return result


# ---------------------------------------------------------------- words and variables


def _expand(text: str, variables: Mapping[str, str], line: int) -> str:
    """`$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}` (unset is empty)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if char != "$" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        if text[i + 1] == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise DockerfileError(line, f"unclosed ${{ in {text!r}")
            body = text[i + 2 : end]
            i = end + 1
            match = _SUBSTITUTION.fullmatch(body)
            if match is None:
                raise DockerfileError(line, f"unsupported substitution ${{{body}}}")
            name, operator, word = match.group(1), match.group(2), match.group(3) or ""
            value = variables.get(name, "")
            if operator == ":-":
                value = value or _expand(word, variables, line)
            elif operator == ":+":
                value = _expand(word, variables, line) if value else ""
            out.append(value)
            continue
        match = _NAME.match(text, i + 1)
        if not match:
            out.append(char)
            i += 1
            continue
        out.append(variables.get(match.group(0), ""))
        i = match.end()
    return "".join(out)


def _words(text: str, variables: Mapping[str, str] | None, line: int, escape: str = "\\") -> list[str]:
    """Split as Docker's shell-word processing does: quotes group, the escape character escapes, `$`
    expands."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise DockerfileError(line, f"unmatched ' in {text!r}")
            current.append(text[i + 1 : end])
            i = end + 1
        elif char == '"':
            j = i + 1
            chunk: list[str] = []
            while j < len(text) and text[j] != '"':
                if text[j] == escape and j + 1 < len(text) and text[j + 1] in ('"', escape, "$"):
                    chunk.append("\\$" if text[j + 1] == "$" else text[j + 1])
                    j += 2
                    continue
                chunk.append(text[j])
                j += 1
            if j >= len(text):
                raise DockerfileError(line, f'unmatched " in {text!r}')
            joined = "".join(chunk)
            current.append(_expand(joined, variables, line) if variables is not None else joined)
            i = j + 1
        elif char == escape and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in ("'", '"', escape):
                j += 1
            chunk_text = text[i:j]
            current.append(_expand(chunk_text, variables, line) if variables is not None else chunk_text)
            i = j
    if in_word:
        words.append("".join(current))
    return words


def _pairs(ins: _Instruction, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """`KEY=VALUE ...` pairs (ENV, LABEL), or the legacy `KEY VALUE` form of ENV."""
    args, line, keyword = ins.args, ins.line, ins.keyword
    words = _words(args, variables, line, ins.escape)
    if not words:
        raise DockerfileError(line, f"{keyword} needs at least one KEY=VALUE")
    if "=" not in words[0]:
        if keyword != "ENV" or len(words) < 2:
            raise DockerfileError(line, f"{keyword} expects KEY=VALUE, got {args!r}")
        key, _, rest = args.partition(" ")
        return [(key, " ".join(_words(rest.strip(), variables, line, ins.escape)))]
    pairs: list[tuple[str, str]] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileError(line, f"{keyword} expects KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs


def _exec_or_shell(args: str, shell: Sequence[str], line: int, keyword: str) -> list[str]:
    """JSON exec form as is; anything else is shell form, run by the SHELL."""
    if args.startswith("["):
        try:
            parsed = json.loads(args)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return list(parsed)
    if keyword == "SHELL":
        raise DockerfileError(line, 'SHELL needs a JSON array of strings, e.g. ["/bin/bash", "-c"]')
    return [*shell, args] if args else []


def _join_image_path(base: str, path: str) -> str:
    """An image path: absolute as is, relative against `base` (normalised, trailing slash kept)."""
    joined = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
    parts: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    normal = "/" + "/".join(parts)
    return normal + "/" if path.endswith(("/", "/.")) and normal != "/" else normal


# ---------------------------------------------------------------- the parser


@dataclass
class _StageState:
    """A stage while it is parsed; a stage from an outside image starts from Docker's defaults."""

    index: int
    name: str | None
    base: str
    base_stage: int | None = None
    env: dict[str, str] = field(default_factory=lambda: {"PATH": DEFAULT_PATH})
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    user: str | None = None
    stop_signal: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    copies: list[CopyStep] = field(default_factory=list)
    run_steps: int = 0
    run_commands: list[str] = field(default_factory=list)
    cmd_set: bool = False

    def child(self, index: int, name: str | None, base: str) -> _StageState:
        """A stage built `FROM` this one: it inherits the settings, not the ARGs, steps or the CMD flag."""
        stage = copy.deepcopy(self)
        stage.index, stage.name, stage.base, stage.base_stage = index, name, base, self.index
        stage.args, stage.copies, stage.run_steps, stage.cmd_set = {}, [], 0, False
        stage.run_commands = []
        return stage

    def variables(self) -> dict[str, str]:
        """What `$NAME` sees: the stage's ARGs, overridden by its ENV."""
        return {**self.args, **self.env}

    def freeze(self) -> Stage:
        return Stage(
            index=self.index,
            name=self.name,
            base=self.base,
            base_stage=self.base_stage,
            copies=list(self.copies),
            run_steps=self.run_steps,
            env=dict(self.env),
            workdir=self.workdir,
            entrypoint=list(self.entrypoint),
            cmd=list(self.cmd),
            labels=dict(self.labels),
            user=self.user,
            stop_signal=self.stop_signal,
            run_commands=list(self.run_commands),
        )


class _Parser:
    def __init__(self, build_args: Mapping[str, str]) -> None:
        self.build_args = dict(build_args)
        self.global_args: dict[str, str] = {}
        self.stages: list[_StageState] = []

    def parse(self, text: str) -> ImageSpec:
        for instruction in _instructions(text):
            self.step(instruction)
        if not self.stages:
            raise DockerfileError(1, "no FROM instruction: a Dockerfile must start its image with FROM")
        frozen = [stage.freeze() for stage in self.stages]
        last = frozen[-1]
        return ImageSpec(
            env=dict(last.env),
            workdir=last.workdir,
            entrypoint=list(last.entrypoint),
            cmd=list(last.cmd),
            labels=dict(last.labels),
            copies=list(last.copies),
            stages=frozen,
            user=last.user,
            stop_signal=last.stop_signal,
        )

    def step(self, ins: _Instruction) -> None:
        if ins.keyword not in _KNOWN:
            raise DockerfileError(ins.line, f"unknown instruction {ins.keyword}")
        if ins.keyword == "ARG":
            self.arg(ins)
            return
        if ins.keyword == "FROM":
            self.from_(ins)
            return
        if not self.stages:
            raise DockerfileError(ins.line, f"{ins.keyword} before the first FROM (only ARG may come first)")
        stage = self.stages[-1]
        handler = getattr(self, f"do_{ins.keyword.lower()}", None)
        if handler is not None:
            handler(stage, ins)

    def arg(self, ins: _Instruction) -> None:
        words = _words(ins.args, None, ins.line, ins.escape)
        if not words:
            raise DockerfileError(ins.line, "ARG needs a name")
        target = self.stages[-1].args if self.stages else self.global_args
        scope = self.stages[-1].variables() if self.stages else self.global_args
        for word in words:
            name, sep, default = word.partition("=")
            if not _NAME.fullmatch(name):
                raise DockerfileError(ins.line, f"invalid ARG name {name!r}")
            if name in self.build_args:
                target[name] = self.build_args[name]
            elif sep:
                target[name] = _expand(default, scope, ins.line)
            elif self.stages and name in self.global_args:
                target[name] = self.global_args[name]

    def from_(self, ins: _Instruction) -> None:
        words = _words(ins.args, self.global_args, ins.line, ins.escape)
        words = [w for w in words if not w.startswith("--platform=")]
        if len(words) == 3 and words[1].lower() == "as":
            image, name = words[0], words[2]
        elif len(words) == 1:
            image, name = words[0], None
        else:
            raise DockerfileError(ins.line, f"FROM expects IMAGE [AS NAME], got {ins.args!r}")
        if name is not None and self.find_stage(name) is not None:
            raise DockerfileError(ins.line, f"duplicate stage name {name!r}")
        parent_index = self.find_stage(image)
        index = len(self.stages)
        if parent_index is None:
            state = _StageState(index=index, name=name, base=image)
        else:
            state = self.stages[parent_index].child(index, name, image)
        self.stages.append(state)

    def find_stage(self, reference: str) -> int | None:
        """The index of the stage named `reference` (case-insensitive) or numbered so."""
        for stage in self.stages:
            if stage.name is not None and stage.name.lower() == reference.lower():
                return stage.index
        if reference.isdigit() and int(reference) < len(self.stages):
            return int(reference)
        return None

    def do_env(self, stage: _StageState, ins: _Instruction) -> None:
        stage.env.update(_pairs(ins, stage.variables()))

    def do_label(self, stage: _StageState, ins: _Instruction) -> None:
        stage.labels.update(_pairs(ins, stage.variables()))

    def do_workdir(self, stage: _StageState, ins: _Instruction) -> None:
        words = _words(ins.args, stage.variables(), ins.line, ins.escape)
        if len(words) != 1:
            raise DockerfileError(ins.line, "WORKDIR takes exactly one path")
        stage.workdir = _join_image_path(stage.workdir, words[0]).rstrip("/") or "/"

    def do_run(self, stage: _StageState, ins: _Instruction) -> None:
        stage.run_steps += 1
        stage.run_commands.append(" ".join(ins.args.split()))

    def do_user(self, stage: _StageState, ins: _Instruction) -> None:
        stage.user = _expand(ins.args, stage.variables(), ins.line).strip() or None

    def do_stopsignal(self, stage: _StageState, ins: _Instruction) -> None:
        stage.stop_signal = _expand(ins.args, stage.variables(), ins.line).strip() or None

    def do_shell(self, stage: _StageState, ins: _Instruction) -> None:
        stage.shell = _exec_or_shell(ins.args, stage.shell, ins.line, "SHELL")

    def do_entrypoint(self, stage: _StageState, ins: _Instruction) -> None:
        stage.entrypoint = _exec_or_shell(ins.args, stage.shell, ins.line, "ENTRYPOINT")
        if not stage.cmd_set:
            stage.cmd = []  # Docker: an ENTRYPOINT resets the CMD inherited from the base

    def do_cmd(self, stage: _StageState, ins: _Instruction) -> None:
        stage.cmd = _exec_or_shell(ins.args, stage.shell, ins.line, "CMD")
        stage.cmd_set = True

    def do_copy(self, stage: _StageState, ins: _Instruction) -> None:
        self.copy(stage, ins)

    def do_add(self, stage: _StageState, ins: _Instruction) -> None:
        self.copy(stage, ins)

    def copy(self, stage: _StageState, ins: _Instruction) -> None:
        if ins.heredocs:
            raise DockerfileError(ins.line, f"{ins.keyword} with a here-document is not supported")
        variables = stage.variables()
        rest = ins.args
        flags: dict[str, str] = {}
        while (flag := _FLAG.match(rest)) is not None:
            if flag.group(1) not in _COPY_FLAGS:
                raise DockerfileError(ins.line, f"{ins.keyword} --{flag.group(1)} is not supported")
            flags[flag.group(1)] = _expand(flag.group(2) or "", variables, ins.line)
            rest = rest[flag.end() :]
        if rest.startswith("["):
            try:
                parsed = json.loads(rest)
            except ValueError as exc:
                raise DockerfileError(ins.line, f"{ins.keyword}: invalid JSON form: {exc}") from None
            if not isinstance(parsed, list) or not all(isinstance(word, str) for word in parsed):
                raise DockerfileError(ins.line, f"{ins.keyword}: the JSON form is a list of strings")
            words = [_expand(word, variables, ins.line) for word in parsed]
        else:
            words = _words(rest, variables, ins.line, ins.escape)
        if len(words) < 2:
            raise DockerfileError(ins.line, f"{ins.keyword} needs at least one source and a destination")
        *sources, dest = words
        for source in sources:
            if re.match(r"^[a-z][a-z0-9+.-]*://", source) or source.startswith("git@"):
                raise DockerfileError(ins.line, f"{ins.keyword} from a URL ({source}) is not supported")
        from_stage = flags.get("from") or None
        if from_stage is not None and self.find_stage(from_stage) is None:
            raise DockerfileError(
                ins.line,
                f"{ins.keyword} --from={from_stage} names no earlier stage; copying from another image "
                "needs a container engine",
            )
        if from_stage is not None and ins.keyword == "ADD":
            raise DockerfileError(ins.line, "ADD --from is not valid; use COPY --from")
        target = _join_image_path(stage.workdir, dest)
        if len(sources) > 1 and not target.endswith("/"):
            raise DockerfileError(
                ins.line, f"{ins.keyword} with several sources needs a directory (ending in /)"
            )
        stage.copies.append(
            CopyStep(
                sources=sources,
                dest=target,
                line=ins.line,
                instruction=ins.keyword,
                from_stage=str(self.find_stage(from_stage)) if from_stage is not None else None,
                chown=flags.get("chown"),
                chmod=flags.get("chmod"),
            )
        )


def parse_dockerfile(text: str, build_args: Mapping[str, str] | None = None) -> ImageSpec:
    """Parse a Dockerfile; raises DockerfileError (a ValueError) whose message starts with the line."""
    return _Parser(build_args or {}).parse(text)
