"""Device mesh, shardings, and host-local -> global batch assembly.

Parallelism is data, not code paths: one `Mesh` with a `data` axis; the state is
replicated (`P()`), batches are split over `data` (`P('data')`). One device and
N devices, one host and many, run the same code.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vgan_jax.errors import VganError

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first `num_devices` devices (all when None).

    On several hosts the mesh spans every process's devices; `num_devices` must then
    be None or the global count.
    """
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise VganError(
            f"mesh.num_devices={num_devices}, but {len(devices)} devices are visible; "
            f"use a number from 1 to {len(devices)} or leave it unset for all"
        )
    if jax.process_count() > 1 and num_devices != len(devices):
        raise VganError("on several hosts the mesh must use every device: unset mesh.num_devices")
    return Mesh(np.array(devices[:num_devices]), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(
    global_batch_size: int, mesh: Mesh | None = None, process_count: int | None = None
) -> None:
    """A global batch must split evenly over the mesh's devices (when a mesh is given)
    and over the processes (`process_count`, default `jax.process_count()`). The one
    definition of this rule: the input pipeline checks its process split with it too."""
    counts = {} if mesh is None else {"devices": ("device", mesh.devices.size)}
    processes = jax.process_count() if process_count is None else process_count
    counts["processes"] = ("process", processes)
    for plural, (what, count) in counts.items():
        if global_batch_size < 1 or global_batch_size % count:
            raise VganError(
                f"train.batch_size={global_batch_size} does not divide over {count} {plural}; "
                f"use a multiple of the {what} count {count} "
                f"(e.g. {max(count, global_batch_size // count * count)})"
            )


def global_batch(local_batch, mesh: Mesh):
    """Assembles each process's slice of the batch into global arrays split over `data`.

    Args:
      local_batch: pytree of numpy arrays `[global_batch / process_count, ...]`.

    Returns:
      The same pytree of `jax.Array`s `[global_batch, ...]` sharded over `data`.
    """
    sharding = batch_sharded(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )
