"""Sampling from a trained run: videos, deterministic latents, labels, longer videos,
interpolation.

The same workdir, seed and number of videos always give the same videos: latent
`i` of seed `s` is row `i` of `normal(PRNGKey(s), [num, latent_dim])`, whatever
the batch size used to generate them. Sampling uses the EMA generator with
BatchNorm statistics recomputed for the EMA weights (`make_standing_statistics_fn`).

What a generator takes besides z (`sampling_inputs`): class labels for a
conditional run (given, or `i % num_classes` for sample `i`, so a grid shows every
class; `default_labels` for runs with a label per object), and per-frame noise
(MoCoGAN, layered), drawn frame by frame (frame `t` of seed `s` is
`normal(fold_in(fold_in(PRNGKey(s), 1), t), [num, dim])`), so a longer video of the
same seed starts with the shorter one. Recurrent models (`Gan.variable_length`:
mocogan, dvdgan, layered) can be sampled at any number of frames (`frames=48`); the others
make exactly the trained length and say so.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vgan_jax.checkpoint import Checkpointer
from vgan_jax.config import config_from_saved
from vgan_jax.errors import VganError
from vgan_jax.models.layers import BATCH_NORM_MOMENTUM
from vgan_jax.parallel import DATA_AXIS, make_mesh
from vgan_jax.state import Gan, abstract_train_state, build_gan
from vgan_jax.video_io import to_uint8


def make_generate_fn(gan: Gan, frames: int | None = None):
    """jit of `(params, g_state, z [n, latent_dim], labels=None, frame_noise=None) ->
    video float32 [n, T, H, W, C]` in [-1, 1], in inference mode (BatchNorm running
    averages from `g_state`). `labels` int32 `[n]` (conditional runs) and `frame_noise`
    float32 `[n, T, dim]` (MoCoGAN) as `sampling_inputs` makes them; a model ignores
    what it does not take. `frames`: T, for a model that can change it (see
    `check_frames`); None: the trained length."""
    generator = gan.generator
    if frames is not None and frames != gan.video_shape.frames:
        generator = generator.clone(frames=frames)

    def generate(params, g_state, z, labels=None, frame_noise=None):
        inputs = gan.generator_inputs(labels, frame_noise)
        return generator.apply({"params": params, **g_state}, z, **inputs)

    return jax.jit(generate)


# fold_in tag of the per-frame noise under a sampling seed (z uses the seed's key itself).
_FRAME_NOISE_TAG = 1


def frame_noise(seed: int, num: int, frames: int, dim: int) -> jnp.ndarray:
    """float32 `[num, frames, dim]` standard-normal per-frame noise, fixed by `seed`;
    frame `t` is drawn from its own key, so more frames extend the same sequence."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), _FRAME_NOISE_TAG)
    per_frame = jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (num, dim)))(
        jnp.arange(frames)
    )
    return jnp.transpose(per_frame, (1, 0, 2))


def default_labels(num: int, num_classes: int, labels_per_clip: int = 1) -> np.ndarray:
    """int32 `[num]`: sample i gets class `i % num_classes`; with K labels per clip
    `[num, K]`, object k of sample i gets `(i // num_classes**k) % num_classes`, so
    `num_classes**K` samples show every combination once (the built-in two-digit
    Moving MNIST draws each digit's class uniformly and independently, as this does
    over a multiple of 100 samples)."""
    index = np.arange(num)
    if labels_per_clip == 1:
        return (index % num_classes).astype(np.int32)
    powers = num_classes ** np.arange(labels_per_clip)
    return ((index[:, None] // powers[None, :]) % num_classes).astype(np.int32)


def check_labels(gan: Gan, labels, num: int) -> np.ndarray | None:
    """`labels` as int32 `[num]` (or `[num, K]` for a run with K = `labels_per_clip` > 1
    labels per clip), checked against the run: a label on an unconditional run or
    outside `[0, num_classes)` is a `VganError`.

    Accepted: None (`default_labels`; None for an unconditional run), one int (every
    object of every sample), `num` ints (K = 1: one per sample), K ints (K > 1: the
    objects of every sample) or `[num, K]` ints."""
    if labels is None:
        if not gan.num_classes:
            return None
        return default_labels(num, gan.num_classes, gan.labels_per_clip)
    if not gan.num_classes:
        raise VganError(
            "this run is unconditional (model.num_classes=0): it takes no label; drop --label"
        )
    per_clip = gan.labels_per_clip
    shape = (num,) if per_clip == 1 else (num, per_clip)
    array = np.asarray(labels)
    if array.ndim == 0 or (per_clip > 1 and array.shape == (per_clip,)):
        array = np.broadcast_to(array, shape)
    if array.shape != shape or not np.issubdtype(array.dtype, np.integer):
        wanted = f"{num} integers" if per_clip == 1 else f"{per_clip} integers (one per object)"
        raise VganError(f"labels must be one integer or {wanted}, got {labels!r}")
    outside = array[(array < 0) | (array >= gan.num_classes)]
    if outside.size:
        raise VganError(
            f"label {int(outside[0])} is outside [0, {gan.num_classes}): the run has "
            f"{gan.num_classes} classes"
        )
    return np.array(array, np.int32)


def check_frames(gan: Gan, frames: int | None, model_name: str = "this model") -> int:
    """The number of frames to sample: `frames`, or the trained length when None. A
    length other than the trained one is a `VganError` unless the model is recurrent
    (`gan.variable_length`)."""
    trained = gan.video_shape.frames
    if frames is None or frames == trained:
        return trained
    if frames < 1:
        raise VganError(f"--frames must be >= 1, got {frames}")
    if not gan.variable_length:
        raise VganError(
            f"{model_name} makes exactly the {trained} frames it was trained with (it is "
            f"not recurrent); only mocogan, dvdgan and layered unroll to other lengths"
        )
    return frames


def sampling_inputs(
    gan: Gan, seed: int, num: int, frames: int | None = None, labels=None
) -> dict[str, jnp.ndarray]:
    """Everything the generator takes for `num` videos of `seed`: `{"z": [num, latent_dim],
    "labels": int32 [num] or [num, K] (conditional runs), "frame_noise": [num, frames, dim] (models
    with per-frame noise)}`. `labels` as `check_labels`; `frames` None: trained length."""
    inputs = {"z": latents(seed, num, gan.latent_dim)}
    labels = check_labels(gan, labels, num)
    if labels is not None:
        inputs["labels"] = jnp.asarray(labels)
    if gan.frame_noise_dim:
        length = gan.video_shape.frames if frames is None else frames
        inputs["frame_noise"] = frame_noise(seed, num, length, gan.frame_noise_dim)
    return inputs


# Videos whose batch statistics make the EMA generator's standing statistics.
STANDING_STATISTICS_VIDEOS = 256
_STANDING_STATISTICS_SEED = 12345


def make_standing_statistics_fn(gan: Gan, num_videos: int = STANDING_STATISTICS_VIDEOS):
    """jit of `(params, g_state) -> g_state` with BatchNorm statistics made for `params`.

    The running averages in `g_state` were accumulated by the *online* generator;
    the EMA weights are a different function, so sampling them with those statistics
    mixes two generators. As BigGAN's "standing statistics", this runs the generator
    in training mode on `num_videos` fixed latents (batches of at most 64) and
    averages their batch means and variances. A generator without BatchNorm gets its
    `g_state` back unchanged.
    """
    batch = min(num_videos, 64)
    inputs = sampling_inputs(gan, _STANDING_STATISTICS_SEED, -(-num_videos // batch) * batch)
    # [batches, batch, ...] for lax.map; conditional runs see every class equally often.
    inputs = jax.tree.map(lambda x: x.reshape(-1, batch, *x.shape[1:]), inputs)

    def batch_statistics(params, g_state, batch_inputs):
        # Starting from zero averages, one update leaves (1 - momentum) * batch value.
        zeroed = {**g_state, "batch_stats": jax.tree.map(jnp.zeros_like, g_state["batch_stats"])}

        def run(one):
            one = dict(one)
            z_one = one.pop("z")
            _, updated = gan.generator.apply(
                {"params": params, **zeroed},
                z_one,
                train=True,
                mutable=["batch_stats", "losses"],
                **gan.generator_inputs(one.get("labels"), one.get("frame_noise")),
            )
            return updated["batch_stats"]

        # BatchNorm averages over the `data` axis in training mode: a vmap of size 1
        # binds that axis outside shard_map.
        stats = jax.vmap(run, axis_name=DATA_AXIS)(jax.tree.map(lambda x: x[None], batch_inputs))
        return jax.tree.map(lambda x: x[0] / (1.0 - BATCH_NORM_MOMENTUM), stats)

    @jax.jit
    def standing_statistics(params, g_state):
        if "batch_stats" not in g_state:
            return g_state
        per_batch = jax.lax.map(lambda b: batch_statistics(params, g_state, b), inputs)
        return {**g_state, "batch_stats": jax.tree.map(lambda x: jnp.mean(x, axis=0), per_batch)}

    return standing_statistics


def latents(seed: int, num: int, latent_dim: int) -> jnp.ndarray:
    """float32 `[num, latent_dim]` standard-normal latents, fixed by `seed`."""
    return jax.random.normal(jax.random.PRNGKey(seed), (num, latent_dim))


def load_run_config(workdir: str, step: int | None = None) -> ml_collections.ConfigDict:
    """The config a run in `workdir` was trained with (from its checkpoint)."""
    meta = Checkpointer(workdir, create=False).read_meta(step)
    return config_from_saved(meta["config"])


class TrainedGenerator:
    """A run's EMA generator, restored once, on one device, making `frames` frames (None:
    the trained length; other lengths only for recurrent models, see `check_frames`).
    Only the EMA weights and the generator's BatchNorm state are read from the checkpoint."""

    def __init__(self, workdir: str, step: int | None = None, frames: int | None = None):
        checkpointer = Checkpointer(workdir, create=False)
        step = checkpointer.latest_step() if step is None else step
        if step is None:
            raise VganError(f"no checkpoint in {workdir!r}; train first")
        self.config = config_from_saved(checkpointer.read_meta(step)["config"])
        self.step = step
        self.gan = build_gan(self.config)
        self.frames = check_frames(self.gan, frames, f"model {self.config.model.name!r}")
        abstract = abstract_train_state(self.gan, mesh=make_mesh(1))
        parts = {"ema_params": abstract.ema_params, "g_state": abstract.g_state}
        restored = checkpointer.restore_parts(parts, step=step)
        checkpointer.close()
        self.params = restored["ema_params"]
        self.g_state = make_standing_statistics_fn(self.gan)(self.params, restored["g_state"])
        self._generate = make_generate_fn(self.gan, self.frames)

    def generate(self, z, labels=None, frame_noise=None) -> np.ndarray:
        """`z` float32 `[n, latent_dim]` (and `labels` / `frame_noise`, see
        `sampling_inputs`) -> uint8 videos `[n, T, H, W, C]`."""
        videos = self._generate(self.params, self.g_state, jnp.asarray(z), labels, frame_noise)
        return to_uint8(jax.device_get(videos))

    def inputs(self, num: int, seed: int, labels=None) -> dict[str, jnp.ndarray]:
        """`sampling_inputs` for this run and length (labels checked against the run)."""
        return sampling_inputs(self.gan, seed, num, self.frames, labels)

    def iterate(
        self, num: int, seed: int, batch_size: int = 16, labels=None
    ) -> Iterator[np.ndarray]:
        """Yields uint8 `[<=batch_size, T, H, W, C]` batches of `num` videos in total."""
        inputs = self.inputs(num, seed, labels)

        def padded_chunk(x, start):
            # Pad the last chunk to a full batch so it reuses the compiled shape.
            chunk = x[start : start + batch_size]
            return jnp.pad(chunk, [(0, batch_size - chunk.shape[0])] + [(0, 0)] * (x.ndim - 1))

        for start in range(0, num, batch_size):
            size = min(batch_size, num - start)
            padded = {name: padded_chunk(x, start) for name, x in inputs.items()}
            yield self.generate(**padded)[:size]


def iterate_samples(
    workdir: str,
    num: int,
    seed: int,
    batch_size: int = 16,
    labels=None,
    frames: int | None = None,
) -> Iterator[np.ndarray]:
    """uint8 `[b, T, H, W, C]` batches of `num` EMA-generator videos from `workdir`
    (`labels`, `frames`: see `sample`)."""
    return TrainedGenerator(workdir, frames=frames).iterate(num, seed, batch_size, labels)


def sample(
    workdir: str,
    num: int = 16,
    seed: int = 0,
    batch_size: int = 16,
    labels=None,
    frames: int | None = None,
) -> np.ndarray:
    """`num` videos, uint8 `[num, T, H, W, C]`, from the run in `workdir` (its EMA generator).

    `labels`: for a class-conditional run, one class for every video or one per video
    (None: video `i` gets class `i % num_classes`; with K labels per clip, K classes
    for every video or `[num, K]`, see `check_labels`); an unconditional run or a label
    outside `[0, num_classes)` is a `VganError`. `frames`: T (None: the trained length;
    recurrent models, mocogan, dvdgan and layered, unroll to any length, the others raise
    `VganError`).
    """
    if num < 1:
        raise VganError(f"--num must be >= 1, got {num}")
    return np.concatenate(
        list(iterate_samples(workdir, num, seed, batch_size, labels, frames)), axis=0
    )


def slerp(a: jnp.ndarray, b: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
    """Spherical interpolation of latents `a`, `b` `[latent_dim]` at `t` `[n]` -> `[n, latent_dim]`.

    Gaussian latents concentrate near a sphere, so the straight line between two of
    them passes through unlikely, low-norm points; the great circle does not.
    """
    a_unit, b_unit = a / jnp.linalg.norm(a), b / jnp.linalg.norm(b)
    omega = jnp.arccos(jnp.clip(jnp.dot(a_unit, b_unit), -1.0, 1.0))
    t = t[:, None]
    so = jnp.sin(omega)
    safe = so > 1e-6
    wa = jnp.where(safe, jnp.sin((1.0 - t) * omega) / jnp.where(safe, so, 1.0), 1.0 - t)
    wb = jnp.where(safe, jnp.sin(t * omega) / jnp.where(safe, so, 1.0), t)
    return wa * a[None] + wb * b[None]


def interpolate(
    workdir: str,
    seed_a: int,
    seed_b: int,
    steps: int = 8,
    spherical: bool = True,
    label: int | None = None,
) -> np.ndarray:
    """Videos along the path between the latents of `seed_a` and `seed_b` (row 0 of each).

    Returns uint8 `[steps, T, H, W, C]`; the first is `sample(workdir, 1, seed_a)`, the
    last `sample(workdir, 1, seed_b)` (with `label` for both on a conditional run; None:
    class 0). Per-frame noise (MoCoGAN) is interpolated with z, as one vector.
    """
    if steps < 2:
        raise VganError(f"interpolation needs steps >= 2, got {steps}")
    generator = TrainedGenerator(workdir)
    ends = [generator.inputs(1, seed, label) for seed in (seed_a, seed_b)]
    # One flat vector per end: z and, for MoCoGAN, its per-frame noise.
    names = [name for name in ends[0] if name != "labels"]
    a, b = (jnp.concatenate([end[n].reshape(-1) for n in names]) for end in ends)
    t = jnp.linspace(0.0, 1.0, steps)
    path = slerp(a, b, t) if spherical else (1.0 - t[:, None]) * a + t[:, None] * b
    inputs, offset = {}, 0
    for name in names:
        shape = ends[0][name].shape[1:]
        size = int(np.prod(shape))
        inputs[name] = path[:, offset : offset + size].reshape(steps, *shape)
        offset += size
    if "labels" in ends[0]:
        inputs["labels"] = jnp.repeat(ends[0]["labels"], steps, axis=0)
    return generator.generate(**inputs)
