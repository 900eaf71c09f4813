"""TGAN (Saito, Matsumoto, Saito 2017, "Temporal Generative Adversarial Nets with
Singular Value Clipping"): a temporal generator and an image generator.

The temporal generator turns one noise vector `z0` into one latent per frame,
`z1(t)`, with 1D learned upsampling over time. The image generator is a 2D DCGAN
applied to every frame with the same weights (time folded into the batch), on
`[z0; z1(t)]`: `z0` fixes what the video shows, `z1(t)` where it is at time t.

Why this split matters on small compute: every frame is drawn by the same 2D
network, so no frame is special (a 3D generator that grows time from two latent
frames treats its first and last frames differently), and the per-frame image
critic trains that network directly, as a plain image GAN. The critic is the
shared `critics.MultiHeadCritic`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vgan_jax.errors import VganError
from vgan_jax.models.dcgan import frame_generator
from vgan_jax.models.layers import Upsample, bias_before, norm_act


def time_doublings(frames: int, max_doublings: int = 4) -> int:
    """How many times the temporal generator doubles time: the factors of 2 in
    `frames`, at most `max_doublings` (it starts from `frames / 2**doublings`)."""
    doublings = 0
    while doublings < max_doublings and frames % 2 ** (doublings + 1) == 0:
        doublings += 1
    return doublings


class TemporalGenerator(nn.Module):
    """`z0` float32 `[batch, latent]` -> per-frame latents float32 `[batch, frames, latent]`
    in [-1, 1] (tanh, as in TGAN): dense -> `[t0, c]` -> 1D 2x upsampling stages.
    `dtype`: compute dtype of its matmuls and convolutions (None: float32). Not
    rematerialised: its activations are `frames x width` per clip, next to nothing."""

    frames: int
    latent_dim: int
    width: int
    norm: str
    dtype: Any = None

    @nn.compact
    def __call__(self, z0: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        doublings = time_doublings(self.frames)
        t0 = self.frames // 2**doublings
        use_bias = bias_before(self.norm)
        x = nn.Dense(t0 * self.width, use_bias=use_bias, dtype=self.dtype)(z0)
        x = norm_act(x.reshape(z0.shape[0], t0, self.width), self.norm, train, self.dtype)
        for _ in range(doublings):
            x = Upsample(self.width, (2,), use_bias=use_bias, dtype=self.dtype)(x)
            x = norm_act(x, self.norm, train, self.dtype)
        return jnp.tanh(nn.Dense(self.latent_dim, dtype=self.dtype)(x).astype(jnp.float32))


class TGANGenerator(nn.Module):
    """Call: `z` float32 `[batch, latent_dim]` -> video float32
    `[batch, frames, size, size, channels]` in [-1, 1]. `dtype`: compute dtype of both
    generators (None: float32); `remat`: 'stage' rematerialises the image generator's
    stages (see `dcgan.VideoTrunk`)."""

    frames: int
    size: int
    channels: int
    latent_dim: int
    width: int = 32
    num_upsamples: int = 3
    norm: str = "batch"
    upsample: str = "resize"
    temporal_width: int = 256
    dtype: Any = None
    remat: str = "none"

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.size % 2**self.num_upsamples:
            raise VganError(
                f"resolution {self.size} can't be made by {self.num_upsamples} 2x upsampling "
                f"stages: use a multiple of {2**self.num_upsamples}"
            )
        batch = z.shape[0]
        frame_latents = TemporalGenerator(
            self.frames, self.latent_dim, self.temporal_width, self.norm, self.dtype
        )(z, train)
        content = jnp.broadcast_to(z[:, None], (batch, self.frames, z.shape[-1]))
        per_frame = jnp.concatenate([content, frame_latents], axis=-1)
        images = frame_generator(self)(per_frame.reshape(batch * self.frames, -1), train)
        return images.reshape(batch, self.frames, *images.shape[1:])
