"""`train.fvd_every`'s requirements fail in one line before anything is compiled."""

import importlib

import pytest

from vgan_jax import cli


@pytest.fixture
def no_compilation(monkeypatch):
    """Fails the test if training gets as far as building the state or compiled step."""
    # (`import vgan_jax.train as m` would bind the re-exported function vgan_jax.train.)
    train_module = importlib.import_module("vgan_jax.train")

    def refuse(*_args, **_kwargs):
        raise AssertionError("bad input was not caught before compilation")

    monkeypatch.setattr(train_module, "make_train_step", refuse)
    monkeypatch.setattr(train_module, "create_train_state", refuse)


# Past the frame check, I3D's minimum is lowered to tiny's 4 frames (a 9-frame tiny
# dataset would be another build).
@pytest.mark.parametrize(
    "overrides, min_frames, message",
    [
        (
            ["--config.train.fvd_every=2"],
            9,
            "I3D, which needs at least 9 frames, but data.frames=4",
        ),
        (
            ["--config.train.fvd_every=2", "--config.train.fvd_num_videos=2"],
            1,
            "FVD and KVD need at least 3 videos per set",
        ),
        (["--config.train.fvd_every=-1"], 9, "train.fvd_every must be >= 0"),
        # 8 test devices: checked once the mesh exists, still before compiling.
        (
            ["--config.train.fvd_every=2", "--config.train.fvd_num_videos=12"],
            1,
            "train.fvd_num_videos=12 does not divide over 8 devices",
        ),
        # tiny's train split holds 64 clips.
        (
            ["--config.train.fvd_every=2", "--config.train.fvd_num_videos=72"],
            1,
            "the 'train' split of 'moving_mnist_offline' holds 64 videos; use "
            "--config.train.fvd_num_videos=64 or fewer",
        ),
    ],
)
def test_fvd_requirements_get_one_clear_line(
    overrides, min_frames, message, data_dir, tmp_path, capsys, monkeypatch, no_compilation
):
    from vgan_jax.metrics import i3d

    monkeypatch.setattr(i3d, "I3D_MIN_FRAMES", min_frames)
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
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_a_valid_fvd_config_passes_the_checks(tiny_config, monkeypatch):
    from vgan_jax.metrics import i3d
    from vgan_jax.parallel import make_mesh
    from vgan_jax.train import check_config, check_fvd_data

    monkeypatch.setattr(i3d, "I3D_MIN_FRAMES", 1)
    config = tiny_config(train__fvd_every=2, train__fvd_num_videos=16)
    check_config(config)
    check_fvd_data(config, make_mesh(8))
