"""The accelerator path on CPU: mixed precision (`train.compute_dtype`),
rematerialisation (`model.remat`), and `lax.conv` against the CPU's im2col convolution.

Tolerances, and why:
- lax.conv vs im2col, float32: rtol 1e-4 / atol 1e-5 on outputs and gradients. The
  two sum the same products in a different order; nothing else differs.
- remat vs none, float32: rtol 1e-5 / atol 1e-6 on losses, parameters after one SGD
  step (= gradients), BatchNorm and spectral-norm state. Remat recomputes the same
  operations; only XLA's fusion of them may differ.
- bfloat16 vs float32, one step from the same initialisation, for every registered
  model: losses and per-head mean logits within 0.05 absolute + 5% relative, and each
  network's gradient (the SGD update) with cosine similarity >= 0.98 and a norm within
  15% of float32's. bfloat16 keeps 8 bits of mantissa (~0.4% per rounding); tens of
  roundings per activation put the losses' error at ~1e-2, measured well inside these
  bounds.

The remat and bfloat16 tests share one float32 step per model (`one_step`).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgan_jax.checkpoint import Checkpointer
from vgan_jax.config import load_config
from vgan_jax.errors import VganError
from vgan_jax.models import VideoShape, build_models, known_models, layers
from vgan_jax.models.critics import FRAMES_RNG
from vgan_jax.parallel import global_batch, make_mesh
from vgan_jax.state import abstract_train_state, build_gan, create_train_state
from vgan_jax.train import check_config, train
from vgan_jax.train_step import make_train_step

# As in test_train: every feature of the default model on (synchronised BatchNorm,
# minibatch-std over the global batch, spectral norm, the per-frame image head, R1).
_ALL_FEATURES = dict(train__r1_gamma=1.0, model__d_minibatch_std_group=4, model__d_image_frames=2)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _batch(config, seed=0):
    rng = np.random.default_rng(seed)
    shape = (
        config.train.batch_size,
        config.data.frames,
        config.data.resolution,
        config.data.resolution,
        config.data.channels,
    )
    return {
        "video": rng.uniform(-1, 1, shape).astype(np.float32),
        "label": np.zeros(shape[0], np.int32),
    }


def _one_sgd_step(config, devices=2, lr=0.1):
    """(initial state, state after one SGD step, metrics): with SGD the parameter change
    is -lr * gradient, so comparing states compares gradients."""
    gan = dataclasses.replace(
        build_gan(config), g_optimizer=optax.sgd(lr), d_optimizer=optax.sgd(lr)
    )
    mesh = make_mesh(devices)
    state = create_train_state(gan, 0, mesh)
    initial = jax.device_get(state)
    new_state, metrics = make_train_step(gan, mesh)(state, global_batch(_batch(config), mesh))
    return initial, jax.device_get(new_state), jax.device_get(metrics)


def _flat(tree):
    return np.concatenate([x.ravel() for x in _leaves(tree)]).astype(np.float64)


@pytest.fixture(scope="module")
def one_step(tiny_config):
    """`run(model, compute_dtype, remat)` -> `_one_sgd_step` of the `tiny` preset with
    every feature on (`_ALL_FEATURES`), each setting run once per module."""
    runs = {}

    def run(model, compute_dtype="float32", remat="none"):
        key = (model, compute_dtype, remat)
        if key not in runs:
            config = tiny_config(
                model__name=model,
                model__remat=remat,
                train__compute_dtype=compute_dtype,
                **_ALL_FEATURES,
            )
            runs[key] = _one_sgd_step(config)
        return runs[key]

    return run


# --- lax.conv (GPU/TPU) against im2col (CPU) -----------------------------------------


@pytest.mark.parametrize(
    "x_shape, kernel_shape, edge_axes, padding",
    [
        ((2, 4, 6, 6, 5), (3, 3, 3, 5, 7), (), None),  # generator-style 3x3x3, zeros
        ((2, 4, 6, 6, 5), (3, 3, 3, 5, 7), (0,), None),  # time edge-padded
        ((2, 4, 6, 6, 40), (2, 2, 2, 40, 8), (), None),  # critic's 2-tap after s2d
        ((2, 4, 6, 6, 3), (2, 2, 2, 3, 16), (0,), [(1, 1)] * 3),  # resize windows
        ((3, 8, 8, 4), (3, 3, 4, 6), (), None),  # 2D (image head)
        ((3, 8, 4), (2, 4, 6), (), [(1, 1)]),  # 1D (TGAN's temporal generator)
    ],
)
def test_xla_and_im2col_convolutions_agree(x_shape, kernel_shape, edge_axes, padding):
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(keys[0], x_shape)
    kernel = jax.random.normal(keys[1], kernel_shape) / np.sqrt(np.prod(kernel_shape[:-1]))

    def run(implementation):
        def f(x, kernel):
            return layers.same_conv(x, kernel, implementation, edge_axes, padding)

        y = f(x, kernel)
        cotangent = jax.random.normal(keys[2], y.shape)
        grads = jax.grad(lambda x, k: jnp.sum(f(x, k) * cotangent), argnums=(0, 1))(x, kernel)
        return y, *grads

    for a, b in zip(run("xla"), run("im2col"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_conv_path_flag_and_environment_variable(monkeypatch):
    monkeypatch.setattr(layers, "CONV_IMPLEMENTATION", None)
    monkeypatch.delenv(layers.CONV_IMPLEMENTATION_ENV, raising=False)
    assert layers.resolve_conv_implementation() == "im2col"  # CPU's default
    monkeypatch.setenv(layers.CONV_IMPLEMENTATION_ENV, "xla")
    assert layers.resolve_conv_implementation() == "xla"
    monkeypatch.setattr(layers, "CONV_IMPLEMENTATION", "im2col")  # the attribute wins
    assert layers.resolve_conv_implementation() == "im2col"
    assert layers.resolve_conv_implementation("xla") == "xla"  # explicit beats both
    monkeypatch.setattr(layers, "CONV_IMPLEMENTATION", "cudnn")
    with pytest.raises(ValueError, match="cudnn"):
        layers.resolve_conv_implementation()


@pytest.mark.parametrize("name", ["dcgan", "tgan"])
def test_models_give_the_same_outputs_and_gradients_through_either_path(monkeypatch, name):
    """The same parameters, forced through `lax.conv` (what GPUs and TPUs run) and
    through im2col: generator videos, critic logits, and the gradients of both with
    respect to their parameters and the critic's input (R1's). dcgan has the 3D
    resize upsampling with edge-padded time and both critic heads; tgan the 1D and 2D
    convolutions (vgan is built from the same layers)."""
    config = load_config("tiny").model
    config.name = name
    config.d_image_frames = 2
    shape = VideoShape(4, 16, 1)
    pair = build_models(config, shape)
    z = jax.random.normal(jax.random.PRNGKey(0), (3, pair.latent_dim))
    g_vars = pair.generator.init(jax.random.PRNGKey(1), z)
    g_vars = {k: v for k, v in g_vars.items() if k != "losses"}
    rngs = {"params": jax.random.PRNGKey(2), FRAMES_RNG: jax.random.PRNGKey(3)}
    video0 = pair.generator.apply(g_vars, z)
    d_vars = pair.discriminator.init(rngs, video0)

    def outputs():
        def score(g_params, d_params, video_in):
            video = pair.generator.apply({**g_vars, "params": g_params}, z)
            heads = pair.discriminator.apply({**d_vars, "params": d_params}, video, rngs=rngs)
            real = pair.discriminator.apply({**d_vars, "params": d_params}, video_in, rngs=rngs)
            total = sum(jnp.sum(jnp.sin(h)) for h in (*heads.values(), *real.values()))
            return total, (video, heads)

        grads, (video, heads) = jax.grad(score, argnums=(0, 1, 2), has_aux=True)(
            g_vars["params"], d_vars["params"], video0
        )
        return video, heads, grads

    monkeypatch.setattr(layers, "CONV_IMPLEMENTATION", "xla")
    xla = outputs()
    monkeypatch.setattr(layers, "CONV_IMPLEMENTATION", "im2col")
    im2col = outputs()
    for a, b in zip(_leaves(xla), _leaves(im2col), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --- rematerialisation ---------------------------------------------------------------


# The models whose stages, together, are every kind `layers.stage` wraps: vgan holds
# dcgan's 3D trunk, the 2D image generator (tgan's and mocogan's per-frame generator)
# and the multi-head critic's stages; dvdgan holds the ConvGRU groups and its two
# critics. The other three would re-test the same stage functions at ~1 minute of CI
# each (the suite must stay under 10 minutes on 2 cores); their bfloat16 tests below
# still cover every model.
REMAT_MODELS = ("vgan", "dvdgan")


@pytest.mark.parametrize("model", REMAT_MODELS)
def test_remat_leaves_losses_and_gradients_unchanged(one_step, model):
    """Every stage kind (`REMAT_MODELS`), with R1 (a gradient through the critic) and the
    synchronised BatchNorm (a collective inside a rematerialised stage) on. The stage
    kinds: dcgan's 3D trunk, the 2D image generator (vgan's background, tgan's and
    mocogan's per-frame generator), DVD-GAN's groups (a ConvGRU scan and a residual
    block with conditional BatchNorm), the video, image, spatial and temporal critics."""
    (init_a, a, metrics_a), (init_b, b, metrics_b) = (
        one_step(model, remat=remat) for remat in ("none", "stage")
    )
    # Same parameter names and shapes: a checkpoint doesn't care about remat.
    assert jax.tree.structure(init_a) == jax.tree.structure(init_b)
    for x, y in zip(_leaves(init_a), _leaves(init_b), strict=True):
        np.testing.assert_array_equal(x, y)
    for part in ("g_params", "d_params", "ema_params", "g_state", "d_state"):
        for x, y in zip(_leaves(getattr(a, part)), _leaves(getattr(b, part)), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=part)
    for name, value in metrics_a.items():
        np.testing.assert_allclose(value, metrics_b[name], rtol=1e-5, atol=1e-6, err_msg=name)


# --- mixed precision -----------------------------------------------------------------


def _float_dtypes(tree):
    return {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


def test_bfloat16_models_compute_in_bfloat16_and_return_float32(monkeypatch):
    """Every matmul and convolution on activations (the ones whose result starts with
    the batch axis) multiplies bfloat16 operands, through either convolution path (the
    im2col path accumulates scattered blocks in float32, as an MXU would); videos
    and logits come back float32, parameters and spectral-norm state are float32.
    (The float32 matmuls left are on parameters: spectral norm's power iteration and
    the resize kernel's 2-tap windows, computed once per step from float32 weights.)"""
    batch, image_frames = 5, 2
    config = load_config("tiny").model
    config.d_image_frames = image_frames
    pair = build_models(config, VideoShape(4, 16, 1), compute_dtype="bfloat16")
    z = jnp.ones((batch, pair.latent_dim))
    g_vars = pair.generator.init(jax.random.PRNGKey(0), z)
    video = pair.generator.apply(g_vars, z)
    rngs = {"params": jax.random.PRNGKey(1), FRAMES_RNG: jax.random.PRNGKey(2)}
    d_vars = pair.discriminator.init(rngs, video)
    heads = pair.discriminator.apply(d_vars, video, rngs=rngs)
    assert video.dtype == jnp.float32
    assert {h.dtype for h in heads.values()} == {jnp.dtype(jnp.float32)}
    assert _float_dtypes(g_vars) == _float_dtypes(d_vars) == {jnp.dtype(jnp.float32)}

    def activation_op_types(fn, variables):
        """Operand dtypes of the dot_general / conv_general_dilated whose result's
        leading dimension is a batch (clips, or clips x frames in the image head),
        one string per operation ("bf16" when both operands are bfloat16)."""

        def equations(jaxpr):
            for eqn in jaxpr.eqns:
                yield eqn
                for value in eqn.params.values():
                    for sub in value if isinstance(value, (tuple, list)) else (value,):
                        inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr or Jaxpr
                        if hasattr(inner, "eqns"):
                            yield from equations(inner)

        found = []
        for eqn in equations(jax.make_jaxpr(fn)(variables).jaxpr):
            if eqn.primitive.name not in ("dot_general", "conv_general_dilated"):
                continue
            if eqn.outvars[0].aval.shape[0] in (batch, batch * image_frames):
                dtypes = {str(v.aval.dtype) for v in eqn.invars}
                found.append("bf16" if dtypes == {"bfloat16"} else "/".join(sorted(dtypes)))
        return found

    for implementation in ("xla", "im2col"):
        monkeypatch.setattr(layers, "CONV_IMPLEMENTATION", implementation)
        g_types = activation_op_types(lambda v: pair.generator.apply(v, z), g_vars)
        d_types = activation_op_types(
            lambda v: pair.discriminator.apply(v, video, rngs=rngs), d_vars
        )
        assert len(g_types) >= 3 and set(g_types) == {"bf16"}, (implementation, g_types)
        assert len(d_types) >= 6 and set(d_types) == {"bf16"}, (implementation, d_types)


# Every model's critic heads (the per-head mean logits the step logs).
_HEADS = {"dvdgan": ("spatial", "temporal")}


@pytest.mark.parametrize("model", known_models())
def test_bfloat16_step_is_finite_close_to_float32_and_keeps_float32_state(one_step, model):
    (init32, f32, m32), (init16, bf16, m16) = (
        one_step(model, compute_dtype) for compute_dtype in ("float32", "bfloat16")
    )
    for x, y in zip(_leaves(init32), _leaves(init16), strict=True):
        np.testing.assert_array_equal(x, y)  # same float32 initialisation
    assert m16["nonfinite"] == 0
    assert all(np.isfinite(v) for v in m16.values())
    heads = _HEADS.get(model, ("video", "image"))
    logits = [f"d_{side}_{head}" for head in heads for side in ("real", "fake")]
    for name in ("d_loss", "g_loss", *logits, "r1"):
        np.testing.assert_allclose(m16[name], m32[name], rtol=0.05, atol=0.05, err_msg=name)
    for part in ("g_params", "d_params"):
        update32 = _flat(getattr(f32, part)) - _flat(getattr(init32, part))
        update16 = _flat(getattr(bf16, part)) - _flat(getattr(init16, part))
        cosine = update16 @ update32 / (np.linalg.norm(update16) * np.linalg.norm(update32))
        assert cosine >= 0.98, (part, cosine)
        assert abs(np.linalg.norm(update16) / np.linalg.norm(update32) - 1) <= 0.15, part
    # Parameters, optimizer states, EMA, BatchNorm statistics, spectral-norm vectors:
    # all float32 after a bfloat16 step.
    assert _float_dtypes(bf16) == {jnp.dtype(jnp.float32)}


def test_bfloat16_checkpoints_are_float32_and_resume_exactly(tiny_config, tmp_path):
    config = tiny_config(
        train__steps=4,
        train__checkpoint_every=2,
        train__compute_dtype="bfloat16",
        mesh__num_devices=2,
        **_ALL_FEATURES,
    )
    straight = train(config, str(tmp_path / "straight"))
    config.train.steps = 2
    train(config, str(tmp_path / "interrupted"))
    config.train.steps = 4
    resumed = train(config, str(tmp_path / "interrupted"))
    assert resumed.start_step == 2 and resumed.step == 4
    assert _float_dtypes(straight.state) == {jnp.dtype(jnp.float32)}
    abstract = abstract_train_state(build_gan(config), mesh=make_mesh(1))
    a = Checkpointer(str(tmp_path / "straight")).restore(abstract)
    b = Checkpointer(str(tmp_path / "interrupted")).restore(abstract)
    assert _float_dtypes(a) == {jnp.dtype(jnp.float32)}
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)  # the same numbers, bit for bit
    for name in ("d_loss", "g_loss", "d_real_video", "d_fake_image", "r1", "g_grad_norm"):
        np.testing.assert_array_equal(straight.metrics[name], resumed.metrics[name], name)


# --- configuration -------------------------------------------------------------------


def test_bad_compute_dtype_or_remat_is_a_clear_error(tiny_config):
    with pytest.raises(VganError, match="train.compute_dtype 'float16'.*bfloat16"):
        check_config(tiny_config(train__compute_dtype="float16"))
    with pytest.raises(VganError, match="model.remat 'layer'.*stage"):
        check_config(tiny_config(model__remat="layer"))


def test_accelerator_presets():
    gpu, gpu128 = load_config("gpu"), load_config("gpu128")
    assert gpu.train.compute_dtype == gpu128.train.compute_dtype == "bfloat16"
    assert load_config("default").train.compute_dtype == "float32"
    check_config(gpu128)
    gan = build_gan(gpu128)
    assert gan.video_shape.as_array_shape() == (16, 128, 128, 3)
    state = abstract_train_state(gan)  # shapes only: nothing allocated
    assert _float_dtypes(state) == {jnp.dtype(jnp.float32)}
    assert gpu128.train.batch_size % 8 == 0  # a v4-8 / v5e-8 slice
