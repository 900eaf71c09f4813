"""The storage format of prepared datasets, and reading them without TensorFlow.

Real datasets (UCF-101, BAIR, Moving MNIST's test set, Kinetics, a folder of the
user's own videos) are converted once by `vgan-jax prepare ...` into one format:
a tensorflow-datasets dataset in `array_record` files with Tensor features only,

    {"video": uint8 [time, size, size, 3],   # time <= max_frames, varies per example
     "label": int64 []}                       # in [0, num_classes)

which tfds reads by random access with no TensorFlow installed
(`builder.as_data_source()`), so training needs neither TensorFlow nor ffmpeg.

Layout under `data_dir` (one tfds builder per family, the tfds config name is the
dataset):

    data_dir/video_folder/<NAME>/1.0.0/...   `vgan-jax prepare video_folder --name NAME`
    data_dir/video_folder/<NAME>/report.json what was skipped and why
    data_dir/vgan_catalog/<dataset>/1.0.0/...  ucf101, bair_robot_pushing_small,
                                              moving_mnist, kinetics

Frames are stored with the shorter side resized to `size` and center-cropped
square, RGB (gray datasets are repeated to 3 channels), at most `max_frames` frames
per example: longer videos are split into several consecutive examples with the
same label, so no footage is lost. The training pipeline later samples a clip in
time, crops to the model resolution, flips and converts to gray.

Class names live in the dataset metadata (`metadata.json`, read back by tfds);
datasets without classes (BAIR, Moving MNIST, a folder without subfolders) have one
class, so `label` is always in `[0, num_classes)`.

Splits: "train" always exists. When a dataset has no held-out split (Moving MNIST
has only tfds's "test"; a video folder prepared with `--test_fraction 0`), asking
for "test" reads "train" and `info["test_is_train"]` is True.

Writing is atomic per dataset: a new preparation is built in a temporary directory
inside `data_dir` and moved into place only when it succeeded, so a failed run
never destroys an existing good dataset of the same name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from vgan_jax.errors import VganError

FORMAT_VERSION = "1.0.0"
VIDEO_FOLDER_PREFIX = "video_folder/"
CATALOG_DATASETS = ("ucf101", "bair_robot_pushing_small", "moving_mnist", "kinetics")
REPORT_FILENAME = "report.json"

_VIDEO_FOLDER_BUILDER = "video_folder"
_CATALOG_BUILDER = "vgan_catalog"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# An example generator for one split: yields (unique key, {"video", "label"}).
ExampleGenerator = Callable[[], Iterator[tuple[str, dict[str, Any]]]]


def default_data_dir() -> str:
    """tfds's default data directory (`$TFDS_DATA_DIR` or ~/tensorflow_datasets)."""
    return os.path.expanduser(tfds.core.constants.DATA_DIR)


def validate_folder_name(name: str) -> str:
    """Check a user's dataset NAME (it becomes a directory name); return it."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise VganError(
            f"dataset name {name!r} is not valid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (e.g. --name my_clips)"
        )
    return name


def _builder_and_config(name: str) -> tuple[str, str]:
    """Map a dataset name to (tfds builder name, tfds config name)."""
    if name.startswith(VIDEO_FOLDER_PREFIX):
        return _VIDEO_FOLDER_BUILDER, validate_folder_name(name[len(VIDEO_FOLDER_PREFIX):])
    if name in CATALOG_DATASETS:
        return _CATALOG_BUILDER, name
    raise VganError(
        f"unknown prepared dataset {name!r}: use one of {', '.join(CATALOG_DATASETS)} "
        "or video_folder/NAME (prepare it with `vgan-jax prepare ...`)"
    )


def dataset_dir(name: str, data_dir: str | None) -> str:
    """The directory of a prepared dataset (holds `1.0.0/` and `report.json`)."""
    builder_name, config_name = _builder_and_config(name)
    return os.path.join(data_dir or default_data_dir(), builder_name, config_name)


def is_prepared(name: str, data_dir: str | None) -> bool:
    """True when `name` has been prepared in `data_dir`."""
    version_dir = os.path.join(dataset_dir(name, data_dir), FORMAT_VERSION)
    return os.path.isfile(os.path.join(version_dir, "dataset_info.json"))


def prepared_names(data_dir: str | None) -> list[str]:
    """Names of every dataset prepared in `data_dir` (for error messages and listings)."""
    root = data_dir or default_data_dir()
    names = []
    folder_root = os.path.join(root, _VIDEO_FOLDER_BUILDER)
    if os.path.isdir(folder_root):
        for entry in sorted(os.listdir(folder_root)):
            name = VIDEO_FOLDER_PREFIX + entry
            if _NAME_PATTERN.match(entry) and is_prepared(name, root):
                names.append(name)
    names.extend(name for name in CATALOG_DATASETS if is_prepared(name, root))
    return names


def prepare_command_hint(name: str, data_dir: str | None) -> str:
    """The command that prepares `name`, for error messages."""
    where = f" --data_dir {data_dir}" if data_dir else ""
    if name.startswith(VIDEO_FOLDER_PREFIX):
        folder_name = name[len(VIDEO_FOLDER_PREFIX):]
        return f"vgan-jax prepare video_folder --source YOUR_VIDEOS{where} --name {folder_name}"
    if name == "kinetics":
        return f"vgan-jax prepare kinetics --manual_dir KINETICS_VIDEOS{where}"
    return f"vgan-jax prepare {name}{where}"


class _PreparedVideos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes examples from Python generators into the prepared format.

    Not registered with tfds (nothing should build it by name): it is only
    constructed by `write_prepared`, which hands it the example generators.
    Reading goes through `tfds.builder_from_directory`, which needs no class.
    """

    VERSION = tfds.core.Version(FORMAT_VERSION)

    def __init__(
        self,
        *,
        split_generators: Mapping[str, ExampleGenerator],
        size: int,
        metadata: Mapping[str, Any],
        **kwargs: Any,
    ):
        self._vgan_split_generators = dict(split_generators)
        self._vgan_size = int(size)
        self._vgan_metadata = dict(metadata)
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # `DatasetInfo(builder=...)`, not `dataset_info_from_configs`: the latter
        # reads package metadata files that a non-tfds package does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description="Video clips prepared by vgan-jax (see vgan_jax/data/prepared.py).",
            features=tfds.features.FeaturesDict(
                {
                    # A None leading dimension works in array_record without TF,
                    # so each example keeps its own frame count (no padding).
                    "video": tfds.features.Tensor(
                        shape=(None, self._vgan_size, self._vgan_size, 3), dtype=np.uint8
                    ),
                    "label": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            metadata=tfds.core.MetadataDict(self._vgan_metadata),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Sources are local; nothing is downloaded here.
        return {
            split: self._generate_examples(make)
            for split, make in self._vgan_split_generators.items()
        }

    def _generate_examples(self, make):
        """`(key, example)` pairs of one split, from the generator the caller supplied."""
        yield from make()


class _VideoFolderBuilder(_PreparedVideos, skip_registration=True):
    name = _VIDEO_FOLDER_BUILDER


class _CatalogBuilder(_PreparedVideos, skip_registration=True):
    name = _CATALOG_BUILDER


def write_prepared(
    name: str,
    data_dir: str | None,
    *,
    split_generators: Mapping[str, ExampleGenerator],
    size: int,
    metadata: Mapping[str, Any],
    before_commit: Callable[[str, dict[str, int]], None] | None = None,
) -> str:
    """Write a prepared dataset atomically; return its directory (see `dataset_dir`).

    Args:
      name: "video_folder/NAME" or one of `CATALOG_DATASETS`.
      data_dir: root directory of prepared datasets (None: tfds's default).
      split_generators: split name -> zero-argument function returning an iterator
        of `(key, {"video": uint8 [time, size, size, 3], "label": int})`; keys must
        be unique within the split. Must include "train".
      size: frame height = width of every stored video.
      metadata: JSON-serialisable; must hold "class_names" (list of str).
      before_commit: called as `before_commit(staged_dataset_dir, examples_per_split)`
        after everything is written but before it replaces an existing dataset; it
        may write extra files (a report) into the staged directory, or raise to abort.

    Raises:
      VganError: when the train split came out empty (nothing is replaced then).
    """
    if "train" not in split_generators:
        raise ValueError("split_generators must include 'train'")
    if "class_names" not in metadata:
        raise ValueError("metadata must include 'class_names'")
    root = data_dir or default_data_dir()
    builder_name, config_name = _builder_and_config(name)
    builder_cls = _VideoFolderBuilder if builder_name == _VIDEO_FOLDER_BUILDER else _CatalogBuilder
    final_dir = os.path.join(root, builder_name, config_name)
    os.makedirs(os.path.dirname(final_dir), exist_ok=True)

    # Staging inside data_dir keeps it on the same filesystem, so the final
    # `os.replace` is a rename, not a copy.
    staging_root = tempfile.mkdtemp(prefix=".vgan-prepare-", dir=root)
    # Count what each split yields: tfds fails with a bare AssertionError on an
    # empty split, which we turn into an error that says what happened.
    yielded = {split: 0 for split in split_generators}

    def counting(split: str, make: ExampleGenerator) -> ExampleGenerator:
        def generate() -> Iterator[tuple[str, dict[str, Any]]]:
            for item in make():
                yielded[split] += 1
                yield item

        return generate

    try:
        builder = builder_cls(
            split_generators={
                split: counting(split, make) for split, make in split_generators.items()
            },
            size=size,
            metadata=metadata,
            config=tfds.core.BuilderConfig(name=config_name, version=FORMAT_VERSION),
            data_dir=staging_root,
            file_format="array_record",
        )
        try:
            builder.download_and_prepare()
        except Exception:
            empty = [split for split, count in yielded.items() if count == 0]
            if not empty:
                raise
            if "train" in empty:
                raise VganError(
                    f"preparing {name!r} produced no usable videos; nothing was written "
                    "(see the report for why each file was skipped)"
                ) from None
            raise VganError(
                f"preparing {name!r}: split(s) {empty} got no usable videos; nothing was "
                "written (hold out more files, e.g. a larger --test_fraction, or fix them)"
            ) from None
        counts = {split: int(info.num_examples) for split, info in builder.info.splits.items()}
        staged_dir = os.path.join(staging_root, builder_name, config_name)
        if before_commit is not None:
            before_commit(staged_dir, counts)
        # Swap in the new dataset: move the old one aside first, so that at every
        # moment one complete dataset exists under a known name.
        old_dir = None
        if os.path.exists(final_dir):
            old_dir = f"{final_dir}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final_dir, old_dir)
        try:
            os.replace(staged_dir, final_dir)
        except BaseException:
            if old_dir is not None:
                os.replace(old_dir, final_dir)
            raise
        if old_dir is not None:
            shutil.rmtree(old_dir, ignore_errors=True)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return final_dir


class PreparedSource:
    """Random access to a prepared split: `len(source)`, `source[i]`.

    `source[i]` is `{"video": uint8 [time, size, size, 3], "label": np.int64 []}`.
    Picklable (grain worker processes receive a copy).
    """

    def __init__(self, data_source: Any):
        self._data_source = data_source

    def __len__(self) -> int:
        return len(self._data_source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        example = self._data_source[int(index)]
        # tfds returns a scalar Tensor feature as a Python int; the contract is int64.
        return {
            "video": np.asarray(example["video"], dtype=np.uint8),
            "label": np.int64(example["label"]),
        }

    def __repr__(self) -> str:
        return f"PreparedSource({len(self)} examples)"


def read_report(name: str, data_dir: str | None) -> dict | None:
    """The `report.json` written when `name` was prepared, or None."""
    path = os.path.join(dataset_dir(name, data_dir), REPORT_FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def open_prepared(
    name: str, data_dir: str | None, split: str = "train"
) -> tuple[PreparedSource, dict[str, Any]]:
    """Open a prepared dataset for reading, with no TensorFlow.

    Args:
      name: "video_folder/NAME" or one of `CATALOG_DATASETS`.
      data_dir: where it was prepared (None: tfds's default data dir).
      split: "train", "test", or a tfds slice of one ("train[:90%]"). "test" reads
        "train" when the dataset has no held-out split.

    Returns:
      (source, info): `source[i]` is `{"video": uint8 [time, size, size, 3],
      "label": int64 []}`; info holds "name", "split", "num_examples",
      "num_classes", "class_names", "size", "max_frames", "channels" (3),
      "splits" (name -> examples), "test_is_train", "dataset_dir" and "metadata".

    Raises:
      VganError: unknown name, not prepared in `data_dir`, or unknown split.
    """
    root = data_dir or default_data_dir()
    directory = dataset_dir(name, root)
    if not is_prepared(name, root):
        others = prepared_names(root)
        found = f" (prepared there: {', '.join(others)})" if others else ""
        raise VganError(
            f"dataset {name!r} is not prepared in {root}{found}: run "
            f"`{prepare_command_hint(name, data_dir)}` first"
        )
    builder = tfds.builder_from_directory(os.path.join(directory, FORMAT_VERSION))
    splits = {key: int(value.num_examples) for key, value in builder.info.splits.items()}
    base_split = split.split("[", 1)[0]
    test_is_train = False
    if base_split not in splits:
        if base_split == "test" and "train" in splits:
            split = "train" + split[len(base_split):]
            test_is_train = True
        else:
            raise VganError(
                f"dataset {name!r} has no split {base_split!r}: use one of {sorted(splits)}"
            )
    metadata = dict(builder.info.metadata or {})
    class_names = list(metadata.get("class_names", []))
    source = PreparedSource(builder.as_data_source(split=split))
    info = {
        "name": name,
        "split": split,
        "num_examples": len(source),
        "num_classes": len(class_names),
        "class_names": class_names,
        "size": int(builder.info.features["video"].shape[1]),
        "max_frames": metadata.get("max_frames"),
        "channels": 3,
        "splits": splits,
        "test_is_train": test_is_train,
        "dataset_dir": directory,
        "metadata": metadata,
    }
    return source, info


SHORT_VIDEO_POLICIES = ("pad", "skip")


def check_segment_options(max_frames: int, min_frames: int, short_videos: str) -> None:
    """Validate the options of `split_into_segments` (raises VganError)."""
    if short_videos not in SHORT_VIDEO_POLICIES:
        raise VganError(
            f"short_videos must be one of {SHORT_VIDEO_POLICIES}, got {short_videos!r}"
        )
    if min_frames < 1 or max_frames < 1:
        raise VganError(f"max_frames ({max_frames}) and min_frames ({min_frames}) must be >= 1")
    if max_frames < min_frames:
        raise VganError(
            f"max_frames ({max_frames}) must be >= min_frames ({min_frames}): "
            "raise --max_frames or lower --min_frames"
        )


def split_into_segments(
    frames: np.ndarray, *, max_frames: int, min_frames: int, short_videos: str
) -> list[np.ndarray]:
    """Cut one video into stored examples of `min_frames..max_frames` frames.

    Args:
      frames: uint8 `[time, height, width, 3]`.
      max_frames: longest stored example; longer videos become several
        consecutive segments so no footage is lost.
      min_frames: shortest stored example (normally the training clip length).
      short_videos: what to do when the whole video has fewer than `min_frames`
        frames: "pad" repeats its last frame up to `min_frames`, "skip" drops it.

    Returns:
      A list of uint8 `[t, height, width, 3]` with `min_frames <= t <= max_frames`;
      empty when the video was skipped.
    """
    num_frames = int(frames.shape[0])
    if num_frames < min_frames:
        if short_videos == "skip" or num_frames == 0:
            return []
        padding = np.repeat(frames[-1:], min_frames - num_frames, axis=0)
        return [np.concatenate([frames, padding], axis=0)]
    segments = []
    for start in range(0, num_frames, max_frames):
        segment = frames[start : start + max_frames]
        if len(segment) < min_frames:
            # A tail too short to train on: take the last max_frames frames
            # instead (overlapping the previous segment) so the tail is kept.
            segment = frames[num_frames - max_frames :]
        segments.append(segment)
    return segments
