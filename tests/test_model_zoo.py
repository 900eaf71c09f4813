"""TGAN's singular value clipping, MoCoGAN, DVD-GAN, class conditioning and
longer-than-trained sampling, all through the one train step."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgan_jax import cli
from vgan_jax.checkpoint import Checkpointer
from vgan_jax.config import base_config
from vgan_jax.errors import VganError
from vgan_jax.models import VideoShape, build_models
from vgan_jax.models.conditioning import CLASS_LOSSES, AuxiliaryClassifier
from vgan_jax.models.critics import FRAMES_RNG
from vgan_jax.models.dvdgan import ConvGRU, ConvGRUCell, average_pool_space
from vgan_jax.parallel import global_batch, make_mesh
from vgan_jax.sampling import TrainedGenerator, check_frames, check_labels, sample
from vgan_jax.state import abstract_train_state, build_gan, create_train_state
from vgan_jax.svc import clamp_batch_norm_scales, singular_value_clip
from vgan_jax.train import train
from vgan_jax.train_step import make_train_step


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _assert_trees_close(a, b, **tolerance):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **tolerance)


def _batch(config, seed=0):
    rng = np.random.default_rng(seed)
    shape = (
        config.train.batch_size,
        config.data.frames,
        config.data.resolution,
        config.data.resolution,
        config.data.channels,
    )
    index = np.arange(shape[0])
    labels = index % 10
    if config.model.labels_per_clip > 1:  # one class per object, as the two-digit data
        labels = (index[:, None] * 3 + np.arange(config.model.labels_per_clip)) % 10
    return {
        "video": rng.uniform(-1, 1, shape).astype(np.float32),
        "label": labels.astype(np.int32),
    }


def _model_config(name, **kw):
    config = base_config().model
    config.name = name
    config.width = 4
    config.latent_dim = 8
    config.num_upsamples = 2
    config.d_image_frames = 2
    for k, v in kw.items():
        config[k] = v
    return config


def _generator_inputs(pair, batch, frames, seed=0):
    """z and whatever else the pair's generator takes, for `batch` videos of `frames`."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    inputs = {"z": jax.random.normal(keys[0], (batch, pair.latent_dim))}
    if pair.frame_noise_dim:
        inputs["frame_noise"] = jax.random.normal(keys[1], (batch, frames, pair.frame_noise_dim))
    if pair.num_classes:
        inputs["labels"] = jnp.arange(batch, dtype=jnp.int32) % pair.num_classes
    return inputs


def _init_generator(pair, inputs):
    inputs = dict(inputs)
    z = inputs.pop("z")
    return pair.generator.init(jax.random.PRNGKey(1), z, **inputs)


def _generate(pair, variables, inputs, **kwargs):
    inputs = dict(inputs)
    z = inputs.pop("z")
    return pair.generator.apply(variables, z, **inputs, **kwargs)


# --- TGAN: singular value clipping --------------------------------------------------


def _singular_values(d_params):
    return [
        np.linalg.svd(np.asarray(w).reshape(-1, w.shape[-1]), compute_uv=False)
        for w in jax.tree.leaves(d_params)
        if np.ndim(w) >= 2
    ]


def test_singular_value_clipping_bounds_every_singular_value(tiny_config):
    """Every critic weight (dense, conv, projection embedding) ends a clipping step with
    all singular values <= 1, computed here with numpy's SVD; with every=2, step 1
    leaves them alone and step 2 clips."""
    config = tiny_config(
        model__name="tgan",
        model__d_spectral_norm=False,
        model__num_classes=10,
        train__loss="wasserstein",
        train__d_singular_value_clip_every=2,
    )
    gan = build_gan(config)
    mesh = make_mesh(1)
    state = create_train_state(gan, 0, mesh)
    # Blow the weights up so that clipping has work to do on every matrix.
    state = state.replace(d_params=jax.tree.map(lambda w: w * 5.0, state.d_params))
    assert all(s.max() > 1.5 for s in _singular_values(state.d_params))
    step = make_train_step(gan, mesh)
    state, _ = step(state, global_batch(_batch(config, 0), mesh))
    assert max(s.max() for s in _singular_values(state.d_params)) > 1.5  # step 1: no clip
    state, metrics = step(state, global_batch(_batch(config, 1), mesh))
    assert float(metrics["nonfinite"]) == 0
    values = _singular_values(state.d_params)
    assert len(values) >= 8  # the video and image heads' convs, dense, projection
    assert max(s.max() for s in values) <= 1.0 + 1e-5
    # Singular values already below 1 are kept (clipping, not normalisation).
    assert min(s.min() for s in values) < 0.99


def test_clip_keeps_small_singular_values_and_clamps_batch_norm_scale():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    v, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    s = np.array([3.0, 1.5, 0.5, 0.1])
    kernel = (u[:, :4] * s) @ v.T  # a [6, 4] dense kernel with known singular values
    params = {
        "Dense_0": {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.full((4,), 7.0)},
        "BatchNorm_0": {"scale": jnp.asarray([5.0, 0.5, 0.001]), "bias": jnp.zeros(3)},
    }
    state = {"batch_stats": {"BatchNorm_0": {"mean": jnp.zeros(3), "var": jnp.full((3,), 4.0)}}}
    clipped = singular_value_clip(params, state)
    np.testing.assert_allclose(
        np.linalg.svd(np.asarray(clipped["Dense_0"]["kernel"]), compute_uv=False),
        [1.0, 1.0, 0.5, 0.1],
        rtol=1e-5,
    )
    np.testing.assert_array_equal(clipped["Dense_0"]["bias"], params["Dense_0"]["bias"])
    # gamma in [0.01 sigma, sigma] with sigma = sqrt(var) = 2, as the official updater.
    np.testing.assert_allclose(clipped["BatchNorm_0"]["scale"], [2.0, 0.5, 0.02], rtol=1e-6)
    assert clamp_batch_norm_scales(params, {}) is params  # no BatchNorm: nothing to clamp


# --- MoCoGAN -------------------------------------------------------------------------


def _mocogan():
    pair = build_models(_model_config("mocogan", motion_dim=5), VideoShape(6, 16, 1))
    inputs = _generator_inputs(pair, 2, 6)
    return pair, _init_generator(pair, inputs), inputs


def test_mocogan_content_is_fixed_per_video_and_motion_varies_per_frame():
    """The per-frame codes (sown) are [z_C; h_t]: the content part is z_C in every frame,
    the motion part changes from frame to frame. Swapping the motion inputs (h_0 and the
    per-frame noise) of two videos swaps their motion codes and keeps each content, and
    changes the frames; swapping content alone keeps the motion codes."""
    pair, variables, inputs = _mocogan()
    latent = 8

    def codes_of(inputs):
        video, sown = _generate(pair, variables, inputs, mutable=["intermediates"])
        (codes,) = sown["intermediates"]["codes"]
        return video, codes

    video, codes = codes_of(inputs)
    z, noise = inputs["z"], inputs["frame_noise"]
    content, motion = codes[..., :latent], codes[..., latent:]
    np.testing.assert_array_equal(content, jnp.broadcast_to(z[:, None, :latent], content.shape))
    assert float(jnp.min(jnp.std(motion, axis=1))) > 1e-3  # motion varies over time

    swapped_motion = {
        "z": jnp.concatenate([z[:, :latent], z[::-1, latent:]], axis=1),
        "frame_noise": noise[::-1],
    }
    video_m, codes_m = codes_of(swapped_motion)
    np.testing.assert_array_equal(codes_m[..., :latent], content)
    np.testing.assert_allclose(codes_m[..., latent:], motion[::-1], rtol=1e-6)
    assert not np.allclose(video_m, video)
    swapped_content = {
        "z": jnp.concatenate([z[::-1, :latent], z[:, latent:]], axis=1),
        "frame_noise": noise,
    }
    _, codes_c = codes_of(swapped_content)
    np.testing.assert_allclose(codes_c[..., latent:], motion, rtol=1e-6)


def test_mocogan_gru_runs_under_scan():
    pair, variables, inputs = _mocogan()
    jaxpr = str(jax.make_jaxpr(lambda i: _generate(pair, variables, i))(inputs))
    assert "scan[" in jaxpr or "scan(" in jaxpr or " scan" in jaxpr
    # One scanned step, not one copy of the GRU per frame: few dot_generals.
    assert jaxpr.count("dot_general") < 20


def test_mocogan_motion_stays_float32_in_bfloat16():
    """With bfloat16 compute the image generator runs in bfloat16, but the GRU (a few
    thousand FLOPs per clip) keeps float32: the per-frame codes are exactly the float32
    model's, so a long unroll gathers no 8-bit rounding in its state."""
    pair, variables, inputs = _mocogan()
    half = build_models(
        _model_config("mocogan", motion_dim=5), VideoShape(6, 16, 1), compute_dtype="bfloat16"
    )
    reference, sown = _generate(pair, variables, inputs, mutable=["intermediates"])
    (codes,) = sown["intermediates"]["codes"]
    video, sown = _generate(half, variables, inputs, mutable=["intermediates"])
    (half_codes,) = sown["intermediates"]["codes"]
    assert half_codes.dtype == video.dtype == jnp.float32
    np.testing.assert_array_equal(half_codes, codes)
    assert 0 < float(jnp.max(jnp.abs(video - reference))) < 0.1  # bfloat16 images, close


# --- DVD-GAN -------------------------------------------------------------------------


def test_dvdgan_spatial_critic_sees_k_frames_and_temporal_the_pooled_clip():
    shape = VideoShape(6, 16, 3)
    pair = build_models(_model_config("dvdgan", d_image_frames=4), shape)
    video = jax.random.uniform(jax.random.PRNGKey(0), (2, *shape.as_array_shape()), minval=-1)
    key = jax.random.PRNGKey(7)
    variables = pair.discriminator.init({"params": key, FRAMES_RNG: key}, video)
    assert "intermediates" not in variables  # nothing but params/spectral becomes state
    heads, sown = pair.discriminator.apply(
        variables, video, rngs={FRAMES_RNG: key}, mutable=["intermediates"]
    )
    assert set(heads) == {"spatial", "temporal"}
    assert heads["spatial"].shape == heads["temporal"].shape == (2,)
    (spatial,) = sown["intermediates"]["spatial_input"]
    (temporal,) = sown["intermediates"]["temporal_input"]
    assert spatial.shape == (2, 4, 16, 16, 3)  # exactly k full-resolution frames
    # ... each one of the clip's frames (the same 4 distinct ones for every clip).
    chosen = [[t for t in range(6) if np.array_equal(spatial[:, j], video[:, t])] for j in range(4)]
    assert all(len(c) == 1 for c in chosen) and len({c[0] for c in chosen}) == 4
    assert temporal.shape == (2, 6, 8, 8, 3)  # every frame, 2x2 average-pooled
    np.testing.assert_allclose(
        temporal[0, 0, 0, 0], video[0, 0, :2, :2].mean(axis=(0, 1)), rtol=1e-6
    )
    np.testing.assert_allclose(temporal, average_pool_space(video), rtol=1e-6)
    # k >= frames: every frame.
    pair = build_models(_model_config("dvdgan", d_image_frames=8), shape)
    _, sown = pair.discriminator.apply(
        pair.discriminator.init({"params": key, FRAMES_RNG: key}, video),
        video,
        rngs={FRAMES_RNG: key},
        mutable=["intermediates"],
    )
    assert sown["intermediates"]["spatial_input"][0].shape[1] == 6


def test_dvdgan_generator_uses_conditional_batch_norm_and_scan():
    pair = build_models(_model_config("dvdgan", num_classes=3), VideoShape(4, 16, 1))
    inputs = _generator_inputs(pair, 2, 4)
    variables = _init_generator(pair, inputs)
    paths = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
    names = " ".join(jax.tree_util.keystr(path) for path, _ in paths)
    assert "gain" in names and "label_embedding" in names and "gru_0" in names
    jaxpr = str(jax.make_jaxpr(lambda i: _generate(pair, variables, i))(inputs))
    assert "scan" in jaxpr


def test_dvdgan_conv_gru_carries_a_float32_state_in_bfloat16():
    """The ConvGRU's convolutions run in bfloat16, its gates and state update in float32:
    the carried state is float32 (what the next frame reads), the emitted frame bfloat16."""
    cell = ConvGRUCell(4, dtype=jnp.bfloat16)
    h = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 4))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 3)).astype(jnp.bfloat16)
    # jit: one compilation each instead of one per operation.
    variables = jax.jit(cell.init)(jax.random.PRNGKey(2), h, x)
    state, out = jax.jit(cell.apply)(variables, h, x)
    assert state.dtype == jnp.float32 and out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(out, state.astype(jnp.bfloat16))
    full, _ = jax.jit(ConvGRUCell(4).apply)(variables, h, x.astype(jnp.float32))
    np.testing.assert_allclose(state, full, atol=0.05)
    outputs, _ = jax.eval_shape(
        ConvGRU(4, dtype=jnp.bfloat16).init_with_output,
        jax.random.PRNGKey(3),
        jnp.ones((2, 5, 4, 4, 3)),
    )
    assert outputs.shape == (2, 5, 4, 4, 4) and outputs.dtype == jnp.bfloat16


# --- conditioning --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dcgan", "vgan", "tgan", "mocogan", "dvdgan", "layered"])
def test_changing_only_the_label_changes_the_sample(name):
    pair = build_models(_model_config(name, num_classes=10), VideoShape(4, 16, 1))
    assert pair.num_classes == 10
    inputs = _generator_inputs(pair, 2, 4)
    variables = _init_generator(pair, inputs)
    first = _generate(pair, variables, {**inputs, "labels": jnp.array([3, 3], jnp.int32)})
    again = _generate(pair, variables, {**inputs, "labels": jnp.array([3, 3], jnp.int32)})
    other = _generate(pair, variables, {**inputs, "labels": jnp.array([3, 7], jnp.int32)})
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[0], other[0])  # same label, same video
    assert float(jnp.max(jnp.abs(first[1] - other[1]))) > 1e-4
    # The critic's heads depend on the label through the projection term.
    video = jnp.asarray(first)
    key = jax.random.PRNGKey(2)
    rngs = {"params": key, FRAMES_RNG: key}
    labels = jnp.array([3, 3], jnp.int32)
    d_vars = pair.discriminator.init(rngs, video, labels=labels)
    a = pair.discriminator.apply(d_vars, video, labels=labels, rngs=rngs)
    b = pair.discriminator.apply(d_vars, video, labels=labels.at[1].set(7), rngs=rngs)
    for head in a:
        np.testing.assert_allclose(a[head][0], b[head][0], rtol=1e-6)
        assert not np.allclose(a[head][1], b[head][1])


@pytest.mark.parametrize("name", ["dcgan", "mocogan", "dvdgan", "layered"])
def test_one_label_per_object(name):
    """Labels `[batch, K]` (a class per digit): one label per clip as `[batch, 1]` is
    exactly the `[batch]` form; K > 1 labels are a bag for the critics and for the
    generators that sum their embeddings, while `layered` draws layer k from label k,
    so swapping the labels changes its video."""
    config = _model_config(name, num_classes=10, num_layers=2)
    pair = build_models(config, VideoShape(4, 16, 1))
    inputs = _generator_inputs(pair, 2, 4)
    variables = _init_generator(pair, inputs)
    single = jnp.array([3, 7], jnp.int32)
    np.testing.assert_allclose(
        _generate(pair, variables, {**inputs, "labels": single}),
        _generate(pair, variables, {**inputs, "labels": single[:, None]}),
        rtol=1e-6, atol=1e-6,
    )
    pairs = jnp.array([[3, 7], [1, 1]], jnp.int32)
    first = _generate(pair, variables, {**inputs, "labels": pairs})
    swapped = _generate(pair, variables, {**inputs, "labels": pairs[:, ::-1]})
    np.testing.assert_allclose(first[1], swapped[1], rtol=1e-6, atol=1e-6)  # [1, 1]
    if name == "layered":
        assert float(jnp.max(jnp.abs(first[0] - swapped[0]))) > 1e-4
    else:
        np.testing.assert_allclose(first[0], swapped[0], rtol=1e-5, atol=1e-6)
    video = jnp.asarray(first)
    key = jax.random.PRNGKey(2)
    rngs = {"params": key, FRAMES_RNG: key}
    d_vars = pair.discriminator.init(rngs, video, labels=pairs)
    a = pair.discriminator.apply(d_vars, video, labels=pairs, rngs=rngs)
    b = pair.discriminator.apply(d_vars, video, labels=pairs[:, ::-1], rngs=rngs)
    c = pair.discriminator.apply(d_vars, video, labels=pairs.at[0, 1].set(2), rngs=rngs)
    for head in a:
        np.testing.assert_allclose(a[head], b[head], rtol=1e-5, atol=1e-6)
        assert not np.allclose(a[head][0], c[head][0])


def test_label_checks_are_one_line_errors():
    config = base_config()
    config.model.num_classes = 10
    config.model.width, config.model.latent_dim, config.model.num_upsamples = 4, 8, 2
    config.data.resolution, config.data.frames = 16, 4
    conditional = build_gan(config)
    np.testing.assert_array_equal(check_labels(conditional, None, 12), np.arange(12) % 10)
    np.testing.assert_array_equal(check_labels(conditional, 7, 3), [7, 7, 7])
    with pytest.raises(VganError, match=r"label 10 is outside \[0, 10\)"):
        check_labels(conditional, 10, 2)
    with pytest.raises(VganError, match=r"label -1 is outside"):
        check_labels(conditional, [1, -1], 2)
    # One class per object (two digits): sample i, object k gets (i // 10**k) % 10.
    config.model.labels_per_clip = 2
    per_object = build_gan(config)
    np.testing.assert_array_equal(
        check_labels(per_object, None, 12)[[0, 1, 10, 11]], [[0, 0], [1, 0], [0, 1], [1, 1]]
    )
    np.testing.assert_array_equal(check_labels(per_object, [3, 7], 2), [[3, 7], [3, 7]])
    np.testing.assert_array_equal(check_labels(per_object, 4, 1), [[4, 4]])
    with pytest.raises(VganError, match=r"2 integers \(one per object\)"):
        check_labels(per_object, [3, 7, 1], 2)
    config.model.labels_per_clip = 1
    config.model.num_classes = 0
    with pytest.raises(VganError, match="unconditional"):
        check_labels(build_gan(config), 3, 2)
    assert check_labels(build_gan(config), None, 2) is None
    # Lengths: only recurrent models change them.
    with pytest.raises(VganError, match="exactly the 4 frames.*only mocogan, dvdgan and layered"):
        check_frames(build_gan(config), 8)
    config.model.name = "mocogan"
    assert check_frames(build_gan(config), 48) == 48


def test_conditional_training_needs_labelled_data_that_fits(tiny_config, tmp_path):
    config = tiny_config(model__num_classes=5)  # Moving MNIST has 10 classes
    with pytest.raises(VganError, match="has 10 classes but model.num_classes is 5"):
        train(config, str(tmp_path / "run"))
    config = tiny_config(train__class_loss=1.0)
    with pytest.raises(VganError, match="train.class_loss needs a conditional run"):
        train(config, str(tmp_path / "run"))
    # The two-digit data labels both digits: the model must expect two labels per clip.
    config = tiny_config(model__num_classes=10)
    with pytest.raises(VganError, match="labels 2 object.*model.labels_per_clip=2"):
        train(config, str(tmp_path / "run"))
    config = tiny_config(model__name="layered", model__num_layers=3, model__labels_per_clip=2)
    with pytest.raises(VganError, match=r"labels_per_clip \(2\) must be 1 or model.num_layers"):
        train(config, str(tmp_path / "run"))


def test_auxiliary_classifier_sows_its_cross_entropy():
    """AC-GAN's classifier: its logits' mean cross-entropy against the labels is sown
    for train.class_loss (and nothing is sown at init: it is no state)."""
    features = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    labels = jnp.array([0, 1, 2, 3, 1, 0], jnp.int32)
    head = AuxiliaryClassifier(4)
    variables = head.init(jax.random.PRNGKey(1), features, labels)
    assert set(variables) == {"params"}
    logits, sown = head.apply(variables, features, labels, mutable=[CLASS_LOSSES])
    kernel = variables["params"]["classifier"]
    np.testing.assert_allclose(logits, features @ kernel["kernel"] + kernel["bias"], rtol=1e-5)
    expected = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(6), labels])
    (cross_entropy,) = jax.tree.leaves(sown)
    np.testing.assert_allclose(cross_entropy, expected, rtol=1e-5)
    # Two labels per clip: the target is 1/2 on each, whatever their order.
    pairs = jnp.stack([labels, (labels + 1) % 4], axis=1)
    _, sown = head.apply(variables, features, pairs, mutable=[CLASS_LOSSES])
    _, swapped = head.apply(variables, features, pairs[:, ::-1], mutable=[CLASS_LOSSES])
    log_p = jax.nn.log_softmax(logits)
    rows = jnp.arange(6)
    expected = -jnp.mean(0.5 * (log_p[rows, pairs[:, 0]] + log_p[rows, pairs[:, 1]]))
    np.testing.assert_allclose(jax.tree.leaves(sown)[0], expected, rtol=1e-5)
    np.testing.assert_allclose(jax.tree.leaves(swapped)[0], expected, rtol=1e-5)


# --- one step for every model: 1 vs 8 devices, resume --------------------------------

_CASES = {
    # MSGAN's term on, with the pairs it needs: batch 16 leaves 2 clips per device on 8.
    "mocogan_conditional": dict(
        model__name="mocogan", model__num_classes=10, train__mode_seeking=1.0,
        train__batch_size=16,
    ),
    # AC-GAN's classification term on both (a loss every critic head sows).
    "dvdgan_conditional": dict(
        model__name="dvdgan", model__num_classes=10, train__loss="hinge", train__class_loss=1.0
    ),
    # Per-frame noise drives the layers' motion; the placement and compositing run
    # on the device's own clips (no cross-batch state but the BatchNorm).
    # MSGAN's pairs too (batch 16: 2 clips per device on 8), so the resume test below
    # covers per-frame noise, per-object labels, mode seeking and the class loss in one
    # model.
    # With a class per digit (the `default` preset's conditioning): layer k draws label
    # k, the critics sum the two embeddings, the classifier's target is 1/2 on each.
    "layered_conditional": dict(
        model__name="layered", model__num_classes=10, model__labels_per_clip=2,
        train__class_loss=1.0, train__mode_seeking=1.0, train__batch_size=16,
    ),
    "tgan_svc": dict(
        model__name="tgan",
        model__d_spectral_norm=False,
        train__loss="wasserstein",
        train__d_singular_value_clip_every=1,
    ),
}
# R1, minibatch-std over the global batch and a per-frame head (2 frames) on.
_FEATURES = dict(train__r1_gamma=1.0, model__d_minibatch_std_group=4, model__d_image_frames=2)


def _run_steps(gan, config, devices, steps):
    mesh = make_mesh(devices)
    state = create_train_state(gan, 0, mesh)
    step = make_train_step(gan, mesh)
    for i in range(steps):
        state, metrics = step(state, global_batch(_batch(config, i), mesh))
    return state, jax.device_get(metrics)


@pytest.mark.parametrize("case", sorted(_CASES))
def test_one_and_eight_devices_agree(tiny_config, case):
    """As test_train's parity test (SGD: equal parameters mean equal gradients), for
    the per-frame noise and labels of conditional MoCoGAN, DVD-GAN's two critics and
    conditional BatchNorm, and TGAN's singular value clipping; two steps, so the second
    update sees a moved (and, for TGAN, clipped) critic."""
    config = tiny_config(**_CASES[case], **_FEATURES)
    gan = dataclasses.replace(
        build_gan(config), g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1)
    )
    (one, one_metrics), (eight, eight_metrics) = (
        _run_steps(gan, config, devices, 2) for devices in (1, 8)
    )
    for part in ("g_params", "d_params", "ema_params", "g_state", "d_state"):
        _assert_trees_close(getattr(one, part), getattr(eight, part), rtol=1e-4, atol=1e-5)
    for name, value in one_metrics.items():
        np.testing.assert_allclose(value, eight_metrics[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert one_metrics["nonfinite"] == 0


@pytest.mark.parametrize("case", ["tgan_svc", "layered_conditional"])
def test_resume_continues_the_same_numbers(tiny_config, tmp_path, case):
    """Interrupted at step 2 and resumed, a run ends where a straight one does: the
    per-frame noise and the clipping schedule (every 3 steps: step 3 clips after the
    resume) depend on the step only."""
    overrides = dict(_CASES[case])
    if case == "tgan_svc":
        overrides["train__d_singular_value_clip_every"] = 3
    config = tiny_config(
        train__steps=4, train__checkpoint_every=2, mesh__num_devices=2, **overrides, **_FEATURES
    )
    straight = train(config, str(tmp_path / "straight"))
    interrupted = tmp_path / "interrupted"
    config.train.steps = 2
    train(config, str(interrupted))
    config.train.steps = 4
    resumed = train(config, str(interrupted))
    assert resumed.start_step == 2 and resumed.step == 4
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(resumed.metrics[name], straight.metrics[name], rtol=1e-5)
    abstract = abstract_train_state(build_gan(config), mesh=make_mesh(1))
    _assert_trees_close(
        Checkpointer(str(tmp_path / "straight")).restore(abstract),
        Checkpointer(str(interrupted)).restore(abstract),
        rtol=1e-5,
        atol=1e-6,
    )


# --- sampling: labels and longer videos, through the CLI -----------------------------


@pytest.fixture(scope="module")
def conditional_mocogan_run(tiny_config, tmp_path_factory):
    """A 2-step conditional MoCoGAN run on the one-digit Moving MNIST (labels = digits)."""
    workdir = str(tmp_path_factory.mktemp("mocogan_run"))
    config = tiny_config(
        model__name="mocogan",
        model__num_classes=10,
        data__num_digits=1,
        train__steps=2,
        train__checkpoint_every=2,
        train__sample_every=2,
        mesh__num_devices=2,
    )
    train(config, workdir)
    return workdir


def test_recurrent_model_samples_longer_videos_that_extend_the_trained_ones(
    conditional_mocogan_run, tmp_path, capsys
):
    short = sample(conditional_mocogan_run, num=3, seed=5, labels=4)
    long = sample(conditional_mocogan_run, num=3, seed=5, labels=4, frames=12)
    assert short.shape == (3, 4, 16, 16, 1) and long.shape == (3, 12, 16, 16, 1)
    # Causal GRU, per-frame image generator, per-frame noise drawn frame by frame.
    np.testing.assert_array_equal(long[:, :4], short)
    out = str(tmp_path / "long.npy")
    args = ["sample", "--workdir", conditional_mocogan_run, "--num", "2", "--out", out]
    assert cli.main([*args, "--frames", "10", "--label", "7"]) == 0
    assert np.load(out).shape == (2, 10, 16, 16, 1)
    capsys.readouterr()
    for extra, message in [
        (["--label", "10"], "label 10 is outside [0, 10)"),
        (["--label", "-2"], "label -2 is outside [0, 10)"),
        # One label per clip: a list of classes (one per object) is for K > 1 runs.
        (["--label", "3,7,1"], "labels must be one integer or 2 integers"),
        (["--frames", "0"], "--frames must be >= 1"),
    ]:
        assert cli.main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err


def test_label_changes_a_trained_conditional_sample(conditional_mocogan_run):
    generator = TrainedGenerator(conditional_mocogan_run)
    inputs = generator.inputs(2, seed=0, labels=[1, 1])
    a = generator.generate(**inputs)
    b = generator.generate(**{**inputs, "labels": jnp.array([1, 8], jnp.int32)})
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])


def test_unconditional_and_fixed_length_runs_refuse_label_and_frames(tiny_run, tmp_path, capsys):
    args = ["sample", "--workdir", tiny_run, "--out", str(tmp_path / "x.npy")]
    assert cli.main([*args, "--label", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unconditional (model.num_classes=0)" in err and "\n" not in err
    assert cli.main([*args, "--frames", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "model 'dcgan' makes exactly the 4 frames it was trained with" in err
    assert cli.main([*args, "--frames", "4"]) == 0  # the trained length is fine


def test_eval_of_a_conditional_recurrent_run(conditional_mocogan_run, monkeypatch, capsys):
    """`vgan-jax eval` samples a conditional MoCoGAN (labels i % num_classes, per-frame
    noise) like any model (stand-in detector: the tiny clips are shorter than I3D's 9)."""
    import json

    from test_metrics import FakeI3D

    from vgan_jax.metrics import i3d

    monkeypatch.setattr(i3d, "I3DFeatureExtractor", FakeI3D)
    monkeypatch.setattr(i3d, "I3D_MIN_FRAMES", 1)
    code = cli.main(
        [
            "eval",
            "--workdir",
            conditional_mocogan_run,
            "--num_videos",
            "16",
            "--kvd_subsets",
            "2",
            "--json",
            "--cache_dir",
            os.path.join(conditional_mocogan_run, "fvd_cache"),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert np.isfinite(printed["fvd"]) and printed["sets"]["generated"]["num_videos"] == 16


# --- data: the one-digit Moving MNIST ------------------------------------------------


def test_one_digit_moving_mnist_labels_its_only_digit():
    from vgan_jax.data import moving_mnist

    # The two-digit datasets keep their names (directories), so they keep working.
    assert moving_mnist.make_config(16, 10000, 1000, 0).name == "f16_train10000_test1000_seed0"
    assert moving_mnist.make_config(16, 10000, 1000, 0, num_digits=1).name.endswith("_digits1")
    videos, labels = moving_mnist.generate_clips("train", 0, 8, frames=4, seed=0, num_digits=1)
    images, digit_labels = moving_mnist.load_digits()
    pool = moving_mnist.digit_indices(digit_labels, "train")
    for i in range(8):
        choice, start, _ = moving_mnist.clip_parameters(0, "train", i, len(pool), num_digits=1)
        assert choice.shape == (1,)
        assert labels[i] == digit_labels[pool[choice[0]]]
        # Frame 0 is exactly that digit at its start position, nothing else.
        row, col = np.clip(np.rint(start[0]), 0, 36).astype(int)
        expected = np.zeros((64, 64), np.uint8)
        expected[row : row + 28, col : col + 28] = images[pool[choice[0]]]
        np.testing.assert_array_equal(videos[i, 0, :, :, 0], expected)
    # Two digits per clip: the draws (and so the clips) are those of before the option.
    rng = np.random.default_rng([0, 0, 3])
    choice, _, _ = moving_mnist.clip_parameters(0, "train", 3, len(pool))
    np.testing.assert_array_equal(choice, rng.integers(0, len(pool), size=2))
