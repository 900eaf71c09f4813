"""Dataset names and where their files live: the one definition of each.

    moving_mnist_offline      built offline on first use (moving_mnist.py)
    video_folder/<NAME>       `vgan-jax prepare video_folder --name NAME` (video_folder.py)
    ucf101, bair_robot_pushing_small, moving_mnist, kinetics
                              `vgan-jax prepare NAME` (catalog.py)

Prepared datasets live under `data_dir/<tfds builder>/<tfds config>/` (see prepared.py).
Cheap to import: no tfds, no grain.
"""

from __future__ import annotations

import os
import re

from vgan_jax.errors import VganError

BUILTIN_DATASET = "moving_mnist_offline"
VIDEO_FOLDER_PREFIX = "video_folder/"
CATALOG_DATASETS = ("ucf101", "bair_robot_pushing_small", "moving_mnist", "kinetics")
SPLITS = ("train", "test")

# tfds builder names of the prepared families (directories under data_dir).
VIDEO_FOLDER_BUILDER = "video_folder"
CATALOG_BUILDER = "vgan_catalog"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def known_datasets() -> list[str]:
    """Names accepted as `config.data.name`; `<NAME>` is any folder dataset's name."""
    return [BUILTIN_DATASET, VIDEO_FOLDER_PREFIX + "<NAME>", *CATALOG_DATASETS]


def is_known_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    if name == BUILTIN_DATASET or name in CATALOG_DATASETS:
        return True
    return name.startswith(VIDEO_FOLDER_PREFIX) and len(name) > len(VIDEO_FOLDER_PREFIX)


def resolve_data_dir(data_dir: str | None) -> str:
    """`data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets (tfds's default). An
    empty $TFDS_DATA_DIR (`TFDS_DATA_DIR= vgan-jax ...`) counts as unset, not as the
    current directory."""
    return os.path.expanduser(
        data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    )


def validate_folder_name(name: str) -> str:
    """Check a user's dataset NAME (it becomes a directory name); return it."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise VganError(
            f"dataset name {name!r} is not valid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (e.g. --name my_clips)"
        )
    return name


def builder_and_config(name: str) -> tuple[str, str]:
    """A prepared dataset's (tfds builder name, tfds config name)."""
    if name.startswith(VIDEO_FOLDER_PREFIX):
        return VIDEO_FOLDER_BUILDER, validate_folder_name(name[len(VIDEO_FOLDER_PREFIX):])
    if name in CATALOG_DATASETS:
        return CATALOG_BUILDER, name
    raise VganError(
        f"unknown prepared dataset {name!r}: use one of {', '.join(CATALOG_DATASETS)} "
        "or video_folder/NAME (prepare it with `vgan-jax prepare ...`)"
    )


def dataset_dir(name: str, data_dir: str | None) -> str:
    """The directory of a prepared dataset (holds `1.0.0/` and `report.json`)."""
    return os.path.join(resolve_data_dir(data_dir), *builder_and_config(name))


def folder_names(data_dir: str | None) -> list[str]:
    """`video_folder/<NAME>` for every folder under `data_dir/video_folder/`."""
    root = os.path.join(resolve_data_dir(data_dir), VIDEO_FOLDER_BUILDER)
    entries = sorted(os.listdir(root)) if os.path.isdir(root) else []
    return [VIDEO_FOLDER_PREFIX + entry for entry in entries if _NAME_PATTERN.match(entry)]


def prepare_command_hint(name: str, data_dir: str | None) -> str:
    """The command that prepares `name`, for error messages."""
    where = f" --data_dir {data_dir}" if data_dir else ""
    if name.startswith(VIDEO_FOLDER_PREFIX):
        folder_name = name[len(VIDEO_FOLDER_PREFIX):]
        return f"vgan-jax prepare video_folder --source YOUR_VIDEOS{where} --name {folder_name}"
    if name == "kinetics":
        return f"vgan-jax prepare kinetics --manual_dir KINETICS_VIDEOS{where}"
    return f"vgan-jax prepare {name}{where}"
