"""Builds an image into a directory without a container engine: the Dockerfile's COPY/ADD steps laid out
below a root, its ENV/WORKDIR/ENTRYPOINT kept, and a digest over both (RUN steps are not run; each one is
named in the image's notes).

What runs the image's programs as SageMaker would is sagedock.programs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sagedock.dockerfile import CopyStep, ImageSpec, parse_dockerfile

IMAGE_FILE = "image.json"
MISSING_MODULE = re.compile(r"No module named '([^']+)'")


class ContractError(Exception):
    """The image cannot be built or its program cannot be started; the message says why."""


@dataclass(frozen=True)
class LocalImage:
    """An image built into a directory: its files below `root`, what the Dockerfile said, its digest."""

    root: Path
    spec: ImageSpec
    digest: str
    notes: list[str] = field(default_factory=list)

    def host_path(self, image_path: str) -> Path:
        """Where an image-absolute path lives on this machine."""
        return self.root / image_path.lstrip("/")


@dataclass(frozen=True)
class SkippedRun:
    """A RUN step the builder did not execute; `in_image` when its stage is the final image or under it."""

    stage: str
    number: int
    command: str
    in_image: bool

    def note(self) -> str:
        """What skipping it means, for the build log."""
        meaning = (
            "what it installs must already be on this host"
            if self.in_image
            else "what it makes is not in the image: a COPY --from of it must already be on this host"
        )
        return f"RUN step {self.number} of {self.stage} not executed: {self.command} ({meaning})"


def skipped_run_steps(spec: ImageSpec) -> list[SkippedRun]:
    """Every RUN step of every stage, in Dockerfile order (stages numbered from 1, as `docker build` does)."""
    final_chain: set[int] = set()
    index: int | None = spec.stages[-1].index if spec.stages else None
    while index is not None:
        final_chain.add(index)
        index = spec.stages[index].base_stage
    skipped = []
    for stage in spec.stages:
        label = f"stage {stage.index + 1}" + (f" ({stage.name})" if stage.name else "")
        for number, command in enumerate(stage.run_commands, start=1):
            skipped.append(SkippedRun(label, number, command, stage.index in final_chain))
    return skipped


def _normalized(name: str) -> str:
    """A module or distribution name as pip compares them (`scikit_learn` is `scikit-learn`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_module_hint(image: LocalImage, output: str) -> str | None:
    """When `output` shows a missing Python module, say which and point at the RUN steps that were skipped."""
    found = MISSING_MODULE.findall(output)
    if not found:
        return None
    module = found[-1]
    top = _normalized(module.split(".")[0])
    skipped = [step for step in skipped_run_steps(image.spec) if step.in_image]
    hint = f"Python module {module!r} is missing on this host"
    if not skipped:
        return f"{hint}: install it here (the image has no RUN step that could have installed it)"
    mentioning = [
        step
        for step in skipped
        if re.search(rf"(?<![\w-]){re.escape(top)}(?![\w-])", _normalized(step.command))
    ]
    named = ", ".join(f"RUN step {step.number} of {step.stage}" for step in (mentioning or skipped))
    which = f"{named}, which names it" if mentioning else f"{len(skipped)} RUN step(s): {named}"
    return (
        f"{hint}: the image was built without a container engine, so its RUN steps were not executed "
        f"({which}; see the build log) and what they install must already be installed here"
    )


class _DockerIgnore:
    """The .dockerignore rules of a build context (last matching rule wins; `!` re-includes)."""

    def __init__(self, rules: list[tuple[bool, str]]) -> None:
        self.rules = rules

    @classmethod
    def load(cls, context: Path) -> _DockerIgnore:
        path = context / ".dockerignore"
        rules: list[tuple[bool, str]] = []
        if path.is_file():
            for raw in path.read_text(encoding="utf-8").splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
                rules.append((negate, pattern))
        return cls(rules)

    def ignored(self, relative: str) -> bool:
        """Whether a context-relative posix path (or a directory above it) is excluded."""
        result = False
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for negate, pattern in self.rules:
            regex = _glob_regex(pattern)
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negate
        return result


@functools.cache  # asked once per rule, per path prefix, per file of the context
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: `*` within a segment, `**` across segments."""
    parts = [".*" if part == "**" else fnmatch.translate(part)[4:-3] for part in pattern.split("/")]
    return re.compile("/".join(parts).replace(".*/", "(?:.*/)?"))


def make_writable(path: Path) -> None:
    """Give the owner write access to every directory of a tree (so it can be emptied)."""
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o755)  # noqa: S103 - the owner's own scratch tree


def remove_tree(path: Path) -> None:
    """Remove a tree, read-only parts included."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        make_writable(path)
        shutil.rmtree(path)


class _Builder:
    """Lays out the files of every stage, then keeps the last stage's tree as the image root."""

    def __init__(self, context: Path, spec: ImageSpec, work: Path) -> None:
        self.context = context
        self.spec = spec
        self.work = work
        self.ignore = _DockerIgnore.load(context)
        self.notes: list[str] = []

    def build(self) -> Path:
        for stage in self.spec.stages:
            tree = self.work / str(stage.index)
            if stage.base_stage is not None:
                shutil.copytree(self.work / str(stage.base_stage), tree, symlinks=True)
            else:
                tree.mkdir(parents=True)
            for step in stage.copies:
                self.copy(step, tree)
            (tree / stage.workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        last = self.spec.stages[-1]
        self.notes.extend(step.note() for step in skipped_run_steps(self.spec))
        if last.user:
            self.notes.append(f"USER {last.user} ignored: the programs run as the current user")
        return self.work / str(last.index)

    def _ran_anything(self, stage_index: int) -> bool:
        stage = self.spec.stages[stage_index]
        if stage.run_steps:
            return True
        return stage.base_stage is not None and self._ran_anything(stage.base_stage)

    def copy(self, step: CopyStep, tree: Path) -> None:
        if step.chown:
            self.notes.append(
                f"line {step.line}: --chown={step.chown} ignored (files keep the current owner)"
            )
        for source in step.sources:
            if step.from_stage is not None:
                stage_index = int(step.from_stage)
                matches = self._stage_matches(stage_index, source, step)
                if not matches:
                    stage = self.spec.stages[stage_index]
                    label = stage.name or str(stage_index)
                    if self._ran_anything(stage_index):
                        self.notes.append(
                            f"line {step.line}: {source} from stage {label} comes from its RUN steps; "
                            "taken from the local environment"
                        )
                        continue
                    raise ContractError(
                        f"line {step.line}: COPY --from={label} {source}: no such path in that stage"
                    )
            else:
                matches = self._context_matches(source, step)
                if not matches:
                    raise ContractError(
                        f"line {step.line}: {step.instruction} {source}: no such file in the build context"
                    )
            for match in matches:
                self._place(match, step, tree, several=len(step.sources) > 1 or len(matches) > 1)

    def _stage_matches(self, stage_index: int, source: str, step: CopyStep) -> list[tuple[Path, str | None]]:
        base = self.work / str(stage_index)
        relative = os.path.normpath(source.lstrip("/"))
        if relative.startswith(".."):
            raise ContractError(f"line {step.line}: {source} leaves the stage's root")
        return [(path, None) for path in _glob(base, relative)]

    def _context_matches(self, source: str, step: CopyStep) -> list[tuple[Path, str | None]]:
        relative = os.path.normpath(source.lstrip("/"))
        if relative == ".." or relative.startswith("../"):
            raise ContractError(f"line {step.line}: {step.instruction} {source}: outside the build context")
        matches: list[tuple[Path, str | None]] = []
        for path in _glob(self.context, relative):
            rel = path.relative_to(self.context).as_posix()
            if rel == "." or not self.ignore.ignored(rel):
                matches.append((path, "" if rel == "." else rel))
        return matches

    def _place(self, match: tuple[Path, str | None], step: CopyStep, tree: Path, *, several: bool) -> None:
        source, context_rel = match
        target = tree / step.dest.lstrip("/")
        mode = int(step.chmod, 8) if step.chmod else None
        if source.is_dir():
            self._copy_dir(source, target, context_rel, mode)
            return
        if step.instruction == "ADD" and tarfile.is_tarfile(source):
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(source) as archive:
                archive.extractall(target, filter="data")
            return
        if step.dest.endswith("/") or several or target.is_dir():
            target = target / source.name
        _copy_file(source, target, mode)

    def _copy_dir(self, source: Path, target: Path, context_rel: str | None, mode: int | None) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for directory, dirnames, filenames in os.walk(source):
            here = Path(directory)
            relative_dir = here.relative_to(source)
            for name in sorted(dirnames):
                if self._skipped(context_rel, relative_dir / name):
                    dirnames.remove(name)
                    continue
                (target / relative_dir / name).mkdir(parents=True, exist_ok=True)
                if mode is not None:
                    os.chmod(target / relative_dir / name, mode)
            for name in sorted(filenames):
                if not self._skipped(context_rel, relative_dir / name):
                    _copy_file(here / name, target / relative_dir / name, mode)

    def _skipped(self, context_rel: str | None, inner: Path) -> bool:
        if context_rel is None:
            return False
        relative = (Path(context_rel) / inner).as_posix() if context_rel else inner.as_posix()
        return self.ignore.ignored(relative)


def _glob(base: Path, relative: str) -> list[Path]:
    if relative == ".":
        return [base]
    if any(char in relative for char in "*?["):
        return sorted(base.glob(relative))
    path = base / relative
    return [path] if path.exists() or path.is_symlink() else []


def _copy_file(source: Path, target: Path, mode: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    if source.is_symlink() and not source.exists():
        os.symlink(os.readlink(source), target)
    else:
        shutil.copy2(source, target)
    if mode is not None:
        os.chmod(target, mode)


def _digest(root: Path, spec: ImageSpec) -> str:
    """sha256 over the spec and every path, mode and content below the root."""
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    entries = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
    for path in entries:
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            content = "link:" + os.readlink(path)
        elif stat.S_ISDIR(info.st_mode):
            content = "dir"
        else:
            content = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{relative}\0{stat.S_IMODE(info.st_mode):o}\0{content}\n".encode())
    return "sha256:" + digest.hexdigest()


def build_local_image(
    context: Path,
    dest: Path,
    dockerfile: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
) -> LocalImage:
    """Build the image of `context` into `dest` (its files in dest/root, its spec in dest/image.json)."""
    context = context.resolve()
    dockerfile_path = context / dockerfile
    if not dockerfile_path.is_file():
        raise ContractError(f"no {dockerfile} in {context}")
    spec = parse_dockerfile(dockerfile_path.read_text(encoding="utf-8"), build_args)
    dest.mkdir(parents=True, exist_ok=True)
    work = dest / ".stages"
    root = dest / "root"
    for stale in (work, root):
        remove_tree(stale)
    builder = _Builder(context, spec, work)
    built = builder.build()
    built.rename(root)
    remove_tree(work)
    image = LocalImage(root=root.resolve(), spec=spec, digest=_digest(root, spec), notes=builder.notes)
    record = {"digest": image.digest, "spec": spec.to_dict(), "notes": image.notes}
    (dest / IMAGE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return image


def load_local_image(dest: Path) -> LocalImage:
    """Re-open an image that `build_local_image` built into `dest`."""
    try:
        record = json.loads((dest / IMAGE_FILE).read_text(encoding="utf-8"))
        spec = ImageSpec.from_dict(record["spec"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ContractError(f"no image built in {dest}: {exc}") from exc
    return LocalImage(
        root=(dest / "root").resolve(), spec=spec, digest=record["digest"], notes=record["notes"]
    )
