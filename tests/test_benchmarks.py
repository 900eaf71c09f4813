"""The train-step benchmark's MFU arithmetic and peak table (no timing here: speed
figures come from running the benchmarks, see README "Measured")."""

import importlib.util
import os

import numpy as np
import pytest

from vgan_jax.config import apply_override, load_config
from vgan_jax.models import known_models

_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "experiments",
    "benchmark_train_step.py",
)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_train_step", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "kind, name, bf16, fp32",
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4, 494.7),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.0, 378.0),
        ("NVIDIA H200", "H200 SXM", 989.4, 494.7),
        ("NVIDIA A100-SXM4-40GB", "A100", 312.0, 156.0),
        ("TPU v4", "TPU v4", 275.0, 275.0),
        ("TPU v5 lite", "TPU v5e", 197.0, 197.0),
        ("TPU v5p", "TPU v5p", 459.0, 459.0),
        ("TPU v6 lite", "TPU v6e", 918.0, 918.0),
    ],
)
def test_device_peaks(bench, kind, name, bf16, fp32):
    assert bench.device_peak(kind, "bfloat16") == (name, bf16)
    assert bench.device_peak(kind, "float32") == (name, fp32)


def test_cpu_has_no_peak(bench):
    assert bench.device_peak("cpu", "float32") is None


def _result(kind, devices=1):
    return dict(
        g_params=1e6,
        d_params=2e6,
        devices=devices,
        device_kind=kind,
        batch=64,
        video=(16, 64, 64, 1),
        compile_s=1.0,
        executed_flops=5.2e12,
        model_flops=4e12,
        memory={},
        s_per_step=0.02,
        videos_per_s=3200.0,
    )


def test_mfu_line_on_an_accelerator(bench):
    config = load_config("gpu")  # bfloat16
    line = bench.format_result("gpu dcgan", config, _result("NVIDIA H100 80GB HBM3", 2))
    # 4e12 FLOP / 0.02 s = 200 TFLOP/s over 2 x 989.4: 10.1%.
    assert "200.0 model TFLOP/s" in line and "MFU 10.1% of H100 SXM" in line
    assert "4000.0 model GFLOP/step (5200.0 executed)" in line
    assert "0.020 s/step" in line and "3200.0 videos/s" in line


def test_cpu_line_reports_gflops_only(bench):
    line = bench.format_result("default dcgan", load_config("default"), _result("cpu"))
    assert "200000.0 GFLOP/s" in line and "MFU" not in line


def _configs(bench, argv):
    """The config of every line `benchmark_train_step.py argv` would print (none run)."""
    configs = []
    for _label, preset, overrides in bench.planned_runs(bench.build_parser().parse_args(argv)):
        config = load_config(preset)
        for item in overrides:
            key, _, value = item.partition("=")
            apply_override(config, key, value)
        configs.append(config)
    return configs


def _shape(config):
    return (config.train.batch_size, config.data.frames, config.data.resolution)


def test_zoo_covers_every_model_at_the_default_shapes_and_64x64x16_batch_16(bench):
    default = load_config("default")
    shapes = {}
    for config in _configs(bench, ["--zoo"]):
        assert config.model.width == default.model.width  # the preset's model otherwise
        shapes.setdefault(config.model.name, []).append(_shape(config))
    assert sorted(shapes) == known_models()
    for name, found in shapes.items():
        assert sorted(found) == sorted([_shape(default), (16, 16, 64)]), name


def test_model_all_is_every_registered_model(bench):
    configs = _configs(bench, ["--preset", "tiny", "--model", "all", "--dtype", "bfloat16"])
    assert [c.model.name for c in configs] == known_models()
    assert {c.train.compute_dtype for c in configs} == {"bfloat16"}


@pytest.mark.parametrize("model", ["dcgan", "mocogan"])
def test_peers_compare_the_issues_shapes(bench, model):
    """Both sides of `--peer --peer-model M`: M, batch 16 x 16x64x64, width 32 (G and D),
    whatever the `default` preset sizes them at."""
    spec = bench.PEERS[model]
    config = load_config(bench.PEER_PRESET)
    for item in spec["overrides"]:
        key, _, value = item.partition("=")
        apply_override(config, key, value)
    assert config.model.name == model and config.model.width == 32
    assert (config.model.d_width or config.model.width) == 32  # the critic too
    assert _shape(config) == (16, 16, 64)
    assert config.train.r1_gamma == 0  # the peers have no R1: the same work on both sides
    assert config.model.g_output_conv == 0 or model != "dcgan"  # nor an output conv
    assert os.path.exists(spec["script"])
    assert list(spec["args"]) == ["--batch", "16"]  # the peers' other defaults are these


def _load_experiment(name):
    path = os.path.join(os.path.dirname(_PATH), f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speckle_counts_isolated_foreground_pixels():
    stats = _load_experiment("sample_statistics")
    video = np.zeros((1, 2, 8, 8, 1), np.uint8)
    video[0, 0, 1, 1] = 255  # frame 0: one isolated dot and a 2x2 block
    video[0, 0, 4:6, 4:6] = 255
    video[0, 1, 2, 1:5] = 255  # frame 1: a 4-pixel line, its two ends have one neighbour
    np.testing.assert_allclose(stats.speckle(video), [1 / 5, 2 / 4])
    dithered = stats.dither(np.full((1, 1, 64, 64, 1), 64, np.uint8))
    assert set(np.unique(dithered)) <= {0, 255} and 0.2 < np.mean(dithered == 255) < 0.3


def test_sharpness_flicker_is_zero_for_whole_pixel_motion_and_not_for_blur():
    """A stroke moved by whole pixels keeps its sharpness; blurred in alternate frames
    (as bilinear resampling at half-pixel offsets does) it flickers."""
    stats = _load_experiment("sample_statistics")
    video = np.zeros((1, 4, 8, 8, 1), np.uint8)
    for t in range(4):
        video[0, t, 2:6, t + 1] = 200  # a vertical bar moving right, one pixel a frame
    assert stats.sharpness_flicker(video) == pytest.approx(0.0)
    blurred = video.copy()
    blurred[0, 1::2] = 0
    for t in (1, 3):
        blurred[0, t, 2:6, t : t + 2] = 100  # the bar at a half-pixel offset
    assert stats.sharpness_flicker(blurred) > 0.1


def test_sample_statistics_runs_on_a_trained_run(tiny_run, capsys):
    _load_experiment("sample_statistics").main(["--workdir", tiny_run, "--num", "8", "--critic"])
    out = capsys.readouterr().out
    assert "speckle %" in out and "critic on dithered real" in out
    assert "sharpness flicker" in out
