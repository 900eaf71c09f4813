"""MoCoGAN (Tulyakov, Liu, Yang, Kautz 2018, "MoCoGAN: Decomposing Motion and Content
for Video Generation"; official code: sergeytulyakov/mocogan).

A video is a content code fixed for the whole clip plus a motion code per frame:

    z_C ~ N(0, I)                    content, one per video (`latent_dim`)
    h_0 ~ N(0, I), eps_t ~ N(0, I)   GRU initial state and per-frame noise (`motion_dim`)
    z_M(t) = h_t = GRU(h_{t-1}, eps_t)         motion, one per frame
    z_A = one-hot(label)             category (only for conditional runs)
    frame_t = G_I([z_C; z_A; z_M(t)])          one 2D DCGAN image generator for all frames

As in the official `VideoGenerator.sample_z_m`, the GRU's input is fresh Gaussian noise
at every step and its hidden state *is* the motion code (no output layer); sizes follow
its defaults (`dim_z_content=50`, `dim_z_motion=10`). The GRU runs under `nn.scan` (one
traced step, not a Python loop over frames), and because it is causal and the image
generator is per frame, a video can be unrolled to any length: the first 16 frames of
a 48-frame sample are the 16-frame sample of the same noise (`sampling` draws the
per-frame noise frame by frame).

Inputs: the train step's `z` is `[z_C; h_0]` (`latent_dim + motion_dim` values) and the
per-frame noise comes as `frame_noise` `[batch, frames, motion_dim]` (the step draws it
for the global batch and slices it, so 1 and N devices agree). Critics (the registry
builds them): an image critic on randomly chosen single frames and a video critic
whose 3D stages halve space only (MoCoGAN's video discriminator: stride (1, 2, 2)), as
two heads of one `critics.MultiHeadCritic`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vgan_jax.models.conditioning import sum_objects
from vgan_jax.models.dcgan import frame_generator


class MotionGRU(nn.Module):
    """The motion sampler: `h_t = GRUCell(h_{t-1}, eps_t)`, scanned over time.

    Call: `h0` float32 `[batch, motion_dim]`, `noise` float32 `[batch, frames, motion_dim]`
    -> motion codes float32 `[batch, frames, motion_dim]` (`h_1 ... h_T`).

    Always float32, whatever the generator's compute dtype: its matmuls are
    `[batch, motion_dim] x [motion_dim, motion_dim]` per frame (a few thousand FLOPs per
    clip, nothing to save), and in bfloat16 the state would gather 8-bit rounding at
    every frame, more the further a sample unrolls past the trained length.
    """

    motion_dim: int

    @nn.compact
    def __call__(self, h0: jnp.ndarray, noise: jnp.ndarray) -> jnp.ndarray:
        scan = nn.scan(
            nn.GRUCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        _, codes = scan(features=self.motion_dim, name="gru")(h0, noise)
        return codes


class MoCoGANGenerator(nn.Module):
    """Call: `z` float32 `[batch, latent_dim + motion_dim]` (`[z_C; h_0]`),
    `frame_noise` float32 `[batch, frames, motion_dim]`, `labels` int32 `[batch]` or
    `[batch, K]` (only with `num_classes > 0`; K labels: a multi-hot z_A) -> video
    float32 `[batch, frames, size, size, channels]` in [-1, 1]. `frames` may be set
    to any length at sampling (`clone(frames=...)`): no parameter depends on it.

    `dtype`: compute dtype of the image generator (None: float32; the motion GRU stays
    float32, see `MotionGRU`); `remat`: 'stage' rematerialises the image generator's
    stages (see `dcgan.VideoTrunk`). Parameters and the returned video are float32.
    """

    frames: int
    size: int
    channels: int
    latent_dim: int
    motion_dim: int = 10
    width: int = 32
    num_upsamples: int = 3
    norm: str = "batch"
    upsample: str = "resize"
    num_classes: int = 0
    dtype: Any = None
    remat: str = "none"

    @nn.compact
    def __call__(
        self,
        z: jnp.ndarray,
        frame_noise: jnp.ndarray,
        labels: jnp.ndarray | None = None,
        train: bool = False,
    ) -> jnp.ndarray:
        batch, frames = frame_noise.shape[:2]
        if frames != self.frames or z.shape[-1] != self.latent_dim + self.motion_dim:
            raise ValueError(
                f"MoCoGAN expects z [batch, {self.latent_dim + self.motion_dim}] and "
                f"frame_noise [batch, {self.frames}, {self.motion_dim}], got {z.shape} and "
                f"{frame_noise.shape}"
            )
        content, h0 = z[:, : self.latent_dim], z[:, self.latent_dim :]
        motion = MotionGRU(self.motion_dim, name="motion")(h0, frame_noise)
        per_video = [content]
        if self.num_classes:
            if labels is None:
                raise ValueError("a conditional MoCoGAN needs labels")
            # The paper's categorical code z_A: a one-hot vector, fixed over the video.
            # K labels per clip ([batch, K]): the sum of their one-hots (a multi-hot).
            one_hot = nn.one_hot(labels, self.num_classes, dtype=z.dtype)
            per_video.append(sum_objects(one_hot, labels))
        per_video = jnp.concatenate(per_video, axis=-1)
        codes = jnp.concatenate(
            [jnp.broadcast_to(per_video[:, None], (batch, frames, per_video.shape[-1])), motion],
            axis=-1,
        )
        if not self.is_initializing():  # for tests; a no-op unless `intermediates` is mutable
            self.sow("intermediates", "codes", codes)
        images = frame_generator(self)(codes.reshape(batch * frames, -1), train)
        return images.reshape(batch, frames, *images.shape[1:])
