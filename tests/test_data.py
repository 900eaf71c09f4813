"""Tests of vgan_jax.data: the built-in Moving MNIST, clip transforms and the pipeline."""

import hashlib
import json
import sys

import numpy as np
import pytest

from vgan_jax import data
from vgan_jax.config import base_config
from vgan_jax.data import moving_mnist, pipeline, transforms
from vgan_jax.errors import VganError

FRAMES = 8
NUM_TRAIN = 64
NUM_TEST = 32


def small_config(data_dir, **overrides):
    """config.data for a small built-in dataset: 64 train / 32 test clips of 8 frames."""
    config = base_config().data
    config.data_dir = data_dir
    config.frames = FRAMES
    config.num_train_clips = NUM_TRAIN
    config.num_test_clips = NUM_TEST
    config.resolution = 32
    for key, value in overrides.items():
        config[key] = value
    return config


def to_uint8(videos):
    """float32 [-1, 1] -> the uint8 it came from (the conversion is exact up to rounding)."""
    return np.rint((videos + 1.0) * 127.5).astype(np.uint8)


def digest(video):
    return hashlib.sha1(np.ascontiguousarray(video).tobytes()).hexdigest()


# ---------------------------------------------------------------- config checks


def test_data_dir_comes_from_argument_then_environment_then_home(monkeypatch, tmp_path):
    """An empty $TFDS_DATA_DIR is unset: it once built the dataset in the working directory."""
    from vgan_jax.data.registry import resolve_data_dir

    home = str(tmp_path / "home")
    monkeypatch.setenv("HOME", home)
    monkeypatch.setenv("TFDS_DATA_DIR", "")
    assert resolve_data_dir(None) == f"{home}/tensorflow_datasets"
    monkeypatch.setenv("TFDS_DATA_DIR", "/elsewhere")
    assert resolve_data_dir(None) == "/elsewhere"
    assert resolve_data_dir("/given") == "/given"


def test_unknown_dataset_lists_known_names(data_dir):
    with pytest.raises(VganError) as error:
        data.check_data_config(small_config(data_dir, name="no_such_dataset"))
    for name in data.known_datasets():
        assert name in str(error.value)
    assert "moving_mnist_offline" in data.known_datasets()
    assert "video_folder/<NAME>" in data.known_datasets()


@pytest.mark.parametrize(
    "field, value",
    [
        ("channels", 2),
        ("resolution", 0),
        ("frames", 0),
        ("frame_stride", 0),
        ("crop", "corner"),
        ("short_videos", "drop"),
        ("worker_count", -1),
        ("num_train_clips", 0),
        ("name", "video_folder/"),
    ],
)
def test_bad_data_config_is_a_clear_error(data_dir, field, value):
    with pytest.raises(VganError, match=field if field != "name" else "unknown dataset"):
        data.check_data_config(small_config(data_dir, **{field: value}))


def test_good_configs_pass(data_dir):
    data.check_data_config(base_config().data)
    data.check_data_config(small_config(data_dir, name="video_folder/my_clips", channels=3))


def test_unknown_split_lists_available(data_dir):
    with pytest.raises(VganError, match="train, test"):
        data.open_source(small_config(data_dir), "validation")


def test_unprepared_dataset_says_how_to_prepare(data_dir, monkeypatch):
    # A None entry in sys.modules makes the lazy import fail like a missing module.
    monkeypatch.setitem(sys.modules, "vgan_jax.data.prepared", None)
    with pytest.raises(VganError, match="vgan-jax prepare ucf101 --data_dir"):
        data.open_source(small_config(data_dir, name="ucf101"), "train")


def test_batch_must_divide_process_count(data_dir):
    with pytest.raises(VganError, match="multiple of the process count"):
        data.make_train_iterator(
            small_config(data_dir), seed=0, global_batch_size=6, process_count=4
        )


# ---------------------------------------------------------------- built-in dataset


def test_train_and_test_digits_are_disjoint():
    _, labels = moving_mnist.load_digits()
    train = moving_mnist.digit_indices(labels, "train")
    test = moving_mnist.digit_indices(labels, "test")
    assert len(np.intersect1d(train, test)) == 0
    assert len(train) + len(test) == len(labels) == 5000
    # Every class is represented in both splits, 450 / 50 images each.
    assert np.array_equal(np.bincount(labels[train]), np.full(10, 450))
    assert np.array_equal(np.bincount(labels[test]), np.full(10, 50))


def test_build_is_deterministic(tmp_path):
    def build(directory, seed):
        builder = moving_mnist.build(
            str(directory), frames=4, num_train_clips=6, num_test_clips=3, seed=seed
        )
        source = builder.as_data_source()["train"]
        return np.stack([source[i]["video"] for i in range(len(source))])

    first = build(tmp_path / "a", seed=0)
    assert first.shape == (6, 4, 64, 64, 1)
    assert np.array_equal(first, build(tmp_path / "b", seed=0))
    assert not np.array_equal(first, build(tmp_path / "c", seed=1))


def test_clips_are_independent_of_chunking():
    whole, whole_labels = moving_mnist.generate_clips("test", 0, 6, frames=5, seed=3)
    part, part_labels = moving_mnist.generate_clips("test", 4, 2, frames=5, seed=3)
    assert np.array_equal(whole[4:], part)
    assert np.array_equal(whole_labels[4:], part_labels)


def test_bounce_stays_inside_and_reflects():
    positions = moving_mnist.bounce_positions(
        np.array([[30.0, 0.0]]), np.array([[4.0, -3.0]]), frames=40
    )
    assert positions.min() >= 0 and positions.max() <= 64 - 28
    rows = positions[0, :, 0]
    assert rows[0] == 30 and rows[1] == 34 and rows[2] == 36 - 2  # reflected at the edge


def test_stored_clips(data_dir):
    source, info = data.open_source(small_config(data_dir), "train")
    assert info["num_examples"] == len(source) == NUM_TRAIN
    assert info["num_classes"] == 10
    example = source[5]
    video = example["video"]
    assert video.shape == (FRAMES, 64, 64, 1) and video.dtype == np.uint8
    # One class per digit (both digits of a two-digit clip), each in [0, 9].
    label = example["label"]
    assert label.dtype == np.int64 and label.shape == (2,) and label.min() >= 0 and label.max() <= 9
    assert info["labels_per_clip"] == 2
    assert video.min() == 0 and video.max() > 200  # black background, bright digits
    assert not np.array_equal(video[0], video[-1])  # the digits move
    # Stored in clip order, equal to regenerating clip 5 with the build seed 0.
    expected, label = moving_mnist.generate_clips("train", 5, 1, frames=FRAMES, seed=0)
    assert np.array_equal(video, expected[0]) and np.array_equal(example["label"], label[0])
    # ...and those are the classes of the two MNIST images clip 5 was drawn from.
    images, digit_labels = moving_mnist.load_digits()
    pool = moving_mnist.digit_indices(digit_labels, "train")
    choice, _, _ = moving_mnist.clip_parameters(0, "train", 5, len(pool), 2)
    np.testing.assert_array_equal(example["label"], digit_labels[pool[choice]])
    test_source, test_info = data.open_source(small_config(data_dir), "test")
    assert len(test_source) == test_info["num_examples"] == NUM_TEST


# ---------------------------------------------------------------- transforms


def counting_video(length, height=4, width=6, channels=1):
    """uint8 [length, height, width, channels] whose frame t is filled with t."""
    return np.broadcast_to(
        np.arange(length, dtype=np.uint8)[:, None, None, None], (length, height, width, channels)
    ).copy()


def test_sample_frames_stride_and_fixed_start():
    clip = transforms.sample_frames(counting_video(20), frames=4, stride=3, random_start=False)
    assert clip[:, 0, 0, 0].tolist() == [0, 3, 6, 9]


def test_sample_frames_random_start_fits_and_is_seeded():
    video = counting_video(20)
    starts = set()
    for seed in range(20):
        clip = transforms.sample_frames(
            video, frames=4, stride=2, random_start=True, rng=np.random.default_rng(seed)
        )
        frames = clip[:, 0, 0, 0]
        assert np.all(np.diff(frames) == 2) and frames[-1] <= 19
        starts.add(int(frames[0]))
    assert len(starts) > 3
    again = transforms.sample_frames(
        video, frames=4, stride=2, random_start=True, rng=np.random.default_rng(7)
    )
    first = transforms.sample_frames(
        video, frames=4, stride=2, random_start=True, rng=np.random.default_rng(7)
    )
    assert np.array_equal(again, first)


def test_short_video_is_padded_with_last_frame():
    video = counting_video(3)
    clip = transforms.sample_frames(
        video, frames=4, stride=2, random_start=True, rng=np.random.default_rng(0)
    )
    assert clip[:, 0, 0, 0].tolist() == [0, 2, 2, 2]
    assert not transforms.is_long_enough(video, frames=4, stride=2)
    assert transforms.is_long_enough(counting_video(7), frames=4, stride=2)


def test_flip_is_the_same_for_every_frame():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (5, 8, 8, 1), dtype=np.uint8)
    outcomes = set()
    for seed in range(10):
        flipped = transforms.random_flip(video, np.random.default_rng(seed))
        per_frame = [np.array_equal(flipped[t], video[t, :, ::-1]) for t in range(5)]
        assert all(per_frame) or np.array_equal(flipped, video)
        outcomes.add(all(per_frame))
    assert outcomes == {True, False}


def test_gray_rgb_conversion():
    gray = np.array([[[[0], [128], [255]]]], np.uint8)  # [1, 1, 3, 1]
    rgb = transforms.to_rgb(gray)
    assert rgb.shape == (1, 1, 3, 3) and np.all(rgb == gray)
    assert np.array_equal(transforms.to_grayscale(rgb), gray)  # luma weights sum to 1
    red = np.zeros((1, 1, 1, 3), np.uint8)
    red[..., 0] = 255
    assert transforms.to_grayscale(red)[0, 0, 0, 0] == round(0.299 * 255)


def test_resize_and_crop():
    video = np.zeros((2, 64, 64, 1), np.uint8)
    video[:, :2, :2] = 255  # one 2x2 white block -> one white pixel at half size
    half = transforms.resize_shorter_side(video, 32)
    assert half.shape == (2, 32, 32, 1) and half[0, 0, 0, 0] == 255 and half[0, 1, 1, 0] == 0
    wide = np.full((2, 48, 80, 3), 100, np.uint8)
    resized = transforms.resize_shorter_side(wide, 20)  # not an integer factor: PIL
    assert resized.shape == (2, 20, 33, 3) and np.all(resized == 100)
    assert transforms.crop_square(resized, 20, mode="center").shape == (2, 20, 20, 3)
    marked = np.arange(2 * 4 * 10).reshape(2, 4, 10, 1).astype(np.uint8)
    crop = transforms.crop_square(marked, 4, mode="random", rng=np.random.default_rng(1))
    left = int(crop[0, 0, 0, 0]) % 10
    assert np.array_equal(crop, marked[:, :, left : left + 4])


def test_transform_clip_shape_and_float_range():
    video = np.random.default_rng(0).integers(0, 256, (12, 48, 60, 3), dtype=np.uint8)
    clip = transforms.transform_clip(
        video, frames=4, stride=2, random_start=True, resolution=16, crop="random",
        flip=True, channels=1, rng=np.random.default_rng(0),
    )
    assert clip.shape == (4, 16, 16, 1) and clip.dtype == np.uint8
    as_float = transforms.to_float(np.array([0, 255], np.uint8))
    assert as_float.dtype == np.float32 and as_float.tolist() == [-1.0, 1.0]


# ---------------------------------------------------------------- pipeline


@pytest.mark.parametrize("resolution, channels", [(32, 1), (16, 3)])
def test_train_batches(data_dir, resolution, channels):
    config = small_config(data_dir, resolution=resolution, channels=channels, flip=True)
    iterator = data.make_train_iterator(config, seed=0, global_batch_size=4)
    batch = next(iterator)
    assert batch["video"].shape == (4, FRAMES, resolution, resolution, channels)
    assert batch["video"].dtype == np.float32
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0
    assert batch["video"].min() == -1.0 and batch["video"].max() > 0.5
    assert batch["label"].dtype == np.int32 and batch["label"].shape == (4, 2)  # per digit


def test_iterator_resumes_with_identical_batches(data_dir):
    config = small_config(data_dir, resolution=16, crop="random", flip=True)
    iterator = data.make_train_iterator(config, seed=3, global_batch_size=4)
    batches = []
    for step in range(5):
        batches.append(next(iterator))
        if step == 1:
            state = json.loads(json.dumps(iterator.get_state()))  # survives JSON
    resumed = data.make_train_iterator(config, seed=3, global_batch_size=4)
    resumed.set_state(state)
    for expected in batches[2:]:
        got = next(resumed)
        assert np.array_equal(got["video"], expected["video"])
        assert np.array_equal(got["label"], expected["label"])
    other_seed = next(data.make_train_iterator(config, seed=4, global_batch_size=4))
    assert not np.array_equal(other_seed["video"], batches[0]["video"])


def test_processes_see_disjoint_examples(data_dir):
    # Full-size, fixed-start clips come out exactly as stored, so each batch element
    # can be traced back to its source index.
    config = small_config(data_dir, resolution=64, random_start=False)
    source, _ = data.open_source(config, "train")
    index_of = {digest(source[i]["video"]): i for i in range(len(source))}
    assert len(index_of) == NUM_TRAIN
    seen = []
    for process_index in range(2):
        iterator = data.make_train_iterator(
            config, seed=0, global_batch_size=8, process_index=process_index, process_count=2
        )
        # One epoch of this process's shard: 32 examples in batches of 4.
        videos = np.concatenate([next(iterator)["video"] for _ in range(NUM_TRAIN // 8)])
        seen.append({index_of[digest(v)] for v in to_uint8(videos)})
    assert len(seen[0]) == len(seen[1]) == NUM_TRAIN // 2
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(NUM_TRAIN))


def test_skip_short_videos(monkeypatch):
    lengths = [2, 9, 3, 12, 10, 1, 8, 20]
    fake = [
        {"video": counting_video(n, 8, 8, 1) + 1, "label": np.int64(n)} for n in lengths
    ]
    monkeypatch.setattr(
        pipeline, "open_source", lambda config, split: (fake, {"num_examples": len(fake)})
    )
    config = small_config(None, resolution=8, short_videos="skip", frame_stride=2, frames=4)
    iterator = data.make_train_iterator(config, seed=0, global_batch_size=2)
    labels = np.concatenate([next(iterator)["label"] for _ in range(10)])
    assert set(labels.tolist()) == {8, 9, 10, 12, 20}  # those holding 7 frames or more


def test_load_videos_is_deterministic(data_dir):
    config = small_config(data_dir, resolution=16)
    videos = data.load_videos(config, "test", 6, seed=1)
    assert videos.shape == (6, FRAMES, 16, 16, 1) and videos.dtype == np.uint8
    assert np.array_equal(videos, data.load_videos(config, "test", 6, seed=1))
    assert not np.array_equal(videos, data.load_videos(config, "test", 6, seed=2))
    with pytest.raises(VganError, match="only 32 usable videos"):
        data.load_videos(config, "test", NUM_TEST + 1, seed=1)


def test_worker_processes_give_the_same_batches(data_dir):
    config = small_config(data_dir, resolution=16)
    expected = [next(data.make_train_iterator(config, seed=0, global_batch_size=4))]
    config.worker_count = 1
    iterator = data.make_train_iterator(config, seed=0, global_batch_size=4)
    try:
        assert np.array_equal(next(iterator)["video"], expected[0]["video"])
    finally:
        iterator.close()
