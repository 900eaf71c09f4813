"""A layered generator: objects drawn once per clip and moved by a motion code.

LR-GAN (Yang, Kannan, Batra, Parikh 2017, "LR-GAN: Layered Recursive Generative
Adversarial Networks for Image Generation") builds an image as a background plus
foreground layers, each an appearance, a mask and an affine transform (a spatial
transformer, Jaderberg et al. 2015), trained as a GAN. Lifted to video the way
MoCoGAN (Tulyakov et al. 2018) splits content from motion, and as VGAN (Vondrick et
al. 2016) keeps a static background:

    z = [z_1; ...; z_L; h_0]                 per layer a content code, and the GRU's start
    sprite_l, alpha_l = G_I(z_l)             a 2D DCGAN image generator, once per clip
    background = G_B(z)                      a 2D DCGAN image generator, once per clip
    h_t = GRU(h_{t-1}, eps_t)                MoCoGAN's motion codes (`frame_noise`)
    v_t = tanh(Dense(h_t))                   per frame, per layer: a velocity
    p_t = reflect(p_1 + v_1 + ... + v_(t-1)) where the layer is; p_1 = sigmoid(Dense(h_0))
    frame_t = over(translate(sprite_l, alpha_l; p_t^l) for l = 1..L, background)

What a layer draws is the same in every frame, so an object keeps its identity by
construction, and the video critic only has to teach motion; the image generator
draws one centred object per layer, the easiest thing to ask of a GAN, instead of
several objects anywhere in the frame. It fits videos of rigidly moving objects over a
still background (Moving MNIST: two digits bouncing in a black frame), not camera
motion or deformation; for those use `dcgan`, `mocogan` or `dvdgan`.

Rendering: a layer is `size x size` pixels drawn at twice the frame's resolution (so
it covers half the frame's width), placed on a `2 size x 2 size` canvas at a
continuous offset (bilinear: a hat function of the offset) and box-filtered 2x down
to the frame, as block-averaged data is. Translation and filter are one
`[size, size]` matrix per axis, so a layer is moved by two small matmuls and the
offsets get exact gradients (no gathers). Layers are composited front to back with
the "over" operator on premultiplied colour, in [-1, 1] (a convex combination, so the
frame stays in [-1, 1]).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgan_jax.models.conditioning import sum_objects
from vgan_jax.models.dcgan import ImageGenerator
from vgan_jax.models.mocogan import MotionGRU

# The largest distance a layer moves per frame, as a fraction of the distance it can
# travel across the frame.
MAX_SPEED = 0.5


def reflect(x: jnp.ndarray) -> jnp.ndarray:
    """Folds positions into [0, 1] as a wall reflects a moving point (a triangle wave:
    0.2 -> 0.2, 1.3 -> 0.7, -0.1 -> 0.1); piecewise linear, so the gradient is +-1.
    A layer moving at constant speed bounces off the frame's edges instead of leaving."""
    return 1.0 - jnp.abs(1.0 - jnp.mod(x, 2.0))


def placement_matrix(offset: jnp.ndarray, size: int) -> jnp.ndarray:
    """How a `size`-pixel row of a layer lands on a `size`-pixel row of the frame.

    The layer's pixel j sits at canvas position `offset + j` of a `2 size` canvas
    (bilinear between canvas pixels); frame pixel p is the mean of canvas pixels
    2p and 2p + 1.

    Args:
      offset: float32 `[...]`, in canvas pixels, in `[0, size]` (the layer stays inside).

    Returns:
      float32 `[..., size (frame p), size (layer j)]`: `frame = M @ layer` along one axis.
    """
    canvas = jnp.arange(2 * size, dtype=jnp.float32)
    layer = jnp.arange(size, dtype=jnp.float32)
    distance = canvas[:, None] - layer[None, :] - offset[..., None, None]
    hat = jnp.maximum(0.0, 1.0 - jnp.abs(distance))  # [..., 2 size, size]
    return 0.5 * (hat[..., 0::2, :] + hat[..., 1::2, :])


def snapped_placement_matrix(offset: jnp.ndarray, size: int) -> jnp.ndarray:
    """`placement_matrix` at the offset rounded to whole canvas pixels, with the
    gradient of the unrounded one (straight-through).

    Bilinear placement at a fractional offset blurs a layer, by an amount that changes
    from frame to frame as it moves; data that pastes its objects at whole pixels
    (Moving MNIST: at 64x64, the canvas's resolution) never does, and a video critic
    can tell the two apart by that flicker alone. Rounded, a layer is copied exactly
    (then box-filtered like the data); the motion still learns from the bilinear
    matrix's gradient with respect to the offset.
    """
    smooth = placement_matrix(offset, size)
    exact = placement_matrix(jax.lax.stop_gradient(jnp.round(offset)), size)
    return smooth + jax.lax.stop_gradient(exact - smooth)


class LayeredGenerator(nn.Module):
    """Call: `z` float32 `[batch, num_layers * latent_dim + motion_dim]`, `frame_noise`
    float32 `[batch, frames, motion_dim]`, `labels` int32 `[batch]` or `[batch,
    num_layers]` (only with `num_classes > 0`: a learned label embedding beside every
    layer's content code and the background's; with one label per layer, layer l
    draws class `labels[:, l]`) -> video float32 `[batch, frames, size,
    size, channels]` in [-1, 1]. `frames` may be changed at sampling
    (`clone(frames=...)`): the GRU is causal and no parameter depends on it.

    `width`, `num_upsamples`, `norm`, `upsample`, `dtype`, `remat`: the 2D image
    generators' (see `dcgan.ImageGenerator`); the GRU, placement and compositing run
    in float32.
    """

    frames: int
    size: int
    channels: int
    latent_dim: int
    num_layers: int = 2
    motion_dim: int = 10
    width: int = 32
    num_upsamples: int = 3
    norm: str = "batch"
    upsample: str = "resize"
    num_classes: int = 0
    composite: str = "over"
    snap: bool = False
    dtype: Any = None
    remat: str = "none"

    def image_generator(self, channels: int, name: str) -> ImageGenerator:
        return ImageGenerator(
            self.size,
            channels,
            self.width,
            self.num_upsamples,
            self.norm,
            self.upsample,
            self.dtype,
            self.remat,
            name=name,
        )

    @nn.compact
    def __call__(
        self,
        z: jnp.ndarray,
        frame_noise: jnp.ndarray,
        labels: jnp.ndarray | None = None,
        train: bool = False,
    ) -> jnp.ndarray:
        batch, frames = frame_noise.shape[:2]
        layers, size = self.num_layers, self.size
        if z.shape[-1] != layers * self.latent_dim + self.motion_dim:
            raise ValueError(
                f"the layered generator expects z [batch, {layers * self.latent_dim}"
                f" + {self.motion_dim}], got {z.shape}"
            )
        codes = z[:, : layers * self.latent_dim].reshape(batch, layers, self.latent_dim)
        h0, background_code = z[:, layers * self.latent_dim :], z
        if self.num_classes:
            if labels is None:
                raise ValueError("a conditional layered generator needs labels")
            # A learned embedding beside every content code, on z's scale (N(0, 1) init,
            # as `conditioning.LabelConcatGenerator`'s): a 10-d one-hot code beside 100
            # noise dimensions (MoCoGAN's z_A) was ignored in a one-digit run.
            # One label per clip ([batch]) goes to every layer; one per object ([batch,
            # layers], e.g. each digit's class) to its own layer, and the background
            # sees their sum (it does not know which layer is which).
            if labels.ndim == 2 and labels.shape[1] not in (1, layers):
                raise ValueError(
                    f"the layered generator takes one label per clip or one per layer "
                    f"({layers}), got labels {labels.shape}"
                )
            embedding = nn.Embed(
                self.num_classes,
                self.latent_dim,
                embedding_init=nn.initializers.normal(1.0),
                name="label_embedding",
            )(labels)
            per_layer = embedding if labels.ndim == 2 else embedding[:, None]
            codes = jnp.concatenate(
                [codes, jnp.broadcast_to(per_layer, (batch, layers, self.latent_dim))], axis=-1
            )
            background_code = jnp.concatenate([z, sum_objects(embedding, labels)], axis=-1)
        codes = codes.reshape(batch * layers, -1)
        # Appearance and coverage of each layer: colour in [-1, 1], alpha in [0, 1].
        drawn = self.image_generator(self.channels + 1, "sprites")(codes, train)
        drawn = drawn.reshape(batch, layers, size, size, self.channels + 1)
        alpha = 0.5 * (drawn[..., -1:] + 1.0)  # tanh -> [0, 1]
        premultiplied = jnp.concatenate([drawn[..., :-1] * alpha, alpha], axis=-1)
        background = self.image_generator(self.channels, "background")(background_code, train)

        motion = MotionGRU(self.motion_dim, name="motion")(h0, frame_noise)
        start = nn.sigmoid(nn.Dense(2 * layers, name="start")(h0)).reshape(batch, 1, layers, 2)
        velocity = MAX_SPEED * nn.tanh(nn.Dense(2 * layers, name="velocity")(motion))
        velocity = velocity.reshape(batch, frames, layers, 2)
        # Frame t sits where the velocities of the frames before it took the layer.
        travelled = jnp.cumsum(velocity, axis=1) - velocity
        offset = size * reflect(start + travelled)  # [b, t, l, 2], in [0, size]
        place = snapped_placement_matrix if self.snap else placement_matrix
        rows = place(offset[..., 0], size)  # [b, t, l, size, size]
        columns = place(offset[..., 1], size)
        placed = jnp.einsum("btlpj,bljkc,btlqk->btlpqc", rows, premultiplied, columns)

        return composite_layers(placed, background, self.composite)


COMPOSITES = ("over", "max")


def composite_layers(placed: jnp.ndarray, background: jnp.ndarray, mode: str) -> jnp.ndarray:
    """The frame from its placed layers and the background.

    Args:
      placed: float32 `[b, t, layers, h, w, c + 1]`, premultiplied colour in [-1, 1]
        and alpha in [0, 1] (0 outside a layer's sprite).
      background: float32 `[b, h, w, c]` in [-1, 1].
      mode: 'over': front (layer 0) to back, each layer shows where the ones before
        it let light (objects occlude each other). 'max': each layer over black, then
        the per-pixel maximum of the layers and the background, the way Moving MNIST
        combines its digits (no occlusion: a sprite's opaque black surround can't hide
        the other digit, which 'over' lets a generator do).

    Returns:
      float32 `[b, t, h, w, c]` in [-1, 1].
    """
    colour, cover = placed[..., :-1], placed[..., -1:]
    if mode == "max":
        # A layer over black: premultiplied colour + (1 - alpha) * (-1).
        over_black = colour + cover - 1.0
        return jnp.maximum(jnp.max(over_black, axis=2), background[:, None])
    if mode != "over":
        raise ValueError(f"unknown layer composite {mode!r}; known: {', '.join(COMPOSITES)}")
    video = jnp.zeros_like(colour[:, :, 0])
    transmittance = jnp.ones_like(cover[:, :, 0])
    for layer in range(placed.shape[2]):
        video = video + transmittance * colour[:, :, layer]
        transmittance = transmittance * (1.0 - cover[:, :, layer])
    return video + transmittance * background[:, None]
