"""FVD during training, and the cached real-data statistics it (and `eval`) compare against.

`FvdEvaluator` builds the I3D extractor once (one compilation per run) and computes
the real statistics once: from the on-disk cache if a previous run made them, else
from `vgan_jax.data.load_videos`, then kept in memory. `make_training_fvd` is what the
training loop calls: the EMA generator's videos, made on the mesh, through an evaluator.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from vgan_jax.metrics.fvd import compute_fvd, extract_stats, protocol_fields
from vgan_jax.metrics.progress import Progress, note
from vgan_jax.metrics.stats import FeatureStats, cached_stats, real_stats_cache_key

# The real split the training FVD compares with (as StyleGAN-V: the training data).
TRAINING_FVD_SPLIT = "train"

# Data fields that do not change which clips are drawn.
_IGNORED_DATA_FIELDS = ("worker_count",)


def _data_fields(data_config) -> dict[str, Any]:
    fields = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
    return {k: v for k, v in sorted(fields.items()) if k not in _IGNORED_DATA_FIELDS}


def extractor_protocol(extractor) -> dict[str, Any]:
    """What about `extractor` changes the features: its protocol fields (detector and
    weights version, resize, numerics) and its class. The device count is left out:
    features agree across device counts, so a cache made on 8 devices serves 1."""
    fields = {k: v for k, v in protocol_fields(extractor).items() if k != "num_devices"}
    kind = type(extractor)
    return {**fields, "class": f"{kind.__module__}.{kind.__qualname__}"}


class RealDraw(NamedTuple):
    """Which real clips a statistic is computed from: `num_videos` clips of `split`,
    drawn with `seed` by `vgan_jax.data.load_videos(data_config, ...)` (`data_config`
    is a run's `config.data`)."""

    data_config: Any
    split: str
    num_videos: int
    seed: int


def real_protocol(draw: RealDraw, extractor) -> tuple[str, dict]:
    """The cache key (a file stem) and metadata naming every knob of a real-clip draw.

    The key covers the data config, the extractor's protocol (`extractor_protocol`:
    a stand-in extractor never reads I3D statistics) and a fingerprint of the dataset's
    files (`data.dataset_fingerprint`: a dataset built or prepared again never serves
    statistics of its previous contents). Shared by the real statistics and the
    baselines (`metrics.baselines`), which add their own fields to both.
    """
    from vgan_jax.data import dataset_fingerprint

    data_config, split, num_videos, seed = draw
    extractor_fields = extractor_protocol(extractor)
    detector = str(extractor_fields.get("detector"))
    fields = _data_fields(data_config)
    fingerprint = dataset_fingerprint(data_config)
    key = real_stats_cache_key(
        dataset=str(fields.get("name")), split=split, resolution=int(fields["resolution"]),
        frames=int(fields["frames"]), num_clips=num_videos, seed=seed, detector=detector,
        extra={**fields, "extractor": extractor_fields, "dataset_fingerprint": fingerprint},
    )
    metadata = {
        "dataset": fields.get("name"), "split": split, "resolution": fields["resolution"],
        "frames": fields["frames"], "num_clips": num_videos, "seed": seed,
        "detector": detector, "extractor": extractor_fields, "data_config": fields,
        "dataset_fingerprint": fingerprint,
    }
    return key, metadata


def real_description(draw: RealDraw, count: int, cache: str | None) -> dict:
    """Protocol fields of a set of real clips, as `compute_fvd` reports each set."""
    data_config, split, _, seed = draw
    fields = _data_fields(data_config)
    return {
        "num_videos": count,
        "frames": int(fields["frames"]),
        "resolution": [int(fields["resolution"])] * 2,
        "channels": int(fields.get("channels", 3)),
        "dataset": fields.get("name"),
        "split": split,
        "seed": seed,
        "cache": cache,
    }


def stats_of_clips(
    videos: np.ndarray, extractor, keep_features: bool, desc: str, progress: bool = True
) -> FeatureStats:
    """Features of uint8 clips `[n, T, H, W, C]` in extractor-sized chunks, with progress."""
    chunk = getattr(extractor, "batch_size", 64)
    batches = (videos[start : start + chunk] for start in range(0, len(videos), chunk))
    bar = Progress(len(videos), desc, enabled=progress)
    return extract_stats(batches, extractor, desc, keep_features, progress=bar)[0]


def real_stats(
    draw: RealDraw,
    cache_dir: str | None,
    extractor,
    keep_features: bool = True,
    progress: bool = True,
) -> tuple[FeatureStats, dict]:
    """I3D statistics of a draw of real clips, cached as `.npz` under `cache_dir`.

    Args:
      draw: which clips (`RealDraw`: the run's `config.data`, the split, e.g. "train",
        the clip count and the seed of `vgan_jax.data.load_videos`).
      cache_dir: cache folder (None: no cache). The file name spells the dataset, split,
        resolution, frames, clip count and seed, plus a hash of the other data fields,
        the extractor's protocol and the dataset files' fingerprint (`real_protocol`).
      extractor: the feature extractor (an `I3DFeatureExtractor`).
      keep_features: keep raw features (for KVD).
      progress: on a cache miss, report loading and videos/s on stderr.

    Returns:
      `(stats, description)`, the description naming the real set's protocol fields.
    """
    data_config, split, num_videos, seed = draw
    key, metadata = real_protocol(draw, extractor)
    metadata["keep_features"] = keep_features
    cache_path = os.path.join(cache_dir, f"{key}.npz") if cache_dir else None

    def compute() -> FeatureStats:
        from vgan_jax.data import load_videos

        if progress:
            note(f"real statistics: loading {num_videos} clips of split {split!r} (seed {seed})")
        if not hasattr(extractor, "local_rows"):  # a plain callable: one process
            videos = load_videos(data_config, split, num_videos, seed)
            return stats_of_clips(videos, extractor, keep_features, "features: real", progress)
        # Each process reads only the clips its devices take (all of them on one host).
        rows = extractor.local_rows(num_videos)
        clips = load_videos(data_config, split, num_videos, seed, rows=rows)
        clip_shape = (
            int(data_config.frames),
            int(data_config.resolution),
            int(data_config.resolution),
            int(data_config.channels),
        )
        features = extractor.iterate_local(clips, num_videos, clip_shape)
        stats = FeatureStats(extractor.feature_dim, keep_features)
        with Progress(num_videos, "features: real", enabled=progress) as bar:
            for batch in features:
                stats.update(batch)
                bar.update(len(batch))
        return stats

    stats = cached_stats(cache_path, compute, metadata, extractor)
    return stats, real_description(draw, stats.count, cache_path)


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
    `num_videos` videos in all): numpy arrays, the same on every process, or global
    `jax.Array`s on `mesh` (b <= the extractor's batch size, a multiple of the mesh
    size), as the training loop generates them. Returns the `compute_fvd` dict (`fvd`,
    `kvd`, protocol), the same on every process.
    """

    def __init__(
        self,
        data_config,
        num_videos: int,
        seed: int,
        cache_dir: str | None,
        mesh=None,
        split: str = TRAINING_FVD_SPLIT,
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
            import jax

            # The first FVD of a run may extract real features for minutes: say so, once.
            draw = RealDraw(self.data_config, self.split, self.num_videos, self.seed)
            self._real = real_stats(
                draw, self.cache_dir, self.extractor, progress=jax.process_index() == 0
            )
        return self._real

    def __call__(self, video_batches: Iterable[np.ndarray]) -> dict:
        # 10 KVD subsets instead of 100: training FVD is a cheap trend line, and the
        # result records the subset count.
        return compute_fvd(
            video_batches, None, names=("generated", "real"), extractor=self.extractor,
            stats_b=self.real, kvd_subsets=10,
        )


def make_training_fvd(
    config, workdir: str, mesh, gan, generate, standing_statistics, data_config=None
):
    """The training loop's FVD (every `train.fvd_every` steps): a callable `state ->
    compute_fvd dict` scoring `train.fvd_num_videos` videos of the EMA generator against
    as many real clips (statistics cached under `<workdir>/fvd_cache`).

    `generate` and `standing_statistics` are the loop's jitted functions (one jit each,
    not a second one). The videos are made as global batches split over the mesh, as
    training batches are, and scored where they were made: on N hosts each device
    generates and extracts its share, and every process gets the same metrics.
    `data_config`: `config.data` as the caller checked it (default `config.data`)."""
    import jax

    from vgan_jax.metrics.extractor import put_rows
    from vgan_jax.metrics.extractor import to_uint8 as to_uint8_on_device
    from vgan_jax.parallel import batch_sharded
    from vgan_jax.sampling import sampling_inputs

    evaluator = FvdEvaluator(
        config.data if data_config is None else data_config,
        num_videos=config.train.fvd_num_videos,
        seed=config.seed,
        cache_dir=os.path.join(workdir, "fvd_cache"),
        mesh=mesh,
        split=TRAINING_FVD_SPLIT,
    )
    num, batch = config.train.fvd_num_videos, evaluator.extractor.batch_size
    # Host copies, the same on every process: each places only its devices' rows.
    inputs = jax.tree.map(np.asarray, sampling_inputs(gan, config.seed + 2, num))
    sharding = batch_sharded(mesh)
    quantise = jax.jit(to_uint8_on_device, out_shardings=sharding)

    def run(state):
        g_state = standing_statistics(state.ema_params, state.g_state)

        def videos(start):
            # `num` divides over the devices (train.check_fvd_data), so every batch does too.
            part = jax.tree.map(lambda x: put_rows(x[start : start + batch], sharding), inputs)
            return quantise(generate(state.ema_params, g_state, **part))

        return evaluator(videos(start) for start in range(0, num, batch))

    return run
