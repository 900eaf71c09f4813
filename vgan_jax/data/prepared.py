"""Prepared datasets: the storage format, the one preparation engine, reading without TF.

Real datasets (UCF-101, BAIR, Moving MNIST's test set, Kinetics, a folder of the
user's own videos) are converted once by `vgan-jax prepare ...` into one format:
a tensorflow-datasets dataset in `array_record` files with Tensor features only,

    {"video": uint8 [time, size, size, 3],   # time <= max_frames, varies per example
     "label": int64 []}                       # in [0, num_classes)

which tfds reads by random access with no TensorFlow installed
(`builder.as_data_source()`), so training needs neither TensorFlow nor ffmpeg.
Layout under `data_dir` (one tfds builder per family, the tfds config name is the
dataset; see registry.py):

    data_dir/video_folder/<NAME>/1.0.0/...     `vgan-jax prepare video_folder --name NAME`
    data_dir/video_folder/<NAME>/report.json   what was skipped and why
    data_dir/vgan_catalog/<dataset>/1.0.0/...  ucf101, bair_robot_pushing_small,
                                               moving_mnist, kinetics

Frames are stored with the shorter side resized to `size` and center-cropped
square, RGB, at most `max_frames` frames per example: longer videos are split into
several consecutive examples with the same label, so no footage is lost. Class names
live in the dataset metadata; datasets without classes have one class.

Splits: "train" always exists. When a dataset has no held-out split, asking for
"test" reads "train" and `info["test_is_train"]` is True.

The engine, `write_prepared`, is the same for every dataset: a dataset only supplies
a `Source`, per split `(key, frames or VideoDecodeError, label)` videos (video_folder.py,
catalog.py). The engine brings frames to the stored size and RGB, cuts them into
segments, counts what it used and skipped in a `Report`, writes into a temporary
directory inside `data_dir` and moves the result into place only when it succeeded,
so a failed run never destroys a good dataset.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from vgan_jax.data import registry, transforms
from vgan_jax.data.transforms import SHORT_VIDEO_CHOICES, ExampleSource
from vgan_jax.data.video_decode import DECODE_ERROR_KINDS, VideoDecodeError
from vgan_jax.errors import VganError

FORMAT_VERSION = "1.0.0"
REPORT_FILENAME = "report.json"
# Why a file was skipped: the decoder's kinds, then the engine's and the sources' own.
SKIP_KINDS = (*DECODE_ERROR_KINDS, "short", "unlabeled")

# One video a source supplies: (key unique in its split, uint8 [time, height, width,
# channels] or the error that made it unusable, label in [0, num_classes)).
SourceVideo = tuple[str, np.ndarray | VideoDecodeError, int]


@dataclasses.dataclass
class Source:
    """The videos of one dataset, split by split: all a dataset supplies to the engine.

    Attributes:
      class_names: label -> name (one name for datasets without classes).
      splits: split -> zero-argument function returning an iterable of `SourceVideo`
        (frames of any size, gray or RGB). Must include "train".
      origin: where the videos came from (recorded in the report and metadata).
      rejected: files known to be unusable before decoding (`{"path", "kind", "reason"}`).
      extra_options: further entries for the report's "options".
    """

    class_names: list[str]
    splits: dict[str, Callable[[], Iterable[SourceVideo]]]
    origin: str = "tensorflow-datasets"
    rejected: list[dict[str, str]] = dataclasses.field(default_factory=list)
    extra_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def materialize(self, max_examples: int | None = None) -> Source:
        """A copy with every split read into memory (e.g. to leave a tfds mock)."""
        splits = {}
        for split, make in self.splits.items():
            examples = list(itertools.islice(make(), max_examples))
            splits[split] = lambda examples=examples: iter(examples)
        return dataclasses.replace(self, class_names=list(self.class_names), splits=splits)


class PrepareFailed(VganError):
    """No usable video came out of a preparation; `report` says why for each file."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """How videos are decoded and stored; every `prepare...` function takes these fields
    as keyword arguments (the defaults are the CLI's). Checked when made.

    Attributes:
      size: stored frame height = width (shorter side resized, then center crop).
      max_frames: most frames per stored example; longer videos are split.
      min_frames: fewest frames per example (usually the training clip length).
      short_videos: "pad" (repeat the last frame) or "skip" videos shorter than that.
      max_segments_per_video: decode at most this many `max_frames` segments of each
        file (None: all); bounds the cost of very long files.
      workers: decoding threads.
      strict_decoding: a stream error anywhere in a file skips it as "truncated"
        (see `video_decode.decode_video`); False keeps what ffmpeg can decode.
    """

    size: int = 128
    max_frames: int = 32
    min_frames: int = 16
    short_videos: str = "pad"
    max_segments_per_video: int | None = None
    workers: int = 2
    strict_decoding: bool = True

    def __post_init__(self):
        if self.short_videos not in SHORT_VIDEO_CHOICES:
            raise VganError(
                f"short_videos must be one of {SHORT_VIDEO_CHOICES}, got {self.short_videos!r}"
            )
        if min(self.size, self.min_frames, self.max_frames) < 1:
            raise VganError(
                f"size ({self.size}), max_frames ({self.max_frames}) and min_frames "
                f"({self.min_frames}) must be >= 1"
            )
        if self.max_frames < self.min_frames:
            raise VganError(
                f"max_frames ({self.max_frames}) must be >= min_frames ({self.min_frames}): "
                "raise --max_frames or lower --min_frames"
            )
        if self.max_segments_per_video is not None and self.max_segments_per_video < 1:
            raise VganError("max_segments_per_video must be >= 1 (or unset for whole videos)")

    @property
    def frame_cap(self) -> int | None:
        """Most frames decoded per file (None: all)."""
        if self.max_segments_per_video is None:
            return None
        return self.max_segments_per_video * self.max_frames


class Report(dict):
    """What a preparation used and skipped, and why: a plain JSON-ready dict, returned
    by every `prepare...` function and saved as `report.json` next to the dataset.

    Keys: dataset, source, dataset_dir, created, options, class_names, files_found,
    videos_used, examples (split -> count), padded, skipped_count, skipped_by_kind,
    skipped (`{"path", "kind", "reason"}`), per_class (`{"videos", "examples"}`).
    """

    def __init__(self, name: str, data_dir: str | None, *, source: str,
                 class_names: Iterable[str], options: Mapping[str, Any]):
        class_names = list(class_names)
        super().__init__(
            dataset=name, source=source, dataset_dir=registry.dataset_dir(name, data_dir),
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            options=dict(options), class_names=class_names, files_found=0, videos_used=0,
            examples={}, padded=[], skipped_count=0, skipped_by_kind=dict.fromkeys(SKIP_KINDS, 0),
            skipped=[], per_class={cls: {"videos": 0, "examples": 0} for cls in class_names},
        )

    def skip(self, path: str, kind: str, reason: str) -> None:
        """Count one unusable file."""
        self["files_found"] += 1
        self["skipped"].append({"path": path, "kind": kind, "reason": reason})
        self["skipped_count"] += 1
        self["skipped_by_kind"][kind] = self["skipped_by_kind"].get(kind, 0) + 1

    def segments(self, path: str, frames: np.ndarray | VideoDecodeError, label: int) -> list:
        """Cut one source video (uint8 `[time, size, size, 3]`) into stored examples,
        counted: uint8 `[t, size, size, 3]` with `min_frames <= t <= max_frames` (the
        report's options). A longer video becomes consecutive segments, so no footage is
        lost; a shorter one is padded by repeating its last frame, or skipped
        (`short_videos`). Empty when the video is skipped."""
        if isinstance(frames, VideoDecodeError):
            self.skip(path, frames.kind, frames.reason)
            return []
        options = self["options"]
        max_frames, min_frames = options["max_frames"], options["min_frames"]
        num_frames = len(frames)
        if num_frames < min_frames and (options["short_videos"] == "skip" or not num_frames):
            self.skip(
                path, "short", f"only {num_frames} frames, fewer than min_frames={min_frames} "
                "(short_videos='skip'; use 'pad' to keep it)",
            )
            return []
        if num_frames < min_frames:
            self["padded"].append({"path": path, "frames": num_frames})
            padding = np.repeat(frames[-1:], min_frames - num_frames, axis=0)
            segments = [np.concatenate([frames, padding], axis=0)]
        else:
            # A tail too short to train on is replaced by the last max_frames frames
            # (overlapping the previous segment), so the tail is kept.
            segments = [
                frames[start : start + max_frames] if num_frames - start >= min_frames
                else frames[-max_frames:]
                for start in range(0, num_frames, max_frames)
            ]
        self["files_found"] += 1
        self["videos_used"] += 1
        stats = self["per_class"][self["class_names"][label]]
        stats["videos"] += 1
        stats["examples"] += len(segments)
        return segments


def format_report(report: Mapping[str, Any], max_listed: int = 50) -> str:
    """A human summary of a preparation report (what the CLI prints at the end)."""
    lines = [
        f"dataset {report.get('dataset')}: {report.get('videos_used', 0)} of "
        f"{report.get('files_found', 0)} files used",
    ]
    examples = report.get("examples") or {}
    if examples:
        lines.append("  examples: " + ", ".join(f"{split} {n}" for split, n in examples.items()))
    class_names = report.get("class_names") or []
    if class_names:
        shown = ", ".join(class_names[:10]) + (" ..." if len(class_names) > 10 else "")
        lines.append(f"  classes ({len(class_names)}): {shown}")
    if report.get("padded"):
        lines.append(f"  padded (shorter than min_frames): {len(report['padded'])} videos")
    skipped = sorted(report.get("skipped") or [], key=lambda item: item["path"])
    lines.append(f"  skipped: {len(skipped)} files" if skipped else "  skipped: none")
    for item in skipped[:max_listed]:
        lines.append(f"    {item['path']}: [{item['kind']}] {item['reason']}")
    if len(skipped) > max_listed:
        lines.append(f"    ... and {len(skipped) - max_listed} more (see report.json)")
    if report.get("dataset_dir") and report.get("videos_used"):
        lines.append(f"  report: {os.path.join(report['dataset_dir'], REPORT_FILENAME)}")
    return "\n".join(lines)


class TfdsWriter(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Writes `(key, {"video": ..., "label": int64 label_shape})` iterators as a tfds dataset in
    `array_record` files, with no TensorFlow: the one tfds builder of the package
    (prepared datasets and the built-in Moving MNIST).

    Not registered with tfds; its name (the directory under `data_dir`) and version are
    set per instance, as tfds's own AdhocBuilder does. `tfds.dataset_builders.
    store_as_tfds_dataset` is not used: it checks every split against `tf.data.Dataset`,
    which imports TensorFlow.

    Args:
      name, version: the tfds builder name and version.
      video: the uint8 video feature (`tfds.features.Tensor`; shape and encoding vary).
      label_shape: `()` (one class per clip), or `(k,)` for k labelled objects per clip
        (the two-digit Moving MNIST: the class of each digit).
      info: further `tfds.core.DatasetInfo` arguments (description, metadata, ...).
      split_examples: split -> zero-argument function returning `(key, example)` pairs.
      **kwargs: for `tfds.core.GeneratorBasedBuilder` (config, data_dir).
    """

    def __init__(self, *, name: str, version: str, video: tfds.features.Tensor,
                 info: Mapping[str, Any], split_examples: Mapping[str, Callable[[], Iterable]],
                 label_shape: tuple[int, ...] = (), **kwargs: Any):
        self.name = name
        self.VERSION = tfds.core.Version(version)
        label = tfds.features.Tensor(shape=tuple(label_shape), dtype=np.int64)
        features = tfds.features.FeaturesDict({"video": video, "label": label})
        self._vgan_info = {"features": features, **info}
        self._vgan_split_examples = dict(split_examples)
        super().__init__(version=version, file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # `DatasetInfo(builder=...)`, not `dataset_info_from_configs`: the latter
        # reads package metadata files that a non-tfds package does not have.
        return tfds.core.DatasetInfo(builder=self, **self._vgan_info)

    def _split_generators(self, dl_manager):
        del dl_manager  # Sources are local; nothing is downloaded here.
        return {split: make() for split, make in self._vgan_split_examples.items()}

    def _generate_examples(self):
        # tfds declares it abstract, but only calls it through `_split_generators`,
        # which here returns the examples itself: reaching this is a tfds change.
        raise RuntimeError("TfdsWriter's examples come from _split_generators")


def write_prepared(
    name: str,
    data_dir: str | None,
    source: Source,
    options: PrepareOptions,
    log: Callable[[str], None] | None = None,
) -> Report:
    """The preparation engine: write the videos of `source` as dataset `name`, atomically.

    Args:
      name: "video_folder/NAME" or one of `registry.CATALOG_DATASETS`.
      data_dir: root of prepared datasets (None: tfds's default data dir).
      options: sizes and the short-video choice (decoding fields are only recorded).
      log: progress lines (e.g. `print`); None is silent.

    Returns:
      The `Report`, also written as `report.json` next to the dataset.

    Raises:
      PrepareFailed: no usable video at all (nothing is written or replaced).
      VganError: a label outside the classes, or an empty held-out split.
    """
    if "train" not in source.splits:
        raise ValueError("splits must include 'train'")
    class_names = list(source.class_names)
    report = Report(name, data_dir, source=source.origin, class_names=class_names,
                    options={**dataclasses.asdict(options), **source.extra_options})
    for item in source.rejected:
        report.skip(item["path"], item["kind"], item["reason"])
    last_log = [time.monotonic()]

    def examples(split: str):
        count = 0
        for key, frames, label in source.splits[split]():
            if not 0 <= label < len(class_names):
                raise VganError(f"{name} {key}: label {label} is not in [0, {len(class_names)})")
            if not isinstance(frames, VideoDecodeError):
                try:  # The stored format: RGB at `size`, whatever the source's frames are.
                    video = transforms.as_video(frames)
                    video = transforms.resize_and_center_crop(video, options.size)
                    frames = transforms.to_rgb(video)
                except VganError as error:
                    frames = VideoDecodeError(key, "unreadable", str(error))
            for index, segment in enumerate(report.segments(key, frames, label)):
                count += 1
                video = np.ascontiguousarray(segment, dtype=np.uint8)
                yield f"{key}#{index}", {"video": video, "label": np.int64(label)}
            if log is not None and time.monotonic() - last_log[0] > 10.0:
                last_log[0] = time.monotonic()
                log(f"  {report['files_found']} videos read, {report['skipped_count']} skipped")
        # Said here, while tfds writes: it would fail on an empty split with a bare
        # AssertionError. Raising ends the run before anything is swapped in.
        if not count and not report["videos_used"]:
            raise PrepareFailed(
                f"no usable video in {source.origin} ({report['skipped_count']} of "
                f"{report['files_found']} files skipped, see the list above); "
                f"nothing was written and any existing {name!r} was kept",
                report,
            )
        if not count:
            raise VganError(
                f"preparing {name!r}: split {split!r} got no usable videos; nothing was "
                "written (hold out more files, e.g. a larger --test_fraction, or fix them)"
            )

    root = registry.resolve_data_dir(data_dir)
    builder_name, config_name = registry.builder_and_config(name)
    final_dir = os.path.join(root, builder_name, config_name)
    os.makedirs(os.path.dirname(final_dir), exist_ok=True)
    if log is not None:
        log(f"preparing {name} from {source.origin} ({len(class_names)} classes) into {final_dir}")
    # Staging inside data_dir keeps it on the same filesystem: the swap is a rename.
    staging_root = tempfile.mkdtemp(prefix=".vgan-prepare-", dir=root)
    try:
        size = options.size
        metadata = {"class_names": class_names, "size": size, "max_frames": options.max_frames,
                    "min_frames": options.min_frames, "source": source.origin}
        builder = TfdsWriter(
            name=builder_name,
            version=FORMAT_VERSION,
            # A None leading dimension works in array_record without TF, so each
            # example keeps its own frame count (no padding).
            video=tfds.features.Tensor(shape=(None, size, size, 3), dtype=np.uint8),
            info={
                "description": "Video clips prepared by vgan-jax (see vgan_jax/data/prepared.py).",
                "metadata": tfds.core.MetadataDict(metadata),
            },
            split_examples={split: (lambda s=split: examples(s)) for split in source.splits},
            config=tfds.core.BuilderConfig(name=config_name, version=FORMAT_VERSION),
            data_dir=staging_root,
        )
        builder.download_and_prepare()
        splits_info = builder.info.splits.items()
        report["examples"] = {split: int(info.num_examples) for split, info in splits_info}
        report["skipped"].sort(key=lambda item: item["path"])
        staged_dir = os.path.join(staging_root, builder_name, config_name)
        with open(os.path.join(staged_dir, REPORT_FILENAME), "w") as f:
            json.dump(report, f, indent=2)
        _swap_in(staged_dir, final_dir)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return report


def _swap_in(staged_dir: str, final_dir: str) -> None:
    """Replace `final_dir` by `staged_dir`; at every moment one complete dataset exists
    under a known name (the old one is moved aside first and restored on failure)."""
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


def is_prepared(name: str, data_dir: str | None) -> bool:
    """True when `name` has been prepared in `data_dir`."""
    version_dir = os.path.join(registry.dataset_dir(name, data_dir), FORMAT_VERSION)
    return os.path.isfile(os.path.join(version_dir, "dataset_info.json"))


def prepared_names(data_dir: str | None) -> list[str]:
    """Names of every dataset prepared in `data_dir` (for error messages and listings)."""
    names = registry.folder_names(data_dir) + list(registry.CATALOG_DATASETS)
    return [name for name in names if is_prepared(name, data_dir)]


def read_report(name: str, data_dir: str | None) -> dict | None:
    """The `report.json` written when `name` was prepared, or None."""
    path = os.path.join(registry.dataset_dir(name, data_dir), REPORT_FILENAME)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def open_prepared(
    name: str, data_dir: str | None, split: str = "train"
) -> tuple[ExampleSource, dict[str, Any]]:
    """Open a prepared dataset for reading, with no TensorFlow.

    Args:
      name: "video_folder/NAME" or one of `registry.CATALOG_DATASETS`.
      data_dir: where it was prepared (None: tfds's default data dir).
      split: "train", "test", or a tfds slice of one ("train[:90%]"). "test" reads
        "train" when the dataset has no held-out split.

    Returns:
      (source, info): `source[i]` is `{"video": uint8 [time, size, size, 3],
      "label": int64 []}`; info holds "name", "split", "num_examples",
      "num_classes", "class_names", "size", "max_frames", "channels" (3),
      "splits" (name -> examples), "test_is_train", "files_dir" (the tfds version
      directory: records and `dataset_info.json`) and "metadata".

    Raises:
      VganError: unknown name, not prepared in `data_dir`, or unknown split.
    """
    directory = registry.dataset_dir(name, data_dir)
    if not is_prepared(name, data_dir):
        others = prepared_names(data_dir)
        found = f" (prepared there: {', '.join(others)})" if others else ""
        raise VganError(
            f"dataset {name!r} is not prepared in {registry.resolve_data_dir(data_dir)}{found}: "
            f"run `{registry.prepare_command_hint(name, data_dir)}` first"
        )
    files_dir = os.path.join(directory, FORMAT_VERSION)
    builder = tfds.builder_from_directory(files_dir)
    splits = {key: int(value.num_examples) for key, value in builder.info.splits.items()}
    base_split = split.split("[", 1)[0]
    test_is_train = base_split == "test" and "test" not in splits
    if test_is_train:
        split = "train" + split[len(base_split):]
    elif base_split not in splits:
        raise VganError(
            f"dataset {name!r} has no split {base_split!r}: use one of {sorted(splits)}"
        )
    metadata = dict(builder.info.metadata or {})
    class_names = list(metadata.get("class_names", []))
    source = ExampleSource(builder.as_data_source(split=split))
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
        "files_dir": files_dir,
        "metadata": metadata,
    }
    return source, info
