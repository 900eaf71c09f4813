"""The `vgan-jax` command line: a tiny run end to end, sampling, and bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest

from vgan_jax import cli


def _run_cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "vgan_jax.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_tiny_training_run_writes_a_checkpoint_and_a_gif(data_dir, tmp_path):
    workdir = tmp_path / "run"
    result = _run_cli(
        "train",
        "--config=tiny",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        "--config.mesh.num_devices=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.path.isdir(workdir / "checkpoints" / "4")
    assert os.path.getsize(workdir / "samples" / "step_0000004.gif") > 0
    assert "checkpoints:" in result.stdout and "samples:" in result.stdout
    assert os.listdir(workdir / "logs"), "no TensorBoard events written"


def test_sample_is_deterministic_and_writes_every_format(tiny_run, tmp_path):
    outputs = {}
    for name in ("a.npy", "b.npy", "c.gif", "d.mp4"):
        path = str(tmp_path / name)
        assert (
            cli.main(["sample", "--workdir", tiny_run, "--num", "5", "--seed", "3", "--out", path])
            == 0
        )
        assert os.path.getsize(path) > 0
        outputs[name] = path
    a, b = np.load(outputs["a.npy"]), np.load(outputs["b.npy"])
    assert a.dtype == np.uint8 and a.shape == (5, 4, 16, 16, 1)
    np.testing.assert_array_equal(a, b)
    assert (
        cli.main(
            [
                "sample",
                "--workdir",
                tiny_run,
                "--num",
                "5",
                "--seed",
                "4",
                "--out",
                str(tmp_path / "e.npy"),
            ]
        )
        == 0
    )
    assert not np.array_equal(a, np.load(tmp_path / "e.npy"))


@pytest.fixture
def no_compilation(monkeypatch):
    """Fails the test if training gets as far as building the compiled step."""
    import importlib

    # (`import vgan_jax.train as m` would bind the re-exported function vgan_jax.train.)
    train_module = importlib.import_module("vgan_jax.train")

    def refuse(*_args, **_kwargs):
        raise AssertionError("bad input was not caught before compilation")

    monkeypatch.setattr(train_module, "make_train_step", refuse)
    monkeypatch.setattr(train_module, "create_train_state", refuse)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["--config.model.name=stylegan9"],
            "unknown model 'stylegan9'; known models: dcgan, dvdgan, layered, mocogan, tgan, vgan",
        ),
        (["--config.data.name=imagenet"], "unknown dataset 'imagenet'; known datasets: "),
        (["--config.train.loss=lsgan"], "unknown loss 'lsgan'; known losses: "),
        (["--config.train.batch_size=12"], "does not divide over 8 devices"),
        (["--config.data.resolution=18"], "resolution 18 can't be made"),
        (["--config.train.bogus=1"], "unknown config field 'train.bogus'"),
        (["--config.train.steps=many"], "bad value for --config.train.steps"),
    ],
)
def test_bad_training_input_gets_one_clear_line(
    overrides, message, data_dir, tmp_path, capsys, no_compilation
):
    code = cli.main(
        [
            "train",
            "--config=tiny",
            f"--workdir={tmp_path / 'w'}",
            f"--config.data.data_dir={data_dir}",
            *overrides,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_unwritable_workdir_is_refused(tmp_path, data_dir, capsys, no_compilation):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = cli.main(
        [
            "train",
            "--config=tiny",
            f"--workdir={blocker / 'run'}",
            f"--config.data.data_dir={data_dir}",
        ]
    )
    assert code == 2 and "can't create workdir" in capsys.readouterr().err


def test_workdir_of_another_model_is_refused(tiny_run, data_dir, capsys, no_compilation):
    code = cli.main(
        [
            "train",
            "--config=tiny",
            f"--workdir={tiny_run}",
            f"--config.data.data_dir={data_dir}",
            "--config.model.name=vgan",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "different model" in err and "model.name: 'dcgan' -> 'vgan'" in err


def test_sample_bad_input(tmp_path, tiny_run, capsys):
    assert cli.main(["sample", "--workdir", str(tmp_path), "--out", str(tmp_path / "x.gif")]) == 2
    assert "no checkpoints" in capsys.readouterr().err
    assert cli.main(["sample", "--workdir", tiny_run, "--out", str(tmp_path / "x.avi")]) == 2
    assert "must end in one of .gif, .mp4, .npy" in capsys.readouterr().err


def test_bad_input_exits_non_zero_from_the_shell(tmp_path):
    result = _run_cli(
        "train", "--config=tiny", f"--workdir={tmp_path}", "--config.model.name=x", timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown model 'x'")


def test_eval_of_a_trained_run_writes_its_json(tiny_run, monkeypatch, capsys):
    """`vgan-jax eval` end to end on a real checkpoint and its real dataset. I3D needs
    >= 9 frames and the tiny run has 4, so a cheap stand-in detector is patched in
    (the I3D path itself is covered in test_metrics.py)."""
    import json

    from test_metrics import FakeI3D  # tests/ is on sys.path under pytest

    from vgan_jax.metrics import i3d

    monkeypatch.setattr(i3d, "I3DFeatureExtractor", FakeI3D)
    monkeypatch.setattr(i3d, "I3D_MIN_FRAMES", 1)
    code = cli.main(["eval", "--workdir", tiny_run, "--num_videos", "24", "--kvd_subsets", "2",
                     "--cache_dir", os.path.join(tiny_run, "fvd_cache"), "--baselines", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    with open(os.path.join(tiny_run, "fvd_n24_seed0.json")) as f:
        assert json.load(f) == printed
    assert printed["fvd"] > 0 and np.isfinite(printed["fvd"])
    assert printed["sets"]["generated"]["num_videos"] == 24
    assert printed["sets"]["real"]["num_videos"] == 24
    assert printed["kvd_subset_size"] == 12  # min(1000, N // 2): the subsets differ
    baselines = printed["baselines"]
    assert set(baselines) == {"real_vs_real", "shuffled_time", "frozen_first_frame"}
    assert all(np.isfinite(b["fvd"]) and b["num_videos"] == 24 for b in baselines.values())
    assert baselines["real_vs_real"]["disjoint_from_reference"]  # 48 of the 64 tiny clips


def test_eval_bad_kvd_subset_size_is_one_line(tiny_run, capsys):
    code = cli.main(["eval", "--workdir", tiny_run, "--num_videos", "24",
                     "--kvd_subset_size", "24"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: kvd_subset_size 24 must be in 2..23")
    assert "\n" not in err


def test_sample_png_frame_strip(tiny_run, tmp_path, capsys):
    from PIL import Image

    # Training wrote a strip beside each sample GIF: 4 videos x frames {0, 3} of 16x16,
    # each frame scaled x4 to 64 px, 2 px gaps.
    assert Image.open(os.path.join(tiny_run, "samples", "step_0000004.png")).size == (130, 262)
    path = str(tmp_path / "strip.png")
    npy = str(tmp_path / "same.npy")
    assert cli.main(["sample", "--workdir", tiny_run, "--num", "3", "--out", path]) == 0
    assert cli.main(["sample", "--workdir", tiny_run, "--num", "3", "--out", npy]) == 0
    image = np.asarray(Image.open(path))
    assert image.shape == (3 * 64 + 2 * 2, 4 * 64 + 3 * 2)  # every frame by default
    videos = np.load(npy)  # the same samples
    np.testing.assert_array_equal(image[66:130:4, 198:262:4], videos[1, 3, :, :, 0])
    args = ["sample", "--workdir", tiny_run, "--num", "2", "--out", path]
    assert cli.main([*args, "--strip_frames", "0,3", "--strip_scale", "2"]) == 0
    assert Image.open(path).size == (2 * 32 + 2, 2 * 32 + 2)
    capsys.readouterr()
    for extra, message in [
        (["--strip_frames", "0,4"], "strip frame 4 is out of range: the clips have 4 frames, "
         "valid indices are 0..3"),
        (["--strip_frames", "a,b"], "--strip_frames must be comma-separated frame indices"),
        (["--strip_scale", "0"], "--strip_scale must be an integer >= 1"),
    ]:
        assert cli.main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
    gif = ["sample", "--workdir", tiny_run, "--out", str(tmp_path / "x.gif")]
    assert cli.main([*gif, "--strip_frames", "0"]) == 2
    assert "apply to a .png --out only" in capsys.readouterr().err


# --- `fvd` and `eval`: the CLI over vgan_jax.metrics.commands (moved from test_metrics) ---


def test_fvd_command_prints_json(tmp_path, monkeypatch, capsys):
    import json

    from test_metrics import FakeI3D, moving_blobs

    from vgan_jax.errors import VganError
    from vgan_jax.metrics import commands, i3d

    monkeypatch.setattr(i3d, "I3DFeatureExtractor", FakeI3D)
    np.save(tmp_path / "a.npy", moving_blobs(30, 16, seed=0))
    np.save(tmp_path / "b.npy", moving_blobs(30, 16, seed=1))
    np.save(tmp_path / "c.npy", moving_blobs(30, 8, seed=1))
    a, b, c = (str(tmp_path / f"{name}.npy") for name in "abc")
    assert cli.main(["fvd", a, b, "--json", "--kvd_subsets", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fvd"] > 0 and "kvd" in result
    assert result["sets"]["a"]["num_videos"] == 30
    with pytest.raises(VganError, match="equal length"):
        commands.fvd_between(a, c, kvd_subsets=2)
    assert cli.main(["fvd", a, c]) == 2 and "equal length" in capsys.readouterr().err


def test_eval_command_and_training_hook_with_fake_sampler(tmp_path, monkeypatch, capsys):
    """`vgan-jax eval` over `evaluate_run`, with stand-ins for the sampler, the data
    loader and I3D."""
    import json
    import sys
    import types

    import ml_collections
    from test_metrics import FakeI3D, moving_blobs

    import vgan_jax.data
    from vgan_jax.config import base_config
    from vgan_jax.errors import VganError
    from vgan_jax.metrics import BASELINE_KINDS, FvdEvaluator, commands, i3d
    from vgan_jax.metrics.baselines import BASELINE_LABELS

    config = base_config()
    config.data.resolution, config.data.frames = 32, 16
    loads = []

    def load_videos(data_config, split, num, seed):
        loads.append((split, num, seed))
        return moving_blobs(num, data_config.frames, data_config.resolution, seed=seed)

    def iterate_samples(workdir, num, seed, batch_size):
        videos = moving_blobs(num, 16, 32, seed=seed + 100)
        for start in range(0, num, batch_size):
            yield videos[start : start + batch_size]

    fake_sample = types.ModuleType("vgan_jax.sampling")
    fake_sample.iterate_samples = iterate_samples
    fake_sample.load_run_config = lambda workdir: ml_collections.ConfigDict(config)
    monkeypatch.setitem(sys.modules, "vgan_jax.sampling", fake_sample)
    monkeypatch.setattr(vgan_jax.data, "load_videos", load_videos, raising=False)
    # No dataset on disk to fingerprint (the clips come from `load_videos` above).
    monkeypatch.setattr(vgan_jax.data, "dataset_fingerprint", lambda data_config: "stand-in")
    monkeypatch.setattr(i3d, "I3DFeatureExtractor", FakeI3D)

    cache = str(tmp_path / "cache")
    flags = ["eval", "--workdir", str(tmp_path), "--num_videos", "24", "--cache_dir", cache,
             "--kvd_subsets", "2", "--batch_size", "8"]
    assert cli.main([*flags, "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    # Not a terminal: progress comes as plain lines, with the rate.
    assert "features: generated: 24/24 videos" in captured.err and "videos/s" in captured.err
    with open(tmp_path / "fvd_n24_seed0.json") as f:
        assert json.load(f) == printed
    real = printed["sets"]["real"]
    assert (real["split"], real["seed"], real["num_videos"], real["frames"]) == ("train", 0, 24, 16)
    assert printed["sets"]["generated"]["num_videos"] == 24
    assert len(os.listdir(cache)) == 1 and len(loads) == 1
    # The training hook reuses the cached real statistics: no second load.
    evaluator = FvdEvaluator(config.data, num_videos=24, seed=0, cache_dir=cache)
    result = evaluator(iterate_samples(None, 24, 0, 8))
    assert len(loads) == 1
    assert result["fvd"] == pytest.approx(printed["fvd"])

    # --baselines: three more sets at the same protocol, one more (2N) load, cached.
    assert cli.main([*flags, "--baselines"]) == 0
    table = capsys.readouterr().out
    with open(tmp_path / "fvd_n24_seed0.json") as f:
        with_baselines = json.load(f)
    assert with_baselines["fvd"] == pytest.approx(printed["fvd"])
    assert set(with_baselines["baselines"]) == set(BASELINE_KINDS)
    for kind, label in BASELINE_LABELS.items():
        scores = with_baselines["baselines"][kind]
        assert scores["num_videos"] == 24 and scores["kvd_subset_size"] == 12
        assert f"{scores['fvd']:10.3f}" in table and label in table
    assert f"{printed['fvd']:10.3f}" in table.splitlines()[1]  # the model's row first
    assert loads == [("train", 24, 0), ("train", 48, 0)] and len(os.listdir(cache)) == 4
    assert cli.main([*flags, "--baselines"]) == 0
    assert capsys.readouterr().out == table and len(loads) == 2  # all from the cache
    # A subset size the set can't give is refused before any work.
    with pytest.raises(VganError, match="must be in 2..23"):
        commands.evaluate_run(str(tmp_path), num_videos=24, kvd_subset_size=24, cache_dir=cache)
