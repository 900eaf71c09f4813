"""The one training step every model shares, and its jit(shard_map(...)) wrapper.

`train_step(gan, state, batch)` does one discriminator update and one generator
update. It runs per device inside `shard_map`: gradients and metrics are
`pmean`-ed over the `data` axis, so 1 and N devices compute the same numbers.

Randomness: the latent noise of the whole global batch is drawn from
`fold_in(state.rng, step)` on every device and each device takes its own slice,
so the noise a sample gets does not depend on how many devices there are (that is
what makes 1 and N devices agree to float tolerance). Augmentation parameters are
drawn the same way (global batch, then sliced); the critic's dropout masks are
drawn per sample from the sample's global index (`critics.per_sample_dropout`).
Per-frame noise (MoCoGAN's GRU input, `gan.frame_noise_dim` > 0) is drawn and sliced
like z. Nothing depends on the device index alone.

What a model takes besides z comes from `gan.generator_inputs` / `gan.critic_inputs`
(labels for conditional models, per-frame noise), never from a branch on the model's
name. TGAN's singular value clipping (`gan.d_singular_value_clip_every`, see
vgan_jax.svc) is applied to the critic right after its update, on steps fixed by the
step count, so resumed runs clip on the same steps.

Augmentation (`gan.augment`, see vgan_jax.augment) lives inside the critic closure,
so the D loss, R1 and the G update all judge augmented clips. Real and fake get
independent draws; the fake batch keeps its draw (and dropout masks) from the D
update to the G update, as it keeps its noise. R1 follows StyleGAN2-ADA: the
penalty's logits are those of the augmented reals the D loss saw, its gradient is
taken with respect to the clean reals, through the augmentation. With ADA
(`gan.ada_target` > 0) p lives in `TrainState.augment_p` and moves every step by
sign(r_t - target) * global_batch / (ada_kimg * 1000), r_t = E[sign(D(aug(real)))]
over the global batch, so a resumed run continues with the same p.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec

from vgan_jax import augment
from vgan_jax.losses import lazy_r1, mode_seeking_loss
from vgan_jax.models.conditioning import CLASS_LOSSES
from vgan_jax.models.critics import DROPOUT_RNG, FRAMES_RNG
from vgan_jax.parallel import DATA_AXIS
from vgan_jax.state import Gan, TrainState
from vgan_jax.svc import maybe_singular_value_clip

# fold_in tags, so the streams of random numbers never collide.
_NOISE, _FRAMES, _AUGMENT, _DROPOUT, _FRAME_NOISE = 0, 2, 3, 4, 5
# Sub-tags of the augmentation and dropout keys: real and fake draw independently.
_SOURCES = ("real", "fake")


def ema_decay_at(step: jnp.ndarray, decay: float) -> jnp.ndarray:
    """min(decay, (1 + step) / (10 + step)): the EMA warms up instead of dragging the
    random initialisation through the first thousands of steps (as TF's
    ExponentialMovingAverage with num_updates)."""
    step = step.astype(jnp.float32)
    return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def _sum_sown(collection) -> jnp.ndarray:
    """Sum of every scalar a module `sow`-ed (auxiliary generator losses)."""
    leaves = jax.tree.leaves(collection)
    return sum(leaves, jnp.zeros((), jnp.float32))


def _sum_heads(heads: dict) -> jnp.ndarray:
    """D(x) per clip, `[local_batch]` (R1's and ADA's): the sum over critic heads of
    each head's mean logit for the clip (per-frame heads average their frames)."""
    return sum(jnp.mean(v.reshape(v.shape[0], -1), axis=1) for v in heads.values())


def _all_finite(*trees) -> jnp.ndarray:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for t in trees for x in jax.tree.leaves(t)]))


def augmentation_draws(
    gan: Gan,
    step_key: jax.Array,
    p: jnp.ndarray,
    global_batch: int,
    frame_shape: tuple[int, int, int],
    start: jnp.ndarray | int,
    size: int,
) -> dict[str, dict]:
    """`{"real": params, "fake": params}` for clips `[start, start + size)` of the step.

    Both are drawn for the whole global batch from independent keys (real and fake
    never share a transform) and then sliced, so a clip's transforms depend on its
    global index only, not on the device count. `frame_shape` `(H, W, C)`; params as
    `augment.sample_params` returns them (empty dicts when augmentation is off).
    """
    augment_key = jax.random.fold_in(step_key, _AUGMENT)
    return {
        source: augment.slice_params(
            augment.sample_params(
                jax.random.fold_in(augment_key, tag), global_batch, gan.augment, p, frame_shape
            ),
            start,
            size,
        )
        for tag, source in enumerate(_SOURCES)
    }


def ada_adjust(
    p: jnp.ndarray, rt: jnp.ndarray, target: float, global_batch: int, kimg: float
) -> jnp.ndarray:
    """ADA's update (Karras et al. 2020): p + sign(r_t - target) * clips / (kimg * 1000),
    clipped to [0, 1]. `p`, `rt` float32 scalars; `rt` = E[sign(D(real))] in [-1, 1]."""
    step = jnp.sign(rt - target) * (global_batch / (kimg * 1000.0))
    return jnp.clip(p + step, 0.0, 1.0).astype(jnp.float32)


def train_step(
    gan: Gan,
    state: TrainState,
    batch: dict,
    *,
    axis_name: str | None = None,
    num_shards: int = 1,
) -> tuple[TrainState, dict]:
    """One D update then one G update.

    Args:
      gan: static model/optimizer definition.
      state: the replicated `TrainState`.
      batch: `{"video": float32 [local_batch, T, H, W, C] in [-1, 1], ...}`.
      axis_name: the mesh axis to average over (None outside shard_map).
      num_shards: devices on that axis.

    Returns:
      `(new_state, metrics)`; metrics are float32 scalars averaged over devices,
      among them `ada_rt` (E[sign(D(real))] over the global batch, ADA's overfitting
      heuristic, logged with or without augmentation) and `augment_p` (the p used).
      If any loss or gradient is not finite the state is returned unchanged
      (but for `step`) and `metrics["nonfinite"]` is 1, so the caller can stop
      without a corrupt state ever reaching a checkpoint.
    """
    real = batch["video"]
    local_batch = real.shape[0]
    global_batch = local_batch * num_shards
    step_key = jax.random.fold_in(state.rng, state.step)
    shard = jax.lax.axis_index(axis_name) if axis_name else 0
    z_global = jax.random.normal(
        jax.random.fold_in(step_key, _NOISE), (global_batch, gan.latent_dim)
    )
    z = jax.lax.dynamic_slice_in_dim(z_global, shard * local_batch, local_batch)
    # Per-frame noise (MoCoGAN's GRU input), drawn and sliced like z; models without
    # it never see it (`gan.generator_inputs` drops it), so this is dead code for them.
    frame_noise_global = jax.random.normal(
        jax.random.fold_in(step_key, _FRAME_NOISE),
        (global_batch, gan.video_shape.frames, gan.frame_noise_dim),
    )
    frame_noise = jax.lax.dynamic_slice_in_dim(
        frame_noise_global, shard * local_batch, local_batch
    )
    # Conditional models: the fakes get the labels of the real clips beside them, so the
    # generated classes follow the data's class frequencies and every batch pits each
    # class's fakes against its reals (no extra randomness: 1 vs N devices stay exact).
    labels = batch.get("label")
    fake_labels = labels
    if gan.mode_seeking and labels is not None:
        # The mode-seeking term compares pairs (2k, 2k + 1) of one class: clip 2k + 1's
        # fake takes clip 2k's label (the classes still follow the data's frequencies).
        fake_labels = jnp.repeat(labels[0::2], 2, axis=0)  # [B] or [B, K]
    generator_inputs = gan.generator_inputs(fake_labels, frame_noise)
    critic_inputs = {
        "real": gan.critic_inputs(labels), "fake": gan.critic_inputs(fake_labels)
    }

    # Augmentation: p is the state's (ADA) or the fixed one; the transforms of the
    # whole global batch are drawn and sliced, like the noise.
    augment_p = state.augment_p if gan.adaptive else jnp.float32(gan.initial_augment_p())
    augment_params = augmentation_draws(
        gan, step_key, augment_p, global_batch, real.shape[2:], shard * local_batch, local_batch
    )
    dropout_key = jax.random.fold_in(step_key, _DROPOUT)
    dropout_keys = {
        source: jax.random.fold_in(dropout_key, tag) for tag, source in enumerate(_SOURCES)
    }

    def pmean(tree):
        return jax.lax.pmean(tree, axis_name) if axis_name else tree

    # Generator forward once; its VJP is reused for the G update after D moved.
    def generate(g_params):
        video, updated = gan.generator.apply(
            {"params": g_params, **state.g_state},
            z,
            train=True,
            mutable=[*state.g_state, "losses"],
            **generator_inputs,
        )
        new_g_state = {k: v for k, v in updated.items() if k != "losses"}
        return (video, _sum_sown(updated.get("losses", {}))), new_g_state

    (fake, aux_loss), generator_vjp, g_state = jax.vjp(generate, state.g_params, has_aux=True)

    # --- the critic: one function for the D update, R1 and the G update ----------
    # Same batch axis (minibatch-std groups span the global batch in both updates)
    # and the same frame choice for per-frame heads, drawn from the step key.
    frames_key = jax.random.fold_in(step_key, _FRAMES)

    def critic(d_params, d_state, video, source, update_stats=False):
        """`({head: logits [local_batch]}, critic state, class loss)`.

        The state is the updated one with `update_stats`, else `d_state`. The class loss
        (float32 scalar) is the sum over heads of their auxiliary classifier's mean
        cross-entropy against the clips' labels (0 unless `gan.class_loss`).
        `source` ("real" or "fake") picks the clips' augmentation draw and dropout key,
        so every call on the same clips sees the same transforms and masks."""
        if gan.augment:
            video = augment.apply_params(video, augment_params[source])
        variables = {"params": d_params, **d_state}
        rngs = {FRAMES_RNG: frames_key, DROPOUT_RNG: dropout_keys[source]}
        kwargs = dict(batch_axis=axis_name, train=True, rngs=rngs, **critic_inputs[source])
        mutable = (list(d_state) if update_stats else []) + (
            [CLASS_LOSSES] if gan.class_loss else []
        )
        if not mutable:
            return gan.discriminator.apply(variables, video, **kwargs), d_state, jnp.zeros(())
        heads, updated = gan.discriminator.apply(
            variables, video, update_stats=update_stats, mutable=mutable, **kwargs
        )
        class_loss = _sum_sown(updated.pop(CLASS_LOSSES, {}))
        return heads, (updated if update_stats else d_state), class_loss

    # --- discriminator update -------------------------------------------------
    # Real and fake go through D separately: minibatch-std groups must not mix them.
    def d_loss_fn(d_params):
        real_heads, new_d_state, real_class_loss = critic(
            d_params, state.d_state, real, "real", update_stats=True
        )
        fake_heads, _, _ = critic(d_params, new_d_state, jax.lax.stop_gradient(fake), "fake")
        loss = sum(gan.loss.discriminator(real_heads[h], fake_heads[h]) for h in real_heads)
        # AC-GAN: the critic's auxiliary classifiers learn the real clips' labels.
        loss = loss + gan.class_loss * real_class_loss
        r1 = jnp.zeros((), jnp.float32)
        if gan.r1_gamma > 0:
            # Scaled by r1_every on the steps that run it (0 on the others): the loss
            # keeps R1's average pull, and the logged mean over a window estimates
            # the penalty itself.
            r1 = gan.r1_every * lazy_r1(
                lambda x: _sum_heads(critic(d_params, new_d_state, x, "real")[0]),
                real, state.step, gan.r1_every,
            )
            loss = loss + 0.5 * gan.r1_gamma * r1
        head_means = {f"d_real_{h}": jnp.mean(v) for h, v in real_heads.items()}
        head_means |= {f"d_fake_{h}": jnp.mean(v) for h, v in fake_heads.items()}
        # ADA's overfitting heuristic on the clips the critic saw (augmented reals);
        # D(x) is the sum of the heads' logits, as for R1.
        rt = jnp.mean(jnp.sign(_sum_heads(real_heads)))
        return loss, dict(
            new_d_state=new_d_state, r1=r1, ada_rt=rt, d_class_loss=real_class_loss, **head_means
        )

    (d_loss, d_aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d_params)
    d_grads = pmean(d_grads)
    d_updates, d_opt_state = gan.d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)
    d_state = d_aux.pop("new_d_state")
    # TGAN's singular value clipping (train.d_singular_value_clip_every), after the D
    # update as in the official updater, so the G update below sees the clipped critic.
    d_params = maybe_singular_value_clip(
        d_params, d_state, state.step + 1, gan.d_singular_value_clip_every
    )
    # r_t over the global batch (equal local batches: the mean of the means), exact
    # on any device count: a sum of +-1 / global_batch.
    ada_rt = pmean(d_aux.pop("ada_rt"))
    next_augment_p = augment_p
    if gan.adaptive:
        next_augment_p = ada_adjust(augment_p, ada_rt, gan.ada_target, global_batch, gan.ada_kimg)

    # --- generator update, against the updated discriminator ------------------
    def g_video_loss(video):
        heads, _, class_loss = critic(d_params, d_state, video, "fake")
        adversarial = sum(gan.loss.generator(logits) for logits in heads.values())
        mode_seeking = jnp.zeros((), jnp.float32)
        if gan.mode_seeking:
            mode_seeking = mode_seeking_loss(video, z)
        # AC-GAN: fakes should be classified as the label they were drawn for.
        loss = adversarial + gan.mode_seeking * mode_seeking + gan.class_loss * class_loss
        return loss, (adversarial, mode_seeking, class_loss)

    (_, (g_adv_loss, g_mode_seeking, g_class_loss)), d_fake_video = jax.value_and_grad(
        g_video_loss, has_aux=True
    )(fake)
    (g_grads,) = generator_vjp((d_fake_video, jnp.ones((), jnp.float32)))
    g_grads = pmean(g_grads)
    g_updates, g_opt_state = gan.g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    decay = ema_decay_at(state.step, gan.ema_decay)
    ema_params = jax.tree.map(
        lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, g_params
    )

    metrics = pmean(
        dict(
            d_loss=d_loss,
            g_loss=g_adv_loss + aux_loss,
            g_aux_loss=aux_loss,
            g_mode_seeking=g_mode_seeking,
            g_class_loss=g_class_loss,
            **d_aux,
            d_grad_norm=optax.tree.norm(d_grads),
            g_grad_norm=optax.tree.norm(g_grads),
        )
    )
    # Already the same on every device; the p this step used.
    metrics |= dict(ada_rt=ada_rt, augment_p=augment_p)
    finite = _all_finite(metrics)
    metrics["nonfinite"] = 1.0 - finite.astype(jnp.float32)

    updated = state.replace(
        g_params=g_params,
        d_params=d_params,
        g_opt_state=g_opt_state,
        d_opt_state=d_opt_state,
        ema_params=ema_params,
        g_state=g_state,
        d_state=d_state,
        augment_p=next_augment_p,
    )
    # Never let a non-finite update into the state (the last good state is kept).
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, state)
    return new_state.replace(step=state.step + 1), metrics


def make_train_step(gan: Gan, mesh: Mesh):
    """`jit(shard_map(train_step))` over the mesh's `data` axis, state donated.

    The returned function takes `(state, batch)` with the state replicated and
    the batch sharded over `data` (see `parallel.global_batch`), and returns
    `(state, metrics)`, both replicated.
    """
    step_fn = functools.partial(
        train_step, gan, axis_name=DATA_AXIS, num_shards=mesh.shape[DATA_AXIS]
    )
    sharded = jax.shard_map(
        step_fn,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS)),
        out_specs=(PartitionSpec(), PartitionSpec()),
        # With check_vma=True shard_map's transpose already psums gradients of
        # replicated params; we keep the explicit, classic pmean instead (one
        # rule that also holds for the VJP and aux losses).
        check_vma=False,
    )
    return jax.jit(sharded, donate_argnums=0)
