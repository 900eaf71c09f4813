"""Checkpoints: the only module that touches Orbax.

A checkpoint of step N is a folder `<workdir>/checkpoints/N/` with three items:
  state   the `TrainState` (Orbax StandardSave; restorable onto any device count),
  data    each JAX process's input-iterator position (grain's per-process JSON),
  meta    the run's config as JSON, to rebuild the model for sampling/evaluation and
          to refuse resuming a run with a different model.
Saves are asynchronous; `keep` newest checkpoints are kept; a save is atomic (Orbax
writes to a temporary folder and renames), so a crash never leaves a half-written
latest checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any

import grain
import orbax.checkpoint as ocp

from vgan_jax.errors import VganError

CHECKPOINT_DIR = "checkpoints"


class _IteratorSnapshot:
    """Adapts an iterator with dict `get_state`/`set_state` to grain's Orbax handler.

    grain's handler writes each process's `process_<i>-of-<n>.json`, but picks the state
    format by type: a `grain.DatasetIterator` as a dict, anything else as bytes. The
    training input is vgan_jax's `InputIterator` (a wrapper that owns the worker
    shutdown and hands out plain arrays), or a caller's wrapper of it, so it takes the
    bytes path. The state is captured when the snapshot is made, in `save()` itself, so
    an asynchronous save records the position at the step it was asked for whatever
    thread Orbax later runs the handler in.
    """

    def __init__(self, iterator, state: bytes | None = None):
        self._iterator = iterator
        self._state = state if state is not None else json.dumps(iterator.get_state()).encode()

    def get_state(self) -> bytes:
        return self._state

    def set_state(self, state: bytes) -> None:
        self._iterator.set_state(json.loads(state.decode()))

    def start_prefetch(self) -> None:
        pass


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


class Checkpointer:
    """Async Orbax checkpointing of (state, data iterator position, config) in a workdir."""

    def __init__(self, workdir: str, *, keep: int = 3, create: bool = True):
        directory = checkpoint_dir(workdir)
        if not create and not os.path.isdir(directory):
            raise VganError(
                f"no checkpoints in {workdir!r} (expected {directory}); train first with "
                f"`vgan-jax train --workdir {workdir}`"
            )
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=create, enable_async_checkpointing=True
        )
        self._manager = ocp.CheckpointManager(
            directory,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )
        self.directory = directory

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, data_iterator, meta: dict[str, Any]) -> None:
        """Starts an asynchronous save of `state`, the iterator position and `meta`."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(_IteratorSnapshot(data_iterator)),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )

    def read_meta(self, step: int | None = None) -> dict[str, Any]:
        step = self._step_or_latest(step)
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
        except Exception as error:  # Orbax raises many kinds; all mean "unreadable".
            raise self._unreadable(step, error) from error
        return dict(restored["meta"])

    def restore(self, abstract_state, data_iterator=None, step: int | None = None):
        """Restores the state onto the shardings in `abstract_state` (any device count)
        and, when given, moves `data_iterator` to its saved position."""
        step = self._step_or_latest(step)
        args = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            args["data"] = grain.checkpoint.CheckpointRestore(_IteratorSnapshot(data_iterator, b""))
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
        except Exception as error:
            raise self._unreadable(step, error) from error
        return restored["state"]

    def restore_parts(self, abstract_parts: dict[str, Any], step: int | None = None) -> dict:
        """Only the named fields of a saved `TrainState`, e.g. `{"ema_params": ...,
        "g_state": ...}` with abstract leaves (`jax.ShapeDtypeStruct`s with shardings):
        Orbax's partial restore reads those arrays and nothing else (sampling needs the
        EMA generator, not both networks' parameters and Adam states)."""
        step = self._step_or_latest(step)
        args = ocp.args.PyTreeRestore(
            item=abstract_parts,
            restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_parts),
            partial_restore=True,
        )
        # StandardRestore has no partial restore; the same files read as a PyTree do.
        reader = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(create=False),
            item_handlers={"state": ocp.PyTreeCheckpointHandler()},
        )
        try:
            restored = reader.restore(step, args=ocp.args.Composite(state=args))
        except Exception as error:
            raise self._unreadable(step, error) from error
        finally:
            reader.close()
        return dict(restored["state"])

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def _step_or_latest(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None:
            raise VganError(f"no checkpoint found in {self.directory}; train first")
        return step

    def _unreadable(self, step: int, error: Exception) -> VganError:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        return VganError(
            f"checkpoint {step} in {self.directory} can't be restored ({reason}); "
            f"it may be corrupt or from another model: move it away or use a fresh --workdir"
        )
