"""Frame-consistent differentiable augmentation (vgan_jax.augment) and the step's draws:
one transform per clip for all its frames, p = 0 is the identity, gradients reach the
input, real and fake draw independently, draws don't depend on the device count."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vgan_jax import augment
from vgan_jax.errors import VganError
from vgan_jax.state import build_gan
from vgan_jax.train_step import augmentation_draws

ALL = "translation,cutout,color"


def _clips(batch=6, frames=5, size=16, channels=3, seed=0):
    """Random float32 clips `[batch, frames, size, size, channels]` in [-1, 1]."""
    rng = np.random.default_rng(seed)
    shape = (batch, frames, size, size, channels)
    return jnp.asarray(rng.uniform(-1, 1, shape).astype(np.float32))


def _static_clips(**kwargs):
    """Clips whose frames are all the first frame (no motion at all)."""
    clips = _clips(**kwargs)
    return jnp.broadcast_to(clips[:, :1], clips.shape)


def _params(policy, batch, p=1.0, frame_shape=(16, 16, 3), seed=0):
    return augment.sample_params(
        jax.random.PRNGKey(seed), batch, augment.parse_policy(policy), p, frame_shape
    )


def test_parse_policy():
    assert augment.parse_policy("") == ()
    assert augment.parse_policy(" , ") == ()
    # Application order is fixed (color, translation, cutout) whatever the string says.
    assert augment.parse_policy("cutout,color,translation") == (
        "brightness",
        "saturation",
        "contrast",
        "translation",
        "cutout",
    )
    assert augment.parse_policy("contrast, translation,contrast") == ("contrast", "translation")
    with pytest.raises(VganError, match="unknown augmentation 'rotate'.*translation"):
        augment.parse_policy("translation,rotate")


@pytest.mark.parametrize(
    "policy", ["translation", "cutout", "brightness", "saturation", "contrast", ALL]
)
def test_a_static_clip_stays_static(policy):
    """One transform per clip for all its frames: a clip without motion gains none
    (a per-frame shift, square or colour change would show as frame differences)."""
    clips = _static_clips()
    out = augment.apply_params(clips, _params(policy, clips.shape[0]))
    assert not np.allclose(out, clips)  # something happened ...
    np.testing.assert_array_equal(out - out[:, :1], 0.0)  # ... the same to every frame


def test_translation_moves_every_frame_by_the_clip_shift():
    clips = _clips(batch=1, channels=1)
    shift = jnp.array([[2, -1]], jnp.int32)  # down 2 rows, left 1 column
    out = np.asarray(augment.translate(clips, shift))
    x = np.asarray(clips)
    np.testing.assert_array_equal(out[:, :, 2:, :-1], x[:, :, :-2, 1:])
    # Edge padding repeats the border row / column of each frame.
    np.testing.assert_array_equal(out[:, :, 0, :-1], x[:, :, 0, 1:])
    np.testing.assert_array_equal(out[:, :, 2:, -1], x[:, :, :-2, -1])
    zeros = np.asarray(augment.translate(clips, shift, padding="zeros"))
    np.testing.assert_array_equal(zeros[:, :, :2], 0.0)
    np.testing.assert_array_equal(zeros[:, :, :, -1:], 0.0)
    # Shifts stay within 1/8 of the size: at most 2 pixels of 16.
    shifts = _params("translation", 512)["translation"].value
    assert int(jnp.max(jnp.abs(shifts))) == 2


def test_cutout_zeroes_one_half_size_square_in_every_frame():
    clips = _clips(batch=1, channels=1) * 0.5 + 0.6  # no value is 0 before cutout
    out = np.asarray(augment.cut_out(clips, jnp.array([[8, 6]], jnp.int32)))
    zeroed = out == 0.0
    np.testing.assert_array_equal(zeroed, zeroed[:, :1].repeat(clips.shape[1], axis=1))
    rows, cols = np.nonzero(zeroed[0, 0, :, :, 0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 11, 2, 9)  # 8x8 square
    assert zeroed.sum() == 8 * 8 * clips.shape[1]


def test_brightness_is_one_offset_per_clip():
    clips = _clips(channels=1)
    params = _params("brightness", clips.shape[0])
    difference = np.asarray(augment.apply_params(clips, params) - clips)
    offsets = np.asarray(params["brightness"].value)
    for clip, offset in zip(difference, offsets, strict=True):
        np.testing.assert_allclose(clip, offset, atol=1e-6)  # every frame and pixel
    assert len(np.unique(np.round(offsets, 6))) == len(offsets)  # differs between clips


def test_contrast_is_one_affine_map_per_clip():
    """The pivot is the clip's mean, not each frame's: every frame gets the same map."""
    clips = _clips(batch=2, channels=1)
    factor = jnp.array([1.4, 0.6])
    out = np.asarray(augment.adjust_contrast(clips, factor))
    x = np.asarray(clips)
    for i in range(2):
        mean = x[i].mean()
        np.testing.assert_allclose(out[i], (x[i] - mean) * factor[i] + mean, atol=1e-6)


def test_saturation_only_for_rgb():
    assert "saturation" in _params(ALL, 4, frame_shape=(16, 16, 3))
    assert "saturation" not in _params(ALL, 4, frame_shape=(16, 16, 1))


def test_p_zero_is_exactly_the_identity():
    clips = _clips()
    out = augment.apply_params(clips, _params(ALL, clips.shape[0], p=0.0))
    np.testing.assert_array_equal(out, clips)
    np.testing.assert_array_equal(augment.augment(jax.random.PRNGKey(3), clips, "", 1.0), clips)


def test_p_is_a_per_clip_per_transform_probability():
    params = _params(ALL, 4096, p=0.3)
    rates = {name: float(jnp.mean(draw.on)) for name, draw in params.items()}
    assert all(abs(rate - 0.3) < 0.03 for rate in rates.values()), rates
    # Independent between transforms: not the same clips for all of them.
    assert not np.array_equal(params["translation"].on, params["cutout"].on)


def test_gradients_flow_to_the_input():
    """Autodiff matches finite differences through every transform (each is piecewise
    linear in the video with the draw fixed), and reaches every uncut pixel."""
    clips = _clips(batch=3, frames=2, size=8)
    params = _params(ALL, clips.shape[0], frame_shape=(8, 8, 3), seed=1)
    weights = _clips(batch=3, frames=2, size=8, seed=2)

    def loss(x):
        return jnp.sum(augment.apply_params(x, params) * weights)

    check_grads(loss, (clips,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
    grad = jax.grad(loss)(clips)
    assert np.all(np.isfinite(grad)) and float(jnp.mean(jnp.abs(grad))) > 0.1


def test_augment_is_jittable_with_a_traced_p():
    clips = _clips()
    run = jax.jit(lambda key, x, p: augment.augment(key, x, ALL, p))
    np.testing.assert_array_equal(run(jax.random.PRNGKey(0), clips, 0.0), clips)
    assert not np.allclose(run(jax.random.PRNGKey(0), clips, 1.0), clips)


# --- the train step's draws --------------------------------------------------


def _gan(tiny_config, **overrides):
    return build_gan(tiny_config(train__augment=ALL, data__channels=3, **overrides))


def test_real_and_fake_draw_independently(tiny_config):
    gan = _gan(tiny_config)
    draws = augmentation_draws(gan, jax.random.PRNGKey(0), 1.0, 64, (16, 16, 3), 0, 64)
    assert set(draws) == {"real", "fake"}
    for name in draws["real"]:
        real, fake = draws["real"][name].value, draws["fake"][name].value
        assert not np.array_equal(real, fake), name
    # Different steps draw differently too.
    later = augmentation_draws(gan, jax.random.PRNGKey(1), 1.0, 64, (16, 16, 3), 0, 64)
    assert not np.array_equal(later["real"]["brightness"].value, draws["real"]["brightness"].value)


def test_draws_do_not_depend_on_the_device_count(tiny_config):
    """Each of 8 devices drawing its slice of the global batch gets exactly the
    clips' transforms one device draws for the whole batch."""
    gan = _gan(tiny_config)
    key = jax.random.PRNGKey(5)
    whole = augmentation_draws(gan, key, 0.5, 16, (16, 16, 3), 0, 16)
    slices = [augmentation_draws(gan, key, 0.5, 16, (16, 16, 3), 2 * i, 2) for i in range(8)]
    joined = jax.tree.map(lambda *parts: jnp.concatenate(parts), *slices)
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(joined), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_augmentation_settings_are_refused(tiny_config):
    with pytest.raises(VganError, match="unknown augmentation 'blur'"):
        build_gan(tiny_config(train__augment="blur"))
    with pytest.raises(VganError, match="train.augment is empty"):
        build_gan(tiny_config(train__ada_target=0.6))
    with pytest.raises(VganError, match=r"train.augment_p must be in \[0, 1\]"):
        build_gan(tiny_config(train__augment="cutout", train__augment_p=1.5))
    with pytest.raises(VganError, match="model.d_dropout must be in"):
        build_gan(tiny_config(model__d_dropout=1.0))
