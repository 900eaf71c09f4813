"""Feature extraction sharded over a device mesh that may span several processes.

A feature function (I3D, or any jittable stand-in) is compiled once for a fixed global
batch split over the mesh's `data` axis, as the training step is. Its features come
back replicated, so every process holds all of them: the statistics, FVD and KVD are
then the same numbers on every process and on 1 or N hosts. Videos come in three ways:

- `extractor(videos)` with a uint8 numpy array that is the same on every process (the
  `fvd` and `eval` commands): each process copies only its own devices' rows.
- `extractor(videos)` with a uint8 `jax.Array` already on the mesh (videos generated
  during training): they never go through a host.
- `local_rows(n)` then `iterate_local(clips, n, clip_shape)`: each process reads only
  the clips its devices process (real clips on a pod slice).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vgan_jax.parallel import DATA_AXIS, make_mesh


def put_rows(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A host array that is the same on every process -> a global `jax.Array` with
    `sharding`; each process copies only the slices its own devices hold."""
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def to_uint8(videos: jax.Array) -> jax.Array:
    """float in [-1, 1] -> uint8 in [0, 255] on device (rounded, clipped), the same
    numbers as `vgan_jax.video_io.to_uint8` on the host."""
    scaled = jnp.round((videos.astype(jnp.float32) + 1.0) * 127.5)
    return jnp.clip(scaled, 0, 255).astype(jnp.uint8)


class ShardedFeatureExtractor:
    """A jitted feature function of uint8 videos, sharded over the mesh's `data` axis.

    Args:
      features_fn: `(variables, uint8 [b, T, H, W, C]) -> float32 [b, feature_dim]`,
        jittable, row-independent (a video's features don't depend on its batch).
      variables: the function's weights, a host pytree; placed once, replicated.
      feature_dim: d.
      batch_size: videos per call (global, across the mesh); rounded up to a multiple
        of the mesh size. Every call runs at this size, so it compiles once per video
        shape.
      mesh: a mesh with a `data` axis, possibly spanning processes (None: all devices).
      matmul_precision: `jax.default_matmul_precision` while tracing (None: default).
      name: the detector's name in FVD results.

    Calling it returns float32 `[n, d]` features on every process (see the module
    docstring for the inputs it takes).
    """

    def __init__(
        self,
        features_fn: Callable[[Any, jax.Array], jax.Array],
        variables: Any,
        *,
        feature_dim: int,
        batch_size: int = 16,
        mesh: Mesh | None = None,
        matmul_precision: str | None = None,
        name: str | None = None,
    ):
        self.mesh = mesh if mesh is not None else make_mesh()
        num_shards = self.mesh.shape[DATA_AXIS]
        self.batch_size = max(num_shards, -(-batch_size // num_shards) * num_shards)
        self.feature_dim = feature_dim
        if name is not None:
            self.name = name
        self._precision = matmul_precision
        replicated = NamedSharding(self.mesh, PartitionSpec())
        self._replicated = replicated
        self._all = None  # on_every_process's jitted min, made on first use
        self._batch_sharding = NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))
        # Weights are placed once, replicated on every device of the mesh.
        self._variables = jax.tree.map(lambda x: put_rows(x, replicated), variables)
        batch_sharding = self._batch_sharding

        def sharded_features(variables, videos):
            # Pinned to the data split, so XLA computes each device's rows where they
            # are and only gathers the [b, d] features (never the videos).
            videos = jax.lax.with_sharding_constraint(videos, batch_sharding)
            features = features_fn(variables, videos)
            return jax.lax.with_sharding_constraint(features, batch_sharding)

        # Replicated output: every process can read all features (np.asarray of a
        # fully replicated array reads a local copy), with no second program to gather.
        self._features = jax.jit(
            sharded_features,
            in_shardings=(replicated, self._batch_sharding),
            out_shardings=replicated,
        )
        self._pads: dict[int, Callable] = {}
        # Which rows of a [batch_size] global batch live on this process's devices.
        index_map = self._batch_sharding.addressable_devices_indices_map((self.batch_size,))
        self._local_offsets = sorted(
            {row for (rows,) in index_map.values() for row in range(*rows.indices(self.batch_size))}
        )

    @property
    def num_devices(self) -> int:
        return self.mesh.shape[DATA_AXIS]

    def on_every_process(self, flag: bool) -> bool:
        """Whether `flag` holds on every process (`flag` itself on one): a min over the
        mesh, the devices the extraction's own collectives already connect."""
        if jax.process_count() == 1:
            return flag
        if self._all is None:
            self._all = jax.jit(jnp.min, out_shardings=self._replicated)
        local = np.full(len(self.mesh.local_devices), int(flag), np.int32)
        return bool(self._all(jax.make_array_from_process_local_data(self._batch_sharding, local)))

    def _run(self, videos: jax.Array) -> np.ndarray:
        """A global uint8 batch `[batch_size, T, H, W, C]` -> float32 `[batch_size, d]`."""
        precision = (
            jax.default_matmul_precision(self._precision)
            if self._precision
            else contextlib.nullcontext()
        )
        with precision:
            return np.asarray(self._features(self._variables, videos))

    def _pad_on_device(self, videos: jax.Array) -> jax.Array:
        """A global batch of n <= batch_size rows -> batch_size rows (zeros after n),
        split over the mesh."""
        n = videos.shape[0]
        if n not in self._pads:
            widths = ((0, self.batch_size - n),) + ((0, 0),) * (videos.ndim - 1)
            self._pads[n] = jax.jit(
                lambda v: jnp.pad(v, widths), out_shardings=self._batch_sharding
            )
        return self._pads[n](videos)

    def __call__(self, videos) -> np.ndarray:
        """uint8 `[n, T, H, W, C]` (C = 1 or 3) -> float32 `[n, d]` on every process.

        `videos` is a numpy array, the same on every process (any n), or a `jax.Array`
        on this mesh with n <= `batch_size` and n a multiple of the mesh size.
        """
        if not isinstance(videos, jax.Array):
            videos = np.asarray(videos)
        if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[-1] not in (1, 3):
            raise ValueError(
                f"{type(self).__name__} expects uint8 [n, T, H, W, C] with C in (1, 3), "
                f"got {videos.dtype} {videos.shape}"
            )
        if isinstance(videos, jax.Array):
            n = videos.shape[0]
            if n > self.batch_size or n % self.num_devices:
                raise ValueError(
                    f"a jax.Array batch must have at most {self.batch_size} videos and a "
                    f"multiple of the {self.num_devices} devices, got {n}"
                )
            return self._run(self._pad_on_device(videos))[:n]
        outputs = []
        for start in range(0, videos.shape[0], self.batch_size):
            batch = videos[start : start + self.batch_size]
            n = batch.shape[0]
            if n < self.batch_size:
                # Pad to the compiled size; the padded rows are dropped below.
                pad = np.zeros((self.batch_size - n, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad], axis=0)
            outputs.append(self._run(put_rows(batch, self._batch_sharding))[:n])
        if not outputs:
            return np.zeros((0, self.feature_dim), np.float32)
        return np.concatenate(outputs, axis=0)

    def iterate(self, video_batches: Iterable) -> Iterator[np.ndarray]:
        """Features of each batch of an iterable of uint8 video batches, in order."""
        for batch in video_batches:
            yield self(batch)

    def local_rows(self, num_videos: int) -> np.ndarray:
        """int64 indices (ascending, into `0..num_videos - 1`) of the videos whose rows
        this process's devices take when `num_videos` videos go through in batches of
        `batch_size`: the only ones this process needs to read for `iterate_local`."""
        rows = [
            start + offset
            for start in range(0, num_videos, self.batch_size)
            for offset in self._local_offsets
            if start + offset < num_videos
        ]
        return np.asarray(rows, np.int64)

    def iterate_local(
        self, local_videos: np.ndarray, num_videos: int, clip_shape: tuple[int, ...]
    ) -> Iterator[np.ndarray]:
        """Features of `num_videos` videos that the processes read between them.

        Args:
          local_videos: uint8 `[len(local_rows(num_videos)), T, H, W, C]`, this
            process's videos in `local_rows` order.
          num_videos: videos in all, over every process.
          clip_shape: `(T, H, W, C)` (a process may hold no video of the last batch).

        Yields float32 `[b, d]` per batch of `batch_size` (the last may be smaller), in
        the order of the videos' global indices, on every process.
        """
        rows = self.local_rows(num_videos)
        if len(local_videos) != len(rows):
            raise ValueError(
                f"this process must pass its {len(rows)} videos (local_rows), got "
                f"{len(local_videos)}"
            )
        by_row = dict(zip(rows.tolist(), range(len(rows)), strict=True))
        blank = np.zeros(tuple(clip_shape), np.uint8)
        shape = (self.batch_size, *clip_shape)
        for start in range(0, num_videos, self.batch_size):

            def rows_of(index, start=start):
                # One device's slice of this global batch: its videos, zeros as padding.
                wanted = range(start, start + self.batch_size)[index[0]]
                return np.stack(
                    [local_videos[by_row[r]] if r in by_row else blank for r in wanted]
                )

            batch = jax.make_array_from_callback(shape, self._batch_sharding, rows_of)
            yield self._run(batch)[: min(self.batch_size, num_videos - start)]
