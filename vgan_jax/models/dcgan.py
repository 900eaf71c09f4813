"""The DCGAN generator (Radford et al. 2016) lifted to video, and its mirrored critic.

Generator: noise z -> dense -> reshape to a small `[t0, h0, w0, c0]` volume ->
`num_upsamples` learned 2x upsampling stages (space always; time while the
frame count still needs it), each followed by per-sample normalisation and
LeakyReLU(0.2) -> tanh. `ImageGenerator` is the original 2D DCGAN generator (VGAN's
background stream, TGAN's per-frame generator). The critic is
`critics.MultiHeadCritic` (a 3D video head mirroring the generator, optionally a
per-frame image head).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vgan_jax.errors import VganError
from vgan_jax.models.layers import SameConv, Upsample, bias_before, blur_space, norm_act, stage


@dataclass(frozen=True)
class UpsamplingPlan:
    """How a generator grows a `[frames, size, size]` video from a small volume.

    Attributes:
      start: `(t0, h0, w0)` of the volume the dense layer reshapes into.
      time_factors: per stage, 2 if that stage doubles time, else 1. The time
        doublings come first, so the motion is built at the coarse scales.
    """

    start: tuple[int, int, int]
    time_factors: tuple[int, ...]


def plan_upsampling(frames: int, size: int, num_upsamples: int) -> UpsamplingPlan:
    """Checks that `num_upsamples` 2x stages can make `[frames, size, size]`.

    Space doubles at every stage, so `size` must divide by `2**num_upsamples`.
    Time doubles at as many stages as `frames` has factors of two (at most one
    per stage), so any frame count works.

    Raises:
      VganError: for a resolution the model can't make.
    """
    if num_upsamples < 1:
        raise VganError(f"model.num_upsamples must be >= 1, got {num_upsamples}")
    scale = 2**num_upsamples
    if size < scale or size % scale:
        raise VganError(
            f"resolution {size} can't be made by {num_upsamples} 2x upsampling stages: "
            f"use a multiple of {scale} (e.g. {max(scale, (size // scale) * scale)}) or set "
            f"--config.model.num_upsamples so that 2**num_upsamples divides the resolution"
        )
    if frames < 1:
        raise VganError(f"data.frames must be >= 1, got {frames}")
    time_doublings = 0
    while time_doublings < num_upsamples and frames % (2 ** (time_doublings + 1)) == 0:
        time_doublings += 1
    t0 = frames // 2**time_doublings
    factors = tuple(2 if i < time_doublings else 1 for i in range(num_upsamples))
    return UpsamplingPlan(start=(t0, size // scale, size // scale), time_factors=factors)


class VideoTrunk(nn.Module):
    """noise -> dense -> reshape -> 2x upsampling stages. Shared by DCGAN and VGAN.

    As in DCGAN, the last upsampling stage emits the output channels directly (no
    convolution at full resolution, which would cost the most and add nothing the
    stage before can't learn). Channels halve at every stage down to `width`.

    `output_conv` > 0 changes that: the last stage emits `output_conv` channels
    (normalised, LeakyReLU) and a 3x3x3 stride-1 convolution at full resolution
    emits the output. Every output pixel then mixes its neighbours at full
    resolution, instead of each 2x2 sub-pixel phase having its own low-resolution
    kernel (it lowered FVD@256 of `default`-like runs; README's "Measured"). Cheap
    with few channels.

    `dtype`: compute dtype of the dense layer, convolutions and norms (None:
    float32); parameters and normalisation statistics stay float32. `remat`:
    'stage' rematerialises each upsampling stage (`layers.stage`).

    Returns pre-activation outputs `[batch, frames, size, size, out_channels]`, in
    `dtype` (float32 when None).
    """

    frames: int
    size: int
    width: int
    num_upsamples: int
    norm: str
    out_channels: int
    upsample: str = "resize"
    time_padding: str = "zeros"
    dtype: Any = None
    remat: str = "none"
    output_conv: int = 0

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        plan = plan_upsampling(self.frames, self.size, self.num_upsamples)
        t0, h0, w0 = plan.start
        channels = self.width * 2 ** (self.num_upsamples - 1)
        use_bias = bias_before(self.norm)
        x = nn.Dense(t0 * h0 * w0 * channels, use_bias=use_bias, dtype=self.dtype)(z)
        x = norm_act(x.reshape(z.shape[0], t0, h0, w0, channels), self.norm, train, self.dtype)
        edge_axes = (0,) if self.time_padding == "edge" else ()
        upsample = functools.partial(
            Upsample, mode=self.upsample, edge_padded_axes=edge_axes, dtype=self.dtype
        )
        for index, tf in enumerate(plan.time_factors):
            last = index == self.num_upsamples - 1
            if not last:
                channels //= 2

            def run(module, x, tf=tf, last=last, channels=channels):
                if last and self.output_conv:
                    x = upsample(self.output_conv, (tf, 2, 2), use_bias=use_bias)(x)
                    x = norm_act(x, self.norm, train, self.dtype)
                    return SameConv(
                        self.out_channels, (3, 3, 3), edge_padded_axes=edge_axes, dtype=self.dtype
                    )(x)
                if last:
                    return upsample(self.out_channels, (tf, 2, 2))(x)
                x = upsample(channels, (tf, 2, 2), use_bias=use_bias)(x)
                return norm_act(x, self.norm, train, self.dtype)

            x = stage(run, self.remat)(self, x)
        return x


class VideoGenerator(nn.Module):
    """The fields of the generators built on `VideoTrunk` (DCGAN, VGAN's foreground
    stream) and `trunk`, which builds the trunk from them. See `VideoTrunk`."""

    frames: int
    size: int
    channels: int
    width: int = 32
    num_upsamples: int = 3
    norm: str = "batch"
    upsample: str = "resize"
    time_padding: str = "zeros"
    dtype: Any = None
    remat: str = "none"

    def trunk(self, out_channels: int, output_conv: int = 0) -> VideoTrunk:
        """A `VideoTrunk` with this generator's fields (call inside a compact method)."""
        return VideoTrunk(
            self.frames,
            self.size,
            self.width,
            self.num_upsamples,
            self.norm,
            out_channels,
            self.upsample,
            self.time_padding,
            self.dtype,
            self.remat,
            output_conv,
        )


class DCGANGenerator(VideoGenerator):
    """DCGAN generator for video.

    Call: `z` float32 `[batch, latent_dim]` -> video float32
    `[batch, frames, size, size, channels]` in [-1, 1]. `train=True` (the train
    step) uses and updates batch statistics; sampling uses their running averages.
    `dtype` / `remat`: see `VideoTrunk`; the output is float32 either way (the
    losses and R1 read it). `output_conv`: see `VideoTrunk`. `output_blur`: a fixed
    [1, 2, 1] spatial blur of the pre-tanh output (`layers.blur_space`).
    """

    output_conv: int = 0
    output_blur: bool = False

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = self.trunk(self.channels, self.output_conv)(z, train).astype(jnp.float32)
        if self.output_blur:
            x = blur_space(x)
        return jnp.tanh(x)


class ImageGenerator(nn.Module):
    """`[n, latent]` -> images float32 `[n, size, size, channels]` in [-1, 1]: the DCGAN
    generator (dense -> `[s0, s0, c0]` -> 2x upsampling stages, the last emitting the
    image). `dtype` / `remat`: see `VideoTrunk`; the output is float32."""

    size: int
    channels: int
    width: int
    num_upsamples: int
    norm: str
    upsample: str = "resize"
    dtype: Any = None
    remat: str = "none"

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        start = self.size // 2**self.num_upsamples
        channels = self.width * 2 ** (self.num_upsamples - 1)
        use_bias = bias_before(self.norm)
        x = nn.Dense(start * start * channels, use_bias=use_bias, dtype=self.dtype)(z)
        x = norm_act(x.reshape(z.shape[0], start, start, channels), self.norm, train, self.dtype)
        upsample = functools.partial(Upsample, mode=self.upsample, dtype=self.dtype)
        for _ in range(self.num_upsamples - 1):
            channels //= 2

            def run(module, x, channels=channels):
                x = upsample(channels, (2, 2), use_bias=use_bias)(x)
                return norm_act(x, self.norm, train, self.dtype)

            x = stage(run, self.remat)(self, x)
        x = stage(lambda module, x: upsample(self.channels, (2, 2))(x), self.remat)(self, x)
        return jnp.tanh(x.astype(jnp.float32))


def frame_generator(owner: nn.Module) -> ImageGenerator:
    """The 2D DCGAN generator that draws the frames of `owner`, a video generator with
    the fields `size, channels, width, num_upsamples, norm, upsample, dtype, remat`
    (VGAN's background, TGAN's and MoCoGAN's per-frame generator). Call it inside
    `owner`'s compact method: it becomes `owner`'s submodule `ImageGenerator_0`."""
    return ImageGenerator(
        owner.size,
        owner.channels,
        owner.width,
        owner.num_upsamples,
        owner.norm,
        owner.upsample,
        owner.dtype,
        owner.remat,
    )
