"""Video GAN metrics: FVD and KVD on I3D (Kinetics-400) features, computed the reference way.

Typical use::

    from vgan_jax import metrics
    result = metrics.compute_fvd(generated_uint8, real_uint8)  # [N, T, H, W, C] each
    result["fvd"], result["kvd"], result["detector"], result["sets"]

Modules: `i3d` (weights, TF1-legacy resize, jitted sharded extractor), `stats`
(streaming float64 mean/covariance, .npz cache), `distances` (Fréchet, KVD),
`fvd` (protocol, validation, video sets on disk), `training_hook` (FVD during
training), `commands` (CLI glue).
"""

from vgan_jax.metrics.distances import frechet_distance, kernel_distance, polynomial_mmd2
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
from vgan_jax.metrics.stats import FeatureStats, cached_stats, real_stats_cache_key
from vgan_jax.metrics.training_hook import FvdEvaluator, real_stats

__all__ = [
    "DEFAULT_FRAMES",
    "DEFAULT_NUM_VIDEOS",
    "FeatureStats",
    "FvdEvaluator",
    "I3DFeatureExtractor",
    "VideoSet",
    "cached_stats",
    "compute_fvd",
    "distances_from_stats",
    "extract_stats",
    "frechet_distance",
    "kernel_distance",
    "load_i3d_variables",
    "make_mesh",
    "polynomial_mmd2",
    "preprocess_videos",
    "real_stats",
    "real_stats_cache_key",
    "resize_bilinear_legacy",
    "validate_videos",
]
