"""Prepare a folder of the user's own videos as `video_folder/<NAME>`.

    vgan-jax prepare video_folder --source DIR --data_dir DATA --name NAME

Every file under `source` is looked at (hidden files and folders, names starting
with ".", are ignored). Files in subfolders get the label of their top-level
subfolder (`source/<class>/.../clip.mp4`); when there are no subfolders, every
video is in one class named NAME. Files with a video extension (`VIDEO_EXTENSIONS`)
are decoded with imageio-ffmpeg; everything else, and every file that is empty,
unreadable, truncated or a still image, is skipped, counted and listed with the
reason in `report.json` next to the dataset, and the good files are all kept.

Videos shorter than `min_frames` are padded (last frame repeated) or skipped
(`short_videos`); longer than `max_frames`, they are split into several examples.
With `test_fraction > 0`, that fraction of each class's files (chosen by a hash of
the file's path, so the split is the same on every run and machine) forms a
"test" split; segments of one file never straddle splits. With the default 0.0
there is no held-out split and "test" reads "train" (see prepared.py).

Training on it: `--config.data.name=video_folder/NAME`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from vgan_jax.data import prepared
from vgan_jax.data.video_decode import (
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    decode_video,
    is_video_filename,
)
from vgan_jax.errors import VganError

# Label for videos directly in `source` when other videos sit in class subfolders.
ROOT_CLASS_NAME = "_root"
SKIP_KINDS = ("not_video", "empty", "unreadable", "truncated", "short", "unlabeled")


class PrepareFailed(VganError):
    """No usable video came out of a preparation; `report` says why for each file."""

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


def scan_folder(source: str) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """List the files under `source`.

    Returns:
      (videos, rejected): `videos` is `[(relative path, class name)]` for files with
      a video extension, sorted by path; `rejected` lists the other files as
      `{"path", "kind": "not_video", "reason"}`.
    """
    if not os.path.isdir(source):
        raise VganError(f"--source {source!r} is not a directory: point it at a folder of videos")
    entries: list[str] = []
    for directory, subdirs, files in os.walk(source, followlinks=True):
        # Sorted, in place, so the walk order (and thus keys) is the same everywhere.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for filename in sorted(files):
            if not filename.startswith("."):
                entries.append(os.path.relpath(os.path.join(directory, filename), source))
    videos, rejected = [], []
    for relpath in entries:
        if is_video_filename(relpath):
            videos.append(relpath)
        else:
            rejected.append(
                {
                    "path": relpath,
                    "kind": "not_video",
                    "reason": "not a video file (expected one of "
                    + " ".join(VIDEO_EXTENSIONS) + ")",
                }
            )
    has_subfolders = any(os.sep in relpath for relpath in videos)
    labelled = []
    for relpath in videos:
        if os.sep in relpath:
            labelled.append((relpath, relpath.split(os.sep, 1)[0]))
        else:
            labelled.append((relpath, ROOT_CLASS_NAME if has_subfolders else ""))
    return labelled, rejected


def assign_splits(
    files: Sequence[tuple[str, int]], test_fraction: float
) -> dict[str, list[tuple[str, int]]]:
    """Deterministic per-class train/test split of `(relative path, label)` files.

    Each class gives `round(test_fraction * n)` files (at most n - 1, so every class
    keeps a training file) to "test", picked by the SHA-1 of the path: the split
    depends only on the file names, not on the order files were found in.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise VganError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if test_fraction == 0.0:
        return {"train": list(files)}
    by_class: dict[int, list[tuple[str, int]]] = collections.defaultdict(list)
    for item in files:
        by_class[item[1]].append(item)
    test = set()
    for items in by_class.values():
        ranked = sorted(items, key=lambda item: hashlib.sha1(item[0].encode()).hexdigest())
        count = min(int(round(test_fraction * len(items))), len(items) - 1)
        test.update(path for path, _ in ranked[:count])
    splits = {
        "train": [item for item in files if item[0] not in test],
        "test": [item for item in files if item[0] in test],
    }
    return splits if splits["test"] else {"train": splits["train"]}


def _ordered_parallel_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int
) -> Iterator[Any]:
    """`map(fn, items)` on `workers` threads, in order, with a bounded queue.

    Decoding is mostly ffmpeg (a subprocess) and PIL (releases the GIL), so threads
    overlap well; the window of 2 x workers keeps memory bounded, unlike
    `Executor.map`, which submits everything at once.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        pending: collections.deque = collections.deque()
        for item in items:
            pending.append(executor.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def prepare_files(
    name: str,
    data_dir: str | None,
    *,
    source: str,
    split_files: dict[str, list[tuple[str, int]]],
    class_names: Sequence[str],
    rejected: Sequence[dict[str, str]] = (),
    size: int = 128,
    max_frames: int = 32,
    min_frames: int = 16,
    short_videos: str = "pad",
    max_segments_per_video: int | None = None,
    workers: int = 2,
    strict_decoding: bool = True,
    log: Callable[[str], None] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decode labelled video files and write them as the prepared dataset `name`.

    The shared engine of `prepare_video_folder` and Kinetics (catalog.py).

    Args:
      name: "video_folder/NAME" or a catalog name (see prepared.py).
      data_dir: root of prepared datasets.
      source: the folder the relative paths in `split_files` are relative to.
      split_files: split -> `[(relative path, label)]`; must include "train".
      class_names: label -> name.
      rejected: files already known to be unusable (listed in the report).
      size, max_frames, min_frames, short_videos: see `prepared.split_into_segments`.
      max_segments_per_video: decode at most this many `max_frames` segments of
        each file (None: all); bounds the cost of very long files.
      workers: decoding threads.
      strict_decoding: a stream error anywhere in a file skips it as "truncated"
        (see `video_decode.decode_video`); False keeps what ffmpeg can decode.
      log: progress lines go here (e.g. `print`); None is silent.
      options: extra entries for the report's "options".

    Returns:
      The report (also written as `report.json` next to the dataset).

    Raises:
      PrepareFailed: no file gave a usable video (nothing is written or replaced).
    """
    prepared.check_segment_options(max_frames, min_frames, short_videos)
    if size < 1:
        raise VganError(f"size must be >= 1, got {size}")
    if max_segments_per_video is not None and max_segments_per_video < 1:
        raise VganError("max_segments_per_video must be >= 1 (or unset for whole videos)")
    frame_cap = None if max_segments_per_video is None else max_segments_per_video * max_frames
    total_files = sum(len(files) for files in split_files.values()) + len(rejected)
    report: dict[str, Any] = {
        "dataset": name,
        "source": os.path.abspath(source),
        "dataset_dir": prepared.dataset_dir(name, data_dir),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "options": {
            "size": size,
            "max_frames": max_frames,
            "min_frames": min_frames,
            "short_videos": short_videos,
            "max_segments_per_video": max_segments_per_video,
            "strict_decoding": strict_decoding,
            **(options or {}),
        },
        "class_names": list(class_names),
        "files_found": total_files,
        "videos_used": 0,
        "examples": {},
        "padded": [],
        "skipped_count": 0,
        "skipped_by_kind": {kind: 0 for kind in SKIP_KINDS},
        "skipped": [],
        "per_class": {cls: {"videos": 0, "examples": 0} for cls in class_names},
    }
    for item in rejected:
        record_skip(report, item["path"], item["kind"], item["reason"])
    progress = {"done": 0, "last_log": time.monotonic()}

    def decode(item: tuple[str, int]):
        relpath, label = item
        try:
            frames = decode_video(
                os.path.join(source, relpath), size=size, max_frames=frame_cap,
                strict=strict_decoding,
            )
        except VideoDecodeError as error:
            return relpath, label, None, error
        except Exception as error:  # noqa: BLE001 - one odd file must never end the run
            return relpath, label, None, VideoDecodeError(
                relpath, "unreadable", f"{type(error).__name__}: {error}"
            )
        return relpath, label, frames, None

    def examples(split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        count = 0
        for relpath, label, frames, error in _ordered_parallel_map(
            decode, split_files[split], workers
        ):
            progress["done"] += 1
            if error is not None:
                record_skip(report, relpath, error.kind, error.reason)
            else:
                segments = prepared.split_into_segments(
                    frames, max_frames=max_frames, min_frames=min_frames,
                    short_videos=short_videos,
                )
                if not segments:
                    record_skip(
                        report, relpath, "short",
                        f"only {len(frames)} frames, fewer than min_frames={min_frames} "
                        "(short_videos='skip'; use 'pad' to keep it)",
                    )
                else:
                    if len(frames) < min_frames:
                        report["padded"].append({"path": relpath, "frames": int(len(frames))})
                    report["videos_used"] += 1
                    stats = report["per_class"][class_names[label]]
                    stats["videos"] += 1
                    stats["examples"] += len(segments)
                    for index, segment in enumerate(segments):
                        count += 1
                        yield f"{relpath}#{index}", {
                            "video": np.ascontiguousarray(segment, dtype=np.uint8),
                            "label": np.int64(label),
                        }
            now = time.monotonic()
            if log is not None and now - progress["last_log"] > 10.0:
                progress["last_log"] = now
                log(
                    f"  {progress['done']}/{total_files - len(rejected)} videos decoded, "
                    f"{report['skipped_count']} files skipped so far"
                )
        report["examples"][split] = count

    def write_report(staged_dir: str, counts: dict[str, int]) -> None:
        report["examples"] = counts
        report["skipped"].sort(key=lambda item: item["path"])
        with open(os.path.join(staged_dir, prepared.REPORT_FILENAME), "w") as f:
            json.dump(report, f, indent=2)

    metadata = {
        "class_names": list(class_names),
        "size": size,
        "max_frames": max_frames,
        "min_frames": min_frames,
        "source": os.path.abspath(source),
    }
    if log is not None:
        log(f"preparing {name} from {source}: {total_files} files, {len(class_names)} classes")
    try:
        prepared.write_prepared(
            name,
            data_dir,
            split_generators={split: (lambda s=split: examples(s)) for split in split_files},
            size=size,
            metadata=metadata,
            before_commit=write_report,
        )
    except PrepareFailed:
        raise
    except VganError as error:
        if report["videos_used"] == 0:
            raise PrepareFailed(
                f"no usable video in {source} ({report['skipped_count']} of "
                f"{total_files} files skipped, see the list above); "
                f"nothing was written and any existing {name!r} was kept",
                report,
            ) from error
        raise
    return report


def record_skip(report: dict[str, Any], path: str, kind: str, reason: str) -> None:
    report["skipped"].append({"path": path, "kind": kind, "reason": reason})
    report["skipped_count"] += 1
    report["skipped_by_kind"][kind] = report["skipped_by_kind"].get(kind, 0) + 1


def prepare_video_folder(
    source: str,
    data_dir: str | None,
    name: str,
    *,
    size: int = 128,
    max_frames: int = 32,
    min_frames: int = 16,
    short_videos: str = "pad",
    test_fraction: float = 0.0,
    max_segments_per_video: int | None = None,
    workers: int = 2,
    strict_decoding: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Prepare the videos under `source` as dataset `video_folder/<name>` in `data_dir`.

    Args:
      source: folder of .mp4/.avi/.webm/.mov/.gif/... files; subfolders are classes.
      data_dir: root of prepared datasets (None: tfds's default data dir).
      name: the dataset's NAME (letters, digits, '_', '-', '.').
      size: stored frame height = width (shorter side resized, center crop).
      max_frames: most frames per stored example; longer videos are split.
      min_frames: fewest frames per example (usually the training clip length).
      short_videos: "pad" or "skip" videos with fewer than `min_frames` frames.
      test_fraction: fraction of each class's files held out as "test" (0: none).
      max_segments_per_video: decode at most this many segments per file (None: all).
      workers: decoding threads.
      strict_decoding: skip files with any stream error as "truncated" (default);
        False keeps every frame ffmpeg can decode from a damaged file.
      log: progress lines (e.g. `print`); None is silent.

    Returns:
      The report dict (see `format_report`), also saved as `report.json` in
      `prepared.dataset_dir("video_folder/" + name, data_dir)`.

    Raises:
      VganError: bad options or `source`; `PrepareFailed` (a VganError with
      `.report`) when not one file was usable.
    """
    name = prepared.validate_folder_name(name)
    # Options first: a typo should fail in a second, not after scanning a folder.
    prepared.check_segment_options(max_frames, min_frames, short_videos)
    assign_splits([], test_fraction)
    dataset_name = prepared.VIDEO_FOLDER_PREFIX + name
    videos, rejected = scan_folder(source)
    classes = sorted({cls for _, cls in videos})
    if classes == [""]:
        classes = [name]
        videos = [(relpath, name) for relpath, _ in videos]
    if not videos:
        report_stub = {
            "dataset": dataset_name, "source": os.path.abspath(source),
            "files_found": len(rejected), "videos_used": 0, "examples": {},
            "skipped_count": len(rejected), "skipped": list(rejected), "padded": [],
            "class_names": [],
        }
        raise PrepareFailed(
            f"no video files in {source} (looked for {' '.join(VIDEO_EXTENSIONS)}; "
            f"{len(rejected)} other files); nothing was written",
            report_stub,
        )
    label_of = {cls: index for index, cls in enumerate(classes)}
    files = [(relpath, label_of[cls]) for relpath, cls in videos]
    return prepare_files(
        dataset_name,
        data_dir,
        source=source,
        split_files=assign_splits(files, test_fraction),
        class_names=classes,
        rejected=rejected,
        size=size,
        max_frames=max_frames,
        min_frames=min_frames,
        short_videos=short_videos,
        max_segments_per_video=max_segments_per_video,
        workers=workers,
        strict_decoding=strict_decoding,
        log=log,
        options={"test_fraction": test_fraction},
    )


def format_report(report: dict[str, Any], max_listed: int = 50) -> str:
    """A human summary of a preparation report (what the CLI prints at the end)."""
    lines = [
        f"dataset {report.get('dataset')}: {report.get('videos_used', 0)} of "
        f"{report.get('files_found', 0)} files used",
    ]
    examples = report.get("examples") or {}
    if examples:
        lines.append(
            "  examples: " + ", ".join(f"{split} {count}" for split, count in examples.items())
        )
    class_names = report.get("class_names") or []
    if class_names:
        shown = ", ".join(class_names[:10]) + (" ..." if len(class_names) > 10 else "")
        lines.append(f"  classes ({len(class_names)}): {shown}")
    padded = report.get("padded") or []
    if padded:
        lines.append(f"  padded (shorter than min_frames): {len(padded)} videos")
    skipped = report.get("skipped") or []
    if skipped:
        lines.append(f"  skipped: {len(skipped)} files")
        for item in sorted(skipped, key=lambda item: item["path"])[:max_listed]:
            lines.append(f"    {item['path']}: [{item['kind']}] {item['reason']}")
        if len(skipped) > max_listed:
            lines.append(f"    ... and {len(skipped) - max_listed} more (see report.json)")
    else:
        lines.append("  skipped: none")
    if report.get("dataset_dir") and report.get("videos_used"):
        lines.append(
            f"  report: {os.path.join(report['dataset_dir'], prepared.REPORT_FILENAME)}"
        )
    return "\n".join(lines)
