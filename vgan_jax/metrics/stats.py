"""Streaming feature statistics in float64 on the host, and their on-disk cache.

`FeatureStats` merges batches with Chan et al.'s parallel update of (count, mean,
scatter matrix), so any number of videos fits in O(d^2) memory and the result
equals the one-shot `mean` / `np.cov(ddof=1)` to float64 rounding. It can also keep
the raw float32 features (needed for KVD, 1.6 kB per video at d = 400).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from vgan_jax.errors import VganError


class FeatureStats:
    """Running mean and covariance of `[n, d]` feature batches, float64.

    Args:
      dim: feature dimension d.
      keep_features: also keep every feature row (float32), for KVD.
    """

    def __init__(self, dim: int, keep_features: bool = True):
        self.dim = dim
        self.keep_features = keep_features
        self.count = 0
        self._mean = np.zeros(dim, np.float64)
        # Sum of outer products of deviations from the running mean.
        self._scatter = np.zeros((dim, dim), np.float64)
        self._features: list[np.ndarray] = []

    def update(self, features: np.ndarray) -> FeatureStats:
        """Add a batch `[b, d]` (any float dtype). Returns self."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise VganError(f"features must be [batch, {self.dim}], got shape {features.shape}")
        if not np.all(np.isfinite(features)):
            raise VganError("features contain NaN or inf; check the videos fed to the detector")
        n_b = features.shape[0]
        if n_b == 0:
            return self
        batch = features.astype(np.float64)
        mean_b = batch.mean(axis=0)
        centred = batch - mean_b
        scatter_b = centred.T @ centred
        n_a = self.count
        total = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / total)
        self._scatter = self._scatter + scatter_b + np.outer(delta, delta) * (n_a * n_b / total)
        self.count = total
        if self.keep_features:
            self._features.append(features.astype(np.float32))
        return self

    @property
    def mean(self) -> np.ndarray:
        """float64 `[d]`."""
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased (ddof = 1) covariance, float64 `[d, d]`, as `np.cov(x, rowvar=False)`."""
        if self.count < 2:
            raise VganError(f"a covariance needs at least 2 videos, got {self.count}")
        return self._scatter / (self.count - 1)

    @property
    def features(self) -> np.ndarray | None:
        """float32 `[count, d]` if kept, else None."""
        if not self.keep_features:
            return None
        if not self._features:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(self._features, axis=0)

    @classmethod
    def from_features(cls, features: np.ndarray, keep_features: bool = True) -> FeatureStats:
        """One-shot statistics of `[n, d]` features."""
        features = np.asarray(features)
        return cls(features.shape[1], keep_features).update(features)

    def save(self, path: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Write `.npz` (atomically: temp file + rename, so a crash leaves no half cache)."""
        arrays = {
            "count": np.int64(self.count),
            "mean": self._mean,
            "scatter": self._scatter,
            "metadata": np.array(json.dumps(dict(metadata or {}), sort_keys=True)),
        }
        if self.keep_features:
            arrays["features"] = self.features
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> tuple[FeatureStats, dict]:
        """Read what `save` wrote: `(stats, metadata)`."""
        with np.load(path, allow_pickle=False) as data:
            mean = data["mean"]
            stats = cls(mean.shape[0], keep_features="features" in data.files)
            stats.count = int(data["count"])
            stats._mean = mean.astype(np.float64)
            stats._scatter = data["scatter"].astype(np.float64)
            if stats.keep_features:
                stats._features = [data["features"].astype(np.float32)]
            metadata = json.loads(str(data["metadata"]))
        return stats, metadata


def real_stats_cache_key(
    *,
    dataset: str,
    split: str,
    resolution: int,
    frames: int,
    num_clips: int,
    seed: int,
    detector: str,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A readable file stem naming every knob that changes the real statistics.

    `extra` (e.g. the rest of the data config: channels, frame stride, crop) goes
    into a short hash, so two configs differing anywhere never share a cache file.
    """
    extra_json = json.dumps(dict(extra or {}), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{detector}|{extra_json}".encode()).hexdigest()[:10]
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset)
    return (
        f"{safe_name}_{split}_r{resolution}_f{frames}_n{num_clips}_seed{seed}_{digest}"
    )


def _as_json(metadata: Mapping[str, Any]) -> dict:
    """`metadata` as it reads back from a cache file (tuples -> lists, objects -> str)."""
    return json.loads(json.dumps(dict(metadata), sort_keys=True, default=str))


def _serves(stored: dict, wanted: dict) -> bool:
    """Whether a cache file's metadata answers a request: equal, or it kept the raw
    features that the request does not need (so `--no_kvd` after a KVD run is a hit,
    and does not overwrite the cache with a features-less file)."""
    if stored == wanted:
        return True
    return (
        wanted.get("keep_features") is False
        and stored.get("keep_features") is True
        and {**stored, "keep_features": False} == wanted
    )


def cached_stats(
    cache_path: str | None, compute, metadata: Mapping[str, Any], extractor=None
) -> FeatureStats:
    """Load statistics from `cache_path` if present and matching, else `compute()` and save.

    Args:
      cache_path: `.npz` path, or None to disable caching.
      compute: zero-argument callable returning a `FeatureStats`.
      metadata: the cache key fields, stored in the file and checked on load.
      extractor: the extractor `compute` uses; on several processes they decide
        together over its mesh whether the cache serves (see `cached_stats_with_info`).
    """
    return cached_stats_with_info(cache_path, lambda: (compute(), None), metadata, extractor)[0]


def cached_stats_with_info(
    cache_path: str | None, compute, metadata: Mapping[str, Any], extractor=None
) -> tuple[FeatureStats, dict | None]:
    """`cached_stats` for a `compute()` returning `(stats, info)`; returns `(stats, info)`.

    `info` (JSON-ready facts learned while computing, e.g. which clips were drawn) is
    stored in the file under "info" and returned on a cache hit too; it is not part of
    the key, which is `metadata` alone.
    """
    metadata = _as_json(metadata)
    cached = None
    if cache_path and os.path.exists(cache_path):
        stats, stored = FeatureStats.load(cache_path)
        info = stored.pop("info", None)
        if _serves(stored, metadata):
            cached = stats, info
    # On several processes `compute()` is collective (the extractor's batches span
    # them): every process uses the cache or none does, else a process with a hit
    # would leave the others waiting in the extractor.
    if _on_every_process(cached is not None, extractor):
        return cached
    stats, info = compute()
    # One writer: every process holds the same statistics, and the workdir of a
    # multi-host run is shared.
    if cache_path and _is_main_process():
        stats.save(cache_path, metadata if info is None else {**metadata, "info": info})
    return stats, info


def _is_main_process() -> bool:
    import jax

    return jax.process_index() == 0


def _on_every_process(flag: bool, extractor=None) -> bool:
    """Whether `flag` holds on every JAX process (a collective on several).

    Over the extractor's mesh when it has one (`on_every_process`): a collective on
    a new group of devices (`process_allgather` uses one device per process) makes
    gloo on CPU set up new connections, which time out if the processes arrive more
    than 30 s apart, as they can after compiling on a busy machine.
    """
    import jax

    if jax.process_count() == 1:
        return flag
    if hasattr(extractor, "on_every_process"):
        return extractor.on_every_process(flag)
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag, np.int32))))
