"""PNG frame strips: layout, scale, pixel content, and bad frame indices."""

import numpy as np
import pytest
from PIL import Image

from vgan_jax.errors import VganError
from vgan_jax.video_io import (
    STRIP_GAP_VALUE,
    default_strip_scale,
    frame_strip,
    write_frame_strip,
    write_videos,
)


def random_videos(num=3, frames=6, height=5, width=7, channels=1, seed=0):
    """uint8 [num, frames, height, width, channels] noise: every cell is distinct."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num, frames, height, width, channels), dtype=np.uint8)


def cell(strip, row, column, height, width, scale, gap=2):
    """The pixels of one cell, by the layout `frame_strip` documents."""
    top, left = row * (height * scale + gap), column * (width * scale + gap)
    return strip[top : top + height * scale, left : left + width * scale]


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_strip_png_has_the_layout_and_the_input_pixels(tmp_path, channels, mode):
    videos = random_videos(channels=channels)  # 3 videos, 6 frames of 5x7
    path = str(tmp_path / "strip.png")
    assert write_frame_strip(path, videos, frames=[0, 2, 5], scale=3) == path
    image = Image.open(path)
    assert image.mode == mode
    # 3 rows of 5*3 px and 3 columns of 7*3 px, 2 px gaps between cells, no border.
    assert image.size == (3 * 21 + 2 * 2, 3 * 15 + 2 * 2)  # (width, height)
    pixels = np.asarray(image).reshape(49, 67, channels)
    # Row 1, column 2 is video 1's frame 5, each pixel a 3x3 block.
    expected = videos[1, 5].repeat(3, axis=0).repeat(3, axis=1)
    np.testing.assert_array_equal(cell(pixels, 1, 2, 5, 7, 3), expected)
    np.testing.assert_array_equal(cell(pixels, 0, 0, 5, 7, 3)[::3, ::3], videos[0, 0])
    # The gaps are grey.
    assert np.all(pixels[15:17] == STRIP_GAP_VALUE)
    assert np.all(pixels[:, 21:23] == STRIP_GAP_VALUE)


def test_strip_defaults_all_frames_and_cells_at_least_64_px():
    assert [default_strip_scale(h) for h in (16, 64, 128, 5, 40)] == [4, 1, 1, 13, 2]
    videos = random_videos(num=2, frames=4, height=16, width=16)
    strip = frame_strip(videos)
    assert strip.shape == (2 * 64 + 2, 4 * 64 + 3 * 2, 1)
    np.testing.assert_array_equal(cell(strip, 1, 3, 16, 16, 4)[::4, ::4], videos[1, 3])


def test_png_through_write_videos(tmp_path):
    videos = random_videos(num=2, frames=3, height=32, width=32, channels=3)
    write_videos(str(tmp_path / "v.png"), videos)
    assert Image.open(tmp_path / "v.png").size == (3 * 64 + 2 * 2, 2 * 64 + 2)


@pytest.mark.parametrize(
    "frames, message",
    [
        ([0, 6], "strip frame 6 is out of range: the clips have 6 frames, valid indices are 0..5"),
        ([-1], "strip frame -1 is out of range"),
        ([], "at least one frame index"),
    ],
)
def test_bad_strip_frames_are_one_line_errors(tmp_path, frames, message):
    with pytest.raises(VganError) as error:
        write_frame_strip(str(tmp_path / "s.png"), random_videos(), frames=frames)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "s.png").exists()


def test_strip_rejects_bad_scale_and_dtype(tmp_path):
    with pytest.raises(VganError, match="scale must be an integer >= 1"):
        frame_strip(random_videos(), scale=0)
    with pytest.raises(VganError, match="expected uint8 videos"):
        frame_strip(random_videos().astype(np.float32))
    with pytest.raises(VganError, match="written as .png"):
        write_frame_strip(str(tmp_path / "s.gif"), random_videos())
