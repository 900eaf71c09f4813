"""Shared building blocks: learned 2x up/down-sampling, spectral norm, normalisation.

Why stride-1 conv + depth-to-space instead of `ConvTranspose` / strided `Conv`:
XLA:CPU runs 3D transposed convolutions and the input gradient of strided 3D
convolutions about 50x slower than stride-1 convolutions (83-188 s against 5.3 s
per step for the same GAN on 2 cores). A stride-1 convolution at the low
resolution that emits `factor` times more channels, followed by depth-to-space,
is a learned upsampling with the same receptive field as a 4-tap transposed
convolution (Shi et al. 2016, "sub-pixel convolution"); space-to-depth followed
by a stride-1 convolution is the matching learned downsampling. On GPU/TPU the
same layers are as fast as the strided forms, so one implementation serves all.

All tensors are channels-last: `[batch, *spatial, channels]`, where `spatial` is
`(time, height, width)` for video and `(height, width)` for images.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax.parallel import DATA_AXIS


def depth_to_space(x: jnp.ndarray, factors: Sequence[int]) -> jnp.ndarray:
    """Moves channel blocks into the spatial axes.

    Args:
      x: `[batch, *spatial, channels * prod(factors)]`.
      factors: one integer per spatial axis.

    Returns:
      `[batch, *(s * f for s, f in zip(spatial, factors)), channels]`.
    """
    batch, *spatial, depth = x.shape
    nd = len(spatial)
    block = 1
    for f in factors:
        block *= f
    channels = depth // block
    x = x.reshape(batch, *spatial, *factors, channels)
    # [b, s0, s1, .., f0, f1, .., c] -> [b, s0, f0, s1, f1, .., c]
    order = [0]
    for i in range(nd):
        order += [1 + i, 1 + nd + i]
    order.append(1 + 2 * nd)
    x = x.transpose(order)
    return x.reshape(batch, *(s * f for s, f in zip(spatial, factors, strict=True)), channels)


def space_to_depth(x: jnp.ndarray, factors: Sequence[int]) -> jnp.ndarray:
    """Inverse of `depth_to_space`: `[b, *spatial, c]` -> `[b, *(s // f), c * prod(f)]`."""
    batch, *spatial, channels = x.shape
    nd = len(spatial)
    shape = [batch]
    for s, f in zip(spatial, factors, strict=True):
        shape += [s // f, f]
    x = x.reshape(*shape, channels)
    # [b, s0, f0, s1, f1, .., c] -> [b, s0, s1, .., f0, f1, .., c]
    order = [0] + [1 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)] + [1 + 2 * nd]
    x = x.transpose(order)
    block = 1
    for f in factors:
        block *= f
    return x.reshape(
        batch, *(s // f for s, f in zip(spatial, factors, strict=True)), channels * block
    )


def blur_upsampled(x: jnp.ndarray, factors: Sequence[int]) -> jnp.ndarray:
    """A fixed [1, 2, 1] / 4 filter along every axis that was just upsampled 2x.

    Depth-to-space gives each sub-pixel position its own kernel; nothing ties them
    together, they drift apart, and the generator paints a period-2 lattice (in
    time: even/odd frame flicker) that no real video has. [1, 2, 1] has zero
    response at exactly that frequency, so the lattice can't be produced at all,
    while smoother content passes (nearest upsampling followed by this filter is
    bilinear upsampling, StyleGAN2's "upsample then blur"). Edges are replicated,
    so border pixels and the first and last frames are not darkened.

    Args:
      x: `[batch, *spatial, channels]`.
      factors: per spatial axis, 2 to filter that axis, 1 to leave it.
    """
    for axis, factor in enumerate(factors, start=1):
        if factor != 2 or x.shape[axis] < 2:
            continue
        padded = jnp.pad(x, [(1, 1) if a == axis else (0, 0) for a in range(x.ndim)], "edge")
        n = x.shape[axis]
        x = 0.25 * (
            jax.lax.slice_in_dim(padded, 0, n, axis=axis)
            + 2.0 * x
            + jax.lax.slice_in_dim(padded, 2, n + 2, axis=axis)
        )
    return x


def _conv_im2col(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """'SAME' stride-1 convolution as one matmul over explicit patches.

    XLA:CPU runs 3D convolutions at ~17 GFLOP/s on 2 cores but matmuls at
    80-100 GFLOP/s; gathering the k^d shifted copies and doing one dot with
    K = k^d * c_in measured 1.5x faster for the whole conv (forward + backward).
    """
    *ks, c_in, c_out = kernel.shape
    pads = [(0, 0)] + [((k - 1) // 2, k // 2) for k in ks] + [(0, 0)]
    xp = jnp.pad(x, pads)
    spatial = x.shape[1:-1]
    patches = []
    for offsets in itertools.product(*(range(k) for k in ks)):
        index = (slice(None),) + tuple(
            slice(o, o + n) for o, n in zip(offsets, spatial, strict=True)
        )
        patches.append(xp[index])
    columns = jnp.concatenate(patches, axis=-1) if len(patches) > 1 else patches[0]
    return jnp.dot(columns, kernel.reshape(-1, c_out))


class SameConv(nn.Module):
    """A stride-1 'SAME' convolution with `nn.Conv`'s parameters (`kernel`
    `[*kernel_size, c_in, features]`, `bias` `[features]`) and initialisers.

    `implementation`: 'xla' (`lax.conv`), 'im2col' (patches + matmul, see
    `_conv_im2col`) or 'auto': im2col on CPU, XLA's convolution on GPU/TPU, where
    it is the fast one. Both give the same numbers, so checkpoints move freely
    between them.
    """

    features: int
    kernel_size: Sequence[int]
    implementation: str = "auto"
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel_size = tuple(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (*kernel_size, x.shape[-1], self.features))
        bias = (
            self.param("bias", nn.initializers.zeros_init(), (self.features,))
            if self.use_bias
            else None
        )
        implementation = self.implementation
        if implementation == "auto":
            implementation = "im2col" if jax.default_backend() == "cpu" else "xla"
        if implementation == "im2col":
            y = _conv_im2col(x, kernel)
        else:
            nd = len(kernel_size)
            y = jax.lax.conv_general_dilated(
                x,
                kernel,
                (1,) * nd,
                "SAME",
                dimension_numbers=jax.lax.conv_dimension_numbers(
                    x.shape, kernel.shape, _LAYOUTS[nd]
                ),
            )
        return y + bias if self.use_bias else y


_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


class MaybeSpectralConv(nn.Module):
    """A stride-1 'SAME' convolution, spectrally normalised when asked.

    The spectral-norm power-iteration vector lives in the `spectral` collection,
    which the train step threads through `TrainState.d_state`.
    """

    features: int
    kernel_size: Sequence[int]
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool = False) -> jnp.ndarray:
        conv = SameConv(self.features, tuple(self.kernel_size))
        if self.spectral_norm:
            return nn.SpectralNorm(conv, collection_name="spectral")(x, update_stats=update_stats)
        return conv(x)


class MaybeSpectralDense(nn.Module):
    """A dense layer, spectrally normalised when asked (see `MaybeSpectralConv`)."""

    features: int
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool = False) -> jnp.ndarray:
        dense = nn.Dense(self.features)
        if self.spectral_norm:
            return nn.SpectralNorm(dense, collection_name="spectral")(x, update_stats=update_stats)
        return dense(x)


_LECUN_NORMAL = nn.initializers.lecun_normal()


def icnr(block: int, base=_LECUN_NORMAL) -> nn.initializers.Initializer:
    """ICNR init (Aitken et al. 2017) for a conv feeding depth-to-space: the `block`
    sub-pixel kernels start equal, so the layer starts as conv + nearest-neighbour
    upsampling and no checkerboard pattern has to be unlearned."""

    def init(key, shape, dtype=jnp.float32):
        *rest, features = shape
        kernel = base(key, (*rest, features // block), dtype)
        # depth_to_space reads channel (b * features/block + c) into sub-pixel b.
        return jnp.tile(kernel, (1,) * len(rest) + (block,))

    return init


class Upsample(nn.Module):
    """Learned upsampling: stride-1 conv to `features * prod(factors)` channels, then
    depth-to-space. `[b, *spatial, c_in]` -> `[b, *(s * f), features]`.

    The bias is one per output feature, added after depth-to-space: a bias per
    sub-pixel position drifts apart in training and paints a periodic lattice (with
    flicker in time) that the critic spots at once, collapsing the generator. The
    kernels drift apart too; `blur=True` removes what they paint at the lattice
    frequency (see `blur_upsampled`)."""

    features: int
    factors: Sequence[int]
    kernel: int = 3
    use_bias: bool = True
    blur: bool = False  # `blur_upsampled` after depth-to-space

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        block = 1
        for f in self.factors:
            block *= f
        nd = len(self.factors)
        x = SameConv(
            self.features * block, (self.kernel,) * nd, kernel_init=icnr(block), use_bias=False
        )(x)
        x = depth_to_space(x, self.factors)
        if self.blur:
            x = blur_upsampled(x, self.factors)
        if self.use_bias:
            x = x + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return x


class Downsample(nn.Module):
    """Learned downsampling: space-to-depth, then a stride-1 conv.
    `[b, *spatial, c_in]` -> `[b, *(s // f), features]`.

    With factor 2 and the default 2-tap kernel this is exactly a 4-tap, stride-2
    convolution (the DCGAN critic's layer), at the same FLOPs."""

    features: int
    factors: Sequence[int]
    kernel: int = 2
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool = False) -> jnp.ndarray:
        x = space_to_depth(x, self.factors)
        return MaybeSpectralConv(
            self.features, (self.kernel,) * len(self.factors), self.spectral_norm
        )(x, update_stats)


# Running-average momentum of the generator's BatchNorm (`sampling.standing_statistics`
# inverts one update with it).
BATCH_NORM_MOMENTUM = 0.99


def normalization(kind: str, channels: int, train: bool) -> nn.Module | None:
    """Generator normalisation.

    'batch' (the default, as in DCGAN): BatchNorm whose training statistics are
    averaged over the mesh's `data` axis, i.e. over the global batch, so 1 and N
    devices give the same numbers. Subtracting the batch mean at every position is
    what keeps a generator from collapsing onto one z-independent pattern: with the
    per-sample norms below, the default preset collapsed within 250 steps. Sampling
    (`train=False`) uses the running averages, so a sample never depends on the
    rest of its batch. 'group' / 'layer' normalise each sample alone; 'none'.
    """
    if kind == "batch":
        return nn.BatchNorm(
            use_running_average=not train,
            momentum=BATCH_NORM_MOMENTUM,
            axis_name=DATA_AXIS if train else None,
        )
    if kind == "group":
        # Up to 16 groups; gcd keeps it a divisor of any channel count.
        return nn.GroupNorm(num_groups=math.gcd(channels, 16))
    if kind == "layer":
        return nn.LayerNorm()
    if kind == "none":
        return None
    raise ValueError(f"unknown normalization {kind!r}; known: {', '.join(GENERATOR_NORMS)}")


GENERATOR_NORMS = ("batch", "group", "layer", "none")


def minibatch_stddev(x: jnp.ndarray, group_size: int, axis_name: str | None = None) -> jnp.ndarray:
    """Appends the minibatch standard deviation as one channel (Karras et al. 2018).

    Groups of `group_size` samples share one scalar: the std over the group, averaged
    over positions and channels. A critic that sees it can tell a batch of identical
    fakes from a batch of real videos, which is what stops a generator collapsing
    onto one output. Groups are formed over the *global* batch (the features are
    all-gathered over `axis_name` inside shard_map), so 1 and N devices agree.

    Args:
      x: float32 `[local_batch, *spatial, channels]`.
      group_size: samples per group (reduced to divide the global batch).
      axis_name: the mesh axis the batch is split over, or None outside shard_map.

    Returns:
      float32 `[local_batch, *spatial, channels + 1]`.
    """
    local = x.shape[0]
    full = jax.lax.all_gather(x, axis_name, axis=0, tiled=True) if axis_name else x
    total = full.shape[0]
    group = math.gcd(group_size, total)
    # Sample i is in group i % (total // group), as in StyleGAN.
    grouped = full.reshape(group, total // group, *full.shape[1:])
    std = jnp.sqrt(jnp.var(grouped, axis=0) + 1e-8)
    per_group = jnp.mean(std.reshape(total // group, -1), axis=1)
    per_sample = jnp.tile(per_group, group)
    if axis_name:
        start = jax.lax.axis_index(axis_name) * local
        per_sample = jax.lax.dynamic_slice_in_dim(per_sample, start, local)
    feature = jnp.broadcast_to(per_sample.reshape(local, *(1,) * (x.ndim - 1)), (*x.shape[:-1], 1))
    return jnp.concatenate([x, feature], axis=-1)


def bias_before(kind: str) -> bool:
    """Whether a layer feeding this norm needs a bias: BatchNorm subtracts it again,
    and its gradient is then pure rounding noise, which Adam would blow up to full
    steps (and which differs between 1 and N devices)."""
    return kind != "batch"


def norm_act(x: jnp.ndarray, kind: str, train: bool) -> jnp.ndarray:
    """Normalisation then LeakyReLU(0.2), as in the DCGAN generator stages.

    With `kind='batch'` and `train=True` this must run inside `shard_map` over the
    `data` axis (the train step does)."""
    norm = normalization(kind, x.shape[-1], train)
    if norm is not None:
        x = norm(x)
    return nn.leaky_relu(x, 0.2)
