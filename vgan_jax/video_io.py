"""Writing videos: sample grids as GIF or MP4, raw arrays as .npy, frame strips as PNG.

Videos are uint8 `[num, T, H, W, C]` with C in {1, 3}; `to_uint8` converts model
output (float32 in [-1, 1]). A frame strip (`write_frame_strip`) is one still image
with a row per video and a column per chosen frame: motion can be read at a glance,
in a paper, a README or an issue, where a GIF does not play.
"""

from __future__ import annotations

import math
import os

import numpy as np

from vgan_jax.errors import VganError

VIDEO_SUFFIXES = (".gif", ".mp4", ".npy", ".png")
# Frame strips: cells at least this tall after the integer upscale, so a 16x16 clip
# is not a smudge; gaps of this many pixels and this grey (visible on black and white).
STRIP_MIN_CELL_HEIGHT = 64
STRIP_GAP = 2
STRIP_GAP_VALUE = 128


def to_uint8(videos) -> np.ndarray:
    """float in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
    videos = np.asarray(videos, dtype=np.float32)
    return np.clip(np.round((videos + 1.0) * 127.5), 0, 255).astype(np.uint8)


def video_grid(videos: np.ndarray, columns: int | None = None, padding: int = 1) -> np.ndarray:
    """Tiles `[num, T, H, W, C]` videos into one `[T, rows*(H+p)+p, cols*(W+p)+p, C]` video."""
    num, frames, height, width, channels = videos.shape
    columns = columns or math.ceil(math.sqrt(num))
    rows = math.ceil(num / columns)
    grid = np.zeros(
        (
            frames,
            rows * (height + padding) + padding,
            columns * (width + padding) + padding,
            channels,
        ),
        np.uint8,
    )
    for index in range(num):
        r, c = divmod(index, columns)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[:, top : top + height, left : left + width] = videos[index]
    return grid


def check_output_path(path: str) -> None:
    """Raises `VganError` for an output path we can't write, before any work is done."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in VIDEO_SUFFIXES:
        raise VganError(f"output {path!r} must end in one of {', '.join(VIDEO_SUFFIXES)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise VganError(f"can't write {path!r}: folder {parent!r} is missing or not writable")


def write_videos(path: str, videos: np.ndarray, fps: int = 8, columns: int | None = None) -> str:
    """Writes uint8 `[num, T, H, W, C]` videos: `.npy` raw; `.gif`/`.mp4` as one grid video;
    `.png` as a frame strip of every frame (see `write_frame_strip` for options).

    Returns the path written.
    """
    check_output_path(path)
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim != 5:
        raise VganError(
            f"expected uint8 videos [num, T, H, W, C], got {videos.dtype} {videos.shape}"
        )
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        np.save(path, videos)
        return path
    if suffix == ".png":
        return write_frame_strip(path, videos)
    grid = video_grid(videos, columns)
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, axis=-1)
    import imageio.v2 as imageio  # deferred: only writing needs it

    if suffix == ".gif":
        imageio.mimsave(path, list(grid), duration=1000 / fps, loop=0)
    else:
        # H.264 in yuv420p needs even sides; pad with black rather than resize.
        pad_h, pad_w = grid.shape[1] % 2, grid.shape[2] % 2
        grid = np.pad(grid, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
        with imageio.get_writer(
            path, fps=fps, codec="libx264", macro_block_size=1, ffmpeg_log_level="error"
        ) as writer:
            for frame in grid:
                writer.append_data(frame)
    return path


def encode_gif(videos: np.ndarray, fps: int = 8) -> bytes:
    """GIF bytes of the grid of uint8 `[num, T, H, W, C]` videos (for TensorBoard)."""
    import imageio.v2 as imageio

    grid = video_grid(videos)
    if grid.shape[-1] == 1:
        grid = np.repeat(grid, 3, axis=-1)
    return imageio.mimwrite("<bytes>", list(grid), format="GIF", duration=1000 / fps, loop=0)


def check_strip_frames(frames, num_frames: int) -> list[int]:
    """Frame indices for a strip: all `num_frames` if None, else each in `[0, num_frames)`.

    Raises:
      VganError: an empty list, or an index outside the clips' frames (one line,
        naming the valid range).
    """
    if frames is None:
        return list(range(num_frames))
    frames = [int(f) for f in frames]
    if not frames:
        raise VganError("strip frames: give at least one frame index")
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad:
        raise VganError(
            f"strip frame {bad[0]} is out of range: the clips have {num_frames} frames, "
            f"valid indices are 0..{num_frames - 1}"
        )
    return frames


def default_strip_scale(height: int) -> int:
    """Smallest integer upscale making a `height`-pixel cell >= `STRIP_MIN_CELL_HEIGHT`."""
    return max(1, math.ceil(STRIP_MIN_CELL_HEIGHT / height))


def frame_strip(
    videos: np.ndarray,
    frames=None,
    scale: int | None = None,
    gap: int = STRIP_GAP,
    gap_value: int = STRIP_GAP_VALUE,
) -> np.ndarray:
    """One image of chosen frames: a row per video, a column per frame.

    Args:
      videos: uint8 `[N, T, H, W, C]`, C in {1, 3}.
      frames: frame indices (columns) in `[0, T)`; None: all T frames.
      scale: integer nearest-neighbour upscale of every cell (None:
        `default_strip_scale(H)`, cells at least 64 px tall).
      gap: pixels between cells (not scaled; no border around the strip).
      gap_value: grey level of the gaps.

    Returns:
      uint8 `[N*H*s + (N-1)*gap, F*W*s + (F-1)*gap, C]`, F = number of frames; the cell
      of video `i`, frame `frames[j]` starts at row `i*(H*s + gap)`, column `j*(W*s + gap)`.
    """
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[-1] not in (1, 3):
        raise VganError(
            f"expected uint8 videos [num, T, H, W, C] with C 1 or 3, got {videos.dtype} "
            f"{videos.shape}"
        )
    num, num_frames, height, width, channels = videos.shape
    frames = check_strip_frames(frames, num_frames)
    scale = default_strip_scale(height) if scale is None else int(scale)
    if scale < 1:
        raise VganError(f"strip scale must be an integer >= 1, got {scale}")
    cell_h, cell_w = height * scale, width * scale
    strip = np.full(
        (num * cell_h + (num - 1) * gap, len(frames) * cell_w + (len(frames) - 1) * gap, channels),
        gap_value,
        np.uint8,
    )
    # Nearest-neighbour upscale: each pixel becomes a scale x scale block.
    cells = videos[:, frames].repeat(scale, axis=2).repeat(scale, axis=3)
    for row in range(num):
        for column in range(len(frames)):
            top, left = row * (cell_h + gap), column * (cell_w + gap)
            strip[top : top + cell_h, left : left + cell_w] = cells[row, column]
    return strip


def write_frame_strip(
    path: str,
    videos: np.ndarray,
    frames=None,
    scale: int | None = None,
    gap: int = STRIP_GAP,
) -> str:
    """Writes `frame_strip(videos, frames, scale, gap)` as a PNG (grayscale or RGB).

    Args:
      path: output `.png` path.
      videos: uint8 `[N, T, H, W, C]`, C in {1, 3}.
      frames: frame indices, one column each (None: every frame).
      scale: integer cell upscale (None: cells at least 64 px tall).
      gap: pixels of grey between cells.

    Returns the path written.
    """
    if os.path.splitext(path)[1].lower() != ".png":
        raise VganError(f"a frame strip is written as .png, got {path!r}")
    check_output_path(path)
    strip = frame_strip(videos, frames, scale, gap)
    from PIL import Image  # deferred: only writing needs it

    image = Image.fromarray(strip[..., 0] if strip.shape[-1] == 1 else strip)
    image.save(path, format="PNG")
    return path
