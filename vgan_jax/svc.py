"""Singular value clipping (Saito, Matsumoto, Saito 2017, "Temporal Generative
Adversarial Nets with Singular Value Clipping", Section 4; official Chainer code:
pfnet-research/tgan, `updater.py`, `TGANUpdaterWGANSVC`).

A WGAN critic must be 1-Lipschitz. Weight clipping (Arjovsky et al.) enforces it
crudely; TGAN instead keeps every layer's spectral norm at most 1 directly: every N
iterations, right after the critic's update, each weight is reshaped to a matrix, its
SVD taken, singular values above 1 set to 1, and the matrix rebuilt. A BatchNorm layer
multiplies by gamma / sigma, so its gamma is clamped into [0.01 sigma, sigma] (sigma the
running standard deviation), as the official code does.

Here it is a pure function of the critic's parameters and state, applied by the one
train step to whatever critic a model has (`train.d_singular_value_clip_every`), so it
is model independent, identical on every device (the parameters are replicated), and
resumable (it depends on the step count only).

Which weights: every parameter leaf with ndim >= 2: dense kernels `[in, out]`,
convolution kernels `[*k, in, out]` (as the matrix `[prod(k) * in, out]`, the transpose
of the official `(out, in * prod(k))` up to a column order that leaves singular values
unchanged) and embeddings (a projection head's `[classes, features]`). The official
code clips only ndim >= 4 (its critic had no dense layer); the paper clips linear
layers too. Biases and norm offsets (ndim 1) are untouched.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any

# Below this fraction of the running std a BatchNorm gamma is raised to it (official code).
_MIN_GAMMA_FRACTION = 0.01


def clip_singular_values(matrix: jnp.ndarray, bound: float = 1.0) -> jnp.ndarray:
    """`U diag(min(s, bound)) V^T` for `matrix = U diag(s) V^T`: float32 `[m, n]` -> `[m, n]`."""
    u, s, vh = jnp.linalg.svd(matrix, full_matrices=False)
    return (u * jnp.minimum(s, bound)) @ vh


def clip_weight(weight: jnp.ndarray) -> jnp.ndarray:
    """A weight with every singular value of its matrix form `[-1, out]` at most 1."""
    if weight.ndim < 2:
        return weight
    matrix = weight.reshape(-1, weight.shape[-1])
    return clip_singular_values(matrix).reshape(weight.shape).astype(weight.dtype)


def clamp_batch_norm_scales(params: PyTree, state: PyTree) -> PyTree:
    """`params` with every BatchNorm `scale` clamped into [0.01 sigma, sigma], sigma =
    sqrt(running var) of the same BatchNorm in `state["batch_stats"]` (official code)."""
    stats = state.get("batch_stats") if isinstance(state, dict) else None
    if not stats:
        return params
    variances = {
        _names(path[:-1]): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(stats)[0]
        if _names(path[-1:]) == ("var",)
    }

    def clamp(path, leaf):
        module = _names(path[:-1])
        if _names(path[-1:]) != ("scale",) or module not in variances:
            return leaf
        std = jnp.sqrt(variances[module])
        return jnp.clip(leaf, _MIN_GAMMA_FRACTION * std, std)

    return jax.tree_util.tree_map_with_path(clamp, params)


def _names(path) -> tuple[str, ...]:
    return tuple(str(getattr(entry, "key", entry)) for entry in path)


def singular_value_clip(params: PyTree, state: PyTree) -> PyTree:
    """The critic's parameters after one round of singular value clipping (every weight
    with ndim >= 2) and BatchNorm scale clamping (`state`: its non-parameter collections)."""
    return clamp_batch_norm_scales(jax.tree.map(clip_weight, params), state)


def maybe_singular_value_clip(
    params: PyTree, state: PyTree, updates_done: jax.Array, every: int
) -> PyTree:
    """`singular_value_clip(params, state)` when `updates_done` (int32 scalar, critic
    updates so far, this one included) is a multiple of `every`, else `params`; a
    `lax.cond`, so the SVDs only run on clipping steps. `every` <= 0: `params`."""
    if every <= 0:
        return params
    return jax.lax.cond(
        updates_done % every == 0,
        lambda p: singular_value_clip(p, state),
        lambda p: p,
        params,
    )
