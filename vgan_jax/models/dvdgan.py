"""DVD-GAN (Clark, Donahue, Simonyan 2019, "Adversarial Video Generation on Complex
Datasets"), scaled down so that it trains on a CPU at 32x32x16.

Generator (Section 3 and Appendix of the paper; no official code was released):
`[z; e(y)]` -> linear -> `[s0, s0, c0]`, fed as the input at *every* frame to a
convolutional GRU unrolled once per frame; each GRU output frame then goes through a
residual upsampling block on its own (time folded into the batch); the result is the
input sequence of the next ConvGRU + residual group, until the frames reach the
target size; then BatchNorm, ReLU, a 3x3 convolution and tanh. Every BatchNorm in G
is class-conditional (`conditioning.ConditionalBatchNorm`), its gain and bias linear
in `[z; e(y)]` as in BigGAN (unconditional runs condition on z alone).

Scaled down from the paper: one residual block per group (the paper has two), channel
widths from `width` (halving per group), and no spectral norm in G (BigGAN and
DVD-GAN put it in G too; here the standing-statistics pass of sampling would have to
freeze its power iteration, and the critic's spectral norm is the one that matters
for stability). The paper does not say where the ConvGRU's state starts; here it is
tanh of the first frame's input (see `ConvGRU`: a zero state left the first frame empty).

Mixed precision (`dtype`, e.g. bfloat16): every convolution and dense layer of G and D
runs in it; the ConvGRU's gates, candidate and state update run in float32 (the state
is carried float32 from frame to frame, so unrolling adds no 8-bit rounding per frame),
the conditional BatchNorms normalise in float32, and videos and logits are float32.
`remat='stage'` rematerialises each group (ConvGRU + residual block) of G and each
downsampling stage of both critics.

Because the ConvGRU is causal and the residual blocks are per frame, a video can be
unrolled past the trained length (`clone(frames=48)`): its first frames are the
shorter video's.

Critic (`DVDGANCritic`): two heads of one module, `spatial` and `temporal`. The spatial
critic judges k = `spatial_frames` (8 in the paper) frames drawn at random from the
step's key, each at full resolution, and its score is the *sum* of the per-frame
scores (paper: "the D_S output is the sum over per-frame scores"); the temporal critic
judges the whole clip after 2x2 spatial average pooling. Both are the shared
downsampling trunk (`critics.CriticTrunk`: spectral norm, minibatch-std, projection
head for labels) rather than BigGAN's residual D blocks, and the temporal trunk is 3D
throughout (the paper's has 3D convolutions in its first two blocks only). Hinge loss
(`train.loss=hinge`) is the paper's; the `dvdgan_ucf101` paper config sets it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from vgan_jax.models.conditioning import ConditionalBatchNorm, sum_objects
from vgan_jax.models.critics import FRAMES_RNG, Critic, CriticCall, judge_frames, trunk_like
from vgan_jax.models.layers import SameConv, Upsample, stage


class ConvGRUCell(nn.Module):
    """A convolutional GRU step (Ballas et al. 2016): the gates are 3x3 convolutions.

    Call: `(h float32 [n, H, W, features], x [n, H, W, c])` -> `(h', output)`:
    `r, u = sigmoid(conv([x; h]))`, `c = tanh(conv([x; r * h]))`,
    `h' = u * h + (1 - u) * c`. The convolutions run in `dtype` (None: float32); the
    gates, the candidate and the state `h'` are float32, `output` is `h'` in `dtype`.
    """

    features: int
    dtype: Any = None

    @nn.compact
    def __call__(self, h: jnp.ndarray, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        conv_dtype = x.dtype if self.dtype is None else self.dtype
        gates = SameConv(2 * self.features, (3, 3), dtype=self.dtype, name="gates")(
            jnp.concatenate([x, h.astype(conv_dtype)], -1)
        )
        reset, update = jnp.split(nn.sigmoid(gates.astype(jnp.float32)), 2, axis=-1)
        candidate = SameConv(self.features, (3, 3), dtype=self.dtype, name="candidate")(
            jnp.concatenate([x, (reset * h).astype(conv_dtype)], -1)
        )
        h = update * h + (1.0 - update) * jnp.tanh(candidate.astype(jnp.float32))
        return h, h.astype(conv_dtype)


class ConvGRU(nn.Module):
    """`x` `[batch, frames, H, W, c]` -> `[batch, frames, H, W, features]` (in `dtype`,
    float32 when None): one `ConvGRUCell` scanned over time (`nn.scan`, shared weights).

    The state starts at `tanh` of the first frame's input (projected by a 1x1
    convolution if its channels differ). From a zero state, as first written, the first
    frame of every trained sample was a dark, nearly empty frame while the others held
    strokes (a 400-step `default` run): with h_0 = 0 the first output is only the
    candidate, damped by its update gate, and every group starts from nothing."""

    features: int
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        scan = nn.scan(
            ConvGRUCell,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        if self.dtype is not None:
            x = x.astype(self.dtype)
        first = x[:, 0]
        if first.shape[-1] != self.features:
            first = SameConv(self.features, (1, 1), dtype=self.dtype, name="initial_state")(first)
        state = jnp.tanh(first.astype(jnp.float32))  # the carried state is float32
        _, outputs = scan(self.features, self.dtype, name="cell")(state, x)
        return outputs


class ResidualUpBlock(nn.Module):
    """BigGAN's generator block, per image: `cBN -> ReLU -> 2x resize-conv 3x3 -> cBN ->
    ReLU -> conv 3x3`, plus a shortcut `1x1 conv -> 2x nearest upsampling`.

    Call: `x` `[n, H, W, c]`, `condition` float32 `[n, d]` ->
    `[n, 2H, 2W, features]` in `dtype` (float32 when None). The convolutions run in
    `dtype`; the conditional BatchNorms normalise in float32.
    """

    features: int
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, condition: jnp.ndarray, train: bool) -> jnp.ndarray:
        h = nn.relu(ConditionalBatchNorm(name="norm_in")(x, condition, train))
        h = Upsample(self.features, (2, 2), use_bias=False, dtype=self.dtype, name="up_conv")(h)
        h = nn.relu(ConditionalBatchNorm(name="norm_mid")(h, condition, train))
        h = SameConv(self.features, (3, 3), dtype=self.dtype, name="conv")(h)
        # 1x1 conv before the nearest-neighbour upsampling: the same function as after
        # it, at a quarter of the cost.
        shortcut = SameConv(self.features, (1, 1), dtype=self.dtype, name="shortcut")(x)
        shortcut = jnp.repeat(jnp.repeat(shortcut, 2, axis=1), 2, axis=2)
        return h + shortcut


class DVDGANGenerator(nn.Module):
    """Call: `z` float32 `[batch, latent_dim]`, `labels` int32 `[batch]` or `[batch, K]`
    (only with `num_classes > 0`; K labels: their embeddings summed) -> video float32
    `[batch, frames, size, size, channels]` in [-1, 1]. `frames` can be changed at
    sampling (`clone(frames=...)`): no parameter depends on it.

    Group g (0-based) of `num_upsamples` runs its ConvGRU at `size / 2**(n - g)` with
    `width * 2**(n - 1 - g)` channels and upsamples to half as many (never below
    `width`).

    `dtype`: compute dtype of the convolutions and dense layers (None: float32; see the
    module docstring for what stays float32). `remat`: 'stage' rematerialises each
    group (`layers.stage`). Neither changes the parameters.
    """

    frames: int
    size: int
    channels: int
    width: int = 32
    num_upsamples: int = 3
    num_classes: int = 0
    embed_dim: int = 0  # class embedding size; 0: latent_dim (the paper: 120 and 120)
    dtype: Any = None
    remat: str = "none"

    @nn.compact
    def __call__(
        self, z: jnp.ndarray, labels: jnp.ndarray | None = None, train: bool = False
    ) -> jnp.ndarray:
        batch = z.shape[0]
        condition = z
        if self.num_classes:
            if labels is None:
                raise ValueError("a conditional DVD-GAN needs labels")
            embedding = nn.Embed(
                self.num_classes, self.embed_dim or z.shape[-1], name="label_embedding"
            )(labels)
            condition = jnp.concatenate([z, sum_objects(embedding, labels)], axis=-1)
        start = self.size // 2**self.num_upsamples
        channels = self.width * 2 ** (self.num_upsamples - 1)
        x = nn.Dense(start * start * channels, dtype=self.dtype, name="project")(condition)
        x = x.reshape(batch, 1, start, start, channels)
        # The same projected latent is the GRU's input at every frame.
        x = jnp.broadcast_to(x, (batch, self.frames, start, start, channels))
        per_frame_condition = jnp.repeat(condition, self.frames, axis=0)  # [batch*T, d]
        for group in range(self.num_upsamples):
            out_channels = max(self.width, channels // 2)

            # Arrays are arguments (traced), Python values come from the closure.
            def run(module, x, condition, group=group, channels=channels, out=out_channels):
                x = ConvGRU(channels, self.dtype, name=f"gru_{group}")(x)
                frames_first = x.reshape(batch * self.frames, *x.shape[2:])
                frames_first = ResidualUpBlock(out, self.dtype, name=f"block_{group}")(
                    frames_first, condition, train
                )
                return frames_first.reshape(batch, self.frames, *frames_first.shape[1:])

            x = stage(run, self.remat)(self, x, per_frame_condition)
            channels = out_channels
        x = x.reshape(batch * self.frames, *x.shape[2:])
        x = nn.relu(ConditionalBatchNorm(name="norm_out")(x, per_frame_condition, train))
        x = SameConv(self.channels, (3, 3), dtype=self.dtype, name="to_pixels")(x)
        return jnp.tanh(x.astype(jnp.float32)).reshape(batch, self.frames, *x.shape[1:])


def average_pool_space(video: jnp.ndarray, factor: int = 2) -> jnp.ndarray:
    """`[b, T, H, W, C]` -> `[b, T, H / factor, W / factor, C]`, each output pixel the
    mean of a `factor x factor` block (DVD-GAN's temporal critic input)."""
    b, t, h, w, c = video.shape
    blocks = video.reshape(b, t, h // factor, factor, w // factor, factor, c)
    return jnp.mean(blocks, axis=(3, 5))


class DVDGANCritic(Critic):
    """DVD-GAN's dual discriminator as one module with two heads.

    Call: video float32 `[batch, frames, size, size, channels]` in [-1, 1] (and `labels`
    int32 `[batch]` with `num_classes > 0`) -> `{"spatial": logits [batch], "temporal":
    logits [batch]}`. The spatial logit is the sum of the per-frame scores of
    `k = min(spatial_frames, frames)` frames drawn from the `frames` RNG stream (the same
    frames for every clip of the step, real and fake); the temporal one scores the clip
    average-pooled 2x in space. Fields and call as `critics.Critic`. For tests, the
    two heads' inputs are sown into the `intermediates` collection when it is mutable.
    """

    spatial_frames: int = 8

    def _record(self, name: str, value: jnp.ndarray) -> None:
        # Not at init: whatever init returns beside params becomes critic state.
        if not self.is_initializing():
            self.sow("intermediates", name, value)

    def heads(self, video: jnp.ndarray, call: CriticCall) -> dict[str, jnp.ndarray]:
        per_frame, images = judge_frames(
            trunk_like(self, False, self.num_downsamples, "spatial"),
            self.make_rng(FRAMES_RNG),
            video,
            self.spatial_frames,
            call,
        )
        self._record("spatial_input", images)
        pooled = average_pool_space(video)
        self._record("temporal_input", pooled)
        # The pooled clip is half the size: one stage fewer reaches the same final grid.
        temporal = trunk_like(self, True, max(1, self.num_downsamples - 1), "temporal")(
            pooled, *call
        )
        return {"spatial": jnp.sum(per_frame, axis=1), "temporal": temporal}
