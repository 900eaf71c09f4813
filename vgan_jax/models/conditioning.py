"""Class conditioning: label embeddings for generators, conditional BatchNorm, projection.

Three ways a label enters a model, each from the paper that uses it:

- `LabelConcatGenerator` wraps any unconditional generator (`dcgan`, `vgan`, `tgan`):
  a learned embedding of the label is concatenated to z (Mirza & Osindero 2014's
  cGAN input), so the wrapped module needs no change at all.
- `ConditionalBatchNorm` (de Vries et al. 2017; BigGAN, Brock et al. 2019, and DVD-GAN):
  BatchNorm without its own affine, whose per-channel gain and bias are linear maps
  of a condition vector (DVD-GAN: `[z; e(y)]`), so every stage of the generator
  sees the class.
- `LabelProjection` (Miyato & Koyama 2018, "cGANs with Projection Discriminator"):
  a critic's logit gains `<embed(y), phi(x)>`, the inner product of a class embedding
  with the critic's pooled features. Used by every critic when `num_classes > 0`.
- `AuxiliaryClassifier` (AC-GAN, Odena, Olah & Shlens 2017): beside the projection
  term, a linear classifier of the same pooled features, whose cross-entropy against
  the label `train.class_loss` adds to the critic's loss on real clips and to the
  generator's on fakes.

Labels are int32 `[batch]` in `[0, num_classes)`, or `[batch, K]` when a clip's K
objects are labelled one by one (the two-digit Moving MNIST: each digit's class). A
clip's K labels are a bag: embeddings are summed (`sum_objects`) and the classifier's
target puts 1/K on each (`class_targets`), so neither depends on the objects' order;
with K = 1 both reduce exactly to the one-label forms. Range checks happen before
any tracing (`sampling`, `train`), because out-of-range indices inside jit would only
show up as NaNs.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from vgan_jax.models.layers import BATCH_NORM_MOMENTUM
from vgan_jax.parallel import DATA_AXIS

# The collection every auxiliary classifier sows its loss into (a scalar: the mean
# cross-entropy of its rows); the train step reads it when it is mutable.
CLASS_LOSSES = "class_losses"


def sum_objects(embedded: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Per-label embeddings `[n, K, ...]` of labels `[n, K]` summed over the K objects
    to `[n, ...]`; with labels `[n]` the embeddings `[n, ...]` are returned as they are."""
    return jnp.sum(embedded, axis=1) if labels.ndim == 2 else embedded


def class_targets(labels: jnp.ndarray, num_classes: int) -> jnp.ndarray:
    """float32 `[n, num_classes]`: one-hot of labels `[n]`, or the mean of the K one-hots
    of labels `[n, K]` (a clip showing a 3 and a 7: 1/2 on each)."""
    one_hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    return jnp.mean(one_hot, axis=1) if labels.ndim == 2 else one_hot


class LabelConcatGenerator(nn.Module):
    """A conditional generator from an unconditional one: `z' = [z; embed(label)]`.

    Call: `z` float32 `[batch, latent]`, `labels` int32 `[batch]` or `[batch, K]` ->
    whatever `generator(z', train=train, **kwargs)` returns (a video `[batch, T, H, W,
    C]`). The embedding has `embed_dim` features (N(0, 1) init, so it is on z's scale);
    K labels of a clip are summed (`sum_objects`).
    """

    generator: nn.Module
    num_classes: int
    embed_dim: int

    @nn.compact
    def __call__(self, z: jnp.ndarray, labels: jnp.ndarray, train: bool = False, **kwargs: Any):
        embedding = nn.Embed(
            self.num_classes,
            self.embed_dim,
            embedding_init=nn.initializers.normal(1.0),
            name="label_embedding",
        )(labels)
        embedding = sum_objects(embedding, labels)
        return self.generator(jnp.concatenate([z, embedding], axis=-1), train=train, **kwargs)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose scale and bias come from a condition vector (BigGAN's cBN).

    Call: `x` float32 `[n, ..., channels]`, `condition` float32 `[n, features]` (one row
    per row of `x`) -> float32 like `x`: `(1 + W_g c) * norm(x) + W_b c`. The gain and
    bias maps start at zero, so at initialisation this is plain BatchNorm. Statistics
    are averaged over the `data` mesh axis in training (`train=True`, inside shard_map
    or a vmap binding it), as `layers.normalization('batch')`, so 1 and N devices agree;
    sampling uses the running averages.
    """

    @nn.compact
    def __call__(self, x: jnp.ndarray, condition: jnp.ndarray, train: bool) -> jnp.ndarray:
        channels = x.shape[-1]
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=BATCH_NORM_MOMENTUM,
            axis_name=DATA_AXIS if train else None,
            use_scale=False,
            use_bias=False,
        )(x)
        zeros = nn.initializers.zeros_init()
        gain = nn.Dense(channels, kernel_init=zeros, name="gain")(condition)
        bias = nn.Dense(channels, kernel_init=zeros, name="bias")(condition)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (channels,)
        return x * (1.0 + gain.reshape(shape)) + bias.reshape(shape)


class LabelProjection(nn.Module):
    """The projection term of a critic: `<embed(y), features>` per row.

    Call: `features` float32 `[n, features]` (the critic's pooled last features),
    `labels` int32 `[n]` or `[n, K]` (the K embeddings summed) -> float32 `[n]`. With
    `spectral_norm` the embedding matrix is spectrally normalised like the critic's
    other layers (Miyato & Koyama 2018 do; its power-iteration vector lives in the
    `spectral` collection).
    """

    num_classes: int
    spectral_norm: bool = False

    @nn.compact
    def __call__(
        self, features: jnp.ndarray, labels: jnp.ndarray, update_stats: bool = False
    ) -> jnp.ndarray:
        embed = nn.Embed(self.num_classes, features.shape[-1], name="embedding")
        if self.spectral_norm:
            embedded = nn.SpectralNorm(embed, collection_name="spectral")(
                labels, update_stats=update_stats
            )
        else:
            embedded = embed(labels)
        return jnp.sum(sum_objects(embedded, labels) * features, axis=-1)


class AuxiliaryClassifier(nn.Module):
    """AC-GAN's auxiliary classifier on a critic's pooled features.

    Call: `features` float32 `[n, features]`, `labels` int32 `[n]` or `[n, K]` -> class
    logits float32 `[n, num_classes]`; their mean cross-entropy against
    `class_targets(labels)` (with K labels, 1/K on each: the classifier learns which
    classes a clip shows, and a fake is pushed to show all K) is sown into
    `CLASS_LOSSES` (outside `init`: it is a loss per call, not state).

    Why beside the projection term: with a spectrally normalised embedding (every row
    of norm <= 1) and a narrow critic's small features, the projection term learned
    the classes too slowly to matter: in a one-digit conditional run the critic's
    classification through its embedding stayed at chance (cross-entropy 2.25 against
    ln 10 = 2.30) after 600 steps, and the generator drew wrong digits. This layer is
    not spectrally normalised (it is no part of the adversarial logit), so it can
    scale its logits to the features.
    """

    num_classes: int

    @nn.compact
    def __call__(self, features: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
        logits = nn.Dense(self.num_classes, name="classifier")(features)
        if not self.is_initializing():
            targets = class_targets(labels, self.num_classes)
            cross_entropy = optax.softmax_cross_entropy(logits, targets)
            self.sow(CLASS_LOSSES, "cross_entropy", jnp.mean(cross_entropy))
        return logits
