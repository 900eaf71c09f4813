"""GAN losses and penalties, pure jnp on logits `[batch, ...]` (float32; a
loss is the mean over every logit, so per-frame logits count as samples).

Each adversarial loss is a pair: the discriminator's loss on real and fake
logits, and the generator's loss on fake logits. Means are over the local
(per-device) batch; the train step `pmean`s gradients, so with equal local
batches the result is the global-batch mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vgan_jax.errors import VganError


class AdversarialLoss(NamedTuple):
    discriminator: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
    generator: Callable[[jnp.ndarray], jnp.ndarray]


def non_saturating_d(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) (Goodfellow et al. 2014)."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_g(fake_logits: jnp.ndarray) -> jnp.ndarray:
    """-log sigmoid(D(G(z))): the non-saturating generator loss."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def hinge_d(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017; used by DVD-GAN)."""
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_g(fake_logits: jnp.ndarray) -> jnp.ndarray:
    return -jnp.mean(fake_logits)


def wasserstein_d(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
    """D(G(z)) - D(x) (Arjovsky et al. 2017); pair it with R1 or spectral norm."""
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_g(fake_logits: jnp.ndarray) -> jnp.ndarray:
    return -jnp.mean(fake_logits)


LOSSES: dict[str, AdversarialLoss] = {
    "non_saturating": AdversarialLoss(non_saturating_d, non_saturating_g),
    "hinge": AdversarialLoss(hinge_d, hinge_g),
    "wasserstein": AdversarialLoss(wasserstein_d, wasserstein_g),
}


def get_loss(name: str) -> AdversarialLoss:
    if name not in LOSSES:
        raise VganError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def r1_penalty(discriminator_fn: Callable[[jnp.ndarray], jnp.ndarray], real: jnp.ndarray):
    """R1 (Mescheder et al. 2018): mean over the batch of ||grad_x D(x)||^2 on real data.

    Args:
      discriminator_fn: real videos `[batch, ...]` -> logits `[batch]`.
      real: float32 `[batch, T, H, W, C]`.

    Returns:
      float32 scalar; the caller multiplies by gamma / 2.
    """
    grads = jax.grad(lambda x: jnp.sum(discriminator_fn(x)))(real)
    return jnp.mean(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=1))


def lazy_r1(
    discriminator_fn: Callable[[jnp.ndarray], jnp.ndarray],
    real: jnp.ndarray,
    step: jnp.ndarray,
    every: int,
) -> jnp.ndarray:
    """`r1_penalty` on steps where `step % every == 0`, else 0 (StyleGAN2's lazy R1).

    `step` is the int32 step counter (the same on every device, so under shard_map
    every device takes the same branch and the critic's collectives stay matched).
    `lax.cond` runs one branch, so the skipped steps pay nothing for the double
    backward; the caller weights the penalty by `every` to keep its average.
    """
    if every <= 1:
        return r1_penalty(discriminator_fn, real)
    return jax.lax.cond(
        step % every == 0,
        lambda x: r1_penalty(discriminator_fn, x),
        lambda x: jnp.zeros((), jnp.float32),
        real,
    )


def mode_seeking_loss(videos: jnp.ndarray, z: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
    """MSGAN's mode-seeking term (Mao et al. 2019), for the generator to minimise.

    Over the adjacent pairs `(2k, 2k + 1)` of the batch: `1 / (d_G / d_z + eps)`, with
    `d_G` the mean absolute difference of the pair's videos and `d_z` that of their
    latents, averaged over pairs. It grows when two latents give the same video, so it
    pushes against mode collapse; the train step gives a pair the same label in a
    conditional model, which is where collapse happens per class (every z of a class
    drawing one clip). Per-pair means keep it a mean over the batch, so 1 and N
    devices agree (pairs never straddle devices: the local batch is even).

    Args:
      videos: float32 `[batch, T, H, W, C]`, batch even.
      z: float32 `[batch, latent]`.

    Returns:
      float32 scalar.
    """
    if videos.shape[0] % 2:
        raise VganError(
            f"train.mode_seeking pairs clips on each device: the per-device batch must be "
            f"even, got {videos.shape[0]}; change train.batch_size or the device count"
        )
    pairs = videos.reshape(videos.shape[0] // 2, 2, -1)
    latents = z.reshape(z.shape[0] // 2, 2, -1)
    video_distance = jnp.mean(jnp.abs(pairs[:, 0] - pairs[:, 1]), axis=1)
    latent_distance = jnp.mean(jnp.abs(latents[:, 0] - latents[:, 1]), axis=1)
    return jnp.mean(1.0 / (video_distance / latent_distance + eps))
