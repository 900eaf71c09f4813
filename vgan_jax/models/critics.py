"""Critics shared by the models: a video head, a per-frame image head, one module.

A discriminator returns a dict of named heads, each float32 logits `[batch, ...]`
(one logit per clip, or per judged frame of each clip); the train step applies the
adversarial loss per head (a mean over every logit) and sums (MoCoGAN's image +
video critics, DVD-GAN's spatial + temporal ones). All heads are built from one
trunk: learned 2x downsampling (space-to-depth + stride-1 conv, see layers.py),
LeakyReLU(0.2), optional spectral norm, minibatch-std, a 3x3 conv, optional
dropout and a dense logit. No BatchNorm (batch statistics break under shard_map and R1).

Dropout (`dropout` > 0, only when called with `train=True`) sits right before the
dense logit, on the flattened features: that is where a critic memorises which
feature combinations mark its few training clips, and the minibatch-std statistic
and the convolutions before it stay clean. (Elementwise dropout on convolutional
feature maps regularises little: neighbouring activations carry the same signal.)
Masks are drawn per sample from a key folded with the sample's index in the *global*
batch, so 1 and N devices drop the same units (`per_sample_dropout`).

Why an image head beside the video head: a 3D critic sees appearance and motion
at once and, early in training, is satisfied by moving blobs. A 2D critic on
single frames only asks "is this a plausible frame", which pushes the generator
to sharp digits (strokes, holes) long before the video critic would; the video
head keeps motion and identity over time honest.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax.models.conditioning import AuxiliaryClassifier, LabelProjection
from vgan_jax.models.layers import (
    Downsample,
    MaybeSpectralConv,
    MaybeSpectralDense,
    minibatch_stddev,
    stage,
)

# The Flax RNG stream a critic draws its random frame choices from; the train step
# passes it from the step key (`rngs={FRAMES_RNG: key}`), so resume and 1-vs-N
# devices stay exact.
FRAMES_RNG = "frames"
# The stream dropout masks come from (only read when the critic runs with train=True).
DROPOUT_RNG = "dropout"


class CriticCall(NamedTuple):
    """The arguments a critic and each of its trunks take after their input, in this
    order (`trunk(x, *call)`); see `Critic`."""

    update_stats: bool = False
    batch_axis: str | None = None
    train: bool = False
    labels: jnp.ndarray | None = None


def per_sample_dropout(
    x: jnp.ndarray, rate: float, key: jax.Array, batch_axis: str | None = None
) -> jnp.ndarray:
    """Inverted dropout whose mask depends on `key` and each sample's global index only.

    Flax's `nn.Dropout` draws one mask for the array it sees, so the mask a sample
    gets would depend on how the batch is split over devices. Here sample `i` of
    the global batch uses `fold_in(key, i)` on whichever device holds it: 1 and N
    devices drop the same units (rows are laid out `[device, local_row]`, as
    shard_map splits the batch).

    Args:
      x: float32 `[local_rows, ...]`.
      rate: probability of dropping a unit, in [0, 1).
      key: PRNG key, the same on every device.
      batch_axis: the mesh axis the rows are split over (None outside shard_map).

    Returns:
      float32 like `x`: kept units scaled by `1 / (1 - rate)`, dropped ones 0.
    """
    rows = x.shape[0]
    offset = jax.lax.axis_index(batch_axis) * rows if batch_axis else 0
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(offset + jnp.arange(rows))
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - rate, x.shape[1:]))(keys)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class CriticTrunk(nn.Module):
    """Downsampling critic over any number of spatial axes.

    Call: `x` float32 `[batch, *spatial, channels]` -> logits float32 `[batch]`.
    With `time_axis=True` the first spatial axis is time and is halved only while
    it is even (so any frame count works); the others are halved at every stage.
    `batch_axis`: see `minibatch_stddev` (the mesh axis the batch is split over).
    `dropout`: rate before the dense logit, used only with `train=True` (then the
    `dropout` RNG stream must be given).
    `dtype`: compute dtype of the convolutions and the dense logit (None: float32);
    parameters, spectral-norm vectors, the minibatch-std statistic and the returned
    logits are float32. `remat`: 'stage' rematerialises each downsampling stage.
    `time_downsample=False` never halves time (MoCoGAN's video critic: stride (1, 2, 2)).
    `num_classes` > 0: a projection head (Miyato & Koyama 2018) adds
    `<embed(labels), sum-pooled last features>` to the logit (`labels` int32 `[batch]`,
    or `[batch, K]`: K embeddings summed), and an auxiliary classifier of the same
    features sows its cross-entropy (`conditioning.AuxiliaryClassifier`, weighted by
    `train.class_loss`).
    `stem` > 0: first a stride-1 3x3(x3) convolution with `stem` channels (+ LeakyReLU)
    at the input's resolution (param `stem`): space-to-depth alone hands the first
    conv 2x2 blocks, and a trained critic without it scored dithered real frames as
    real as clean ones.
    """

    width: int
    num_downsamples: int
    spectral_norm: bool
    minibatch_std_group: int
    time_axis: bool
    dropout: float = 0.0
    dtype: Any = None
    remat: str = "none"
    time_downsample: bool = True
    num_classes: int = 0
    stem: int = 0

    @nn.compact
    def __call__(
        self,
        x: jnp.ndarray,
        update_stats: bool = False,
        batch_axis: str | None = None,
        train: bool = False,
        labels: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        channels = self.width
        if self.dtype is not None:
            x = x.astype(self.dtype)  # before space-to-depth: half the bytes moved
        if self.stem:
            # A stride-1 3x3 conv at the input's resolution, before any space-to-depth:
            # pixel-level texture (isolated dots against strokes) reaches the features.
            x = MaybeSpectralConv(
                self.stem, (3,) * (x.ndim - 2), self.spectral_norm, self.dtype, name="stem"
            )(x, update_stats)
            x = nn.leaky_relu(x, 0.2)
        for _ in range(self.num_downsamples):
            factors = [2] * (x.ndim - 2)
            if self.time_axis and (x.shape[1] % 2 or not self.time_downsample):
                factors[0] = 1

            def run(module, x, factors=tuple(factors), channels=channels):
                x = Downsample(
                    channels, factors, spectral_norm=self.spectral_norm, dtype=self.dtype
                )(x, update_stats)
                return nn.leaky_relu(x, 0.2)

            x = stage(run, self.remat)(self, x)
            channels *= 2
        if self.minibatch_std_group > 1:
            x = minibatch_stddev(x, self.minibatch_std_group, batch_axis)
        x = MaybeSpectralConv(channels, (3,) * (x.ndim - 2), self.spectral_norm, self.dtype)(
            x, update_stats
        )
        x = nn.leaky_relu(x, 0.2)
        features = x
        x = x.reshape(x.shape[0], -1)
        if train and self.dropout > 0:
            x = per_sample_dropout(x, self.dropout, self.make_rng(DROPOUT_RNG), batch_axis)
        logits = MaybeSpectralDense(1, self.spectral_norm, self.dtype)(x, update_stats)[:, 0]
        logits = logits.astype(jnp.float32)  # losses, R1 and ADA's r_t read float32
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional critic needs labels")
            pooled = jnp.sum(features.astype(jnp.float32), axis=tuple(range(1, features.ndim - 1)))
            logits = logits + LabelProjection(self.num_classes, self.spectral_norm)(
                pooled, labels, update_stats
            )
            AuxiliaryClassifier(self.num_classes)(pooled, labels)  # sows its loss
        return logits


def choose_frames(key: jax.Array, frames: int, count: int) -> jnp.ndarray:
    """`count` distinct frame indices out of `frames`, sorted; all frames if fewer.

    One choice for the whole batch (real and fake alike): it depends on the key
    only, never on which device holds a clip, so 1 and N devices agree.
    """
    if count >= frames:
        return jnp.arange(frames)
    return jnp.sort(jax.random.choice(key, frames, (count,), replace=False))


def trunk_like(
    owner: nn.Module,
    time_axis: bool,
    num_downsamples: int,
    name: str,
    time_downsample: bool = True,
    stem: int = 0,
    width: int = 0,
) -> CriticTrunk:
    """A `CriticTrunk` with `owner`'s fields `width` (unless `width` > 0 is given),
    `spectral_norm, minibatch_std_group, dropout, dtype, remat, num_classes` (every
    multi-head critic has them), named `name` inside `owner`'s compact method."""
    return CriticTrunk(
        width or owner.width,
        num_downsamples,
        owner.spectral_norm,
        owner.minibatch_std_group,
        time_axis=time_axis,
        dropout=owner.dropout,
        dtype=owner.dtype,
        remat=owner.remat,
        time_downsample=time_downsample,
        num_classes=owner.num_classes,
        stem=stem,
        name=name,
    )


def judge_frames(
    image_trunk: CriticTrunk,
    key: jax.Array,
    video: jnp.ndarray,
    count: int,
    call: CriticCall,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A 2D critic on `count` frames of every clip, chosen by `choose_frames(key)`.

    Args:
      image_trunk: a trunk with `time_axis=False`.
      video: float32 `[batch, frames, H, W, C]`.
      call: the critic's call arguments; each judged frame gets its clip's label.

    Returns:
      `(logits float32 [batch, k], frames [batch, k, H, W, C])`, k = min(count, frames).
    """
    batch, frames = video.shape[:2]
    images = jnp.take(video, choose_frames(key, frames, count), axis=1)
    k = images.shape[1]
    # Rows are clip-major ([clip, chosen frame]), so a row's global index is fixed
    # by its clip's: per-sample dropout masks stay device-count invariant.
    if call.labels is not None:
        call = call._replace(labels=jnp.repeat(call.labels, k, axis=0))
    logits = image_trunk(images.reshape(-1, *video.shape[2:]), *call)
    return logits.reshape(batch, k), images


class Critic(nn.Module):
    """What every critic shares: its fields and its call.

    Call: video float32 `[batch, frames, size, size, channels]` in [-1, 1] -> a dict
    of named heads, each float32 logits `[batch]`; subclasses build the heads in
    `heads` (called from the compact `__call__`, so their submodules are named as
    if defined there). `update_stats` advances spectral-norm power iteration (the
    `spectral` collection must then be mutable). `batch_axis`: the mesh axis the
    batch is split over inside shard_map, so minibatch-std groups span the global
    batch. `train`: apply dropout (rate `dropout`; needs the `dropout` RNG stream);
    other callers (evaluation, tests) get the deterministic critic. `labels` int32
    `[batch]` or `[batch, K]`: required when `num_classes` > 0 (every head has a projection head).
    Call real and fake batches separately (a minibatch-std group must not mix them).
    The other fields: see `CriticTrunk`.
    """

    width: int = 32
    num_downsamples: int = 3
    spectral_norm: bool = True
    minibatch_std_group: int = 4
    dropout: float = 0.0
    num_classes: int = 0
    dtype: Any = None  # compute dtype, see CriticTrunk
    remat: str = "none"  # 'none' | 'stage', see CriticTrunk

    @nn.compact
    def __call__(
        self,
        video: jnp.ndarray,
        update_stats: bool = False,
        batch_axis: str | None = None,
        train: bool = False,
        labels: jnp.ndarray | None = None,
    ) -> dict[str, jnp.ndarray]:
        # Every subclass defines `heads(video, call: CriticCall) -> {name: logits}`.
        return self.heads(video, CriticCall(update_stats, batch_axis, train, labels))


class MultiHeadCritic(Critic):
    """A video critic and, optionally, a per-frame image critic.

    Call: video float32 `[batch, frames, size, size, channels]` in [-1, 1] ->
    `{"video": logits [batch], "image": logits [batch]}`: the image head's logit is
    the mean over `min(image_frames, frames)` frames drawn from the `frames` RNG
    stream (as DVD-GAN's spatial critic sums its frames' scores; one logit per frame,
    each a sample in the loss, scored a worse FVD: README's "Measured"); with
    `image_frames=0` there is no image head.

    The call's arguments: see `Critic`; each judged frame gets its clip's label.
    `time_downsample=False`: the video head halves space only (MoCoGAN's video critic).
    `image_stem` > 0: the image head starts with a full-resolution 3x3 convolution of
    that many channels (`CriticTrunk.stem`; cheap in 2D, where the video head's 3D
    one would cost most of the critic). `image_width` > 0: the image head's first-stage
    channels (0: `width`, as the video head's): a 2D head costs a fraction of the 3D
    one, so it can be the wider of the two.
    """

    image_frames: int = 0
    time_downsample: bool = True
    image_stem: int = 0
    image_width: int = 0

    def heads(self, video: jnp.ndarray, call: CriticCall) -> dict[str, jnp.ndarray]:
        video_head = trunk_like(
            self, True, self.num_downsamples, "video", time_downsample=self.time_downsample
        )
        heads = {"video": video_head(video, *call)}
        if self.image_frames:
            image_head = trunk_like(
                self,
                False,
                self.num_downsamples,
                "image",
                time_downsample=self.time_downsample,
                stem=self.image_stem,
                width=self.image_width,
            )
            per_frame, _ = judge_frames(
                image_head, self.make_rng(FRAMES_RNG), video, self.image_frames, call
            )
            heads["image"] = jnp.mean(per_frame, axis=1)
        return heads
