"""A cheap stand-in for I3D that runs on I3D's own sharded-extractor path.

The `tiny` clips have 4 frames (I3D needs 9) and I3D takes about a CPU second per
video, so tests of the FVD plumbing (training hook, several processes) patch this in
for `I3DFeatureExtractor`: the same `ShardedFeatureExtractor` (global batches over the
mesh, padding, replicated features, per-process rows), only the feature function differs.
"""

import jax
import jax.numpy as jnp
import numpy as np

from vgan_jax.metrics.extractor import ShardedFeatureExtractor

FEATURE_DIM = 16


def pooled_features(variables, videos):
    """uint8 `[b, T, H, W, C]` (H, W divisible by 4) -> float32 `[b, 16]`: a fixed
    projection of 4x4-cell means over time, their spread in time and frame-to-frame motion."""
    x = videos.astype(jnp.float32).mean(axis=-1) / 255.0
    b, t, h, w = x.shape
    cells = x.reshape(b, t, 4, h // 4, 4, w // 4).mean(axis=(3, 5)).reshape(b, t, 16)
    motion = jnp.abs(jnp.diff(cells, axis=1)).mean(axis=1) if t > 1 else jnp.zeros((b, 16))
    pooled = jnp.concatenate([cells.mean(axis=1), cells.std(axis=1), 4 * motion], axis=1)
    return jnp.dot(pooled, variables["projection"], precision=jax.lax.Precision.HIGHEST)


class StandinExtractor(ShardedFeatureExtractor):
    """`I3DFeatureExtractor`'s signature with `pooled_features` for I3D."""

    def __init__(self, batch_size: int = 16, mesh=None):
        projection = np.random.default_rng(0).normal(size=(48, FEATURE_DIM)).astype(np.float32)
        super().__init__(
            pooled_features,
            {"projection": projection},
            feature_dim=FEATURE_DIM,
            batch_size=batch_size,
            mesh=mesh,
            name="pooled stand-in",
        )


def install_standin_extractor(setattr_fn=setattr) -> None:
    """Patch the stand-in in for I3D (`setattr_fn`: e.g. pytest's `monkeypatch.setattr`)."""
    from vgan_jax.metrics import i3d

    setattr_fn(i3d, "I3DFeatureExtractor", StandinExtractor)
    setattr_fn(i3d, "I3D_MIN_FRAMES", 1)
