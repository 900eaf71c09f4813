"""`train(config, workdir)`: setup, then a short loop of steps and periodic actions.

`_setup` does everything before the first step. Every check that needs no compilation
runs first (the config exactly once, the workdir, class labels, the batch split, the
FVD data, an existing checkpoint's config), so bad input fails in a second with one
line, never after minutes of compilation. Then it builds the model and this process's
input, creates the state or resumes it from the newest checkpoint in the workdir, and
writes the run's hyper-parameters to TensorBoard.

The loop runs one step, then the `PeriodicAction`s due after it (as CLU's periodic
actions and big_vision's `itstime`): metrics, scalar logs and the NaN stop, sample
grids, the training FVD, checkpoints, the stop on a signal and a profiler window.
SIGTERM (Cloud TPU preemption) and Ctrl-C, from the moment `train` is called, save a
checkpoint and return, every host at the same step; a non-finite loss stops training
without saving, so the last good checkpoint stays the newest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from vgan_jax import data as data_lib
from vgan_jax.checkpoint import Checkpointer
from vgan_jax.config import config_from_saved
from vgan_jax.errors import VganError
from vgan_jax.losses import get_loss
from vgan_jax.models import check_model_config
from vgan_jax.models.registry import check_compute_dtype
from vgan_jax.parallel import batch_sharded, check_batch_size, global_batch, make_mesh, replicated
from vgan_jax.sampling import make_generate_fn, make_standing_statistics_fn, sampling_inputs
from vgan_jax.state import (
    abstract_train_state,
    build_gan,
    check_augment_config,
    count_params,
    create_train_state,
    video_shape_from_config,
)
from vgan_jax.train_step import make_train_step
from vgan_jax.video_io import encode_gif, to_uint8, write_frame_strip, write_videos

# Folders of a workdir besides the checkpoints (`checkpoint.CHECKPOINT_DIR`).
SAMPLES_DIR = "samples"
LOGS_DIR = "logs"  # TensorBoard events, and profiler traces under plugins/profile/
# Config sections that define the model and its input; a checkpoint made with other
# values can't be resumed (train.* hyper-parameters may change between runs).
_IDENTITY_FIELDS = ("model", "data.resolution", "data.frames", "data.channels")
# Model fields that change training, not the parameters: free to change on resume.
# remat changes memory, not parameters or numbers: a run may resume with it toggled.
_RESUMABLE_MODEL_FIELDS = ("d_dropout", "remat")


class TrainingDiverged(VganError):
    """A loss or gradient became NaN/Inf."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: where it stopped and the final state.

    start_step: the step training started from (> 0 when it resumed).
    metrics: the last logged metrics (means since the log before).
    state: the final `TrainState`, replicated over the mesh.
    """

    step: int
    start_step: int
    workdir: str
    metrics: dict[str, float]
    state: object = None
    stopped_by_signal: bool = False


def _get_field(config, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def check_config(config):
    """Every check of the config alone (names, sizes, steps), before anything compiles;
    `train` runs it once, first. Returns the checked `config.data` for the data
    functions, which then do not validate it again (one validation per start)."""
    data_config = data_lib.check_data_config(config.data)
    check_model_config(config.model, video_shape_from_config(config))
    check_compute_dtype(config.train.compute_dtype)
    get_loss(config.train.loss)
    check_augment_config(config.train)
    for field in (
        "steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "r1_every"
    ):
        if config.train[field] < 1:
            raise VganError(f"train.{field} must be >= 1, got {config.train[field]}")
    if config.train.mode_seeking < 0:
        raise VganError(f"train.mode_seeking must be >= 0, got {config.train.mode_seeking}")
    if config.train.class_loss < 0:
        raise VganError(f"train.class_loss must be >= 0, got {config.train.class_loss}")
    if config.train.class_loss and not config.model.num_classes:
        raise VganError(
            "train.class_loss needs a conditional run: set model.num_classes "
            "(the classes are the labels of the data)"
        )
    if config.train.num_sample_videos < 1:
        raise VganError("train.num_sample_videos must be >= 1")
    for field in ("profile_start_step", "profile_steps"):
        if config.train[field] < 0:
            raise VganError(f"train.{field} must be >= 0, got {config.train[field]}")
    check_fvd_config(config)
    return data_config


def check_fvd_config(config) -> None:
    """What `train.fvd_every` needs that the config alone tells: I3D-length clips and
    enough videos for a covariance and KVD's subsets (`check_fvd_data` does the rest)."""
    every, num = config.train.fvd_every, config.train.fvd_num_videos
    if every < 0:
        raise VganError(f"train.fvd_every must be >= 0 (0: no FVD), got {every}")
    if not every:
        return
    from vgan_jax.metrics import i3d

    frames = config.data.frames
    if frames < i3d.I3D_MIN_FRAMES:
        raise VganError(
            f"train.fvd_every={every} scores clips with I3D, which needs at least "
            f"{i3d.I3D_MIN_FRAMES} frames, but data.frames={frames}; use "
            f"--config.data.frames={i3d.I3D_MIN_FRAMES} or more, or --config.train.fvd_every=0"
        )
    if num < 3:
        raise VganError(
            f"train.fvd_num_videos={num}, but FVD and KVD need at least 3 videos per set; "
            f"use e.g. --config.train.fvd_num_videos=256"
        )


def check_fvd_data(config, mesh, data_config=None) -> None:
    """What `train.fvd_every` needs of the mesh and the dataset (after `make_mesh`,
    still before compiling): `fvd_num_videos` splits over the devices, as a training
    batch does, and the real split holds that many videos (with
    `data.short_videos='skip'` some may still be too short; that fails at the first FVD).
    `data_config`: `check_config`'s result (default `config.data`)."""
    if not config.train.fvd_every:
        return
    from vgan_jax.metrics.training_hook import TRAINING_FVD_SPLIT

    num, devices = config.train.fvd_num_videos, mesh.devices.size
    if num % devices:
        raise VganError(
            f"train.fvd_num_videos={num} does not divide over {devices} devices (FVD "
            f"videos are generated and scored in global batches); use a multiple of "
            f"{devices} (e.g. {max(devices, num // devices * devices)})"
        )
    data_config = config.data if data_config is None else data_config
    source, _ = data_lib.open_source(data_config, TRAINING_FVD_SPLIT)
    if len(source) < num:
        raise VganError(
            f"train.fvd_num_videos={num}, but the {TRAINING_FVD_SPLIT!r} split of "
            f"{config.data.name!r} holds {len(source)} videos; use "
            f"--config.train.fvd_num_videos={max(devices, len(source) // devices * devices)} "
            f"or fewer, or more clips"
        )


def check_class_labels(config, data_config=None) -> None:
    """A class-conditional model (`model.num_classes` > 0) needs a dataset whose labels
    are all below `model.num_classes`; raises `VganError` otherwise (before compiling:
    out-of-range labels inside the step would only show up as NaNs). `data_config`:
    `check_config`'s result (default `config.data`)."""
    wanted = config.model.num_classes
    if not wanted:
        return
    _, info = data_lib.open_source(config.data if data_config is None else data_config, "train")
    available = int(info.get("num_classes") or 0)
    if available < 1:
        raise VganError(
            f"dataset {config.data.name!r} has no class labels, so it can't train a "
            f"conditional model (model.num_classes={wanted}); use --config.model.num_classes=0"
        )
    if available > wanted:
        raise VganError(
            f"dataset {config.data.name!r} has {available} classes but model.num_classes is "
            f"{wanted}; use --config.model.num_classes={available}"
        )
    per_clip = int(info.get("labels_per_clip") or 1)
    if per_clip != config.model.labels_per_clip:
        raise VganError(
            f"dataset {config.data.name!r} labels {per_clip} object(s) per clip but "
            f"model.labels_per_clip is {config.model.labels_per_clip}; use "
            f"--config.model.labels_per_clip={per_clip}"
        )


def check_workdir(workdir: str) -> None:
    """The workdir must be creatable and writable."""
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise VganError(
            f"can't create workdir {workdir!r}: {error.strerror}; choose another --workdir"
        ) from error
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise VganError(f"workdir {workdir!r} is not writable; choose another --workdir")


def check_resumable(saved_config: dict, config) -> None:
    """Refuses to resume a checkpoint whose model or clip shape differs from `config`,
    or whose optimizer differs (Adam vs AdamW: `train.weight_decay` zero or not)."""
    saved = config_from_saved(saved_config)
    differences = []
    for field in _IDENTITY_FIELDS:
        old, new = _get_field(saved, field), _get_field(config, field)
        if isinstance(old, dict):
            differences += [
                f"{field}.{k}: {old.get(k)!r} -> {new.get(k)!r}"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
                and not (field == "model" and k in _RESUMABLE_MODEL_FIELDS)
            ]
        elif old != new:
            differences.append(f"{field}: {old!r} -> {new!r}")
    if differences:
        raise VganError(
            "the workdir holds a checkpoint of a different model ("
            + "; ".join(differences)
            + "); use a fresh --workdir or the original config"
        )
    # Adam and AdamW keep different optimizer-state trees: the checkpoint can't restore.
    old_decay, new_decay = saved.train.weight_decay, config.train.weight_decay
    if bool(old_decay) != bool(new_decay):
        names = {True: "AdamW", False: "Adam"}
        raise VganError(
            f"the workdir holds a checkpoint trained with train.weight_decay={old_decay!r} "
            f"({names[bool(old_decay)]}) but the config has {new_decay!r} "
            f"({names[bool(new_decay)]}), a different optimizer state; use "
            f"--config.train.weight_decay={old_decay!r} or a fresh --workdir"
        )


class _StopRequest:
    """Turns SIGTERM / SIGINT into a flag the loop checks after each step."""

    def __init__(self):
        self.signal_name: str | None = None
        self.signal_number = 0  # 0: no signal yet
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker)
                pass
        return self

    def _handle(self, signum, _frame):
        if self.signal_name is not None:  # second signal: stop the hard way
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.signal_number = int(signum)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _StopAgreement:
    """Whether to save and stop after this step, decided by every process together.

    On a pod the hosts get SIGTERM at different steps (or only one gets Ctrl-C). A
    host that entered the collective checkpoint save while the others ran the next
    `pmean` step would hang the job, so on several processes each step all-reduces
    (max) the signal number every process has received (0: none) over the training
    mesh, and all stop after the first step whose reduced value is non-zero.

    The value of step k is read after step k + 1 is dispatched, so the read waits for
    step k, never for the step just queued: the devices always have the next step
    waiting. Stopping one step after the signal costs one step; all processes read
    the same value after the same step, so they save the same step. The reduction
    takes `state.step` from step k and gives it back to step k + 1, so collective
    programs run one at a time (CPU runs independent programs concurrently, and two
    processes could then start the reduction and a step's `pmean` in different
    orders) and the reduction never waits for a process still compiling a step.
    Before the first step `before_first_step` reduces once and reads at once, so a
    signal that arrived during setup stops every process before any step compiles.

    JAX's `multihost_utils.reached_preemption_sync_point` (TSL's protocol, which
    Orbax's `reached_preemption` calls) also agreed on a step with gloo here, but only
    for SIGTERM, only while no Python SIGTERM handler replaces its C++ one, and a notice
    that arrives before the loop's first call names a step a resumed run has passed.

    On one process it is the local flag, at no cost: no program, no device read.
    `agreed` is the agreed signal's name once there is one.
    """

    def __init__(self, request: _StopRequest, mesh):
        self._request = request
        self._pending = None
        self._multiprocess = jax.process_count() > 1
        self.agreed: str | None = None
        if self._multiprocess:
            self._sharding = batch_sharded(mesh)
            self._local_devices = len(mesh.local_devices)
            # `step + 0`: a new array, so the next step depends on this program (an
            # input returned unchanged would be passed through without waiting).
            self._reduce = jax.jit(
                lambda step, flags: (step + 0, jnp.max(flags)),
                out_shardings=(replicated(mesh), replicated(mesh)),
            )

    def before_first_step(self, state):
        """Once, before the loop: `(state, signal name or None)`, read at once."""
        if not self._multiprocess:
            return state, self._agree(self._request.signal_number)
        state, current = self._all_reduce(state)
        return state, self._agree(int(current))

    def __call__(self, state):
        """Call once per step on every process, right after dispatching the step that
        returned `state`. Returns `(state, signal name or None)`: the state to train on,
        and the signal's name when every process stops after this step."""
        if not self._multiprocess:
            return state, self._agree(self._request.signal_number)
        state, current = self._all_reduce(state)
        agreed, self._pending = self._pending, current
        return state, self._agree(0 if agreed is None else int(agreed))

    def _all_reduce(self, state):
        flags = np.full(self._local_devices, self._request.signal_number, np.int32)
        flags = jax.make_array_from_process_local_data(self._sharding, flags)
        step, current = self._reduce(state.step, flags)
        return state.replace(step=step), current

    def _agree(self, number: int) -> str | None:
        if number:
            self.agreed = signal.Signals(number).name
        return self.agreed


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """`{"train": {"steps": 4}}` -> `{"train.steps": 4}`."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _Logger:
    """TensorBoard (tensorboardX, no TensorFlow) on process 0; nothing elsewhere."""

    def __init__(self, logdir: str):
        self._writer = None
        if jax.process_index() == 0:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(logdir)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._writer:
            for name, value in values.items():
                self._writer.add_scalar(name, value, step)

    def hyperparameters(self, step: int, config: dict, metric_tags: list[str]) -> None:
        """The run's config, once per start: its `section.field` values for TensorBoard's
        HParams dashboard (against the scalars `metric_tags`) and a table in Text."""
        if not self._writer:
            return
        from tensorboardX.summary import hparams

        flat = _flatten(config)
        # tensorboardX skips None values; anything not a number, bool or str becomes text.
        plain = (type(None), bool, int, float, str)
        values = {k: v if isinstance(v, plain) else str(v) for k, v in flat.items()}
        experiment, session_start, _ = hparams(values, dict.fromkeys(metric_tags, 0.0))
        for summary in (experiment, session_start):
            self._writer.file_writer.add_summary(summary, step)
        rows = "".join(f"| `{name}` | `{value!r}` |\n" for name, value in flat.items())
        self._writer.add_text("config", "| field | value |\n|---|---|\n" + rows, step)

    def video(self, step: int, tag: str, videos_uint8: np.ndarray) -> None:
        """An animated GIF image summary, as tensorboardX's add_video writes (minus moviepy)."""
        if not self._writer:
            return
        from tensorboardX.proto.summary_pb2 import Summary

        _, frames, height, width, channels = videos_uint8.shape
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=encode_gif(videos_uint8)
        )
        self._writer.file_writer.add_summary(
            Summary(value=[Summary.Value(tag=tag, image=image)]), step
        )

    def close(self) -> None:
        if self._writer:
            self._writer.close()


class PeriodicAction(NamedTuple):
    """Work after a training step: `fn(step, state, metrics)` after every step that
    `every` divides (one period or several, any of them; 0: none), after the run's last
    step when `last`, and after the step where the run stops on a signal when
    `on_stop`. `metrics` is that step's metrics (device arrays, not fetched), None when
    the run stops before its first step (then only `on_stop` actions run)."""

    every: int | tuple[int, ...]
    fn: Callable[[int, Any, dict | None], None]
    last: bool = False
    on_stop: bool = False

    def due(self, step: int, *, last: bool, stopping: bool) -> bool:
        periods = self.every if isinstance(self.every, tuple) else (self.every,)
        return (
            any(period and step % period == 0 for period in periods)
            or (self.last and last)
            or (self.on_stop and stopping)
        )


@dataclasses.dataclass
class _Run:
    """What `_setup` made for the loop. Leaving it as a context manager closes what it
    opened (`closer`: waits for pending saves, stops input workers, flushes logs)."""

    config: ml_collections.ConfigDict
    data_config: Any  # config.data as checked once (`check_config`)
    workdir: str
    mesh: Any
    gan: Any
    checkpointer: Checkpointer
    iterator: Any
    state: Any
    start_step: int
    train_step: Callable
    generate: Callable
    standing_statistics: Callable
    logger: _Logger
    closer: contextlib.ExitStack
    is_main: bool

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc) -> None:
        self.closer.close()

    def save(self, step: int, state, metrics=None) -> None:
        """An asynchronous checkpoint of `state` and the input position at `step`."""
        # A run stopped before its first step holds the checkpoint it resumed from, or
        # the seed's initial state: nothing to save (and no time spent on it).
        if step != self.start_step:
            meta = {"config": self.config.to_dict(), "jax_version": jax.__version__}
            self.checkpointer.save(step, state, self.iterator, meta)


def _close_quietly(iterator) -> None:
    with contextlib.suppress(Exception):
        iterator.close()


def _setup(config: ml_collections.ConfigDict, workdir: str) -> _Run:
    """Everything before the first step: the checks (see the module docstring), then the
    model, this process's input and the state, fresh or resumed with its input position."""
    data_config = check_config(config)
    check_workdir(workdir)
    check_class_labels(config, data_config)
    mesh = make_mesh(config.mesh.num_devices)
    check_batch_size(config.train.batch_size, mesh)
    if config.train.mode_seeking and (config.train.batch_size // mesh.devices.size) % 2:
        raise VganError(
            f"train.mode_seeking pairs clips on each device: train.batch_size="
            f"{config.train.batch_size} over {mesh.devices.size} devices leaves an odd "
            f"per-device batch; use a multiple of {2 * mesh.devices.size}"
        )
    check_fvd_data(config, mesh, data_config)
    with contextlib.ExitStack() as closer:  # what was opened is closed if setup fails
        checkpointer = Checkpointer(workdir, keep=config.train.keep_checkpoints)
        closer.callback(checkpointer.close)
        latest = checkpointer.latest_step()
        if latest is not None:
            check_resumable(checkpointer.read_meta(latest)["config"], config)
        if jax.process_index() == 0:
            with open(os.path.join(workdir, "config.json"), "w") as f:
                json.dump(config.to_dict(), f, indent=2)
        gan = build_gan(config)
        iterator = data_lib.make_train_iterator(
            data_config,
            seed=config.seed,
            global_batch_size=config.train.batch_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        closer.callback(_close_quietly, iterator)
        if latest is None:
            state = create_train_state(gan, config.seed, mesh)
        else:
            abstract = abstract_train_state(gan, config.seed, mesh)
            state = checkpointer.restore(abstract, iterator, latest)
        start_step = int(jax.device_get(state.step))
        logger = _Logger(os.path.join(workdir, LOGS_DIR))
        closer.callback(logger.close)
        scores = ["train/d_loss", "train/g_loss"] + ["eval/fvd"] * bool(config.train.fvd_every)
        logger.hyperparameters(start_step, config.to_dict(), scores)
        run = _Run(
            config, data_config, workdir, mesh, gan, checkpointer, iterator, state, start_step,
            train_step=make_train_step(gan, mesh),
            generate=make_generate_fn(gan),
            standing_statistics=make_standing_statistics_fn(gan),
            logger=logger,
            closer=closer.pop_all(),
            is_main=jax.process_index() == 0,
        )
    if run.is_main:
        logdir = os.path.join(workdir, LOGS_DIR)
        print(
            f"vgan_jax: {config.model.name} G {count_params(state.g_params):,} params, "
            f"D {count_params(state.d_params):,} params, {mesh.devices.size} device(s), "
            f"{'starting' if latest is None else f'resuming at step {start_step}'}\n"
            f"  checkpoints: {checkpointer.directory}\n"
            f"  samples:     {os.path.join(workdir, SAMPLES_DIR)}\n"
            f"  logs:        {logdir} (tensorboard --logdir {logdir})",
            flush=True,
        )
    return run


class _Scalars:
    """The step metrics between two logs: kept on device each step (no host sync), then
    fetched, averaged and written (TensorBoard, progress bar) at a log step. `latest`
    holds the last averages."""

    def __init__(self, run: _Run):
        self.latest: dict[str, float] = {}
        self._history: list[dict] = []
        self._run = run
        self._since = (run.start_step, time.perf_counter())
        self.progress = tqdm(
            total=run.config.train.steps,
            initial=run.start_step,
            disable=not run.is_main,
            dynamic_ncols=True,
            desc="train",
        )
        run.closer.callback(self.progress.close)

    def collect(self, step: int, state, metrics) -> None:
        self._history.append(metrics)
        self.progress.update(1)

    def log(self, step: int, state, metrics) -> None:
        if not self._history:  # stopped before the first step
            return
        fetched = jax.device_get(self._history)
        self._history.clear()
        self.latest = {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}
        now, (then_step, then) = time.perf_counter(), self._since
        self.latest["steps_per_second"] = (step - then_step) / max(now - then, 1e-9)
        self._since = (step, now)
        self._run.logger.scalars(step, {f"train/{k}": v for k, v in self.latest.items()})
        self.progress.set_postfix(
            d=f"{self.latest['d_loss']:.3f}",
            g=f"{self.latest['g_loss']:.3f}",
            sps=f"{self.latest['steps_per_second']:.2f}",
        )

    def stop_if_diverged(self, step: int, state, metrics) -> None:
        if self.latest.get("nonfinite", 0) > 0:
            raise TrainingDiverged(
                f"loss became NaN/Inf by step {step}; stopped without saving, the last "
                f"good checkpoint is step {self._run.checkpointer.latest_step()}; lower the "
                f"learning rates or enable R1 (--config.train.r1_gamma)"
            )


def _sample_writer(run: _Run) -> Callable:
    """The EMA generator's videos of fixed inputs (z, and labels `i % num_classes`): a GIF
    grid, a PNG strip of frames 0, 4, 8, 12 and the last (readable where GIFs don't play)
    and a TensorBoard video."""
    inputs = sampling_inputs(run.gan, run.config.seed + 1, run.config.train.num_sample_videos)
    directory = os.path.join(run.workdir, SAMPLES_DIR)
    os.makedirs(directory, exist_ok=True)

    def write_samples(step: int, state, metrics) -> None:
        g_state = run.standing_statistics(state.ema_params, state.g_state)
        videos = to_uint8(jax.device_get(run.generate(state.ema_params, g_state, **inputs)))
        if run.is_main:
            path = os.path.join(directory, f"step_{step:07d}")
            write_videos(path + ".gif", videos)
            last = videos.shape[1] - 1
            strip = sorted({min(f, last) for f in (0, 4, 8, 12)} | {last})
            write_frame_strip(path + ".png", videos, strip)
            run.logger.video(step, "samples/ema", videos)

    return write_samples


def _fvd_logger(run: _Run) -> Callable:
    from vgan_jax.metrics.training_hook import make_training_fvd

    fvd = make_training_fvd(
        run.config, run.workdir, run.mesh, run.gan, run.generate, run.standing_statistics,
        data_config=run.data_config,
    )

    def log_fvd(step: int, state, metrics) -> None:
        scores = {f"eval/{k}": v for k, v in fvd(state).items() if isinstance(v, float)}
        run.logger.scalars(step, scores)

    return log_fvd


class _Profiler:
    """A `jax.profiler` trace of the `num_steps` steps after step `after`, into `logdir`
    (TensorBoard's Profile tab). Called after every step; `close` ends an open trace."""

    def __init__(self, logdir: str, after: int, num_steps: int):
        self._logdir, self._start, self._stop = logdir, after, after + num_steps
        self._tracing = False

    def __call__(self, step: int, state, metrics) -> None:
        if step == self._start:
            jax.profiler.start_trace(self._logdir)
            self._tracing = True
        elif step == self._stop:
            self.close(state)

    def close(self, state=None) -> None:
        if self._tracing:
            jax.block_until_ready(state)  # the traced steps' device work, not their dispatch
            jax.profiler.stop_trace()
            self._tracing = False


def _periodic_actions(run: _Run, scalars: _Scalars, agreement: _StopAgreement) -> list:
    """The work after a step, in the order it runs (see `PeriodicAction`)."""
    settings = run.config.train
    # A checkpoint is written only after its steps' metrics passed the NaN check.
    checked = (settings.log_every, settings.checkpoint_every)

    def stop(step: int, state, metrics) -> None:
        run.checkpointer.wait()
        if run.is_main:
            saved = run.checkpointer.latest_step()
            done = f"saved step {step}" if saved == step else "nothing to save"
            scalars.progress.write(f"vgan_jax: {agreement.agreed} received, {done}, exiting")

    profiler = None
    if settings.profile_steps:
        # After the process's first step at the earliest: it compiles.
        after = max(settings.profile_start_step, run.start_step + 1)
        profiler = _Profiler(os.path.join(run.workdir, LOGS_DIR), after, settings.profile_steps)
        run.closer.callback(profiler.close)
    actions = [
        PeriodicAction(1, scalars.collect),
        PeriodicAction(checked, scalars.log, last=True, on_stop=True),
        PeriodicAction(checked, scalars.stop_if_diverged, last=True, on_stop=True),
        PeriodicAction(settings.sample_every, _sample_writer(run), last=True),
        PeriodicAction(settings.fvd_every, _fvd_logger(run)) if settings.fvd_every else None,
        PeriodicAction(settings.checkpoint_every, run.save, last=True, on_stop=True),
        PeriodicAction(0, stop, on_stop=True),
        PeriodicAction(1, profiler) if profiler else None,
    ]
    return [action for action in actions if action]


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
    """Trains (or resumes) the run described by `config` in `workdir`.

    Returns where it stopped and the last logged metrics. Raises `VganError` for bad
    input (before compiling) and `TrainingDiverged` if the loss becomes non-finite.
    SIGTERM or Ctrl-C, from the moment `train` is called, saves a checkpoint and returns
    (`stopped_by_signal`), every process at the same step.
    """
    # The signal handlers come first: a signal during setup stops before the first step.
    with _StopRequest() as request, _setup(config, workdir) as run:
        agreement = _StopAgreement(request, run.mesh)
        scalars = _Scalars(run)
        actions = _periodic_actions(run, scalars, agreement)
        state, step, steps = run.state, run.start_step, config.train.steps
        # Every process gets the same answer after the same step (see _StopAgreement).
        state, stopping = agreement.before_first_step(state)
        if stopping:  # a signal during setup: stop now, compile nothing
            for action in actions:
                if action.on_stop:
                    action.fn(step, state, None)
        while step < steps and not stopping:
            with jax.profiler.StepTraceAnnotation("train", step_num=step + 1):
                batch = global_batch(next(run.iterator), run.mesh)
                state, metrics = run.train_step(state, batch)
            step += 1
            state, stopping = agreement(state)
            for action in actions:
                if action.due(step, last=step == steps, stopping=bool(stopping)):
                    action.fn(step, state, metrics)
    return TrainResult(
        step=step,
        start_step=run.start_step,
        workdir=workdir,
        metrics=scalars.latest,
        state=state,
        stopped_by_signal=bool(stopping),
    )
