"""The input pipeline: config checks, random-access sources and the training iterator.

Data flow of `make_train_iterator` (built on grain):

    source (random access, {"video": uint8 [T0, H0, W0, C0], "label": int64 [] or [K]})
      -> [process_index::process_count]   each JAX process keeps a disjoint shard
      -> seed(seed).shuffle().repeat()    a fresh permutation every epoch, from the seed
      -> random_map(transform_clip)       per-example rng: deterministic augmentation
      -> filter(long enough)              only when short_videos == 'skip'
      -> batch(local_batch)               {"video": float32 [B, F, R, R, C] in [-1, 1],
                                           "label": int32 [B] or [B, K]}

The iterator's position is a small JSON dict (`get_state`/`set_state`), saved with the
checkpoint so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from vgan_jax.data import registry, transforms
from vgan_jax.data.registry import BUILTIN_DATASET, SPLITS
from vgan_jax.errors import VganError

# Prefetch threads and buffer of the in-process reader: enough to hide decoding of a
# few batches, bounded so large RGB clips do not fill host memory.
_READ_THREADS = 8


def _check_positive_int(data_config, field: str, minimum: int = 1) -> None:
    value = data_config.get(field)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise VganError(
            f"config.data.{field} must be an integer >= {minimum}, got {value!r}; "
            f"set --config.data.{field}=N"
        )


class CheckedDataConfig(ml_collections.FrozenConfigDict):
    """A `config.data` that passed `check_data_config`; frozen, so it stays valid."""


def check_data_config(data_config) -> CheckedDataConfig:
    """The one validation of `config.data`: raises VganError for a bad one before
    anything is built or read, else returns it checked and frozen.

    Checks the dataset name, channels (1 or 3), sizes, stride, the crop and short-video
    choices, and the built-in dataset's clip counts. Every data function taking a
    `data_config` calls it first; given a `CheckedDataConfig` it returns at once, so an
    entry point that checks once (`train`) and passes the result on checks only once.
    """
    if isinstance(data_config, CheckedDataConfig):
        return data_config
    name = data_config.get("name")
    if not registry.is_known_name(name):
        raise VganError(
            f"unknown dataset {name!r}; known datasets: {', '.join(registry.known_datasets())}"
        )
    if data_config.get("channels") not in (1, 3):
        raise VganError(
            f"config.data.channels must be 1 or 3, got {data_config.get('channels')!r}"
        )
    for field in ("resolution", "frames", "frame_stride"):
        _check_positive_int(data_config, field)
    _check_positive_int(data_config, "worker_count", minimum=0)
    choices = {"crop": transforms.CROP_CHOICES, "short_videos": transforms.SHORT_VIDEO_CHOICES}
    for field, allowed in choices.items():
        if data_config.get(field) not in allowed:
            raise VganError(
                f"config.data.{field} must be one of {', '.join(allowed)}, "
                f"got {data_config.get(field)!r}"
            )
    for field in ("random_start", "flip"):
        if not isinstance(data_config.get(field), bool | np.bool_):
            raise VganError(
                f"config.data.{field} must be True or False, got {data_config.get(field)!r}"
            )
    if name == BUILTIN_DATASET:
        for field in ("num_train_clips", "num_test_clips", "num_digits"):
            _check_positive_int(data_config, field)
    return CheckedDataConfig(data_config)


def open_source(data_config, split: str) -> tuple[transforms.ExampleSource, dict[str, Any]]:
    """Opens one split of `data_config.name` for random access.

    The built-in `moving_mnist_offline` is built on first use into `data_config.data_dir`
    (one printed line; later calls reuse it). Its build seed is fixed at 0, so
    `config.seed` changes the order clips are seen in, never the clips themselves;
    `frames`, `frame_stride`, `num_train_clips`, `num_test_clips` and `num_digits` pick
    the build.
    Every other name is read from data prepared by `vgan-jax prepare NAME`.

    Args:
      data_config: `config.data` (checked by `check_data_config`).
      split: "train" or "test".
    Returns:
      (source, info): `source[i]` is {"video": uint8 [time, height, width, channels],
      "label": int64 [] (-1 when unlabelled), or [K] for datasets that label each of K
      objects per clip}; info has at least "num_classes", "labels_per_clip" (K, else 1),
      "num_examples" and "files_dir" (see `dataset_files_dir`).
    """
    data_config = check_data_config(data_config)
    if split not in SPLITS:
        raise VganError(f"unknown split {split!r}; available splits: {', '.join(SPLITS)}")
    data_dir = registry.resolve_data_dir(data_config.get("data_dir"))
    if data_config.name == BUILTIN_DATASET:
        from vgan_jax.data import moving_mnist  # lazy: tfds is slow to import

        builder = moving_mnist.build(
            data_dir,
            # Store whole clips for the configured stride, so random_start/stride need
            # no padding; with stride 1 this is just `frames`.
            frames=transforms.clip_span(data_config.frames, data_config.frame_stride),
            num_train_clips=data_config.num_train_clips,
            num_test_clips=data_config.num_test_clips,
            seed=0,
            num_digits=data_config.num_digits,
        )
        source = transforms.ExampleSource(builder.as_data_source()[split])
        info = {
            "num_classes": moving_mnist.NUM_CLASSES,
            "labels_per_clip": data_config.num_digits,  # one class per digit
            "files_dir": str(builder.data_dir),
        }
    else:
        try:
            from vgan_jax.data.prepared import open_prepared  # lazy: optional heavy deps
        except ImportError as error:
            raise VganError(
                f"dataset {data_config.name!r} is not prepared ({error}); run "
                f"`{registry.prepare_command_hint(data_config.name, data_dir)}` first"
            ) from error
        source, info = open_prepared(data_config.name, data_dir, split)
    if len(source) == 0:
        raise VganError(f"split {split!r} of {data_config.name!r} in {data_dir} is empty")
    info = {"name": data_config.name, "split": split, **dict(info)}
    info.setdefault("num_examples", len(source))
    info.setdefault("labels_per_clip", 1)
    return source, info


def dataset_files_dir(data_config) -> str:
    """The directory holding the dataset's records and `dataset_info.json` (a tfds
    version directory). The built-in dataset is built there first if it is missing."""
    return open_source(data_config, "train")[1]["files_dir"]


def dataset_fingerprint(data_config) -> str:
    """A short hash of the dataset files' names, sizes and modification times.

    Cheap (directory metadata only, no record is read) and it changes whenever the
    dataset is built or prepared again, so caches derived from the clips (FVD's real
    statistics) never outlive the data they describe. Copying the files elsewhere also
    changes it (a harmless cache miss).
    """
    directory = dataset_files_dir(data_config)
    facts = []
    if "://" in directory:  # gs:// and other remote file systems: through etils.epath
        from etils import epath

        for child in sorted(epath.Path(directory).iterdir()):
            stat = child.stat()
            if not stat.is_directory:
                facts.append(f"{child.name}|{stat.length}|{stat.mtime}")
    else:
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_file():
                    stat = entry.stat()
                    facts.append(f"{entry.name}|{stat.st_size}|{stat.st_mtime_ns}")
    if not facts:
        raise VganError(f"dataset {data_config.name!r}: no files in {directory}")
    return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:16]


def _clip_fn(data_config):
    """transform_clip with this config's settings bound: picklable for grain workers."""
    return functools.partial(
        transforms.transform_clip,
        frames=data_config.frames,
        stride=data_config.frame_stride,
        random_start=bool(data_config.random_start),
        resolution=data_config.resolution,
        crop=data_config.crop,
        flip=bool(data_config.flip),
        channels=data_config.channels,
    )


def _transform_example(
    example: Mapping[str, np.ndarray], rng: np.random.Generator, *, clip_fn, skip_short: bool,
    frames: int, stride: int,
) -> dict[str, np.ndarray] | None:
    """One stored example -> {"video": uint8 [F, R, R, C], "label": int32 [] or
    [objects]}, or None to skip."""
    video = example["video"]
    if skip_short and not transforms.is_long_enough(video, frames=frames, stride=stride):
        return None
    return {"video": clip_fn(video, rng=rng), "label": np.asarray(example["label"], np.int32)}


def _is_kept(example) -> bool:
    return example is not None


def _to_model_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """uint8 clips -> float32 [-1, 1]; done per batch so it is one vectorised op."""
    return {
        "video": transforms.to_float(np.asarray(batch["video"])),
        "label": np.asarray(batch["label"], np.int32),
    }


class InputIterator:
    """Endless training batches for this process, resumable from `get_state()`.

    Each `next()` gives {"video": float32 [local_batch, frames, resolution, resolution,
    channels] in [-1, 1], "label": int32 [local_batch] or [local_batch, K]}.
    """

    def __init__(self, dataset, *, local_batch_size: int):
        self._dataset = dataset
        self._iterator = iter(dataset)
        self.local_batch_size = local_batch_size

    def __iter__(self) -> InputIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iterator)
        # Multiprocess workers hand back shared-memory arrays; give plain ndarrays.
        return {key: np.asarray(value) for key, value in batch.items()}

    def get_state(self) -> dict[str, Any]:
        """The position in the stream, a JSON-serialisable dict."""
        return self._iterator.get_state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continues from a `get_state()` of an iterator with the same config and seed."""
        self._iterator.set_state(dict(state))

    def close(self) -> None:
        """Stops worker processes, if any."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()


def make_train_iterator(
    data_config,
    *,
    seed: int,
    global_batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
) -> InputIterator:
    """The training input of one JAX process (see the module docstring for the flow).

    Each process reads a disjoint shard (`[process_index::process_count]`) and yields
    `global_batch_size // process_count` examples per batch; batches are a pure
    function of (config, seed, process, step). With `data_config.worker_count > 0`,
    grain worker processes prepare batches (the stream then depends on the worker
    count too, deterministically).

    Raises:
      VganError: a bad config, or a global batch that the process count does not divide.
    """
    import grain  # lazy: keep `import vgan_jax.data` light

    from vgan_jax.parallel import check_batch_size  # lazy: jax is not needed to read data

    data_config = check_data_config(data_config)
    check_batch_size(global_batch_size, process_count=process_count)
    if not 0 <= process_index < process_count:
        raise VganError(f"process_index {process_index} not in [0, {process_count})")
    local_batch = global_batch_size // process_count
    source, _ = open_source(data_config, "train")
    if len(source) < process_count:
        raise VganError(
            f"the train split has {len(source)} videos, fewer than {process_count} processes"
        )
    per_example = functools.partial(
        _transform_example,
        clip_fn=_clip_fn(data_config),
        skip_short=data_config.short_videos == "skip",
        frames=data_config.frames,
        stride=data_config.frame_stride,
    )
    dataset = (
        grain.MapDataset.source(source)[process_index::process_count]
        .seed(seed)
        .shuffle()
        .repeat(None)  # reseeds the shuffle and the per-example rngs every epoch
        .random_map(per_example)
        .filter(_is_kept)
    )
    read_options = grain.ReadOptions(
        num_threads=_READ_THREADS, prefetch_buffer_size=max(2 * local_batch, 16)
    )
    batched = (
        dataset.to_iter_dataset(read_options)
        .batch(local_batch, drop_remainder=True)
        .map(_to_model_batch)
    )
    if data_config.worker_count > 0:
        from absl import flags

        # grain's worker processes read absl flags; a library caller may never parse them.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        batched = batched.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=data_config.worker_count)
        )
    return InputIterator(batched, local_batch_size=local_batch)


def load_videos(
    data_config, split: str, num: int, seed: int, rows: Sequence[int] | None = None
) -> np.ndarray:
    """`num` clips of a split, the same for the same (config, split, num, seed).

    For FVD's real statistics and side-by-side comparisons: clips are picked by a
    seeded permutation and transformed like training clips (random start, crop and flip
    drawn from per-clip seeds). Videos too short for a clip are skipped when
    `short_videos == 'skip'`.

    Args:
      rows: ascending indices into the `num` clips to return (None: all), so each
        process of a multi-host FVD reads only its share. Only those clips are read
        and transformed, except that `short_videos == 'skip'` reads every video up to
        the `num`-th usable one for its length.

    Returns:
      uint8 [num (or len(rows)), frames, resolution, resolution, channels].
    Raises:
      VganError: the split holds fewer than `num` usable videos (on every process,
        whatever its rows).
    """
    data_config = check_data_config(data_config)
    if num < 1:
        raise VganError(f"number of videos must be >= 1, got {num}")
    source, _ = open_source(data_config, split)
    clip_fn = _clip_fn(data_config)
    skip_short = data_config.short_videos == "skip"
    order = np.random.default_rng([seed, 1]).permutation(len(source))
    wanted = set(range(num) if rows is None else map(int, rows))
    clips: list[np.ndarray] = []
    usable = 0
    for index in order.tolist():
        if usable == num:
            break
        video = None
        if skip_short:
            video = source[index]["video"]
            if not transforms.is_long_enough(
                video, frames=data_config.frames, stride=data_config.frame_stride
            ):
                continue
        if usable in wanted:
            video = source[index]["video"] if video is None else video
            clips.append(clip_fn(video, rng=np.random.default_rng([seed, 2, index])))
        usable += 1
    if usable < num:
        raise VganError(
            f"split {split!r} of {data_config.name!r} has only {usable} usable videos, "
            f"{num} requested; ask for fewer"
        )
    if not clips:
        shape = (data_config.frames, data_config.resolution, data_config.resolution)
        return np.zeros((0, *shape, data_config.channels), np.uint8)
    return np.stack(clips)
