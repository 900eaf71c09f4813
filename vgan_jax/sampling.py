"""Sampling from a trained run: videos, deterministic latents, interpolation.

The same workdir, seed and number of videos always give the same videos: latent
`i` of seed `s` is row `i` of `normal(PRNGKey(s), [num, latent_dim])`, whatever
the batch size used to generate them. Sampling uses the EMA generator with
BatchNorm statistics recomputed for the EMA weights (`make_standing_statistics_fn`).
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


def make_generate_fn(gan: Gan):
    """jit of `(params, g_state, z [n, latent_dim]) -> video float32 [n, T, H, W, C]` in
    [-1, 1], in inference mode (BatchNorm running averages from `g_state`)."""
    return jax.jit(lambda params, g_state, z: gan.generator.apply({"params": params, **g_state}, z))


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
    z = latents(_STANDING_STATISTICS_SEED, -(-num_videos // batch) * batch, gan.latent_dim)
    z = z.reshape(-1, batch, gan.latent_dim)

    def batch_statistics(params, g_state, z_batch):
        # Starting from zero averages, one update leaves (1 - momentum) * batch value.
        zeroed = {**g_state, "batch_stats": jax.tree.map(jnp.zeros_like, g_state["batch_stats"])}

        def run(z_one):
            _, updated = gan.generator.apply(
                {"params": params, **zeroed}, z_one, train=True, mutable=["batch_stats", "losses"]
            )
            return updated["batch_stats"]

        # BatchNorm averages over the `data` axis in training mode: a vmap of size 1
        # binds that axis outside shard_map.
        stats = jax.vmap(run, axis_name=DATA_AXIS)(z_batch[None])
        return jax.tree.map(lambda x: x[0] / (1.0 - BATCH_NORM_MOMENTUM), stats)

    @jax.jit
    def standing_statistics(params, g_state):
        if "batch_stats" not in g_state:
            return g_state
        per_batch = jax.lax.map(lambda zb: batch_statistics(params, g_state, zb), z)
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
    """A run's EMA generator, restored once, on one device."""

    def __init__(self, workdir: str, step: int | None = None):
        checkpointer = Checkpointer(workdir, create=False)
        step = checkpointer.latest_step() if step is None else step
        if step is None:
            raise VganError(f"no checkpoint in {workdir!r}; train first")
        self.config = config_from_saved(checkpointer.read_meta(step)["config"])
        self.step = step
        self.gan = build_gan(self.config)
        abstract = abstract_train_state(self.gan, mesh=make_mesh(1))
        state = checkpointer.restore(abstract, step=step)
        self.params = state.ema_params
        self.g_state = make_standing_statistics_fn(self.gan)(state.ema_params, state.g_state)
        checkpointer.close()
        self._generate = make_generate_fn(self.gan)

    def generate(self, z) -> np.ndarray:
        """`z` float32 `[n, latent_dim]` -> uint8 videos `[n, T, H, W, C]`."""
        return to_uint8(jax.device_get(self._generate(self.params, self.g_state, jnp.asarray(z))))

    def iterate(self, num: int, seed: int, batch_size: int = 16) -> Iterator[np.ndarray]:
        """Yields uint8 `[<=batch_size, T, H, W, C]` batches of `num` videos in total."""
        z = latents(seed, num, self.gan.latent_dim)
        for start in range(0, num, batch_size):
            chunk = z[start : start + batch_size]
            # Pad the last chunk to a full batch so it reuses the compiled shape.
            padded = jnp.pad(chunk, ((0, batch_size - chunk.shape[0]), (0, 0)))
            yield self.generate(padded)[: chunk.shape[0]]


def iterate_samples(
    workdir: str, num: int, seed: int, batch_size: int = 16
) -> Iterator[np.ndarray]:
    """uint8 `[b, T, H, W, C]` batches of `num` EMA-generator videos from `workdir`."""
    return TrainedGenerator(workdir).iterate(num, seed, batch_size)


def sample(workdir: str, num: int = 16, seed: int = 0, batch_size: int = 16) -> np.ndarray:
    """`num` videos, uint8 `[num, T, H, W, C]`, from the run in `workdir` (its EMA generator)."""
    if num < 1:
        raise VganError(f"--num must be >= 1, got {num}")
    return np.concatenate(list(iterate_samples(workdir, num, seed, batch_size)), axis=0)


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
    workdir: str, seed_a: int, seed_b: int, steps: int = 8, spherical: bool = True
) -> np.ndarray:
    """Videos along the path between the latents of `seed_a` and `seed_b` (row 0 of each).

    Returns uint8 `[steps, T, H, W, C]`; the first is `sample(workdir, 1, seed_a)`, the
    last `sample(workdir, 1, seed_b)`.
    """
    if steps < 2:
        raise VganError(f"interpolation needs steps >= 2, got {steps}")
    generator = TrainedGenerator(workdir)
    dim = generator.gan.latent_dim
    a, b = latents(seed_a, 1, dim)[0], latents(seed_b, 1, dim)[0]
    t = jnp.linspace(0.0, 1.0, steps)
    z = slerp(a, b, t) if spherical else (1.0 - t[:, None]) * a + t[:, None] * b
    return generator.generate(z)
