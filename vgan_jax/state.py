"""What is trained: the static `Gan` definition and the `TrainState` pytree.

`Gan` holds what never changes during a run (modules, optimizers, loss choice);
`TrainState` holds every array that does, so `train_step(state, batch)` is pure and
one Orbax checkpoint of the state resumes a run exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from vgan_jax.augment import parse_policy
from vgan_jax.errors import VganError
from vgan_jax.losses import AdversarialLoss, get_loss
from vgan_jax.models import ModelPair, VideoShape, build_models
from vgan_jax.models.critics import FRAMES_RNG
from vgan_jax.parallel import replicated

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training. Replicated over the mesh.

    step: int32 scalar, optimisation steps taken.
    rng: uint32 `[2]` PRNG key; per-step keys are `fold_in(rng, step)`.
    g_params, d_params: generator / discriminator parameters (float32).
    g_opt_state, d_opt_state: their Optax states.
    ema_params: exponential moving average of `g_params`, used for sampling.
    g_state: non-parameter generator collections (BatchNorm running statistics).
    d_state: non-parameter discriminator collections (spectral-norm vectors).
    augment_p: float32 scalar, the augmentation probability (ADA's p) the next step
      uses; moved by the step when `train.ada_target` > 0, else `train.augment_p`
      (0 without augmentation).
    """

    step: jax.Array
    rng: jax.Array
    g_params: PyTree
    d_params: PyTree
    g_opt_state: PyTree
    d_opt_state: PyTree
    ema_params: PyTree
    g_state: PyTree
    d_state: PyTree
    augment_p: jax.Array


@dataclasses.dataclass(frozen=True)
class Gan:
    """The static half of training: modules, optimizers and loss settings."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    video_shape: VideoShape
    g_optimizer: optax.GradientTransformation
    d_optimizer: optax.GradientTransformation
    loss: AdversarialLoss
    r1_gamma: float
    ema_decay: float
    # Lazy R1: the penalty runs every r1_every steps, weighted by r1_every.
    r1_every: int = 1
    # Weight of MSGAN's mode-seeking term in the G loss (0: off), see losses.mode_seeking_loss.
    mode_seeking: float = 0.0
    # Weight of AC-GAN's classification term (0: off; conditional critics only), see
    # conditioning.AuxiliaryClassifier: the critic's on real clips, the generator's on fakes.
    class_loss: float = 0.0
    # Augmentation (see vgan_jax.augment): transform names in application order
    # (() = off), the fixed per-transform probability, and ADA's target / speed.
    augment: tuple[str, ...] = ()
    augment_p: float = 1.0
    ada_target: float = 0.0
    ada_kimg: float = 2.0
    # What the model takes besides z (see `ModelPair`): labels when num_classes > 0,
    # per-frame noise when frame_noise_dim > 0; variable_length: sampled at any length.
    num_classes: int = 0
    # Classes per clip (one per object): labels are int32 [batch] when 1, else [batch, K].
    labels_per_clip: int = 1
    frame_noise_dim: int = 0
    variable_length: bool = False
    # TGAN's singular value clipping of the critic every N steps (0: off), see vgan_jax.svc.
    d_singular_value_clip_every: int = 0

    def generator_inputs(self, labels: jax.Array, frame_noise: jax.Array) -> dict:
        """The keyword arguments the generator takes besides z: `labels` int32 `[batch]`
        (or `[batch, labels_per_clip]`) for a conditional model, `frame_noise` float32
        `[batch, frames, dim]` for one with per-frame noise; arguments the model does
        not take are dropped."""
        kwargs = {}
        if self.num_classes:
            kwargs["labels"] = labels
        if self.frame_noise_dim:
            kwargs["frame_noise"] = frame_noise
        return kwargs

    def critic_inputs(self, labels: jax.Array) -> dict:
        """`{"labels": labels}` for a conditional critic, else `{}`."""
        return {"labels": labels} if self.num_classes else {}

    @property
    def adaptive(self) -> bool:
        """Whether the step adapts `TrainState.augment_p` (ADA)."""
        return bool(self.augment) and self.ada_target > 0

    def initial_augment_p(self) -> float:
        """The p a run starts with, and keeps unless ADA moves it: `augment_p` with a
        fixed p, 0 with ADA (as StyleGAN2-ADA) and 0 without augmentation."""
        return self.augment_p if self.augment and not self.adaptive else 0.0


def decay_mask(params: PyTree) -> PyTree:
    """True for the parameters weight decay applies to: those with ndim >= 2 (dense and
    convolution kernels, any weight matrix). 1-D parameters (BatchNorm/GroupNorm/
    LayerNorm scales and biases, every bias) are never decayed: pulling a norm's scale
    towards 0 shrinks its layer's output, which is regularisation of the wrong kind."""
    return jax.tree_util.tree_map(lambda p: jnp.ndim(p) > 1, params)


def learning_rate_schedule(lr: float, steps: int, decay_start: float) -> optax.Schedule:
    """`lr` until `decay_start * steps`, then linearly down to 0 at `steps`.

    Always a schedule, even when constant (`decay_start >= 1`): the optimizer state then
    has the same tree (a step count) whatever the setting, so a run can change it on
    resume. The count lives in the optimizer state, so resume stays exact.
    """
    if decay_start >= 1.0:
        return optax.constant_schedule(lr)
    start = int(round(decay_start * steps))
    return optax.join_schedules(
        [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, max(steps - start, 1))],
        boundaries=[start],
    )


def make_optimizer(
    lr: float | optax.Schedule, beta1: float, beta2: float, weight_decay: float
):
    """Adam, or AdamW (decoupled decay on `decay_mask`'s parameters) when weight_decay > 0.

    The two have different optimizer-state trees, so a run can't switch between them on
    resume (`train.check_resumable` refuses); changing a non-zero decay is fine.
    """
    if weight_decay:
        return optax.adamw(lr, b1=beta1, b2=beta2, weight_decay=weight_decay, mask=decay_mask)
    return optax.adam(lr, b1=beta1, b2=beta2)


def video_shape_from_config(config) -> VideoShape:
    return VideoShape(config.data.frames, config.data.resolution, config.data.channels)


def build_gan(config) -> Gan:
    """The `Gan` described by `config` (model, data shape, train hyper-parameters)."""
    shape = video_shape_from_config(config)
    pair: ModelPair = build_models(config.model, shape, config.train.compute_dtype)
    t = config.train
    policy = check_augment_config(t)
    return Gan(
        generator=pair.generator,
        discriminator=pair.discriminator,
        latent_dim=pair.latent_dim,
        video_shape=shape,
        g_optimizer=make_optimizer(
            learning_rate_schedule(t.g_lr, t.steps, t.lr_decay_start),
            t.g_beta1, t.g_beta2, t.weight_decay,
        ),
        d_optimizer=make_optimizer(
            learning_rate_schedule(t.d_lr, t.steps, t.lr_decay_start),
            t.d_beta1, t.d_beta2, t.weight_decay,
        ),
        loss=get_loss(t.loss),
        r1_gamma=float(t.r1_gamma),
        r1_every=int(t.r1_every),
        mode_seeking=float(t.mode_seeking),
        class_loss=float(t.class_loss),
        ema_decay=float(t.ema_decay),
        augment=policy,
        augment_p=float(t.augment_p),
        ada_target=float(t.ada_target),
        ada_kimg=float(t.ada_kimg),
        num_classes=pair.num_classes,
        labels_per_clip=int(config.model.labels_per_clip),
        frame_noise_dim=pair.frame_noise_dim,
        variable_length=pair.variable_length,
        d_singular_value_clip_every=int(t.d_singular_value_clip_every),
    )


def check_augment_config(train_config) -> tuple[str, ...]:
    """The parsed `train.augment` policy; raises `VganError` for augmentation settings
    that can't work (cheap, no tracing: `train.check_config` calls it before compiling)."""
    policy = parse_policy(train_config.augment)
    if not 0.0 <= train_config.augment_p <= 1.0:
        raise VganError(f"train.augment_p must be in [0, 1], got {train_config.augment_p}")
    if not 0.0 <= train_config.ada_target < 1.0:
        raise VganError(
            f"train.ada_target must be in [0, 1) (0: fixed p; ADA uses 0.6), got "
            f"{train_config.ada_target}"
        )
    if train_config.ada_target > 0 and not policy:
        raise VganError(
            "train.ada_target adapts the augmentation probability, but train.augment is "
            "empty; set e.g. --config.train.augment=translation,cutout,color"
        )
    if train_config.ada_kimg <= 0:
        raise VganError(f"train.ada_kimg must be > 0, got {train_config.ada_kimg}")
    return policy


def _init_state(gan: Gan, seed: int) -> TrainState:
    rng = jax.random.PRNGKey(seed)
    g_key, d_key, train_key = jax.random.split(rng, 3)
    z = jnp.zeros((1, gan.latent_dim), jnp.float32)
    labels = jnp.zeros((1,) if gan.labels_per_clip == 1 else (1, gan.labels_per_clip), jnp.int32)
    frame_noise = jnp.zeros((1, gan.video_shape.frames, gan.frame_noise_dim), jnp.float32)
    g_variables = gan.generator.init(g_key, z, **gan.generator_inputs(labels, frame_noise))
    g_params = g_variables["params"]
    # `losses` holds what init sowed (auxiliary losses); it is per call, not state.
    g_state = {k: v for k, v in g_variables.items() if k not in ("params", "losses")}
    video = jnp.zeros((1, *gan.video_shape.as_array_shape()), jnp.float32)
    d_variables = gan.discriminator.init(
        {"params": d_key, FRAMES_RNG: d_key}, video, **gan.critic_inputs(labels)
    )
    d_params = d_variables["params"]
    d_state = {k: v for k, v in d_variables.items() if k != "params"}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=train_key,
        g_params=g_params,
        d_params=d_params,
        g_opt_state=gan.g_optimizer.init(g_params),
        d_opt_state=gan.d_optimizer.init(d_params),
        ema_params=jax.tree.map(jnp.copy, g_params),
        g_state=g_state,
        d_state=d_state,
        augment_p=jnp.asarray(gan.initial_augment_p(), jnp.float32),
    )


def abstract_train_state(gan: Gan, seed: int = 0, mesh: Mesh | None = None) -> TrainState:
    """Shapes and dtypes of the state, no computation; with `mesh`, replicated shardings."""
    abstract = jax.eval_shape(lambda: _init_state(gan, seed))
    if mesh is None:
        return abstract
    sharding = replicated(mesh)
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract
    )


def create_train_state(gan: Gan, seed: int, mesh: Mesh) -> TrainState:
    """A fresh state, initialised from `seed` directly onto every device of `mesh`."""
    abstract = abstract_train_state(gan, seed)
    shardings = jax.tree.map(lambda _: replicated(mesh), abstract)
    return jax.jit(lambda: _init_state(gan, seed), out_shardings=shardings)()


def count_params(params: PyTree) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))
