"""Writing videos: sample grids as GIF or MP4, raw arrays as .npy.

Videos are uint8 `[num, T, H, W, C]` with C in {1, 3}; `to_uint8` converts model
output (float32 in [-1, 1]).
"""

from __future__ import annotations

import math
import os

import numpy as np

from vgan_jax.errors import VganError

VIDEO_SUFFIXES = (".gif", ".mp4", ".npy")


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
    """Writes uint8 `[num, T, H, W, C]` videos: `.npy` raw; `.gif`/`.mp4` as one grid video.

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
