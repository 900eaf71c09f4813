"""Clip transforms: pure numpy functions, the same for every dataset.

A stored video is uint8 [time, height, width, channels] (any size); the model wants
uint8 [frames, resolution, resolution, channels], then float32 in [-1, 1]. The steps,
in the order `transform_clip` applies them:

1. temporal sampling: `frames` frames, every `stride`-th, from a random or the first
   start; a video shorter than a clip is padded by repeating its last frame (callers
   that prefer to skip such videos test `is_long_enough` first);
2. RGB -> grayscale when one channel is wanted (early, so later steps move less data);
3. resize so the shorter side is `resolution` (block mean for integer factors, else
   PIL bilinear with antialiasing);
4. center or random square crop;
5. optional horizontal flip, the same for every frame of the clip;
6. grayscale -> RGB when three channels are wanted.

All randomness comes from an explicit `np.random.Generator`, so a pipeline that seeds it
per example is deterministic.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from vgan_jax.errors import VganError

CROP_CHOICES = ("center", "random")
SHORT_VIDEO_CHOICES = ("pad", "skip")
# ITU-R BT.601 luma, the weights PIL and most video tools use for RGB -> gray.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


def as_video(video: np.ndarray) -> np.ndarray:
    """Checks and normalises a stored video to uint8 [time, height, width, channels].

    A 3-D array [time, height, width] is taken as grayscale; a 4th (alpha) channel is
    dropped.
    """
    video = np.asarray(video)
    if video.ndim == 3:
        video = video[..., None]
    if video.ndim != 4 or video.shape[0] < 1:
        raise VganError(
            f"a video must be [time, height, width, channels] with time >= 1, got shape "
            f"{video.shape}; check the dataset's files"
        )
    if video.shape[-1] == 4:
        video = video[..., :3]
    if video.shape[-1] not in (1, 3):
        raise VganError(
            f"a video must have 1 or 3 channels, got {video.shape[-1]}; check the dataset"
        )
    if video.dtype != np.uint8:
        video = np.clip(video, 0, 255).astype(np.uint8)
    return video


class ExampleSource:
    """Wraps a random-access source so every record is {"video": uint8 [T, H, W, C]
    (`as_video`), "label": int64 [] or [objects] (-1 when unlabelled)}.

    tfds returns scalar features as Python ints and read-only arrays; normalising here
    means transforms and batching see one format whatever the dataset. Picklable (grain
    worker processes receive a copy).
    """

    def __init__(self, source):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        record = self._source[int(index)]
        label = np.asarray(record.get("label", -1), np.int64)
        # One class per clip stays a numpy scalar (`label[()]`), as it always was.
        return {"video": as_video(record["video"]), "label": label[()]}

    def __repr__(self) -> str:
        return f"ExampleSource({len(self)} examples)"


def clip_span(frames: int, stride: int) -> int:
    """Stored frames one clip covers: first to last sampled frame, inclusive."""
    return (frames - 1) * stride + 1


def is_long_enough(video: np.ndarray, *, frames: int, stride: int) -> bool:
    """Whether `video` [time, ...] holds a whole clip without padding (for 'skip')."""
    return video.shape[0] >= clip_span(frames, stride)


def sample_frames(
    video: np.ndarray,
    *,
    frames: int,
    stride: int,
    random_start: bool,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Every `stride`-th frame, `frames` of them, from a random or the first start.

    Args:
      video: [time, height, width, channels], any dtype.
      random_start: draw the start uniformly among those that fit (needs `rng`);
        else start at frame 0.
    Returns:
      [frames, height, width, channels]; a video shorter than `clip_span(frames,
      stride)` starts at 0 and repeats its last frame to fill the clip.
    """
    length = video.shape[0]
    free = length - clip_span(frames, stride)
    start = 0
    if random_start and free > 0:
        start = int(_require(rng, "random_start").integers(0, free + 1))
    indices = np.minimum(start + stride * np.arange(frames), length - 1)
    return video[indices]


def resize_shorter_side(video: np.ndarray, size: int) -> np.ndarray:
    """Resizes uint8 [time, height, width, channels] so min(height, width) == size.

    Exact integer downscales (64 -> 32, 64 -> 16) use a block mean: fast and an exact
    area filter. Anything else goes through PIL's bilinear filter, which antialiases
    when shrinking (`reducing_gap`: a large shrink, 720p -> 128, first takes a fast
    box-filter step, with no visible difference).
    """
    time, height, width, channels = video.shape
    if min(height, width) == size:
        return video
    factor = min(height, width) // size
    if min(height, width) % size == 0 and height % factor == 0 and width % factor == 0:
        blocks = video.reshape(time, height // factor, factor, width // factor, factor, channels)
        return np.rint(blocks.mean(axis=(2, 4), dtype=np.float32)).astype(np.uint8)
    # The aspect ratio is kept; the longer side is never below `size` after rounding.
    new_height = size if height <= width else max(size, round(height * size / width))
    new_width = size if width < height else max(size, round(width * size / height))
    out = np.empty((time, new_height, new_width, channels), np.uint8)
    for t in range(time):
        # PIL filters each channel alike, so one RGB (or L) image per frame.
        frame = np.ascontiguousarray(video[t, :, :, 0] if channels == 1 else video[t])
        resized = Image.fromarray(frame).resize(
            (new_width, new_height), Image.Resampling.BILINEAR, reducing_gap=3.0
        )
        out[t] = np.asarray(resized).reshape(new_height, new_width, channels)
    return out


def resize_and_center_crop(video: np.ndarray, size: int) -> np.ndarray:
    """uint8 [time, height, width, channels] -> [time, size, size, channels]: the
    shorter side resized to `size`, then the center square (how datasets are stored)."""
    return crop_square(resize_shorter_side(video, size), size, mode="center")


def crop_square(
    video: np.ndarray, size: int, *, mode: str, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A size x size crop of [time, height, width, channels], same window every frame.

    Args:
      mode: 'center' or 'random' (needs `rng`).
    """
    height, width = video.shape[1:3]
    if size > height or size > width:
        raise VganError(f"cannot crop {size}x{size} from {height}x{width} frames")
    if mode == "center":
        top, left = (height - size) // 2, (width - size) // 2
    elif mode == "random":
        rng = _require(rng, "a random crop")
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
    else:
        raise VganError(f"unknown crop {mode!r}; use one of {', '.join(CROP_CHOICES)}")
    return video[:, top : top + size, left : left + size]


def random_flip(video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirrors every frame of [time, height, width, channels] left-right, with
    probability 1/2 (one draw, so the frames stay consistent)."""
    return video[:, :, ::-1] if rng.random() < 0.5 else video


def to_grayscale(video: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> uint8 [..., 1] by luma weights; [..., 1] passes through."""
    if video.shape[-1] == 1:
        return video
    luma = video.astype(np.float32) @ LUMA_WEIGHTS
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def to_rgb(video: np.ndarray) -> np.ndarray:
    """uint8 [..., 1] gray -> uint8 [..., 3] by repeating; [..., 3] passes through."""
    if video.shape[-1] == 3:
        return video
    return np.repeat(video, 3, axis=-1)


def to_float(video: np.ndarray) -> np.ndarray:
    """uint8 [...] in [0, 255] -> float32 [...] in [-1, 1] (the generator's tanh range)."""
    return video.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def transform_clip(
    video: np.ndarray,
    *,
    frames: int,
    stride: int,
    random_start: bool,
    resolution: int,
    crop: str,
    flip: bool,
    channels: int,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A stored video -> the model's clip, uint8 [frames, resolution, resolution, channels].

    Args:
      video: uint8 [time, height, width, 1 or 3] (3-D taken as gray).
      channels: 1 or 3 (`check_data_config` checks it).
      rng: needed when `random_start`, `crop == 'random'` or `flip`.
    """
    clip = sample_frames(
        as_video(video), frames=frames, stride=stride, random_start=random_start, rng=rng
    )
    if channels == 1:
        clip = to_grayscale(clip)
    clip = resize_shorter_side(clip, resolution)
    clip = crop_square(clip, resolution, mode=crop, rng=rng)
    if flip:
        clip = random_flip(clip, _require(rng, "flip"))
    return np.ascontiguousarray(to_rgb(clip) if channels == 3 else clip)


def _require(rng: np.random.Generator | None, what: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{what} needs an np.random.Generator (rng=...)")
    return rng
