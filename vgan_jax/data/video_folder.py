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
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from vgan_jax.data import prepared, registry
from vgan_jax.data.video_decode import VIDEO_EXTENSIONS, decode_or_error, is_video_filename
from vgan_jax.errors import VganError

# Label for videos directly in `source` when other videos sit in class subfolders.
ROOT_CLASS_NAME = "_root"


def default_name(source: str) -> str:
    """NAME from the source folder's own name, made valid for `validate_folder_name`."""
    base = os.path.basename(os.path.normpath(os.path.abspath(source)))
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip("._-") or "videos"


def scan_folder(source: str) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """List the files under `source`.

    Returns:
      (videos, rejected): `videos` is `[(relative path, class name)]` for files with
      a video extension, sorted by path; the class is the top-level subfolder's name,
      "" for a file directly in `source`. `rejected` lists the other files as
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
    videos = [relpath for relpath in entries if is_video_filename(relpath)]
    reason = "not a video file (expected one of " + " ".join(VIDEO_EXTENSIONS) + ")"
    rejected = [
        {"path": relpath, "kind": "not_video", "reason": reason}
        for relpath in entries
        if not is_video_filename(relpath)
    ]
    classes = [relpath.split(os.sep, 1)[0] if os.sep in relpath else "" for relpath in videos]
    return list(zip(videos, classes, strict=True)), rejected


def assign_splits(
    files: Sequence[tuple[str, str]], test_fraction: float
) -> dict[str, list[tuple[str, str]]]:
    """Deterministic per-class train/test split of `(relative path, class name)` files.

    Each class gives `round(test_fraction * n)` files (at most n - 1, so every class
    keeps a training file) to "test", picked by the SHA-1 of the path: the split
    depends only on the file names, not on the order files were found in.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise VganError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if test_fraction == 0.0:
        return {"train": list(files)}
    by_class: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
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


def video_files_source(
    folder: str,
    split_files: dict[str, list[tuple[str, str]]],
    options: prepared.PrepareOptions,
    **fields: Any,
) -> prepared.Source:
    """The source of labelled video files (video folders and Kinetics), decoded as read.

    Args:
      folder: what the relative paths in `split_files` are relative to.
      split_files: split -> `[(relative path, class name)]`; must include "train".
        The sorted class names are the labels 0, 1, ...
      options: the decoding fields (size, frame cap, strictness, workers).
      **fields: further `prepared.Source` fields (rejected, extra_options).
    """
    import grain  # lazy, as in pipeline.py

    classes = sorted({cls for files in split_files.values() for _, cls in files})
    label_of = {cls: label for label, cls in enumerate(classes)}

    def decode(item: tuple[str, str]):
        relpath, cls = item
        frames = decode_or_error(
            os.path.join(folder, relpath), size=options.size, max_frames=options.frame_cap,
            strict=options.strict_decoding,
        )
        return relpath, frames, label_of[cls]

    def videos(files: list[tuple[str, str]]):
        # Decoding is mostly ffmpeg (a subprocess) and PIL (releases the GIL), so threads
        # overlap well; grain keeps the order and bounds the queue to 2 x workers.
        threads = max(options.workers, 0)  # 0 or 1: decoded one by one
        read_options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
        return lambda: grain.MapDataset.source(files).map(decode).to_iter_dataset(read_options)

    splits = {split: videos(files) for split, files in split_files.items()}
    return prepared.Source(classes, splits, origin=os.path.abspath(folder), **fields)


def prepare_video_folder(
    source: str,
    data_dir: str | None,
    name: str,
    *,
    test_fraction: float = 0.0,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> prepared.Report:
    """Prepare the videos under `source` as dataset `video_folder/<name>` in `data_dir`.

    Args:
      source: folder of .mp4/.avi/.webm/.mov/.gif/... files; subfolders are classes.
      name: the dataset's NAME (letters, digits, '_', '-', '.').
      test_fraction: fraction of each class's files held out as "test" (0: none).
      The others as for `catalog.prepare`.

    Returns:
      The report (see `prepared.Report`), also saved as `report.json` in
      `registry.dataset_dir("video_folder/" + name, data_dir)`.

    Raises:
      VganError: bad options or `source`; `prepared.PrepareFailed` (a VganError with
      `.report`) when not one file was usable.
    """
    name = registry.validate_folder_name(name)
    # Options first: a typo should fail in a second, not after scanning a folder.
    options = prepared.PrepareOptions(**options)
    assign_splits([], test_fraction)
    # A folder with no video file at all ends in the engine's PrepareFailed, whose
    # report lists every file as "not a video file (expected one of ...)".
    videos, rejected = scan_folder(source)
    root_class = ROOT_CLASS_NAME if any(cls for _, cls in videos) else name
    files = [(relpath, cls or root_class) for relpath, cls in videos]
    video_files = video_files_source(
        source, assign_splits(files, test_fraction), options, rejected=rejected,
        extra_options={"test_fraction": test_fraction},
    )
    return prepared.write_prepared(
        registry.VIDEO_FOLDER_PREFIX + name, data_dir, video_files, options, log=log
    )
