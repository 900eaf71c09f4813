"""Model registry: name -> builder of a (generator, discriminator) pair.

This is the one place where config fields become model keyword arguments; the
modules themselves never see the config. To add a model, write its file (one per
paper) and register a builder here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from vgan_jax.errors import VganError
from vgan_jax.models.conditioning import LabelConcatGenerator
from vgan_jax.models.critics import MultiHeadCritic
from vgan_jax.models.dcgan import DCGANGenerator, plan_upsampling
from vgan_jax.models.dvdgan import DVDGANCritic, DVDGANGenerator
from vgan_jax.models.layered import COMPOSITES, LayeredGenerator
from vgan_jax.models.layers import GENERATOR_NORMS, REMAT_MODES, UPSAMPLING_MODES
from vgan_jax.models.mocogan import MoCoGANGenerator
from vgan_jax.models.tgan import TGANGenerator
from vgan_jax.models.vgan import VGANGenerator

TIME_PADDINGS = ("zeros", "edge")
# `train.compute_dtype` -> the modules' `dtype`: None for float32, so a float32 model
# runs exactly the code it ran before mixed precision existed.
COMPUTE_DTYPES: dict[str, Any] = {"float32": None, "bfloat16": jnp.bfloat16}


class VideoShape(NamedTuple):
    """Shape of one video clip: `[frames, size, size, channels]`."""

    frames: int
    size: int
    channels: int

    def as_array_shape(self) -> tuple[int, int, int, int]:
        """`(T, H, W, C)`."""
        return (self.frames, self.size, self.size, self.channels)


class ModelPair(NamedTuple):
    """What a model contributes to training: two Flax modules.

    generator: `z [batch, latent_dim]` -> video `[batch, T, H, W, C]` in [-1, 1];
      may `sow` scalar auxiliary losses into the `losses` collection.
    discriminator: `(video, update_stats, batch_axis, train)` -> `{head name: logits
      [batch, ...]}` (the loss means over every logit of a head); may keep
      spectral-norm state in the `spectral` collection and draw from the `frames`
      RNG stream (`critics.FRAMES_RNG`) and, with `train=True`, the `dropout`
      stream (`critics.DROPOUT_RNG`).
    num_classes: > 0 for a class-conditional pair: both modules then also take
      `labels=` int32 `[batch]` (or `[batch, K]`, one class per object) in
      `[0, num_classes)`.
    frame_noise_dim: > 0 when the generator also takes `frame_noise=` float32
      `[batch, frames, frame_noise_dim]` (MoCoGAN's per-frame GRU input).
    variable_length: the generator can make any number of frames with the same
      parameters (`generator.clone(frames=n)`): recurrent models, sampled longer than
      trained.
    """

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    num_classes: int = 0
    frame_noise_dim: int = 0
    variable_length: bool = False


def critic_width(model_config) -> int:
    """Channels of the critic's first stage: `model.d_width`, or `model.width` if 0."""
    return model_config.d_width or model_config.width


def critic_fields(model_config) -> dict:
    """The `critics.Critic` fields every model's critic takes from `model_config`."""
    return dict(
        width=critic_width(model_config),
        num_downsamples=model_config.num_upsamples,
        spectral_norm=model_config.d_spectral_norm,
        minibatch_std_group=model_config.d_minibatch_std_group,
        dropout=model_config.d_dropout,
        num_classes=model_config.num_classes,
    )


def _discriminator(model_config) -> MultiHeadCritic:
    return MultiHeadCritic(
        **critic_fields(model_config),
        image_frames=model_config.d_image_frames,
        image_stem=model_config.d_image_stem,
        image_width=model_config.d_image_width,
    )


def _conditional(generator: nn.Module, model_config) -> nn.Module:
    """`generator` taking `labels=` when `model.num_classes` > 0: an embedding of the
    label concatenated to z (`conditioning.LabelConcatGenerator`)."""
    if not model_config.num_classes:
        return generator
    return LabelConcatGenerator(
        generator, num_classes=model_config.num_classes, embed_dim=model_config.latent_dim
    )


def _pair(generator: nn.Module, model_config, **fields) -> ModelPair:
    """A pair with the shared critic (unless given), conditional when asked for."""
    critic = fields.pop("critic", None) or _discriminator(model_config)
    return ModelPair(
        _conditional(generator, model_config),
        critic,
        fields.pop("latent_dim", model_config.latent_dim),
        num_classes=model_config.num_classes,
        **fields,
    )


def _generator_kwargs(model_config, shape: VideoShape) -> dict:
    """Keyword arguments every generator takes."""
    return dict(
        frames=shape.frames,
        size=shape.size,
        channels=shape.channels,
        width=model_config.width,
        num_upsamples=model_config.num_upsamples,
        norm=model_config.g_norm,
        upsample=model_config.g_upsample,
        time_padding=model_config.g_time_padding,
    )


def _build_dcgan(model_config, shape: VideoShape) -> ModelPair:
    generator = DCGANGenerator(
        **_generator_kwargs(model_config, shape),
        output_conv=model_config.g_output_conv,
        output_blur=model_config.g_output_blur,
    )
    return _pair(generator, model_config)


def _build_vgan(model_config, shape: VideoShape) -> ModelPair:
    generator = VGANGenerator(
        **_generator_kwargs(model_config, shape), mask_l1_weight=model_config.mask_l1_weight
    )
    return _pair(generator, model_config)


def _build_tgan(model_config, shape: VideoShape) -> ModelPair:
    kwargs = _generator_kwargs(model_config, shape)
    del kwargs["time_padding"]  # no 3D convolutions in the generator
    generator = TGANGenerator(**kwargs, latent_dim=model_config.latent_dim)
    return _pair(generator, model_config)


def _build_mocogan(model_config, shape: VideoShape) -> ModelPair:
    kwargs = _generator_kwargs(model_config, shape)
    del kwargs["time_padding"]  # a per-frame 2D generator
    generator = MoCoGANGenerator(
        **kwargs,
        latent_dim=model_config.latent_dim,
        motion_dim=model_config.motion_dim,
        num_classes=model_config.num_classes,
    )
    # MoCoGAN's video critic strides (1, 2, 2): time is never downsampled.
    critic = _discriminator(model_config).clone(time_downsample=False)
    return ModelPair(
        generator,
        critic,
        model_config.latent_dim + model_config.motion_dim,  # [z_C; h_0]
        num_classes=model_config.num_classes,
        frame_noise_dim=model_config.motion_dim,
        variable_length=True,
    )


def _build_dvdgan(model_config, shape: VideoShape) -> ModelPair:
    generator = DVDGANGenerator(
        frames=shape.frames,
        size=shape.size,
        channels=shape.channels,
        width=model_config.width,
        num_upsamples=model_config.num_upsamples,
        num_classes=model_config.num_classes,
    )
    critic = DVDGANCritic(**critic_fields(model_config), spatial_frames=model_config.d_image_frames)
    return ModelPair(
        generator,
        critic,
        model_config.latent_dim,
        num_classes=model_config.num_classes,
        variable_length=True,
    )


def _build_layered(model_config, shape: VideoShape) -> ModelPair:
    kwargs = _generator_kwargs(model_config, shape)
    del kwargs["time_padding"]  # 2D generators only
    generator = LayeredGenerator(
        **kwargs,
        latent_dim=model_config.latent_dim,
        num_layers=model_config.num_layers,
        motion_dim=model_config.motion_dim,
        num_classes=model_config.num_classes,
        composite=model_config.layer_composite,
        snap=model_config.layer_snap,
    )
    return ModelPair(
        generator,
        _discriminator(model_config),
        model_config.num_layers * model_config.latent_dim + model_config.motion_dim,
        num_classes=model_config.num_classes,
        frame_noise_dim=model_config.motion_dim,
        variable_length=True,
    )


_BUILDERS: dict[str, Callable[..., ModelPair]] = {
    "dcgan": _build_dcgan,
    "vgan": _build_vgan,
    "tgan": _build_tgan,
    "mocogan": _build_mocogan,
    "dvdgan": _build_dvdgan,
    "layered": _build_layered,
}


def known_models() -> list[str]:
    return sorted(_BUILDERS)


def check_compute_dtype(name: str) -> Any:
    """The modules' `dtype` for `train.compute_dtype` `name` (None for float32)."""
    if name not in COMPUTE_DTYPES:
        raise VganError(
            f"unknown train.compute_dtype {name!r}; known: {', '.join(COMPUTE_DTYPES)}"
        )
    return COMPUTE_DTYPES[name]


def _with_precision(module: nn.Module, role: str, model: str, dtype: Any, remat: str):
    """`module` with its `dtype` and `remat` fields set (every generator and critic
    should have both); a module without one is refused only if it was asked for."""
    fields = {f.name for f in dataclasses.fields(module)}
    updates = {}
    for field, value, default in (("dtype", dtype, None), ("remat", remat, "none")):
        if field in fields:
            if getattr(module, field) != value:
                updates[field] = value
        elif value != default:
            setting = "train.compute_dtype" if field == "dtype" else "model.remat"
            raise VganError(
                f"model {model!r}: its {role} has no {field!r} field, so {setting} can't be "
                f"changed from its default for it"
            )
    return module.clone(**updates) if updates else module


def check_model_config(model_config, shape: VideoShape) -> None:
    """Raises `VganError` for anything the model can't be built with; cheap, no tracing."""
    if model_config.name not in _BUILDERS:
        raise VganError(
            f"unknown model {model_config.name!r}; known models: {', '.join(known_models())}"
        )
    if model_config.g_norm not in GENERATOR_NORMS:
        raise VganError(
            f"unknown model.g_norm {model_config.g_norm!r}; known: {', '.join(GENERATOR_NORMS)}"
        )
    if model_config.d_image_frames < 0:
        raise VganError(
            f"model.d_image_frames must be >= 0 (0: no image head), got "
            f"{model_config.d_image_frames}"
        )
    if model_config.g_upsample not in UPSAMPLING_MODES:
        raise VganError(
            f"unknown model.g_upsample {model_config.g_upsample!r}; known: "
            f"{', '.join(UPSAMPLING_MODES)}"
        )
    if not 0.0 <= model_config.d_dropout < 1.0:
        raise VganError(
            f"model.d_dropout must be in [0, 1) (0: no dropout), got {model_config.d_dropout}"
        )
    if model_config.g_time_padding not in TIME_PADDINGS:
        raise VganError(
            f"unknown model.g_time_padding {model_config.g_time_padding!r}; known: "
            f"{', '.join(TIME_PADDINGS)}"
        )
    remat = model_config.get("remat") or "none"  # --config.model.remat=none parses as None
    if remat not in REMAT_MODES:
        raise VganError(f"unknown model.remat {remat!r}; known: {', '.join(REMAT_MODES)}")
    for field in ("latent_dim", "width", "motion_dim"):
        if model_config[field] < 1:
            raise VganError(f"model.{field} must be >= 1, got {model_config[field]}")
    if model_config.num_classes < 0:
        raise VganError(
            f"model.num_classes must be >= 0 (0: unconditional), got {model_config.num_classes}"
        )
    if model_config.name == "dvdgan" and model_config.d_image_frames < 1:
        raise VganError(
            "dvdgan's spatial critic judges model.d_image_frames frames per clip (k, 8 in "
            "the paper); set --config.model.d_image_frames=8"
        )
    if model_config.g_output_conv < 0:
        raise VganError(
            f"model.g_output_conv must be >= 0 (0: off), got {model_config.g_output_conv}"
        )
    if model_config.d_width < 0:
        raise VganError(f"model.d_width must be >= 0 (0: model.width), got {model_config.d_width}")
    if model_config.d_image_width < 0:
        raise VganError(
            f"model.d_image_width must be >= 0 (0: the critic's width), got "
            f"{model_config.d_image_width}"
        )
    if model_config.num_layers < 1:
        raise VganError(f"model.num_layers must be >= 1, got {model_config.num_layers}")
    if model_config.layer_composite not in COMPOSITES:
        raise VganError(
            f"unknown model.layer_composite {model_config.layer_composite!r}; known: "
            f"{', '.join(COMPOSITES)}"
        )
    per_clip = model_config.labels_per_clip
    if per_clip < 1:
        raise VganError(f"model.labels_per_clip must be >= 1, got {per_clip}")
    if model_config.name == "layered" and per_clip > 1 and per_clip != model_config.num_layers:
        raise VganError(
            f"layered draws one object per layer from its label: model.labels_per_clip "
            f"({per_clip}) must be 1 or model.num_layers ({model_config.num_layers})"
        )
    if shape.channels not in (1, 3):
        raise VganError(f"data.channels must be 1 or 3, got {shape.channels}")
    plan_upsampling(shape.frames, shape.size, model_config.num_upsamples)


def build_models(
    model_config, shape: VideoShape, compute_dtype: str = "float32"
) -> ModelPair:
    """The (generator, discriminator) pair named by `model_config.name` for `shape`.

    `compute_dtype` ('float32' | 'bfloat16', `train.compute_dtype`) and
    `model_config.remat` ('none' | 'stage') become both modules' `dtype` and `remat`
    fields; parameters are float32 either way, so the parameter trees (and
    checkpoints) do not depend on them."""
    check_model_config(model_config, shape)
    dtype = check_compute_dtype(compute_dtype)
    remat = model_config.get("remat") or "none"  # --config.model.remat=none parses as None
    pair = _BUILDERS[model_config.name](model_config, shape)
    generator = pair.generator
    if isinstance(generator, LabelConcatGenerator):  # the wrapped module computes
        inner = _with_precision(generator.generator, "generator", model_config.name, dtype, remat)
        generator = generator.clone(generator=inner)
    else:
        generator = _with_precision(generator, "generator", model_config.name, dtype, remat)
    return pair._replace(
        generator=generator,
        discriminator=_with_precision(
            pair.discriminator, "discriminator", model_config.name, dtype, remat
        ),
    )
