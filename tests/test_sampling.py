"""Sampling API: determinism, batch-size independence, interpolation, video files."""

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

import vgan_jax
from vgan_jax.checkpoint import Checkpointer
from vgan_jax.parallel import DATA_AXIS, make_mesh
from vgan_jax.sampling import (
    _STANDING_STATISTICS_SEED,
    TrainedGenerator,
    interpolate,
    latents,
    make_generate_fn,
    make_standing_statistics_fn,
    sample,
    slerp,
)
from vgan_jax.state import abstract_train_state
from vgan_jax.video_io import to_uint8, video_grid, write_videos


def test_sample_does_not_depend_on_batch_size(tiny_run):
    whole = sample(tiny_run, num=5, seed=1, batch_size=5)
    pieces = sample(tiny_run, num=5, seed=1, batch_size=2)
    assert whole.shape == (5, 4, 16, 16, 1) and whole.dtype == np.uint8
    np.testing.assert_array_equal(whole, pieces)
    assert vgan_jax.sample is sample


def test_interpolation_ends_at_the_two_seeds(tiny_run):
    path = interpolate(tiny_run, seed_a=1, seed_b=2, steps=4)
    assert path.shape == (4, 4, 16, 16, 1)
    np.testing.assert_array_equal(path[0], sample(tiny_run, num=1, seed=1)[0])
    np.testing.assert_array_equal(path[-1], sample(tiny_run, num=1, seed=2)[0])


def test_slerp_keeps_the_norm_of_equal_norm_latents():
    a, b = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    points = slerp(a, b, jnp.linspace(0, 1, 5))
    np.testing.assert_allclose(jnp.linalg.norm(points, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(points[2], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)


def test_video_files_round_trip(tmp_path):
    videos = to_uint8(np.random.default_rng(0).uniform(-1, 1, (3, 5, 8, 8, 1)))
    write_videos(str(tmp_path / "v.npy"), videos)
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), videos)
    write_videos(str(tmp_path / "v.gif"), videos)
    gif = iio.imread(tmp_path / "v.gif")
    grid = video_grid(videos)
    assert gif.shape[:3] == grid.shape[:3]
    np.testing.assert_array_equal(gif[..., 0], grid[..., 0])  # GIF is lossless for gray
    write_videos(str(tmp_path / "v.mp4"), videos)
    assert iio.imread(tmp_path / "v.mp4").shape[0] == 5


def test_to_uint8_maps_the_range_ends():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 3.0])), [0, 128, 255, 255])


def test_ema_samples_use_statistics_of_the_ema_weights(tiny_run):
    """Samples come from the EMA weights with BatchNorm statistics of those weights: with
    standing statistics made from exactly the sampled latents, inference-mode samples
    equal the EMA generator run in training mode (batch statistics) on that batch, and
    differ from sampling with the online generator's running averages."""
    trained = TrainedGenerator(tiny_run)
    gan, params = trained.gan, trained.params
    num = 8
    standing = make_standing_statistics_fn(gan, num_videos=num)
    z = latents(_STANDING_STATISTICS_SEED, num, gan.latent_dim)
    checkpointer = Checkpointer(tiny_run, create=False)
    state = checkpointer.restore(abstract_train_state(gan, mesh=make_mesh(1)))
    checkpointer.close()
    ema_state = standing(params, state.g_state)
    inference = make_generate_fn(gan)(params, ema_state, z)

    def train_mode(z_one):
        video, _ = gan.generator.apply(
            {"params": params, **state.g_state}, z_one, train=True, mutable=["batch_stats"]
        )
        return video

    batch_mode = jax.vmap(train_mode, axis_name=DATA_AXIS)(z[None])[0]
    np.testing.assert_allclose(inference, batch_mode, rtol=1e-4, atol=1e-5)
    online = make_generate_fn(gan)(params, state.g_state, z)
    assert float(jnp.max(jnp.abs(online - inference))) > 1e-3


def test_sampling_restores_only_the_ema_generator_and_samples_the_same(tiny_run):
    """`TrainedGenerator` reads the EMA weights and the generator's BatchNorm state only
    (Orbax partial restore); they equal the full state's, and so do the samples."""
    trained = TrainedGenerator(tiny_run)
    checkpointer = Checkpointer(tiny_run, create=False)
    parts = checkpointer.restore_parts(
        {"ema_params": abstract_train_state(trained.gan, mesh=make_mesh(1)).ema_params}
    )
    state = checkpointer.restore(abstract_train_state(trained.gan, mesh=make_mesh(1)))
    checkpointer.close()
    assert set(parts) == {"ema_params"}
    for part in (parts["ema_params"], trained.params):
        for x, y in zip(jax.tree.leaves(part), jax.tree.leaves(state.ema_params), strict=True):
            np.testing.assert_array_equal(x, y)
    g_state = make_standing_statistics_fn(trained.gan)(state.ema_params, state.g_state)
    z = latents(3, 5, trained.gan.latent_dim)
    full = to_uint8(jax.device_get(make_generate_fn(trained.gan)(state.ema_params, g_state, z)))
    np.testing.assert_array_equal(trained.generate(z), full)
    np.testing.assert_array_equal(sample(tiny_run, num=5, seed=3), full)
