"""Frame-consistent differentiable augmentation (DiffAugment, Zhao et al. 2020; ADA's p).

A critic trained on few clips memorises them; showing it real *and* generated clips
through the same random transforms, differentiably so the generator's gradient flows
through them, keeps it from doing so without teaching the generator to produce
augmented clips. For video every transform is drawn once per clip and applied
identically to all its frames: a translation that jumped between frames, or a
brightness that flickered, would be motion the generator could be asked to imitate.

Two halves, so a training step can draw for the global batch and slice per device
(1 and N devices then see the same transforms, as with the latent noise):

  params = sample_params(key, batch, policy, p, (height, width, channels))
  video = apply_params(video, params)  # [batch, T, H, W, C] float32 in [-1, 1]

Transforms (the policy names, applied in this order whatever the string's order):
  brightness   adds U(-0.5, 0.5) to every value of the clip.
  saturation   RGB only: scales each pixel's distance from its channel mean by U(0, 2).
  contrast     scales the distance from the clip's mean by U(0.5, 1.5) (one mean over
               all frames, so every frame gets the same affine map).
  translation  shifts the clip by integers up to 1/8 of the height/width, borders
               repeating the edge pixels (see `translate` for why not zeros).
  cutout       sets a square of half the height/width (centre uniform, may overhang
               the border) to 0, as DiffAugment does.
  color        shorthand for brightness, saturation, contrast (DiffAugment's 'color').

Each transform is applied to each clip independently with probability `p` (ADA's
per-transform probability; p = 1 is plain DiffAugment, p = 0 is exactly the identity).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from vgan_jax.errors import VganError

# Application order (DiffAugment's: color, translation, cutout). The index of a name
# is its fold_in tag, so a transform's draws never depend on which others are on.
TRANSFORMS = ("brightness", "saturation", "contrast", "translation", "cutout")
_ALIASES = {"color": ("brightness", "saturation", "contrast")}

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


class Draw(NamedTuple):
    """One transform's random draw for a batch.

    on: bool `[batch]`, whether the transform is applied to each clip.
    value: float32 `[batch]` (brightness offset, saturation/contrast factor) or int32
      `[batch, 2]` (translation `(dy, dx)`, cutout centre `(row, column)`).
    """

    on: jnp.ndarray
    value: jnp.ndarray


def parse_policy(policy: str) -> tuple[str, ...]:
    """`"translation,cutout,color"` -> the transform names, in application order.

    "" (or only commas/spaces) is no augmentation: `()`.

    Raises:
      VganError: an unknown name (the message lists the known ones).
    """
    names: set[str] = set()
    for token in (t.strip() for t in policy.split(",")):
        if not token:
            continue
        if token in _ALIASES:
            names.update(_ALIASES[token])
        elif token in TRANSFORMS:
            names.add(token)
        else:
            known = ", ".join((*TRANSFORMS, *_ALIASES))
            raise VganError(f"unknown augmentation {token!r} in train.augment; known: {known}")
    return tuple(t for t in TRANSFORMS if t in names)


def _draw_value(name: str, key: jax.Array, batch: int, height: int, width: int) -> jnp.ndarray:
    """The transform's parameter for each of `batch` clips (see `Draw.value`)."""
    if name == "brightness":
        return jax.random.uniform(key, (batch,)) - 0.5
    if name == "saturation":
        return jax.random.uniform(key, (batch,)) * 2.0
    if name == "contrast":
        return jax.random.uniform(key, (batch,)) + 0.5
    if name == "translation":
        limits = jnp.array([_shift_limit(height), _shift_limit(width)])
        return jax.random.randint(key, (batch, 2), -limits, limits + 1)
    if name == "cutout":
        return jax.random.randint(key, (batch, 2), 0, jnp.array([height, width]))
    raise ValueError(name)


def _shift_limit(size: int) -> int:
    return int(size * TRANSLATION_RATIO + 0.5)


def sample_params(
    key: jax.Array,
    batch: int,
    policy: tuple[str, ...],
    p: jnp.ndarray | float,
    frame_shape: tuple[int, int, int],
) -> dict[str, Draw]:
    """Random transforms for `batch` clips, one draw per clip (never per frame).

    Args:
      key: PRNG key; the draws depend on it and `batch` only (draw for the global
        batch and slice to get device-count-invariant transforms: `slice_params`).
      batch: clips to draw for.
      policy: names from `parse_policy`.
      p: probability (float32 scalar, may be traced) that a clip gets a transform,
        independently per transform.
      frame_shape: `(height, width, channels)`; saturation is skipped unless 3 channels.

    Returns:
      `{name: Draw}` with leaves of leading size `batch`.
    """
    height, width, channels = frame_shape
    params = {}
    for name in policy:
        if name == "saturation" and channels != 3:
            continue
        on_key, value_key = jax.random.split(jax.random.fold_in(key, TRANSFORMS.index(name)))
        on = jax.random.uniform(on_key, (batch,)) < p
        params[name] = Draw(on, _draw_value(name, value_key, batch, height, width))
    return params


def slice_params(params: dict[str, Draw], start: jnp.ndarray | int, size: int) -> dict[str, Draw]:
    """Clips `[start, start + size)` of every draw (a device's share of the global batch)."""
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, start, size), params)


def _per_clip(values: jnp.ndarray) -> jnp.ndarray:
    """`[batch]` -> `[batch, 1, 1, 1, 1]`, broadcasting over a clip's T, H, W, C."""
    return values.reshape(-1, 1, 1, 1, 1)


def adjust_brightness(video: jnp.ndarray, offset: jnp.ndarray) -> jnp.ndarray:
    """`video` float32 `[batch, T, H, W, C]` plus `offset` float32 `[batch]` per clip."""
    return video + _per_clip(offset)


def adjust_saturation(video: jnp.ndarray, factor: jnp.ndarray) -> jnp.ndarray:
    """Scales each pixel's distance from its own channel mean by `factor` `[batch]`."""
    mean = jnp.mean(video, axis=-1, keepdims=True)
    return (video - mean) * _per_clip(factor) + mean


def adjust_contrast(video: jnp.ndarray, factor: jnp.ndarray) -> jnp.ndarray:
    """Scales the distance from the clip's mean (over T, H, W, C) by `factor` `[batch]`.

    The pivot is one mean per clip, not per frame, so all frames share one affine map.
    """
    mean = jnp.mean(video, axis=(1, 2, 3, 4), keepdims=True)
    return (video - mean) * _per_clip(factor) + mean


def _shift_axis(clip: jnp.ndarray, shift: jnp.ndarray, axis: int, padding: str) -> jnp.ndarray:
    """`clip` `[T, H, W, C]` moved by `shift` (int32 scalar) positions along `axis`."""
    size = clip.shape[axis]
    source = jnp.arange(size) - shift
    moved = jnp.take(clip, jnp.clip(source, 0, size - 1), axis=axis)
    if padding == "edge":
        return moved
    inside = (source >= 0) & (source < size)
    shape = [1] * clip.ndim
    shape[axis] = size
    return jnp.where(inside.reshape(shape), moved, 0.0)


def translate(video: jnp.ndarray, shift: jnp.ndarray, padding: str = "edge") -> jnp.ndarray:
    """Moves every frame of each clip by the clip's `shift` int32 `[batch, 2]` = (dy, dx).

    `video` float32 `[batch, T, H, W, C]`. `padding`: "edge" repeats the border
    pixels (the default: on a uniform background, e.g. Moving MNIST's black, it is
    what a camera pan would show), "zeros" fills with 0 as DiffAugment does (mid-grey
    in [-1, 1], a band the critic can see on dark footage). Differentiable in `video`.
    """
    if padding not in ("edge", "zeros"):
        raise ValueError(f"padding must be 'edge' or 'zeros', got {padding!r}")

    def one(clip, dy_dx):
        clip = _shift_axis(clip, dy_dx[0], 1, padding)
        return _shift_axis(clip, dy_dx[1], 2, padding)

    return jax.vmap(one)(video, shift)


def cut_out(video: jnp.ndarray, center: jnp.ndarray) -> jnp.ndarray:
    """Zeroes a square of half the height/width centred at `center` int32 `[batch, 2]`
    (row, column) in every frame of each clip; `video` float32 `[batch, T, H, W, C]`."""
    height, width = video.shape[2:4]
    cut_h, cut_w = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    top = center[:, 0, None] - cut_h // 2
    left = center[:, 1, None] - cut_w // 2
    rows, cols = jnp.arange(height)[None], jnp.arange(width)[None]
    in_rows = (rows >= top) & (rows < top + cut_h)  # [batch, H]
    in_cols = (cols >= left) & (cols < left + cut_w)  # [batch, W]
    cut = in_rows[:, :, None] & in_cols[:, None, :]  # [batch, H, W]
    return jnp.where(cut[:, None, :, :, None], 0.0, video)


_APPLY = {
    "brightness": adjust_brightness,
    "saturation": adjust_saturation,
    "contrast": adjust_contrast,
    "translation": translate,
    "cutout": cut_out,
}


def apply_params(video: jnp.ndarray, params: dict[str, Draw]) -> jnp.ndarray:
    """Applies the drawn transforms: float32 `[batch, T, H, W, C]` -> the same shape.

    A clip whose `on` is False passes a transform unchanged, bit for bit (selected,
    not computed with identity parameters), so p = 0 is exactly the identity.
    Differentiable in `video`: the gradient flows through the applied transforms.
    """
    for name in TRANSFORMS:
        if name in params:
            draw = params[name]
            video = jnp.where(_per_clip(draw.on), _APPLY[name](video, draw.value), video)
    return video


def augment(
    key: jax.Array, video: jnp.ndarray, policy: str | tuple[str, ...], p: float = 1.0
) -> jnp.ndarray:
    """Draws transforms for this batch and applies them (outside a sharded step).

    `video` float32 `[batch, T, H, W, C]` in [-1, 1]; `policy` a string or
    `parse_policy` names. Returns float32 of the same shape (values may leave [-1, 1]).
    """
    names = parse_policy(policy) if isinstance(policy, str) else policy
    params = sample_params(key, video.shape[0], names, p, video.shape[2:])
    return apply_params(video, params)
