"""VGAN (Vondrick, Pirsiavash, Torralba 2016, "Generating Videos with Scene Dynamics").

Two streams from one noise vector: a 3D-conv foreground stream that outputs a
video `f` and a mask `m` (sigmoid), and a 2D-conv background stream that outputs
one image `b`, replicated over time. The video is `m * f + (1 - m) * b`. An L1
penalty on the mask (weight `mask_l1_weight`, 0.1 in the paper) keeps the model
from explaining everything as foreground; the module reports it through
`self.sow("losses", ...)`, which the shared train step adds to the generator
loss. The critic is the same 3D-conv discriminator as DCGAN's.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from vgan_jax.models.dcgan import VideoGenerator, frame_generator, plan_upsampling


class VGANGenerator(VideoGenerator):
    """Two-stream generator.

    Call: `z` float32 `[batch, latent_dim]` -> video float32
    `[batch, frames, size, size, channels]` in [-1, 1]. With
    `return_streams=True` also returns `(foreground, background, mask)`.
    `dtype` / `remat`: both streams' compute dtype and stage rematerialisation (see
    `dcgan.VideoTrunk`); the composition, the mask penalty and the output are float32.
    """

    mask_l1_weight: float = 0.1

    @nn.compact
    def __call__(self, z: jnp.ndarray, train: bool = False, return_streams: bool = False):
        plan_upsampling(self.frames, self.size, self.num_upsamples)  # fail early on bad sizes
        x = self.trunk(self.channels + 1)(z, train).astype(jnp.float32)
        foreground = jnp.tanh(x[..., : self.channels])
        mask = nn.sigmoid(x[..., self.channels :])
        background = frame_generator(self)(z, train)[:, None]
        video = mask * foreground + (1.0 - mask) * background
        if self.mask_l1_weight:
            self.sow("losses", "mask_l1", self.mask_l1_weight * jnp.mean(jnp.abs(mask)))
        if return_streams:
            return video, (foreground, jnp.broadcast_to(background, foreground.shape), mask)
        return video
