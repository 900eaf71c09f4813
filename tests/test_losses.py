"""Losses against hand-computed values."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from vgan_jax import losses
from vgan_jax.errors import VganError

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])


def softplus(x):
    return math.log1p(math.exp(x))


def test_non_saturating():
    expected_d = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    np.testing.assert_allclose(losses.non_saturating_d(REAL, FAKE), expected_d, rtol=1e-6)
    expected_g = (softplus(-0.5) + softplus(3.0)) / 2
    np.testing.assert_allclose(losses.non_saturating_g(FAKE), expected_g, rtol=1e-6)


def test_hinge():
    # relu(1-2)=0, relu(1+1)=2 -> 1.0; relu(1+0.5)=1.5, relu(1-3)=0 -> 0.75
    np.testing.assert_allclose(losses.hinge_d(REAL, FAKE), 1.75, rtol=1e-6)
    np.testing.assert_allclose(losses.hinge_g(FAKE), 1.25, rtol=1e-6)


def test_wasserstein():
    np.testing.assert_allclose(losses.wasserstein_d(REAL, FAKE), -1.25 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(losses.wasserstein_g(FAKE), 1.25, rtol=1e-6)


def test_r1_of_a_linear_critic_is_its_squared_weight_norm():
    w = jnp.array([1.0, -2.0, 3.0])
    real = jnp.ones((4, 3))
    penalty = losses.r1_penalty(lambda x: x @ w, real)
    np.testing.assert_allclose(penalty, 14.0, rtol=1e-6)


def test_unknown_loss_lists_known_ones():
    with pytest.raises(VganError, match="hinge, non_saturating, wasserstein"):
        losses.get_loss("lsgan")


def test_mode_seeking_is_latent_over_video_distance_per_pair():
    """Pairs (0, 1) and (2, 3): per pair mean|dz| / mean|dG|, averaged; a pair drawing
    the same video from two latents costs 1 / eps, so collapse is what it punishes."""
    z = jnp.array([[0.0, 0.0], [2.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    videos = jnp.stack([jnp.full((2, 3), v) for v in (0.0, 0.5, 1.0, 0.0)])
    # pair 0: dz 2, dG 0.5 -> 4; pair 1: dz 1, dG 1 -> 1
    np.testing.assert_allclose(losses.mode_seeking_loss(videos, z, eps=0.0), 2.5, rtol=1e-6)
    collapsed = jnp.zeros((2, 2, 3))
    assert losses.mode_seeking_loss(collapsed, z[:2], eps=1e-5) == pytest.approx(1e5)
    with pytest.raises(VganError, match="per-device batch must be even"):
        losses.mode_seeking_loss(videos[:3], z[:3])
