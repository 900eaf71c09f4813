"""Shared building blocks: learned 2x up/down-sampling, spectral norm, normalisation.

Why stride-1 conv + depth-to-space instead of `ConvTranspose` / strided `Conv`:
XLA:CPU runs 3D transposed convolutions and the input gradient of strided 3D
convolutions far slower than stride-1 convolutions (README's "Measured" has the
figures). A stride-1 convolution at the low
resolution that emits `factor` times more channels, followed by depth-to-space,
is a learned upsampling with the same receptive field as a 4-tap transposed
convolution (Shi et al. 2016, "sub-pixel convolution"); space-to-depth followed
by a stride-1 convolution is the matching learned downsampling. On GPU/TPU the
same layers are as fast as the strided forms, so one implementation serves all.

All tensors are channels-last: `[batch, *spatial, channels]`, where `spatial` is
`(time, height, width)` for video and `(height, width)` for images.

Mixed precision: layers with a `dtype` attribute run their convolution / matmul in
that dtype (None: the dtype of their inputs and float32 parameters, i.e. float32);
parameters are always created float32 and cast at use, so gradients, optimizer
states and checkpoints stay float32. Normalisation statistics, the minibatch
standard deviation and spectral-norm power iteration are computed in float32
whatever the compute dtype.

Rematerialisation: `stage(fn, remat)` wraps one stage of a generator or critic in
`nn.remat` (see there); parameter names are the same with and without it.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def _nearest_then_conv_taps(factor: int) -> np.ndarray:
    """`M[s, t, j]`: how a 3-tap kernel `w[j]` applied after nearest-neighbour
    upsampling by `factor` (1 or 2) reads the low-resolution input for output
    sub-pixel `s`, through the taps `t` of a window on the low-resolution input.

    With u[2i] = u[2i+1] = x[i]:  y[2i] = w0 x[i-1] + (w1 + w2) x[i] and
    y[2i+1] = (w0 + w1) x[i] + w2 x[i+1]: each sub-pixel reads a 2-tap window,
    sub-pixel 0 the one starting at i - 1, sub-pixel 1 the one starting at i. A
    factor of 1 keeps the 3-tap kernel.
    """
    if factor == 1:
        return np.eye(3, dtype=np.float32)[None]
    if factor != 2:
        raise ValueError(f"resize upsampling supports factors 1 and 2, got {factor}")
    return np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)


def resize_conv_kernel(kernel: jnp.ndarray, factors: Sequence[int]) -> jnp.ndarray:
    """The low-resolution windows' kernel of nearest-neighbour upsampling by `factors`
    followed by a 'SAME' convolution with `kernel` (see `resize_upsample`).

    Args:
      kernel: `[3, ..., 3, c_in, c_out]`, one 3 per spatial axis.
      factors: per spatial axis, 1 or 2.

    Returns:
      `[t, ..., c_in, prod(factors) * c_out]` with t = 2 on upsampled axes and 3 on
      the others; channel `s * c_out + c` is sub-pixel `s` (row-major over the axes).
    """
    nd = len(factors)
    taps, subs, reads = "abc"[:nd], "def"[:nd], "ghk"[:nd]
    operands = [_nearest_then_conv_taps(f) for f in factors]
    spec = ",".join(f"{s}{t}{r}" for s, t, r in zip(subs, taps, reads, strict=True))
    spec += f",{reads}io->{taps}i{subs}o"
    sub_kernel = jnp.einsum(spec, *operands, kernel)
    return sub_kernel.reshape(*sub_kernel.shape[: nd + 1], -1)


def resize_upsample(
    x: jnp.ndarray,
    kernel: jnp.ndarray,
    factors: Sequence[int],
    implementation: str = "auto",
    edge_padded_axes: Sequence[int] = (),
) -> jnp.ndarray:
    """Nearest-neighbour upsampling by `factors`, then a 'SAME' 3-tap convolution with
    `kernel` `[3, ..., 3, c_in, c_out]`, computed at the low resolution:
    `[b, *spatial, c_in]` -> `[b, *spatial, prod(factors) * c_out]`, for
    `depth_to_space(., factors)`.

    Each sub-pixel reads a 2-tap window (see `_nearest_then_conv_taps`), so one
    2-tap convolution over the input padded by one on each side gives every window
    (n + 1 per upsampled axis); sub-pixel s takes the windows starting at s. That is
    8 of the 27 multiplies per output a 3x3x3 sub-pixel kernel would spend.
    """
    spatial = x.shape[1:-1]
    windows = same_conv(
        x,
        resize_conv_kernel(kernel, factors),
        implementation,
        edge_padded_axes,
        padding=[(1, 1)] * len(factors),
    )
    block = math.prod(factors)
    pieces = jax.lax.split(windows, [windows.shape[-1] // block] * block, axis=-1)
    chosen = []
    for piece, offsets in zip(
        pieces, itertools.product(*(range(f) for f in factors)), strict=True
    ):
        for axis, (factor, offset) in enumerate(zip(factors, offsets, strict=True)):
            if factor == 2:
                piece = jax.lax.slice_in_dim(piece, offset, offset + spatial[axis], axis=1 + axis)
        chosen.append(piece)
    return jnp.concatenate(chosen, axis=-1)


def _same_padding(kernel_size: Sequence[int]) -> list[tuple[int, int]]:
    """Per spatial axis, the (low, high) zero padding of a 'SAME' stride-1 convolution."""
    return [((k - 1) // 2, k // 2) for k in kernel_size]


def _conv_im2col(
    x: jnp.ndarray,
    kernel: jnp.ndarray,
    padding: Sequence[tuple[int, int]],
    edge_padded_axes: Sequence[int] = (),
) -> jnp.ndarray:
    """Stride-1 convolution with explicit `padding` (zeros, or the edge repeated along
    `edge_padded_axes`) as one matmul over shifted copies.

    XLA:CPU runs 3D convolutions several times slower than matmuls of the same
    FLOPs (README's "Measured"), so the convolution is one `jnp.dot`. Along the axes
    `_gathered_axes` picks, the k shifted copies of the input are concatenated on
    the channels first (im2col: K = k * c_in); along the others the matmul emits
    k * c_out channels, one block per tap, and the blocks are summed shifted
    ("col2im" on the output side). Either way it is the same sum of products,
    so the result differs from `lax.conv` by float rounding only. The split only
    decides how big the two intermediates are (and their transposes in the
    backward pass): full im2col of a 32 -> 8 channel 3x3x3 layer writes 27 x 32
    floats per position where gathering along one axis and scattering along two
    writes 3 x 32 + 9 x 8, and runs several times faster, forward + backward.

    Scattered axes are never padded before the matmul: zero padding would only add
    zero blocks, and an edge-padded position's block is the edge position's block
    (the matmul works position by position), so the blocks are edge-padded instead.
    The matmul then costs the same with either padding (pre-padding time for a
    4-frame input was 1.5x its FLOPs).
    """
    *ks, c_in, c_out = kernel.shape
    nd = len(ks)
    out = [n + lo + hi - k + 1 for n, (lo, hi), k in zip(x.shape[1:-1], padding, ks, strict=True)]
    gathered = _gathered_axes(ks, c_in, c_out, x.shape[1:-1], out)
    scattered = [a for a in range(nd) if ks[a] > 1 and a not in gathered]

    def pad(v: jnp.ndarray, axes: Sequence[int], mode: str) -> jnp.ndarray:
        if not any(padding[a] != (0, 0) for a in axes):
            return v
        widths = [padding[a] if a in axes else (0, 0) for a in range(nd)]
        return jnp.pad(v, [(0, 0), *widths, (0, 0)], mode=mode)

    # Pad where taps are gathered (and where there are no taps), before the matmul.
    unscattered = [a for a in range(nd) if a not in scattered]
    xp = pad(x, [a for a in unscattered if a in edge_padded_axes], "edge")
    xp = pad(xp, [a for a in unscattered if a not in edge_padded_axes], "constant")
    patches = []
    for offsets in itertools.product(*(range(ks[a]) for a in gathered)):
        index = [slice(None)] * x.ndim
        for a in range(nd):
            if a not in scattered:
                index[1 + a] = slice(0, out[a])
        for a, o in zip(gathered, offsets, strict=True):
            index[1 + a] = slice(o, o + out[a])
        patches.append(xp[tuple(index)])
    columns = jnp.concatenate(patches, axis=-1) if len(patches) > 1 else patches[0]
    # kernel [*ks, c_in, c_out] -> [gathered taps * c_in, scattered taps * c_out].
    untapped = [a for a in range(nd) if ks[a] == 1]
    order = [*untapped, *gathered, nd, *scattered, nd + 1]
    blocks = math.prod(ks[a] for a in scattered)
    kernel_2d = kernel.transpose(order).reshape(-1, blocks * c_out)
    if not scattered:
        return jnp.dot(columns, kernel_2d)
    # The shifted sum of the blocks is the rest of the convolution's accumulation: in
    # float32 (as the matmul accumulates), so a bfloat16 convolution rounds once.
    y = jnp.dot(columns, kernel_2d, preferred_element_type=jnp.float32)
    # Tap o of a scattered axis adds its block shifted: y[p] += block_o[p + o - low],
    # reading zeros beyond the input, or with edge padding the edge position's block.
    # lax.split (not slicing) so the backward pass concatenates instead of padding
    # every block to the full width and adding.
    total = None
    pieces = jax.lax.split(y, [c_out] * blocks, axis=-1)
    for piece, offsets in zip(
        pieces, itertools.product(*(range(ks[a]) for a in scattered)), strict=True
    ):
        config = [(0, 0, 0)] * x.ndim
        clamped = []
        for a, o in zip(scattered, offsets, strict=True):
            shift = o - padding[a][0]
            if a in edge_padded_axes:
                clamped.append((a, shift))
            else:
                config[1 + a] = (-shift, out[a] - x.shape[1 + a] + shift, 0)
        term = jax.lax.pad(piece, jnp.zeros((), piece.dtype), config)
        for a, shift in clamped:
            term = _shift_clamped(term, 1 + a, shift, out[a])
        total = term if total is None else total + term
    return total.astype(x.dtype)


def _shift_clamped(v: jnp.ndarray, axis: int, shift: int, size: int) -> jnp.ndarray:
    """`size` rows along `axis`, row p being `v`'s row clip(p + shift, 0, n - 1).

    Built from slices and repeated edge rows (not `jnp.pad(mode='edge')` and a
    crop), so its transpose fuses into the backward pass's concatenation instead of
    materialising a padded copy of every block.
    """
    n = v.shape[axis]
    first = min(size, max(0, -shift))  # rows before it read row 0
    last = max(first, min(size, n - shift))  # rows from here on read row n - 1
    parts = []
    if first:
        parts.append(jnp.repeat(jax.lax.slice_in_dim(v, 0, 1, axis=axis), first, axis=axis))
    if last > first:
        parts.append(jax.lax.slice_in_dim(v, first + shift, last + shift, axis=axis))
    if size > last:
        edge = jax.lax.slice_in_dim(v, n - 1, n, axis=axis)
        parts.append(jnp.repeat(edge, size - last, axis=axis))
    return jnp.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]


# The matmul FLOPs that take as long as moving one float through an im2col copy or a
# shifted sum, fitted on the 64x64x16 DCGAN's layers forward + backward on 2 EPYC
# cores (XLA:CPU, jax 0.10).
_FLOPS_PER_FLOAT_MOVED = 592.0


def _gathered_axes(
    kernel_size: Sequence[int],
    c_in: int,
    c_out: int,
    in_sizes: Sequence[int],
    out_sizes: Sequence[int],
) -> tuple[int, ...]:
    """The spatial axes `_conv_im2col` gathers taps along (the rest it scatters).

    Cost model per input position, fitted on the 64x64x16 DCGAN's layers on 2 EPYC
    cores (forward + backward): floats moved, K = prod(gathered taps) * c_in for the
    patches plus 2 * N, N = prod(scattered taps) * c_out, for the blocks (each is
    written by the matmul and read back by the shifted sum), plus the matmul's 2 K N
    FLOPs at `_FLOPS_PER_FLOAT_MOVED` FLOPs per float; all of it times the extra rows
    a gathered axis computes when the convolution emits more positions than it reads
    (`out_sizes` > `in_sizes`: resize upsampling's n + 1 windows; a scattered axis runs
    the matmul on the n input positions). Ties go to gathering more. It picks full
    im2col when c_in is small (the critic's first layer), one gathered axis when
    c_out is small (the generator's last layer, the critic's k2 layers), and scatters
    the short time axis of the generator's first stages (2 -> 3 windows).
    """
    taps = [a for a, k in enumerate(kernel_size) if k > 1]
    best: tuple[float, tuple[int, ...]] | None = None
    for count in range(len(taps), -1, -1):
        for gathered in itertools.combinations(reversed(taps), count):
            scattered = [a for a in taps if a not in gathered]
            k = math.prod(kernel_size[a] for a in gathered) * c_in
            n = math.prod(kernel_size[a] for a in scattered) * c_out
            extra_rows = math.prod(max(1.0, out_sizes[a] / in_sizes[a]) for a in gathered)
            cost = extra_rows * (k + 2 * n + 2 * k * n / _FLOPS_PER_FLOAT_MOVED)
            if best is None or cost < best[0]:
                best = (cost, tuple(sorted(gathered)))
    return best[1]


class SameConv(nn.Module):
    """A stride-1 'SAME' convolution with `nn.Conv`'s parameters (`kernel`
    `[*kernel_size, c_in, features]`, `bias` `[features]`) and initialisers.

    `implementation`: 'xla' (`lax.conv`), 'im2col' (patches + matmul, see
    `_conv_im2col`) or 'auto': im2col on CPU, XLA's convolution on GPU/TPU, where
    it is the fast one, unless `CONV_IMPLEMENTATION` / $VGAN_JAX_CONV force one (see
    `resolve_conv_implementation`). Both give the same numbers (tested to float
    rounding), so checkpoints move freely between them.

    `edge_padded_axes`: spatial axes (0 = the first, time for video) padded by
    repeating the edge instead of zeros. The generator pads time this way: with
    zeros, every stage sees "nothing happened" before the first and after the last
    frame, and stacked stages darken and blur the boundary frames.

    `dtype`: the compute dtype (e.g. `jnp.bfloat16`): input, kernel and bias are cast
    to it and the output has it; None keeps the input's. Parameters stay float32.
    """

    features: int
    kernel_size: Sequence[int]
    implementation: str = "auto"
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    use_bias: bool = True
    edge_padded_axes: Sequence[int] = ()
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel_size = tuple(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (*kernel_size, x.shape[-1], self.features))
        bias = (
            self.param("bias", nn.initializers.zeros_init(), (self.features,))
            if self.use_bias
            else None
        )
        if self.dtype is not None:
            x = x.astype(self.dtype)
        y = same_conv(x, kernel, self.implementation, self.edge_padded_axes)
        return y + bias.astype(y.dtype) if self.use_bias else y


# What `implementation="auto"` means, for every convolution of the library: None
# (the default) follows the backend, im2col on CPU and `lax.conv` on GPU/TPU; "xla" or
# "im2col" forces that path on any backend, "auto" is the same as None. The environment
# variable VGAN_JAX_CONV (xla | im2col | auto) is read when this module attribute is
# None. Both are read when a function is traced, so set them before the first call of
# a jitted step (a cached trace keeps the path it was traced with). Tests use it to run
# the accelerators' `lax.conv` path on CPU against the im2col path.
CONV_IMPLEMENTATION: str | None = None
CONV_IMPLEMENTATION_ENV = "VGAN_JAX_CONV"
CONV_IMPLEMENTATIONS = ("auto", "xla", "im2col")


def resolve_conv_implementation(implementation: str = "auto") -> str:
    """'xla' or 'im2col': `implementation` unless it is 'auto', then the forced one
    (`CONV_IMPLEMENTATION`, else $VGAN_JAX_CONV), else im2col on CPU, xla elsewhere."""
    if implementation == "auto":
        implementation = CONV_IMPLEMENTATION or os.environ.get(CONV_IMPLEMENTATION_ENV) or "auto"
    if implementation not in CONV_IMPLEMENTATIONS:
        raise ValueError(
            f"unknown convolution implementation {implementation!r} (layers.CONV_IMPLEMENTATION"
            f" or ${CONV_IMPLEMENTATION_ENV}); known: {', '.join(CONV_IMPLEMENTATIONS)}"
        )
    if implementation == "auto":
        return "im2col" if jax.default_backend() == "cpu" else "xla"
    return implementation


def same_conv(
    x: jnp.ndarray,
    kernel: jnp.ndarray,
    implementation: str = "auto",
    edge_padded_axes: Sequence[int] = (),
    padding: Sequence[tuple[int, int]] | None = None,
) -> jnp.ndarray:
    """The convolution of `SameConv` as a function of its kernel (see there):
    `x` `[b, *spatial, c_in]`, `kernel` `[*k, c_in, c_out]` -> `[b, *spatial, c_out]`
    ('SAME'), or with explicit per-axis `(low, high)` padding, `n + low + high - k + 1`
    positions per axis. Runs in `x`'s dtype (the kernel is cast to it), so a caller
    picks the compute dtype by casting its input."""
    kernel_size = kernel.shape[:-2]
    kernel = kernel.astype(x.dtype)
    implementation = resolve_conv_implementation(implementation)
    padding = _same_padding(kernel_size) if padding is None else list(padding)
    if implementation == "im2col":
        return _conv_im2col(x, kernel, padding, edge_padded_axes)
    if edge_padded_axes:
        edge = [p if a in edge_padded_axes else (0, 0) for a, p in enumerate(padding)]
        x = jnp.pad(x, [(0, 0), *edge, (0, 0)], mode="edge")
        padding = [(0, 0) if a in edge_padded_axes else p for a, p in enumerate(padding)]
    nd = len(kernel_size)
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (1,) * nd,
        padding,
        dimension_numbers=jax.lax.conv_dimension_numbers(x.shape, kernel.shape, _LAYOUTS[nd]),
    )


_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


class MaybeSpectralConv(nn.Module):
    """A stride-1 'SAME' convolution, spectrally normalised when asked.

    The spectral-norm power-iteration vector lives in the `spectral` collection,
    which the train step threads through `TrainState.d_state`. Power iteration runs
    on the float32 kernel; the normalised kernel is then cast to `dtype` (see
    `SameConv`) by the convolution.
    """

    features: int
    kernel_size: Sequence[int]
    spectral_norm: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool = False) -> jnp.ndarray:
        conv = SameConv(self.features, tuple(self.kernel_size), dtype=self.dtype)
        if self.spectral_norm:
            return nn.SpectralNorm(conv, collection_name="spectral")(x, update_stats=update_stats)
        return conv(x)


class MaybeSpectralDense(nn.Module):
    """A dense layer, spectrally normalised when asked (see `MaybeSpectralConv`);
    its matmul runs in `dtype` (None: the input's)."""

    features: int
    spectral_norm: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool = False) -> jnp.ndarray:
        dense = nn.Dense(self.features, dtype=self.dtype)
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
    """Learned 2x upsampling computed at the low resolution: a stride-1 conv to
    `features * prod(factors)` channels, then depth-to-space.
    `[b, *spatial, c_in]` -> `[b, *(s * f), features]`.

    `mode='resize'` (the default): one shared 3-tap kernel, applied as if after
    nearest-neighbour upsampling (Odena et al. 2016's resize-convolution), computed at
    the low resolution from each sub-pixel's 2-tap windows (`resize_upsample`: 8/27
    of a 3x3x3 sub-pixel convolution's multiplies).
    `mode='subpixel'`: an independent kernel per sub-pixel position (Shi et al.
    2016), ICNR-initialised. Nothing ties sub-pixel kernels together, so with Adam
    they drift apart and paint a period-2 lattice (in time: even/odd frame flicker)
    within ~100 steps; resize mode can't paint one, having a single kernel.

    The bias is one per output feature, added after depth-to-space, for the same
    reason. `dtype`: compute dtype of the convolution and of the output (None: the
    input's); parameters stay float32."""

    features: int
    factors: Sequence[int]
    kernel: int = 3
    use_bias: bool = True
    mode: str = "resize"
    edge_padded_axes: Sequence[int] = ()  # see `SameConv`
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        block = math.prod(self.factors)
        kernel_size = (self.kernel,) * len(self.factors)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        if self.mode == "resize":
            kernel = self.param(
                "kernel", _LECUN_NORMAL, (*kernel_size, x.shape[-1], self.features)
            )
            x = resize_upsample(x, kernel, self.factors, edge_padded_axes=self.edge_padded_axes)
        else:
            x = SameConv(
                self.features * block,
                kernel_size,
                kernel_init=icnr(block),
                use_bias=False,
                edge_padded_axes=self.edge_padded_axes,
                dtype=self.dtype,
            )(x)
        x = depth_to_space(x, self.factors)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
            x = x + bias.astype(x.dtype)
        return x


UPSAMPLING_MODES = ("resize", "subpixel")


class Downsample(nn.Module):
    """Learned downsampling: space-to-depth, then a stride-1 conv.
    `[b, *spatial, c_in]` -> `[b, *(s // f), features]`.

    With factor 2 and the default 2-tap kernel this is exactly a 4-tap, stride-2
    convolution (the DCGAN critic's layer), at the same FLOPs. `dtype`: see `SameConv`."""

    features: int
    factors: Sequence[int]
    kernel: int = 2
    spectral_norm: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, update_stats: bool = False) -> jnp.ndarray:
        x = space_to_depth(x, self.factors)
        return MaybeSpectralConv(
            self.features, (self.kernel,) * len(self.factors), self.spectral_norm, self.dtype
        )(x, update_stats)


# Running-average momentum of the generator's BatchNorm (`sampling.standing_statistics`
# inverts one update with it).
BATCH_NORM_MOMENTUM = 0.99


def normalization(kind: str, channels: int, train: bool, dtype: Any = None) -> nn.Module | None:
    """Generator normalisation.

    'batch' (the default, as in DCGAN): BatchNorm whose training statistics are
    averaged over the mesh's `data` axis, i.e. over the global batch, so 1 and N
    devices give the same numbers. Subtracting the batch mean at every position is
    what keeps a generator from collapsing onto one z-independent pattern: with the
    per-sample norms below, the default preset collapsed within 250 steps. Sampling
    (`train=False`) uses the running averages, so a sample never depends on the
    rest of its batch. 'group' / 'layer' normalise each sample alone; 'none'.

    `dtype`: the output dtype (None: inferred, float32). Flax computes the mean and
    variance in at least float32 whatever it is, and keeps the running averages
    float32, so a bfloat16 generator's statistics are float32.
    """
    if kind == "batch":
        return nn.BatchNorm(
            use_running_average=not train,
            momentum=BATCH_NORM_MOMENTUM,
            axis_name=DATA_AXIS if train else None,
            dtype=dtype,
        )
    if kind == "group":
        # Up to 16 groups; gcd keeps it a divisor of any channel count.
        return nn.GroupNorm(num_groups=math.gcd(channels, 16), dtype=dtype)
    if kind == "layer":
        return nn.LayerNorm(dtype=dtype)
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
      x: `[local_batch, *spatial, channels]`, float32 or a reduced compute dtype.
      group_size: samples per group (reduced to divide the global batch).
      axis_name: the mesh axis the batch is split over, or None outside shard_map.

    Returns:
      `[local_batch, *spatial, channels + 1]`, `x`'s dtype; the statistic itself is
      computed in float32 (a bfloat16 variance of near-equal fakes would round to 0).
    """
    local = x.shape[0]
    full = jax.lax.all_gather(x, axis_name, axis=0, tiled=True) if axis_name else x
    full = full.astype(jnp.float32)
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
    return jnp.concatenate([x, feature.astype(x.dtype)], axis=-1)


def bias_before(kind: str) -> bool:
    """Whether a layer feeding this norm needs a bias: BatchNorm subtracts it again,
    and its gradient is then pure rounding noise, which Adam would blow up to full
    steps (and which differs between 1 and N devices)."""
    return kind != "batch"


def norm_act(x: jnp.ndarray, kind: str, train: bool, dtype: Any = None) -> jnp.ndarray:
    """Normalisation then LeakyReLU(0.2), as in the DCGAN generator stages.

    With `kind='batch'` and `train=True` this must run inside `shard_map` over the
    `data` axis (the train step does). `dtype`: see `normalization`."""
    norm = normalization(kind, x.shape[-1], train, dtype)
    if norm is not None:
        x = norm(x)
    return nn.leaky_relu(x, 0.2)


def blur_space(x: jnp.ndarray) -> jnp.ndarray:
    """A fixed [1, 2, 1] / 4 blur along both spatial axes, edges replicated.

    `x`: `[batch, (time,) H, W, C]`, any float dtype -> same shape and dtype. Its
    response is zero at the Nyquist frequency: a single-pixel dot becomes a 3x3 blob
    and a one-pixel checkerboard vanishes, whatever the layers before it learn, so a
    generator that ends with it emits band-limited frames, as block-averaged data is.
    """
    for axis in (x.ndim - 3, x.ndim - 2):
        padding = [(0, 0)] * x.ndim
        padding[axis] = (1, 1)
        padded = jnp.pad(x, padding, mode="edge")
        size = x.shape[axis]
        taps = [jax.lax.slice_in_dim(padded, i, i + size, axis=axis) for i in range(3)]
        x = 0.25 * taps[0] + 0.5 * taps[1] + 0.25 * taps[2]
    return x


REMAT_MODES = ("none", "stage")


def stage(fn: Callable[..., Any], remat: str) -> Callable[..., Any]:
    """`fn(module, x) -> y`, one generator or critic stage, rematerialised when `remat`
    is 'stage' (`nn.remat`: the backward pass recomputes the stage's intermediates
    from its input instead of keeping them; memory per stage drops to its input, for
    about one more forward pass of FLOPs). 'none': `fn` itself.

    `fn` builds its layers inside (they become children of `module` with the names
    they would have without remat, so checkpoints are interchangeable); pass every
    Python value it needs (train flags, sizes) through its closure, not as arguments,
    so none of them is traced.
    """
    if remat == "none":
        return fn
    if remat == "stage":
        return nn.remat(fn)
    raise ValueError(f"unknown remat mode {remat!r}; known: {', '.join(REMAT_MODES)}")
