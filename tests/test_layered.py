"""The layered generator: placement, reflection, identity over time, motion, unrolling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgan_jax.config import base_config
from vgan_jax.models import VideoShape, build_models
from vgan_jax.errors import VganError
from vgan_jax.models.layered import (
    composite_layers,
    placement_matrix,
    reflect,
    snapped_placement_matrix,
)


def test_placement_moves_a_pixel_and_box_filters_it_like_the_data():
    """A layer pixel j at canvas offset o lands on canvas pixel o + j (bilinear between
    two for a fractional o); the frame averages canvas pixel pairs (2p, 2p + 1)."""
    size = 8
    row = np.zeros(size, np.float32)
    row[1] = 1.0
    for offset, expected in [
        (0.0, {0: 0.5}),  # canvas 1 -> frame 0
        (3.0, {2: 0.5}),  # canvas 4 -> frame 2
        (2.5, {1: 0.25, 2: 0.25}),  # canvas 3.5: half on 3 (frame 1), half on 4 (frame 2)
        (8.0, {4: 0.5}),  # the far edge: canvas 9 -> frame 4
    ]:
        frame = np.asarray(placement_matrix(jnp.float32(offset), size)) @ row
        want = np.zeros(size)
        for p, v in expected.items():
            want[p] = v
        np.testing.assert_allclose(frame, want, atol=1e-6, err_msg=str(offset))
    # Every layer pixel's light lands somewhere in the frame for any offset in [0, size].
    for offset in np.linspace(0.0, size, 13):
        total = np.asarray(placement_matrix(jnp.float32(offset), size)).sum(axis=0)
        np.testing.assert_allclose(total, 0.5, atol=1e-6)


def test_reflect_folds_positions_into_the_frame():
    x = jnp.array([0.0, 0.2, 1.0, 1.3, 2.0, 2.25, -0.1, -1.5])
    np.testing.assert_allclose(reflect(x), [0.0, 0.2, 1.0, 0.7, 0.0, 0.25, 0.1, 0.5], atol=1e-6)
    # A point at constant speed bounces: the distance per step stays the speed.
    path = reflect(0.3 + 0.15 * jnp.arange(40.0))
    np.testing.assert_allclose(np.abs(np.diff(np.asarray(path))).max(), 0.15, atol=1e-5)
    assert float(path.min()) >= 0.0 and float(path.max()) <= 1.0


def _layered(frames=6, **overrides):
    config = base_config().model
    config.name = "layered"
    config.width, config.latent_dim, config.num_upsamples = 4, 8, 2
    for key, value in overrides.items():
        config[key] = value
    pair = build_models(config, VideoShape(frames, 16, 1))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    inputs = {
        "z": jax.random.normal(keys[0], (3, pair.latent_dim)),
        "frame_noise": jax.random.normal(keys[1], (3, frames, pair.frame_noise_dim)),
    }
    if pair.num_classes:
        inputs["labels"] = jnp.arange(3, dtype=jnp.int32)
    variables = pair.generator.init(jax.random.PRNGKey(1), **inputs)
    return pair, variables, inputs


def test_layers_keep_their_appearance_and_only_move():
    """With the velocity head zeroed every frame is the first (nothing but placement
    changes over time); with it, frames differ. z is [z_1; z_2; h_0] and frame_noise
    drives motion only: other per-frame noise keeps frame 0 (placed by h_0) and
    changes later frames."""
    pair, variables, inputs = _layered()
    assert pair.latent_dim == 2 * 8 + 10 and pair.frame_noise_dim == 10
    assert pair.variable_length
    video = pair.generator.apply(variables, **inputs)
    assert float(jnp.abs(video[:, 1:] - video[:, :1]).max()) > 1e-3
    still = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "velocity" in jax.tree_util.keystr(path) else x,
        variables,
    )
    frozen = pair.generator.apply(still, **inputs)
    np.testing.assert_allclose(frozen, jnp.broadcast_to(frozen[:, :1], frozen.shape), atol=1e-6)

    other_noise = {**inputs, "frame_noise": inputs["frame_noise"][::-1]}
    moved = pair.generator.apply(variables, **other_noise)
    np.testing.assert_allclose(moved[:, 0], video[:, 0], atol=1e-6)
    assert float(jnp.abs(moved[:, 2:] - video[:, 2:]).max()) > 1e-3


def test_layered_unrolls_past_the_trained_length():
    pair, variables, inputs = _layered(frames=6)
    longer = pair.generator.clone(frames=15)
    noise = jax.random.normal(jax.random.PRNGKey(5), (3, 15, 10))
    noise = noise.at[:, :6].set(inputs["frame_noise"])
    short = pair.generator.apply(variables, **inputs)
    long = longer.apply(variables, inputs["z"], noise)
    assert long.shape == (3, 15, 16, 16, 1)
    np.testing.assert_allclose(long[:, :6], short, atol=1e-6)
    assert float(long.min()) >= -1.0 and float(long.max()) <= 1.0


def test_layered_labels_reach_every_layer():
    pair, variables, inputs = _layered(num_classes=10)
    a = pair.generator.apply(variables, **{**inputs, "labels": jnp.array([2, 2, 2])})
    b = pair.generator.apply(variables, **{**inputs, "labels": jnp.array([2, 7, 2])})
    np.testing.assert_array_equal(a[0], b[0])
    assert float(jnp.abs(a[1] - b[1]).max()) > 1e-4
    with pytest.raises(ValueError, match="needs labels"):
        pair.generator.apply(variables, inputs["z"], inputs["frame_noise"])


def _layer(value: float, alpha: float, where: tuple[slice, slice]) -> np.ndarray:
    """A placed layer [1, 1, 4, 4, 2]: premultiplied colour value * alpha and alpha
    inside `where`, transparent (0, 0) outside."""
    layer = np.zeros((1, 1, 4, 4, 2), np.float32)
    layer[0, 0][where] = (value * alpha, alpha)
    return layer


def test_max_composite_combines_objects_as_moving_mnist_does():
    """'over' lets the front layer's opaque black surround hide the object behind it;
    'max' shows both objects where they overlap, the per-pixel maximum of each layer
    over black, as the built-in data pastes its digits (and the background shows
    where no layer is brighter)."""
    front = _layer(-1.0, 1.0, (slice(0, 4), slice(0, 2)))  # an opaque black box, left
    front[0, 0, 1, 1] = (0.5, 1.0)  # with one grey pixel of "digit" in it
    back = _layer(1.0, 1.0, (slice(0, 4), slice(1, 3)))  # a white stroke, columns 1-2
    placed = jnp.asarray(np.stack([front, back], axis=2))
    background = jnp.full((1, 4, 4, 1), -1.0).at[0, 3, 3].set(0.2)

    over = np.asarray(composite_layers(placed, background, "over"))[0, 0, ..., 0]
    assert over[0, 1] == -1.0 and over[0, 2] == 1.0  # the box hides the stroke's column 1
    assert over[3, 3] == pytest.approx(0.2)

    maxed = np.asarray(composite_layers(placed, background, "max"))[0, 0, ..., 0]
    expected = np.full((4, 4), -1.0, np.float32)
    expected[:, 1:3] = 1.0  # the whole stroke, through the box
    expected[3, 3] = 0.2
    np.testing.assert_allclose(maxed, expected)
    # A half-transparent grey layer is that grey over black: 0.5 * 0.5 + 0.5 * (-1).
    half = jnp.asarray(_layer(0.5, 0.5, (slice(0, 1), slice(0, 1)))[:, :, None])
    value = composite_layers(half, jnp.full((1, 4, 4, 1), -1.0), "max")[0, 0, 0, 0, 0]
    assert float(value) == pytest.approx(-0.25)


def test_layer_composite_is_checked_before_building():
    config = base_config()
    config.model.name = "layered"
    config.model.layer_composite = "add"
    with pytest.raises(VganError, match="layer_composite"):
        build_models(config.model, VideoShape(frames=4, size=16, channels=1))
    config.model.layer_composite = "max"
    pair = build_models(config.model, VideoShape(frames=4, size=16, channels=1))
    assert pair.generator.composite == "max"


def test_snapped_placement_copies_at_whole_pixels_and_keeps_the_gradient():
    """Forward: the placement at the rounded offset (a layer copied, not blurred);
    backward: the bilinear placement's gradient at the true offset, so motion learns."""
    offset = jnp.array([3.3, 3.7, 5.0])
    snapped = snapped_placement_matrix(offset, 8)
    np.testing.assert_allclose(snapped, placement_matrix(jnp.round(offset), 8), atol=1e-7)
    # Whole pixels: every layer pixel lands in exactly one canvas pixel (weights 0.5 in
    # the 2x box filter), where the bilinear one spreads it over two at 3.3.
    assert set(np.unique(np.asarray(snapped))) <= {0.0, 0.5}
    assert len(np.unique(np.asarray(placement_matrix(offset[:1], 8)))) > 2
    layer = jnp.linspace(-1.0, 1.0, 8)
    f = lambda m: jnp.sum(jnp.sin(m @ layer))  # any function of the placed row
    got = jax.grad(lambda o: f(snapped_placement_matrix(o, 8)))(offset)
    # Straight-through: f's gradient at the snapped placement, pulled back through
    # the bilinear placement at the true offset.
    _, pullback = jax.vjp(lambda o: placement_matrix(o, 8), offset)
    (expected,) = pullback(jax.grad(f)(snapped))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.all(np.abs(np.asarray(got)) > 0)
