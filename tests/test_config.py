"""Presets, locked configs and the optimizer choices a config makes (no training)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgan_jax.config import (
    PRESETS_DIR,
    apply_override,
    base_config,
    config_from_saved,
    known_presets,
    load_config,
)
from vgan_jax.errors import VganError
from vgan_jax.state import decay_mask, make_optimizer
from vgan_jax.train import check_config, check_resumable


def test_presets_ship_inside_the_package():
    import vgan_jax

    assert PRESETS_DIR.startswith(vgan_jax.__path__[0])
    assert {"default", "tiny", "gpu", "conditional"} <= set(known_presets())
    for name in known_presets():
        assert load_config(name).is_locked
        check_config(load_config(name))  # every shipped preset passes train's checks


def test_a_preset_module_can_be_imported_by_experiment_files():
    from vgan_jax.configs.tiny import get_config

    assert get_config().to_dict() == load_config("tiny").to_dict()


def test_a_typo_in_a_config_file_fails_at_load_naming_the_field(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(
        "from vgan_jax.configs.tiny import get_config as tiny\n\n\n"
        "def get_config():\n"
        "    config = tiny()\n"
        "    config.train.stpes = 5\n"
        "    return config\n"
    )
    with pytest.raises(VganError) as error:
        load_config(str(path))
    message = str(error.value)
    assert "line 6" in message and "'stpes'" in message and "did you mean 'steps'" in message
    assert "\n" not in message


def test_overrides_and_code_cannot_add_fields_but_saved_configs_load():
    config = load_config("tiny")
    with pytest.raises(VganError, match="unknown config field 'train.stpes'"):
        apply_override(config, "train.stpes", "5")
    with pytest.raises(AttributeError, match="locked"):
        config.model.widht = 8
    apply_override(config, "train.steps", "5")
    assert config.train.steps == 5
    # A run saved by an older library may hold a field that no longer exists: it loads.
    saved = {**base_config().to_dict(), "legacy": {"knob": 1}}
    saved["train"] = {**saved["train"], "old_field": 2, "steps": 7}
    restored = config_from_saved(saved)
    assert restored.train.steps == 7 and restored.legacy.knob == 1
    assert restored.train.old_field == 2 and restored.is_locked


def test_resume_refuses_a_switch_between_adam_and_adamw():
    saved = load_config("tiny").to_dict()
    adamw = load_config("tiny")
    adamw.train.weight_decay = 0.01
    with pytest.raises(VganError) as error:
        check_resumable(saved, adamw)
    assert "train.weight_decay" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(VganError, match="train.weight_decay=0.01"):
        check_resumable(adamw.to_dict(), load_config("tiny"))
    stronger = load_config("tiny")
    stronger.train.weight_decay = 0.05
    check_resumable(adamw.to_dict(), stronger)  # the same optimizer tree: allowed


def test_adamw_decays_kernels_but_not_norm_scales_or_biases():
    params = {
        "conv": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones((4,))},
        "dense": {"kernel": jnp.ones((5, 4))},
        "norm": {"scale": jnp.ones((4,)), "bias": jnp.ones((4,))},
    }
    mask = decay_mask(params)
    assert mask["conv"]["kernel"] and mask["dense"]["kernel"]
    assert not (mask["conv"]["bias"] or mask["norm"]["scale"] or mask["norm"]["bias"])
    lr, decay = 0.1, 0.5
    optimizer = make_optimizer(lr, 0.5, 0.999, decay)
    zero_grads = optax.tree_utils.tree_zeros_like(params)
    updates, _ = optimizer.update(zero_grads, optimizer.init(params), params)
    new = optax.apply_updates(params, updates)
    # Zero gradients: Adam moves nothing, so what moved was decay, -lr * decay * p.
    np.testing.assert_allclose(new["conv"]["kernel"], 1.0 - lr * decay, rtol=1e-6)
    np.testing.assert_allclose(new["dense"]["kernel"], 1.0 - lr * decay, rtol=1e-6)
    for leaf in (new["conv"]["bias"], new["norm"]["scale"], new["norm"]["bias"]):
        np.testing.assert_array_equal(leaf, 1.0)
