"""Model shapes and value ranges, layer identities, and size checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgan_jax.config import base_config
from vgan_jax.errors import VganError
from vgan_jax.models import VideoShape, build_models, known_models
from vgan_jax.models.critics import FRAMES_RNG
from vgan_jax.models.dcgan import plan_upsampling
from vgan_jax.models.layers import (
    SameConv,
    blur_space,
    depth_to_space,
    resize_upsample,
    same_conv,
    space_to_depth,
)


def _generator_inputs(pair, z, frames):
    """What the pair's generator takes besides z (MoCoGAN: per-frame noise)."""
    if not pair.frame_noise_dim:
        return {}
    key = jax.random.PRNGKey(9)
    return {"frame_noise": jax.random.normal(key, (z.shape[0], frames, pair.frame_noise_dim))}


def _model_config(name, **kw):
    config = base_config().model
    config.name = name
    config.width = 4
    config.latent_dim = 8
    config.num_upsamples = 2
    for k, v in kw.items():
        config[k] = v
    return config


@pytest.mark.parametrize("name", known_models())
@pytest.mark.parametrize("shape", [VideoShape(4, 16, 1), VideoShape(6, 8, 3)])
def test_generator_and_discriminator_shapes_and_ranges(name, shape):
    pair = build_models(_model_config(name, d_image_frames=2), shape)
    z = jax.random.normal(jax.random.PRNGKey(0), (3, pair.latent_dim))
    inputs = _generator_inputs(pair, z, shape.frames)
    g_vars = pair.generator.init(jax.random.PRNGKey(1), z, **inputs)
    video = pair.generator.apply(g_vars, z, **inputs)
    assert video.shape == (3, *shape.as_array_shape())
    assert video.dtype == jnp.float32
    assert float(jnp.min(video)) >= -1.0 and float(jnp.max(video)) <= 1.0
    # Different noise, different videos; frames differ over time (motion is possible).
    assert float(jnp.std(video, axis=0).mean()) > 0
    rngs = {"params": jax.random.PRNGKey(2), FRAMES_RNG: jax.random.PRNGKey(3)}
    d_vars = pair.discriminator.init(rngs, video)
    heads = pair.discriminator.apply(d_vars, video, rngs=rngs)
    if name == "dvdgan":
        # The spatial head sums its k frames' scores (the paper's D_S), one per clip.
        assert {h: v.shape for h, v in heads.items()} == {"spatial": (3,), "temporal": (3,)}
    else:
        # One logit per clip from each head (the image head averages its frames).
        assert {h: v.shape for h, v in heads.items()} == {"video": (3,), "image": (3,)}
    for logits in heads.values():
        assert np.all(np.isfinite(np.asarray(logits)))


def test_discriminator_has_no_batch_statistics():
    """No BatchNorm: with minibatch-std off (its whole point is to look at the group), a
    sample's logit does not depend on the rest of the batch."""
    shape = VideoShape(4, 16, 1)
    pair = build_models(_model_config("dcgan", d_minibatch_std_group=0), shape)
    videos = jax.random.uniform(jax.random.PRNGKey(0), (4, *shape.as_array_shape()), minval=-1)
    rngs = {"params": jax.random.PRNGKey(1), FRAMES_RNG: jax.random.PRNGKey(2)}
    variables = pair.discriminator.init(rngs, videos)
    assert set(variables) <= {"params", "spectral"}
    together = pair.discriminator.apply(variables, videos, rngs=rngs)
    alone = pair.discriminator.apply(variables, videos[:1], rngs=rngs)
    for head in ("video", "image"):
        np.testing.assert_allclose(together[head][:1], alone[head], rtol=1e-5, atol=1e-6)


def test_vgan_composes_foreground_background_and_mask():
    shape = VideoShape(4, 16, 1)
    pair = build_models(_model_config("vgan", mask_l1_weight=0.5), shape)
    z = jax.random.normal(jax.random.PRNGKey(0), (2, pair.latent_dim))
    variables = pair.generator.init(jax.random.PRNGKey(1), z)
    variables = {k: v for k, v in variables.items() if k != "losses"}  # drop init's sown loss
    (video, (fg, bg, mask)), sown = pair.generator.apply(
        variables, z, return_streams=True, mutable=["losses"]
    )
    assert mask.shape == (2, 4, 16, 16, 1)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    np.testing.assert_allclose(video, mask * fg + (1 - mask) * bg, atol=1e-6)
    # The background is one image replicated over time.
    np.testing.assert_allclose(bg[:, 0], bg[:, -1])
    (penalty,) = sown["losses"]["mask_l1"]
    np.testing.assert_allclose(penalty, 0.5 * jnp.mean(jnp.abs(mask)), rtol=1e-6)


def test_space_to_depth_inverts_depth_to_space():
    x = jnp.arange(2 * 3 * 4 * 4 * 8, dtype=jnp.float32).reshape(2, 3, 4, 4, 8)
    y = depth_to_space(x, (1, 2, 2))
    assert y.shape == (2, 3, 8, 8, 2)
    np.testing.assert_array_equal(space_to_depth(y, (1, 2, 2)), x)
    # A pixel's 2x2 block comes from its channel groups, in raster order.
    np.testing.assert_array_equal(y[0, 0, 0:2, 0:2, 0], x[0, 0, 0, 0, ::2].reshape(2, 2))


@pytest.mark.parametrize("kernel", [(3, 3, 3), (2, 2, 2), (3, 3)])
def test_im2col_convolution_equals_xla_convolution(kernel):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *(5,) * len(kernel), 3))
    xla = SameConv(4, kernel, implementation="xla")
    variables = xla.init(jax.random.PRNGKey(1), x)
    im2col = SameConv(4, kernel, implementation="im2col")
    np.testing.assert_allclose(
        im2col.apply(variables, x), xla.apply(variables, x), rtol=1e-5, atol=1e-5
    )


def test_upsampling_plan():
    plan = plan_upsampling(frames=16, size=64, num_upsamples=3)
    assert plan.start == (2, 8, 8) and plan.time_factors == (2, 2, 2)
    plan = plan_upsampling(frames=6, size=32, num_upsamples=3)
    assert plan.start == (3, 4, 4) and plan.time_factors == (2, 1, 1)
    with pytest.raises(VganError, match="resolution 60"):
        plan_upsampling(frames=16, size=60, num_upsamples=3)


def test_unknown_model_lists_known_ones():
    known = "known models: dcgan, dvdgan, layered, mocogan, tgan, vgan"
    with pytest.raises(VganError, match=known):
        build_models(_model_config("stylegan9"), VideoShape(4, 16, 1))


def test_upsample_starts_as_nearest_neighbour_upsampling():
    """ICNR init of the sub-pixel mode: every output block is constant at initialisation
    (no checkerboard to unlearn; the resize mode has one kernel and needs none)."""
    from vgan_jax.models.layers import Upsample

    x = jax.random.normal(jax.random.PRNGKey(0), (1, 2, 4, 4, 3))
    layer = Upsample(5, (2, 2, 2), mode="subpixel")
    y = layer.apply(layer.init(jax.random.PRNGKey(1), x), x)
    assert y.shape == (1, 4, 8, 8, 5)
    blocks = space_to_depth(y, (2, 2, 2)).reshape(1, 2, 4, 4, 8, 5)
    np.testing.assert_allclose(
        blocks, jnp.broadcast_to(blocks[:, :, :, :, :1], blocks.shape), atol=1e-6
    )


def test_minibatch_stddev_uses_global_groups_under_shard_map():
    """Inside shard_map the feature and its input gradient equal the single-device ones
    (the gradient scaled by the device count, which the train step's pmean undoes)."""
    from jax.sharding import PartitionSpec as P

    from vgan_jax.models.layers import minibatch_stddev
    from vgan_jax.parallel import make_mesh

    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2, 4, 4, 3))
    weights = jax.random.normal(jax.random.PRNGKey(1), (8, 2, 4, 4, 4))

    def loss(x, w, axis=None):
        return jnp.mean(jnp.sum(minibatch_stddev(x, 4, axis) * w, axis=(1, 2, 3, 4)) ** 2)

    value, grad = jax.value_and_grad(loss)(x, weights)
    features = minibatch_stddev(x, 4)
    # Sample i is in group i % 2: samples 0 and 2 share a std, 0 and 1 do not.
    assert features[0, 0, 0, 0, -1] == features[2, 1, 3, 3, -1] != features[1, 0, 0, 0, -1]

    def sharded(x, w):
        v, g = jax.value_and_grad(lambda x: loss(x, w, "data"))(x)
        return jax.lax.pmean(v, "data"), g, minibatch_stddev(x, 4, "data")

    sv, sg, sf = jax.jit(jax.shard_map(sharded, mesh=make_mesh(8), in_specs=(P("data"), P("data")),
                                       out_specs=(P(), P("data"), P("data")), check_vma=False))(
        x, weights)
    np.testing.assert_allclose(sv, value, rtol=1e-5)
    np.testing.assert_allclose(sf, features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sg, 8 * grad, rtol=1e-4, atol=1e-5)


# Recurrent models (mocogan, dvdgan) have no time padding: a GRU's state builds up over
# the first frames by design, so their first frames are not comparable at init.
@pytest.mark.parametrize("name", ["dcgan", "tgan", "vgan"])
def test_no_frame_is_special_at_initialisation(name):
    """The boundary-frame artifact's cause, checked where it is deterministic: with
    zero padding in time, a 3D generator's first and last frames start 20-45% weaker
    than the middle ones (they see zeros beyond the clip at every stage), and
    training inherits it. With edge padding (and in TGAN, whose frames share one
    2D generator) every frame's spread is within 5% of the middle frames'."""
    shape = VideoShape(16, 32, 1)
    config = _model_config(name, g_time_padding="edge", num_upsamples=3, width=16)
    pair = build_models(config, shape)
    z = jax.random.normal(jax.random.PRNGKey(0), (128, pair.latent_dim))
    video = pair.generator.apply(pair.generator.init(jax.random.PRNGKey(1), z), z)
    spread = np.asarray(jnp.std(video, axis=(0, 2, 3, 4)))
    np.testing.assert_allclose(spread / spread[4:12].mean(), 1.0, atol=0.06)
    if name != "tgan":
        zero_padded = build_models(
            _model_config(name, g_time_padding="zeros", num_upsamples=3, width=16), shape
        )
        video = zero_padded.generator.apply(
            zero_padded.generator.init(jax.random.PRNGKey(1), z), z
        )
        spread = np.asarray(jnp.std(video, axis=(0, 2, 3, 4)))
        assert spread[0] < 0.9 * spread[4:12].mean()


@pytest.mark.parametrize("factors", [(2, 2, 2), (1, 2, 2), (2, 2)])
@pytest.mark.parametrize("edge", [False, True])
def test_resize_upsampling_equals_nearest_neighbour_then_conv(factors, edge):
    """`Upsample(mode='resize')` computes, at the low resolution, exactly nearest-
    neighbour upsampling followed by a 'SAME' 3-tap convolution at the high one."""
    nd = len(factors)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *([5] * nd), 3))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (*([3] * nd), 3, 4))
    axes = (0,) if edge else ()
    upsampled = x
    for axis, factor in enumerate(factors):
        upsampled = jnp.repeat(upsampled, factor, axis=1 + axis)
    expected = same_conv(upsampled, kernel, "xla", edge_padded_axes=axes)
    for implementation in ("im2col", "xla"):
        low_res = resize_upsample(x, kernel, factors, implementation, edge_padded_axes=axes)
        np.testing.assert_allclose(
            depth_to_space(low_res, factors), expected, rtol=1e-4, atol=1e-4
        )


def test_im2col_scatters_the_axes_where_gathering_would_compute_extra_windows():
    """The layout choice, on the 64x64 generator's first stage (resize windows: 2x8x8
    input, 3x9x9 windows, 128 -> 8 x 64 channels): gathering time would compute 3 windows
    for 2 frames, so time is scattered (61 against 88 ms forward + backward, measured);
    the critic's first layer (8 channels after space-to-depth, no extra windows) keeps
    full im2col."""
    from vgan_jax.models.layers import _gathered_axes

    assert _gathered_axes((2, 2, 2), 128, 512, (2, 8, 8), (3, 9, 9)) == (1, 2)
    assert _gathered_axes((2, 2, 2), 8, 32, (8, 32, 32), (8, 32, 32)) == (0, 1, 2)


@pytest.mark.parametrize("kernel_size", [(3, 3, 3), (2, 2, 2), (1, 3, 3), (3, 3)])
@pytest.mark.parametrize("channels", [(3, 4), (32, 8), (8, 32)])
@pytest.mark.parametrize("edge", [False, True])
def test_im2col_conv_values_and_gradients_equal_lax_conv(kernel_size, channels, edge):
    """The CPU convolution (taps gathered along some axes and scattered along others,
    chosen per layer from the channel counts; edge padding applied to the scattered
    blocks) gives `lax.conv`'s values and input and kernel gradients."""
    c_in, c_out = channels
    nd = len(kernel_size)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, *[3 + i for i in range(nd)], c_in), np.float32))
    kernel = jnp.asarray(rng.standard_normal((*kernel_size, c_in, c_out), np.float32))
    axes = (0,) if edge else ()
    weights = jnp.asarray(rng.standard_normal((*x.shape[:-1], c_out), np.float32))

    def loss(implementation):
        return lambda x, k: jnp.sum(same_conv(x, k, implementation, axes) * weights)

    for got, want in zip(
        jax.grad(loss("im2col"), (0, 1))(x, kernel),
        jax.grad(loss("xla"), (0, 1))(x, kernel),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))
    want = same_conv(x, kernel, "xla", axes)
    np.testing.assert_allclose(same_conv(x, kernel, "im2col", axes), want, rtol=1e-4, atol=1e-4)


def test_blur_space_removes_the_nyquist_checkerboard_and_keeps_constants():
    h, w = np.indices((6, 6))
    checker = np.broadcast_to(((-1.0) ** (h + w))[None, None, :, :, None], (2, 3, 6, 6, 1))
    blurred = blur_space(jnp.asarray(checker, jnp.float32))
    np.testing.assert_allclose(blurred[:, :, 1:-1, 1:-1], 0.0, atol=1e-7)  # edges replicate
    np.testing.assert_allclose(blur_space(jnp.full((1, 5, 5, 2), 3.0)), 3.0)
    dot = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(16.0)
    np.testing.assert_allclose(blur_space(dot)[0, 1:4, 1:4, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_dcgan_output_blur_blurs_the_pre_tanh_frames():
    """The same parameters with and without `output_blur` (it has none): the blurred
    generator's output is tanh of the blurred pre-tanh output of the plain one."""
    shape = VideoShape(frames=4, size=8, channels=1)
    config = base_config()
    config.model.update(width=8, num_upsamples=2)
    plain = build_models(config.model, shape).generator
    config.model.g_output_blur = True
    blurred = build_models(config.model, shape).generator
    z = jax.random.normal(jax.random.key(2), (2, config.model.latent_dim))
    variables = plain.init(jax.random.key(0), z)
    pre_tanh = jnp.arctanh(plain.apply(variables, z))
    np.testing.assert_allclose(
        blurred.apply(variables, z), jnp.tanh(blur_space(pre_tanh)), atol=2e-5
    )


def test_image_stem_is_a_full_resolution_conv_in_the_image_head_only():
    """`d_image_stem`: the image head's first layer is a stride-1 3x3 conv (its output
    keeps the frame's size), the video head is unchanged, one logit per clip each."""
    shape = VideoShape(4, 16, 1)
    pair = build_models(_model_config("dcgan", d_image_frames=2, d_image_stem=5), shape)
    videos = jax.random.uniform(jax.random.PRNGKey(0), (2, *shape.as_array_shape()), minval=-1)
    rngs = {"params": jax.random.PRNGKey(1), FRAMES_RNG: jax.random.PRNGKey(2)}
    variables = pair.discriminator.init(rngs, videos)
    params = variables["params"]
    assert params["image"]["stem"]["SameConv_0"]["kernel"].shape == (3, 3, 1, 5)
    assert "stem" not in params["video"]
    heads, inter = pair.discriminator.apply(
        variables, videos, rngs=rngs, capture_intermediates=True, mutable=["intermediates"]
    )
    stem_out = inter["intermediates"]["image"]["stem"]["__call__"][0]
    assert stem_out.shape == (2 * 2, 16, 16, 5)  # 2 clips x 2 frames, full resolution
    assert {h: v.shape for h, v in heads.items()} == {"video": (2,), "image": (2,)}


def test_image_width_widens_the_image_head_only():
    """`d_image_width`: the image head's stages start at that many channels (doubling
    as the video head's do), the video head keeps `d_width`."""
    shape = VideoShape(4, 16, 1)
    config = _model_config("dcgan", d_image_frames=2, d_width=4, d_image_width=6)
    pair = build_models(config, shape)
    videos = jax.random.uniform(jax.random.PRNGKey(0), (2, *shape.as_array_shape()), minval=-1)
    rngs = {"params": jax.random.PRNGKey(1), FRAMES_RNG: jax.random.PRNGKey(2)}
    params = pair.discriminator.init(rngs, videos)["params"]

    def first_stages(head):
        kernels = [
            jax.tree.leaves(params[head][f"Downsample_{i}"])[-1] for i in range(2)
        ]  # each stage's conv kernel [2, 2, c_in, c_out] (its bias sorts first)
        return [k.shape[-1] for k in kernels]

    assert first_stages("video") == [4, 8]
    assert first_stages("image") == [6, 12]
    with pytest.raises(VganError, match="d_image_width must be >= 0"):
        build_models(_model_config("dcgan", d_image_width=-1), shape)
