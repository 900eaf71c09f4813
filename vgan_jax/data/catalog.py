"""`prepare`: every dataset `vgan-jax prepare` converts, and the catalog ones' sources.

    vgan-jax prepare video_folder --source DIR --data_dir DATA --name NAME
    vgan-jax prepare ucf101 --data_dir DATA
    vgan-jax prepare bair_robot_pushing_small --data_dir DATA
    vgan-jax prepare moving_mnist --data_dir DATA
    vgan-jax prepare kinetics --manual_dir KINETICS_VIDEOS --data_dir DATA

UCF-101, BAIR robot pushing (small) and Moving MNIST come from tensorflow-datasets.
Their tfds features (`Video`, `Sequence(Image)`) need TensorFlow to be built and
read, so preparing them needs the optional extra (`pip install "vgan-jax[tfds]"`);
TensorFlow is imported lazily and only here. The result is stored as Tensor
features in array_record, which training reads with no TensorFlow at all.

- ucf101: tfds config `ucf101_1_256` by default (256x256, train/test split #1),
  101 classes; labels and class names are kept for conditional models.
- bair_robot_pushing_small: the 64x64 `image_main` camera, 30 frames; one class.
- moving_mnist: tfds has only the 10,000-sequence *test* set (20 frames of 64x64
  gray, stored as RGB); it becomes our "train" split ("test" reads it too).
- kinetics: tensorflow-datasets has no Kinetics builder and the videos come from
  YouTube, so it is a manual download: `--manual_dir` is a folder of Kinetics
  videos in either layout the common download scripts produce,
    manual_dir/train/<class>/*.mp4  [manual_dir/val/<class>/*.mp4]
    manual_dir/train/*.mp4 + manual_dir/annotations/train.csv  [val/ + val.csv]
  (CSV columns `label,youtube_id,time_start,time_end,...`). It is decoded with
  imageio-ffmpeg like a video folder (no TensorFlow); "val" becomes "test", and
  corrupt or unlabelled files are skipped and listed in report.json.

tfds downloads and its own prepared copy go into `data_dir` as usual (tfds's
`download_and_prepare`), with `manual_dir` passed through for datasets that
need a manual download. Every source ends in the one engine, `prepared.write_prepared`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vgan_jax.data import prepared, registry, video_folder
from vgan_jax.errors import VganError

INSTALL_HINT = 'pip install "vgan-jax[tfds]"'

@dataclasses.dataclass(frozen=True)
class CatalogSpec:
    """How to read one tfds dataset.

    Attributes:
      tfds_name: name in the tfds catalog.
      video_key: feature holding the frames, uint8 `[time, height, width, channels]`.
      label_key: ClassLabel feature, or None for datasets without classes.
      splits: our split name -> tfds split name.
      default_config: tfds builder config (None: tfds's default).
    """

    tfds_name: str
    video_key: str
    label_key: str | None
    splits: dict[str, str]
    default_config: str | None = None


TFDS_CATALOG: dict[str, CatalogSpec] = {
    "ucf101": CatalogSpec(
        "ucf101", "video", "label", {"train": "train", "test": "test"}, "ucf101_1_256"
    ),
    "bair_robot_pushing_small": CatalogSpec(
        "bair_robot_pushing_small", "image_main", None, {"train": "train", "test": "test"}
    ),
    # Only tfds's "test" split exists (the 10k published sequences).
    "moving_mnist": CatalogSpec("moving_mnist", "image_sequence", None, {"train": "test"}),
}


@contextlib.contextmanager
def _ffmpeg_on_path() -> Iterator[None]:
    """Put imageio-ffmpeg's binary on PATH as `ffmpeg` when there is none.

    tfds's `Video` feature (UCF-101) shells out to a plain `ffmpeg`; the static
    binary of imageio-ffmpeg saves users a system install.
    """
    if shutil.which("ffmpeg"):
        yield
        return
    import imageio_ffmpeg

    old_path = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="vgan-ffmpeg-") as bin_dir:
        os.symlink(imageio_ffmpeg.get_ffmpeg_exe(), os.path.join(bin_dir, "ffmpeg"))
        os.environ["PATH"] = bin_dir + os.pathsep + old_path
        try:
            yield
        finally:
            os.environ["PATH"] = old_path


def open_tfds_source(
    dataset: str,
    data_dir: str | None,
    *,
    manual_dir: str | None = None,
    tfds_config: str | None = None,
) -> prepared.Source:
    """Download/prepare a tfds catalog dataset (needs TensorFlow) and return its examples.

    Args:
      dataset: a key of `TFDS_CATALOG`.
      data_dir: tfds data dir (downloads and tfds's own copy go there).
      manual_dir: tfds `manual_dir`, for datasets that need a manual download.
      tfds_config: tfds builder config (e.g. "ucf101_2"); None: the spec's default.
    """
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise VganError(
            f"preparing {dataset} needs TensorFlow (tensorflow-datasets decodes its videos "
            f"with it; training later does not): {INSTALL_HINT}"
        ) from None
    import tensorflow_datasets as tfds

    spec = TFDS_CATALOG[dataset]
    config = tfds_config or spec.default_config
    name = f"{spec.tfds_name}/{config}" if config else spec.tfds_name
    builder = tfds.builder(name, data_dir=data_dir)
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    with _ffmpeg_on_path():
        builder.download_and_prepare(download_config=download_config)
    if spec.label_key is not None:
        class_names = list(builder.info.features[spec.label_key].names)
    else:
        class_names = [dataset]

    def read(tfds_split: str) -> Iterator[prepared.SourceVideo]:
        dataset_split = builder.as_dataset(split=tfds_split, shuffle_files=False)
        for index, example in enumerate(tfds.as_numpy(dataset_split)):
            label = int(example[spec.label_key]) if spec.label_key is not None else 0
            yield f"{tfds_split}/{index:08d}", np.asarray(example[spec.video_key]), label

    splits = {ours: (lambda theirs=theirs: read(theirs)) for ours, theirs in spec.splits.items()}
    return prepared.Source(class_names, splits)


def prepare(
    dataset: str,
    data_dir: str | None = None,
    *,
    source: str | prepared.Source | None = None,
    name: str | None = None,
    test_fraction: float = 0.0,
    manual_dir: str | None = None,
    tfds_config: str | None = None,
    max_examples: int | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> prepared.Report:
    """Prepare `dataset` into `data_dir` (see prepared.py for the format): what
    `vgan-jax prepare` calls.

    Args:
      dataset: "video_folder" or one of `registry.CATALOG_DATASETS`.
      data_dir: root of prepared datasets (and of tfds's downloads).
      source: video_folder: the folder of videos. Catalog datasets: raw examples to
        use instead of reading tfds (tests pass a `Source.materialize()`d mock).
      name: video_folder: the dataset's NAME (default: the source folder's name).
      test_fraction: video_folder: fraction of each class's files held out as "test".
      manual_dir: tfds manual_dir; for kinetics, the folder of downloaded videos.
      tfds_config: tfds builder config (e.g. "ucf101_2" for split #2).
      max_examples: tfds datasets: read at most this many raw examples per split.
      log: progress lines (e.g. `print`); None is silent.
      **options: fields of `prepared.PrepareOptions` (size, max_frames, ...).

    Returns:
      The report; `report["dataset"]` is the name to train on.

    Raises:
      VganError: unknown dataset, bad options, missing TensorFlow (with the install
        command), missing/invalid source or manual_dir; `prepared.PrepareFailed`
        (with `.report`) when no video was usable.
    """
    if dataset == registry.VIDEO_FOLDER_BUILDER:
        if not isinstance(source, str) or not source:
            raise VganError(
                "video_folder needs --source DIR, a folder of your videos "
                "(subfolders become class labels)"
            )
        name = name or video_folder.default_name(source)
        return video_folder.prepare_video_folder(
            source, data_dir, name, test_fraction=test_fraction, log=log, **options
        )
    if dataset not in registry.CATALOG_DATASETS:
        raise VganError(
            f"unknown dataset {dataset!r} for prepare: use one of video_folder, "
            f"{', '.join(registry.CATALOG_DATASETS)}"
        )
    if isinstance(source, str):
        raise VganError(f"--source is for video_folder; {dataset} reads tfds or --manual_dir")
    options = prepared.PrepareOptions(**options)
    if dataset == "kinetics":
        source = kinetics_source(manual_dir, options)
    else:
        if source is None:
            source = open_tfds_source(
                dataset, data_dir, manual_dir=manual_dir, tfds_config=tfds_config
            )

        def first_examples(split: str, make: Callable) -> Callable:
            # Keys name their split, so the report's paths say where a video was.
            return lambda: (
                (f"{split}/{key}", frames, label)
                for key, frames, label in itertools.islice(make(), max_examples)
            )

        splits = {split: first_examples(split, make) for split, make in source.splits.items()}
        source = dataclasses.replace(
            source, splits=splits, extra_options={
                "max_examples": max_examples,
                "tfds_config": tfds_config or TFDS_CATALOG[dataset].default_config,
            },
        )
    return prepared.write_prepared(dataset, data_dir, source, options, log=log)


_KINETICS_TEST_DIRS = ("val", "validation", "valid", "test")


def _kinetics_split_files(
    manual_dir: str,
) -> tuple[dict[str, list[tuple[str, str]]], list[dict[str, str]]]:
    """Find Kinetics videos: split -> [(path relative to manual_dir, class)], rejected."""
    splits: dict[str, list[tuple[str, str]]] = {}
    rejected: list[dict[str, str]] = []
    has_train_dir = os.path.isdir(os.path.join(manual_dir, "train"))
    roots = {"train": "train" if has_train_dir else ""}
    for name in _KINETICS_TEST_DIRS:
        if roots["train"] and os.path.isdir(os.path.join(manual_dir, name)):
            roots["test"] = name
            break
    for split, sub in roots.items():
        videos, bad = video_folder.scan_folder(os.path.join(manual_dir, sub))
        prefix = (sub + os.sep) if sub else ""
        rejected += [{**item, "path": prefix + item["path"]} for item in bad]
        if any(cls for _, cls in videos):
            splits[split] = [(prefix + path, cls) for path, cls in videos if cls]
            # Root-level files next to class folders have no class in Kinetics.
            rejected += [
                {"path": prefix + path, "kind": "unlabeled", "reason": "not in a class folder"}
                for path, cls in videos
                if not cls
            ]
        else:
            splits[split], unlabelled = _label_from_csv(
                manual_dir, sub or "train", [prefix + path for path, _ in videos]
            )
            rejected += unlabelled
    return splits, rejected


def _label_from_csv(
    manual_dir: str, split: str, paths: list[str]
) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """Label flat Kinetics files from `annotations/<split>.csv` (youtube_id -> label)."""
    csv_path = os.path.join(manual_dir, "annotations", f"{split}.csv")
    if not os.path.isfile(csv_path):
        raise VganError(
            f"kinetics: {manual_dir}/{split} has no class subfolders and there is no "
            f"{csv_path}: put videos in {split}/<class>/ or add the annotations CSV"
        )
    with open(csv_path, newline="") as f:
        labels = {
            row["youtube_id"]: row["label"]
            for row in csv.DictReader(f)
            if row.get("youtube_id") and row.get("label")
        }
    files, rejected = [], []
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        # cvdfoundation names: <youtube_id>_<start:06d>_<end:06d>.mp4
        youtube_id = stem.rsplit("_", 2)[0] if stem.count("_") >= 2 else stem
        if youtube_id in labels:
            files.append((path, labels[youtube_id]))
        else:
            rejected.append(
                {"path": path, "kind": "unlabeled", "reason": f"youtube id not in {csv_path}"}
            )
    return files, rejected


def kinetics_source(manual_dir: str | None, options: prepared.PrepareOptions) -> prepared.Source:
    """Kinetics from a manual download (see the module docstring for layouts)."""
    if not manual_dir or not os.path.isdir(manual_dir):
        raise VganError(
            "kinetics is a manual download (tensorflow-datasets has no Kinetics builder): "
            "pass --manual_dir DIR with DIR/train/<class>/*.mp4 (and optionally "
            "DIR/val/<class>/*.mp4)"
        )
    split_files, rejected = _kinetics_split_files(manual_dir)
    split_files = {split: files for split, files in split_files.items() if files}
    if "train" not in split_files:
        raise VganError(f"kinetics: no labelled training videos found in {manual_dir}")
    return video_folder.video_files_source(manual_dir, split_files, options, rejected=rejected)
