"""The optimizers' learning-rate schedule and the tree it gives the optimizer state."""

import jax
import jax.numpy as jnp
import numpy as np

from vgan_jax.state import learning_rate_schedule, make_optimizer


def test_constant_until_decay_start_then_linear_to_zero():
    schedule = learning_rate_schedule(4e-4, steps=1000, decay_start=0.6)
    np.testing.assert_allclose(schedule(0), 4e-4)
    np.testing.assert_allclose(schedule(600), 4e-4)
    np.testing.assert_allclose(schedule(800), 2e-4, rtol=1e-6)
    np.testing.assert_allclose(schedule(1000), 0.0, atol=1e-12)


def test_decay_start_one_is_constant():
    schedule = learning_rate_schedule(2e-4, steps=100, decay_start=1.0)
    np.testing.assert_allclose([schedule(s) for s in (0, 50, 100, 500)], 2e-4)


def test_optimizer_tree_does_not_depend_on_the_schedule():
    """So a run can switch lr_decay_start on resume: the checkpoint tree is the same."""
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    trees = [
        jax.tree.structure(
            make_optimizer(learning_rate_schedule(1e-3, 10, start), 0.5, 0.999, 0.0).init(params)
        )
        for start in (1.0, 0.5)
    ]
    assert trees[0] == trees[1]
