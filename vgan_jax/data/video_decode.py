"""Decode one video file into uint8 RGB frames, robustly, with imageio-ffmpeg.

`decode_video(path, size=...)` returns `uint8 [time, size, size, 3]` frames (every
frame's shorter side resized to `size`, then center-cropped square, by
`transforms.resize_and_center_crop`) or
raises a `VideoDecodeError` whose `kind` says what was wrong with the file:

- `"empty"`       the file has zero bytes;
- `"not_video"`   ffmpeg reads it, but it is a still image (fewer than 2 frames);
- `"unreadable"`  ffmpeg cannot open it (random bytes, text, a truncated header);
- `"truncated"`   ffmpeg opened it but failed part-way through the stream
                  (with `strict`, the default, any stream error counts).

The decoder is imageio-ffmpeg (a maintained static ffmpeg binary shipped as a
wheel), so no system ffmpeg, PyAV or TensorFlow is needed. ffmpeg runs as a
subprocess and streams raw frames; each frame is resized as it arrives, so memory
holds only the small resized frames, never the full-resolution video.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

from vgan_jax.data.transforms import resize_and_center_crop
from vgan_jax.errors import VganError

# Container formats ffmpeg reads that users keep videos in (for preparing datasets and
# for FVD's folders of videos); anything else in a folder is reported as "not a video"
# without starting ffmpeg on it.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".gif", ".mkv", ".m4v", ".mpg", ".mpeg")

DECODE_ERROR_KINDS = ("empty", "not_video", "unreadable", "truncated")


class VideoDecodeError(VganError):
    """A file that cannot be used as a video; `kind` is one of `DECODE_ERROR_KINDS`."""

    def __init__(self, path: str, kind: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.kind = kind
        self.reason = reason


def is_video_filename(path: str) -> bool:
    """True when the file name has one of `VIDEO_EXTENSIONS` (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _ffmpeg_reason(error: BaseException) -> str:
    """The informative part of an imageio-ffmpeg error: the last lines of ffmpeg's stderr."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # imageio-ffmpeg puts its own summary first and ffmpeg's banner/config after it;
    # ffmpeg's actual complaint ("moov atom not found", "Invalid data found ...")
    # is at the end.
    useful = [
        line
        for line in lines[1:]
        if not line.startswith(("ffmpeg version", "built with", "configuration:", "lib", "==="))
    ]
    detail = "; ".join(useful[-2:]) if useful else ""
    head = lines[0] if lines else type(error).__name__
    return f"{head}: {detail}" if detail else head


def probe_video(path: str) -> tuple[int, int, float]:
    """Open `path` with ffmpeg and return `(width, height, fps)` of the decoded frames.

    Raises:
      VideoDecodeError: "empty" or "unreadable".
    """
    import imageio_ffmpeg  # Imported here: importing vgan_jax never needs ffmpeg.

    if not os.path.isfile(path):
        raise VideoDecodeError(path, "unreadable", "no such file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty", "empty file (0 bytes)")
    # imageio-ffmpeg parses ffmpeg's header for us; we stop it right after.
    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24", input_params=["-nostdin"])
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as error:
        raise VideoDecodeError(path, "unreadable", _ffmpeg_reason(error)) from None
    finally:
        reader.close()
    width, height = meta.get("size") or (0, 0)
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, "unreadable", f"no video stream (frame size {width}x{height})")
    return int(width), int(height), float(meta.get("fps") or 0.0)


def decode_video(
    path: str,
    *,
    size: int | None = None,
    max_frames: int | None = None,
    min_decoded_frames: int = 2,
    strict: bool = True,
) -> np.ndarray:
    """Decode a video file to RGB frames.

    Args:
      path: a file ffmpeg can read (mp4, avi, webm, mov, gif, ...).
      size: resize every frame's shorter side to `size` and center-crop square
        (`transforms.resize_and_center_crop`); None keeps the native frame size.
      max_frames: stop after this many frames (ffmpeg is stopped early, so a long
        file costs only what is read); None decodes the whole file.
      min_decoded_frames: fewer frames than this means the file is a still image,
        not a video (ffmpeg happily "decodes" a PNG as a 1-frame video).
      strict: stop at the first stream error (ffmpeg `-xerror`) and raise
        "truncated": a cut-off mp4 whose index is intact otherwise decodes "fine"
        to its first part, and nobody would notice. False keeps every frame ffmpeg
        can decode despite errors.

    Returns:
      uint8 `[time, height, width, 3]`; with `size`, height = width = size.

    Raises:
      VideoDecodeError: with `kind` "empty", "not_video", "unreadable" or "truncated".
    """
    import imageio_ffmpeg

    width, height, _ = probe_video(path)
    frame_bytes = width * height * 3
    # Our own subprocess rather than imageio_ffmpeg.read_frames, because that
    # generator ends quietly when ffmpeg fails mid-stream; only the exit status
    # tells a truncated file from a short one. stderr goes to a temporary file:
    # a pipe could fill up with error lines and deadlock ffmpeg.
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error"]
    command += ["-xerror"] if strict else []
    # passthrough: the frames as decoded; the default (constant frame rate) would
    # invent duplicate frames, e.g. ten copies of a one-frame GIF.
    command += ["-i", path, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    frames: list[np.ndarray] = []
    stopped_early = False
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        try:
            while max_frames is None or len(frames) < max_frames:
                raw = process.stdout.read(frame_bytes)
                if len(raw) < frame_bytes:
                    if raw:
                        # A partial frame: ffmpeg stopped in the middle of writing it.
                        process.wait()
                        raise VideoDecodeError(
                            path, "truncated", f"incomplete frame after {len(frames)} frames"
                        )
                    break
                frame = np.frombuffer(raw, dtype=np.uint8).reshape(1, height, width, 3)
                frame = resize_and_center_crop(frame, size) if size else frame.copy()
                frames.append(frame[0])
            else:
                stopped_early = True
        finally:
            if process.poll() is None and (stopped_early or sys.exc_info()[0] is not None):
                process.kill()
            process.stdout.close()
            process.wait()
        if process.returncode != 0 and not stopped_early:
            stderr.seek(0)
            lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1].strip() if lines else f"ffmpeg exit status {process.returncode}"
            kind = "truncated" if frames else "unreadable"
            raise VideoDecodeError(
                path, kind, f"decoding failed after {len(frames)} frames: {detail}"
            )

    if len(frames) < min_decoded_frames:
        if not frames:
            raise VideoDecodeError(path, "unreadable", "ffmpeg decoded no frames")
        raise VideoDecodeError(
            path, "not_video", f"only {len(frames)} frame(s): a still image, not a video"
        )
    return np.stack(frames)


def decode_or_error(path: str, **options) -> np.ndarray | VideoDecodeError:
    """`decode_video(path, **options)`, or the `VideoDecodeError` that makes the file
    unusable: any failure becomes one, since one odd file must never end a whole run."""
    try:
        return decode_video(path, **options)
    except VideoDecodeError as error:
        return error
    except Exception as error:  # noqa: BLE001
        return VideoDecodeError(path, "unreadable", f"{type(error).__name__}: {error}")
