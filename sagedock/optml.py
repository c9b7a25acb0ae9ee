"""SageMaker's /opt/ml tree: a training job's layout, and the model packed and unpacked as SageMaker does."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Mapping
from pathlib import Path

from sagedock.image import ContractError, remove_tree

CHANNEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def layout_opt_ml(
    opt_ml: Path,
    *,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, Path],
    instance_type: str = "ml.m5.large",
    instance_count: int = 1,
) -> None:
    """Lay out /opt/ml for a training job as SageMaker does: config files, channel data, empty outputs."""
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for name in ("model", "output/data", "input/data"):
        (opt_ml / name).mkdir(parents=True, exist_ok=True)
    strings = {str(key): str(value) for key, value in hyperparameters.items()}
    hosts = [f"algo-{i}" for i in range(1, instance_count + 1)]
    resources = {
        "current_host": hosts[0],
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
        ],
        "network_interface_name": "eth0",
    }
    data_config: dict[str, dict[str, str]] = {}
    for name, source in channels.items():
        if not CHANNEL_NAME.fullmatch(name):
            raise ContractError(f"invalid channel name {name!r} (letters, digits, '.', '-', '_'; up to 64)")
        if not source.exists():
            raise ContractError(f"channel {name!r}: {source} does not exist")
        target = opt_ml / "input" / "data" / name
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name)
        data_config[name] = {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    for filename, content in (
        ("hyperparameters.json", strings),
        ("resourceconfig.json", resources),
        ("inputdataconfig.json", data_config),
    ):
        (config / filename).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def pack_model(opt_ml: Path, dest: Path) -> Path:
    """Write `dest` (model.tar.gz) from opt_ml/model, entries relative to it, reproducibly."""
    model_dir = opt_ml / "model"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in sorted(model_dir.rglob("*"), key=lambda p: p.relative_to(model_dir).as_posix()):
            info = archive.gettarinfo(str(path), arcname=path.relative_to(model_dir).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return dest


def unpack_model(model_tar: Path, model_dir: Path) -> None:
    """Unpack model.tar.gz into `model_dir` and make it read-only, as SageMaker hosting mounts it; no such
    file (a model without ModelDataUrl: it is in the image) leaves `model_dir` empty, as SageMaker does."""
    remove_tree(model_dir)
    model_dir.mkdir(parents=True)
    if model_tar.is_file():
        with tarfile.open(model_tar) as archive:
            archive.extractall(model_dir, filter="data")
    for directory, _, filenames in os.walk(model_dir, topdown=False):
        for name in filenames:
            path = Path(directory) / name
            if not path.is_symlink():
                os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o222)
        os.chmod(directory, 0o555)  # noqa: S103 - read-only, as SageMaker mounts the model
