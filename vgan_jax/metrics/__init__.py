"""Video GAN metrics: FVD and KVD on I3D (Kinetics-400) features, computed the reference way.

Typical use::

    from vgan_jax import metrics
    result = metrics.compute_fvd(generated_uint8, real_uint8)  # [N, T, H, W, C] each
    result["fvd"], result["kvd"], result["detector"], result["sets"]
    # What real clips, time-shuffled clips and frozen clips score at the same protocol:
    draw = metrics.RealDraw(config.data, "train", 256, 0)  # which real clips
    metrics.baseline_fvds(draw, cache_dir, extractor)

Modules: `i3d` (weights, TF1-legacy resize, the I3D extractor), `extractor` (feature
extraction sharded over a mesh of one or many hosts), `stats`
(streaming float64 mean/covariance, .npz cache), `distances` (Fréchet, KVD),
`fvd` (protocol, validation, video sets on disk), `training_hook` (real statistics,
FVD during training), `baselines` (reference FVDs), `progress` (videos/s on stderr),
`commands` (`fvd_between`, `evaluate_run`: the library functions behind `vgan-jax fvd` and `eval`).
"""

from vgan_jax.metrics.baselines import (
    BASELINE_KINDS,
    baseline_fvds,
    baseline_stats,
    freeze_first_frame,
    shuffle_time,
)
from vgan_jax.metrics.distances import (
    default_kvd_subset_size,
    frechet_distance,
    kernel_distance,
    polynomial_mmd2,
)
from vgan_jax.metrics.extractor import ShardedFeatureExtractor
from vgan_jax.metrics.fvd import (
    DEFAULT_FRAMES,
    DEFAULT_NUM_VIDEOS,
    VideoSet,
    compute_fvd,
    distances_from_stats,
    extract_stats,
    validate_videos,
)
from vgan_jax.metrics.i3d import (
    I3DFeatureExtractor,
    load_i3d_variables,
    make_mesh,
    preprocess_videos,
    resize_bilinear_legacy,
)
from vgan_jax.metrics.progress import Progress
from vgan_jax.metrics.stats import FeatureStats, cached_stats, real_stats_cache_key
from vgan_jax.metrics.training_hook import FvdEvaluator, RealDraw, real_stats

__all__ = [
    "BASELINE_KINDS",
    "DEFAULT_FRAMES",
    "DEFAULT_NUM_VIDEOS",
    "FeatureStats",
    "FvdEvaluator",
    "I3DFeatureExtractor",
    "Progress",
    "RealDraw",
    "ShardedFeatureExtractor",
    "VideoSet",
    "baseline_fvds",
    "baseline_stats",
    "cached_stats",
    "compute_fvd",
    "default_kvd_subset_size",
    "distances_from_stats",
    "extract_stats",
    "frechet_distance",
    "freeze_first_frame",
    "kernel_distance",
    "load_i3d_variables",
    "make_mesh",
    "polynomial_mmd2",
    "preprocess_videos",
    "real_stats",
    "real_stats_cache_key",
    "resize_bilinear_legacy",
    "shuffle_time",
    "validate_videos",
]
