"""FVD during training, and the cached real-data statistics it (and `eval`) compare against.

`FvdEvaluator` builds the I3D extractor once (one compilation per run) and computes
the real statistics once: from the on-disk cache if a previous run made them, else
from `vgan_jax.data.load_videos`, then kept in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from vgan_jax.metrics.fvd import compute_fvd, detector_description
from vgan_jax.metrics.stats import FeatureStats, cached_stats, real_stats_cache_key

# Data fields that do not change which clips are drawn.
_IGNORED_DATA_FIELDS = ("worker_count",)


def _data_fields(data_config) -> dict[str, Any]:
    fields = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
    return {k: v for k, v in sorted(fields.items()) if k not in _IGNORED_DATA_FIELDS}


def real_stats(
    data_config,
    split: str,
    num_videos: int,
    seed: int,
    cache_dir: str | None,
    extractor,
    keep_features: bool = True,
) -> tuple[FeatureStats, dict]:
    """I3D statistics of `num_videos` real clips, cached as `.npz` under `cache_dir`.

    Args:
      data_config: the run's `config.data` (name, resolution, frames, channels, ...).
      split: dataset split, e.g. "train".
      num_videos: clips drawn with `vgan_jax.data.load_videos(data_config, split, num, seed)`.
      seed: seed of that draw.
      cache_dir: cache folder (None: no cache). The file name spells the dataset, split,
        resolution, frames, clip count and seed, plus a hash of the other data fields.
      extractor: the feature extractor (an `I3DFeatureExtractor`).
      keep_features: keep raw features (for KVD).

    Returns:
      `(stats, description)`, the description naming the real set's protocol fields.
    """
    detector = detector_description()
    fields = _data_fields(data_config)
    key = real_stats_cache_key(
        dataset=str(fields.get("name")), split=split, resolution=int(fields["resolution"]),
        frames=int(fields["frames"]), num_clips=num_videos, seed=seed, detector=detector,
        extra=fields,
    )
    metadata = {
        "dataset": fields.get("name"), "split": split, "resolution": fields["resolution"],
        "frames": fields["frames"], "num_clips": num_videos, "seed": seed,
        "detector": detector, "data_config": fields, "keep_features": keep_features,
    }

    def compute() -> FeatureStats:
        from vgan_jax.data import load_videos

        videos = load_videos(data_config, split, num_videos, seed)
        chunk = getattr(extractor, "batch_size", 64)
        stats = FeatureStats(0, keep_features)
        for start in range(0, len(videos), chunk):
            features = np.asarray(extractor(videos[start : start + chunk]))
            if stats.dim == 0:
                stats = FeatureStats(features.shape[1], keep_features)
            stats.update(features)
        return stats

    cache_path = os.path.join(cache_dir, f"{key}.npz") if cache_dir else None
    stats = cached_stats(cache_path, compute, metadata)
    description = {
        "num_videos": stats.count,
        "frames": int(fields["frames"]),
        "resolution": [int(fields["resolution"])] * 2,
        "channels": int(fields.get("channels", 3)),
        "dataset": fields.get("name"),
        "split": split,
        "seed": seed,
        "cache": cache_path,
    }
    return stats, description


class FvdEvaluator:
    """Small-N FVD for the training loop (every `train.fvd_every` steps).

    Args:
      data_config: the run's `config.data`.
      num_videos: real and generated clips each (`train.fvd_num_videos`).
      seed: seed of the real clip draw.
      cache_dir: where real statistics are cached (None: memory only).
      mesh: device mesh with a `data` axis (None: all devices).
      split: real split (default "train", as StyleGAN-V).
      batch_size: videos per I3D call.

    Call with an iterable of generated uint8 `[b, T, H, W, C]` batches (about
    `num_videos` videos in all); returns the `compute_fvd` dict (`fvd`, `kvd`, protocol).
    """

    def __init__(
        self,
        data_config,
        num_videos: int,
        seed: int,
        cache_dir: str | None,
        mesh=None,
        split: str = "train",
        batch_size: int = 16,
    ):
        from vgan_jax.metrics.i3d import I3DFeatureExtractor

        self.data_config = data_config
        self.num_videos = num_videos
        self.seed = seed
        self.cache_dir = cache_dir
        self.split = split
        self.extractor = I3DFeatureExtractor(batch_size=batch_size, mesh=mesh)
        self._real: tuple[FeatureStats, dict] | None = None

    @property
    def real(self) -> tuple[FeatureStats, dict]:
        """Real statistics, computed (or loaded) on first use."""
        if self._real is None:
            self._real = real_stats(
                self.data_config, self.split, self.num_videos, self.seed,
                self.cache_dir, self.extractor,
            )
        return self._real

    def __call__(self, video_batches: Iterable[np.ndarray]) -> dict:
        # 10 KVD subsets instead of 100: training FVD is a cheap trend line, and the
        # result records the subset count.
        return compute_fvd(
            video_batches, None, names=("generated", "real"), extractor=self.extractor,
            stats_b=self.real, kvd_subsets=10,
        )
