"""Reference FVDs that make a model's FVD readable: what "good" and "broken" score.

An FVD on its own says little: its scale depends on the dataset, N, resolution and
clip length. Three baselines, computed with exactly the model's protocol (same split,
N, resolution, frames, detector, KVD subsets) against the same real statistics, bound it:

- `real_vs_real`: N other real clips of the split. The floor a perfect generator
  would reach at this N (FVD is biased upwards at finite N, so it is not 0).
- `shuffled_time`: those clips with their frames in a random order (a fixed
  permutation per clip, never the identity). Right frames, wrong motion.
- `frozen_first_frame`: those clips' first frame repeated T times. Right frames,
  no motion at all.

Which clips: the real statistics use `load_videos(data, split, N, seed)`, i.e. the
first N usable videos of a seeded permutation of the split. The same call with 2N
returns those N clips followed by N more, so the baselines use clips [N, 2N) of that
order: other videos of the same split, drawn the same way (random start, crop and
flip per clip), disjoint from the reference. A split with fewer than 2N usable videos
falls back to an independent draw with seed + 1, which may reuse reference videos (with
other starts and crops) and so reads a little low; the result says so
(`disjoint_from_reference: false`).

Baseline statistics are cached next to the real ones, keyed by every protocol field
plus the baseline's kind (and the shuffle seed), so a second `eval --baselines` on the
same data only computes the distances.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from vgan_jax.errors import VganError
from vgan_jax.metrics.fvd import distances_from_stats
from vgan_jax.metrics.progress import note
from vgan_jax.metrics.stats import FeatureStats, cached_stats_with_info
from vgan_jax.metrics.training_hook import RealDraw, real_protocol, real_stats, stats_of_clips

BASELINE_KINDS = ("real_vs_real", "shuffled_time", "frozen_first_frame")
BASELINE_LABELS = {
    "real_vs_real": "real vs real",
    "shuffled_time": "real, shuffled in time",
    "frozen_first_frame": "real, first frame frozen",
}
# Part of every baseline cache key: changing how the clips are chosen or transformed
# must change this string, so stale caches are not reused.
BASELINE_PROTOCOL = (
    "v1: clips [N, 2N) of load_videos(split, 2N, seed), else load_videos(split, N, seed + 1); "
    "shuffle: per-clip permutation from default_rng([shuffle_seed, i]), never the identity; "
    "frozen: frame 0 repeated T times"
)


def shuffle_time(videos: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each clip's frames in a fixed random order: uint8 `[N, T, H, W, C]` -> same shape.

    Clip `i` uses `default_rng([seed, i]).permutation(T)`, so the result does not depend
    on batching; an identity permutation is replaced by a shift of one frame (T >= 2),
    so every clip really is shuffled.
    """
    videos = np.asarray(videos)
    frames = videos.shape[1]
    out = np.empty_like(videos)
    for index, clip in enumerate(videos):
        order = np.random.default_rng([seed, index]).permutation(frames)
        if frames > 1 and np.array_equal(order, np.arange(frames)):
            order = np.roll(order, 1)
        out[index] = clip[order]
    return out


def freeze_first_frame(videos: np.ndarray) -> np.ndarray:
    """Frame 0 of each clip repeated: uint8 `[N, T, H, W, C]` -> same shape."""
    videos = np.asarray(videos)
    return np.repeat(videos[:, :1], videos.shape[1], axis=1)


def other_real_clips(draw: RealDraw, progress: bool = True) -> tuple[np.ndarray, dict]:
    """N real clips that the reference statistics (`real_stats(draw)`) do not use.

    Returns:
      uint8 `[N, T, H, W, C]` and an info dict: `clips` (how they were drawn) and
      `disjoint_from_reference`.
    """
    from vgan_jax.data import load_videos

    data_config, split, num_videos, seed = draw
    if progress:
        note(f"baselines: loading {num_videos} more real clips of split {split!r}")
    try:
        # The first N of this draw are exactly the reference clips (same seeded order).
        videos = load_videos(data_config, split, 2 * num_videos, seed)
        videos = np.ascontiguousarray(videos[num_videos:])
        info = {
            "clips": f"clips [{num_videos}, {2 * num_videos}) of the reference draw "
            f"(seed {seed}): other videos of split {split!r}",
            "disjoint_from_reference": True,
        }
    except VganError:
        videos = load_videos(data_config, split, num_videos, seed + 1)
        info = {
            "clips": f"an independent draw of {num_videos} clips (seed {seed + 1}): split "
            f"{split!r} has fewer than {2 * num_videos} usable videos, so some source "
            "videos are shared with the reference",
            "disjoint_from_reference": False,
        }
        warnings.warn(
            f"real-vs-real baseline: {info['clips']}; it reads lower than a disjoint one",
            stacklevel=2,
        )
    return videos, info


def transform_for(kind: str, shuffle_seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """The clip transform of a baseline kind (uint8 `[N, T, H, W, C]` -> same)."""
    if kind == "real_vs_real":
        return lambda videos: videos
    if kind == "shuffled_time":
        return lambda videos: shuffle_time(videos, shuffle_seed)
    if kind == "frozen_first_frame":
        return freeze_first_frame
    raise VganError(f"unknown baseline {kind!r}; known baselines: {', '.join(BASELINE_KINDS)}")


def baseline_stats(
    kind: str,
    draw: RealDraw,
    cache_dir: str | None,
    extractor,
    keep_features: bool = True,
    shuffle_seed: int = 0,
    clips: Callable[[], tuple[np.ndarray, dict]] | None = None,
    progress: bool = True,
) -> tuple[FeatureStats, dict]:
    """Feature statistics of one baseline set, cached like the real statistics.

    Args:
      kind: one of `BASELINE_KINDS`.
      draw: the reference draw (as `real_stats`).
      cache_dir: cache folder (None: no cache); the file is the real statistics'
        name plus `_{kind}`, and its key adds the kind, shuffle seed and
        `BASELINE_PROTOCOL` to every field of the real key.
      extractor: the feature extractor.
      keep_features: keep raw features (for KVD).
      shuffle_seed: seed of the per-clip permutations (`shuffled_time` only).
      clips: returns `other_real_clips(...)`; pass a memoised one to load the clips
        once for several kinds. Only called on a cache miss.
      progress: report videos/s on stderr while extracting.

    Returns:
      `(stats, info)`: info names the clips (`clips`, `disjoint_from_reference`) and
      the `cache` file.
    """
    transform = transform_for(kind, shuffle_seed)
    key, metadata = real_protocol(draw, extractor)
    metadata.update(
        keep_features=keep_features, baseline=kind, baseline_protocol=BASELINE_PROTOCOL,
        shuffle_seed=shuffle_seed if kind == "shuffled_time" else None,
    )
    cache_path = os.path.join(cache_dir, f"{key}_{kind}.npz") if cache_dir else None
    if clips is None:
        clips = lambda: other_real_clips(draw, progress)  # noqa: E731

    def compute() -> tuple[FeatureStats, dict]:
        videos, info = clips()
        stats = stats_of_clips(
            transform(videos), extractor, keep_features, f"features: baseline {kind}", progress
        )
        return stats, info

    stats, info = cached_stats_with_info(cache_path, compute, metadata, extractor)
    return stats, {**(info or {}), "cache": cache_path}


def _memoised(function: Callable[[], tuple[np.ndarray, dict]]):
    """A zero-argument callable that calls `function` once and then returns its result."""
    result: list = []

    def call():
        if not result:
            result.append(function())
        return result[0]

    return call


def baseline_fvds(
    draw: RealDraw,
    cache_dir: str | None,
    extractor,
    *,
    real: tuple[FeatureStats, dict] | None = None,
    kinds: Sequence[str] = BASELINE_KINDS,
    kvd: bool = True,
    kvd_subsets: int = 100,
    kvd_subset_size: int | None = None,
    kvd_seed: int = 0,
    shuffle_seed: int = 0,
    progress: bool = True,
) -> dict[str, dict]:
    """FVD (and KVD) of each baseline against the real statistics, at the model's protocol.

    Args:
      draw: the reference draw (`RealDraw` of the run's `config.data` and `eval`'s
        --split, --num_videos, --real_seed); the baselines use N other clips of the
        same split.
      cache_dir: where real and baseline statistics are cached (None: no cache).
      extractor: the feature extractor used for the model's FVD.
      real: the reference `(stats, description)` from `real_stats` (None: computed or
        loaded here).
      kinds: which baselines (default all of `BASELINE_KINDS`).
      kvd, kvd_subsets, kvd_subset_size, kvd_seed: as for the model's KVD.
      shuffle_seed: seed of the `shuffled_time` permutations.
      progress: report loading and videos/s on stderr.

    Returns:
      `{kind: {"fvd", "kvd", "kvd_std", ..., "num_videos", "clips",
      "disjoint_from_reference", "cache"}}`, JSON-ready.
    """
    for kind in kinds:
        transform_for(kind, shuffle_seed)  # unknown kinds fail before any work
    if real is None:
        real = real_stats(draw, cache_dir, extractor, kvd, progress)
    clips = _memoised(lambda: other_real_clips(draw, progress))
    results = {}
    for kind in kinds:
        stats, info = baseline_stats(
            kind, draw, cache_dir, extractor, kvd, shuffle_seed, clips, progress
        )
        result = distances_from_stats(
            stats, real[0], kvd, kvd_subsets, kvd_subset_size, kvd_seed
        )
        result.update(num_videos=stats.count, **info)
        if kind == "shuffled_time":
            result["shuffle_seed"] = shuffle_seed
        results[kind] = result
    return results
