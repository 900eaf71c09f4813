"""`train(config, workdir)`: the training loop around the shared `train_step`.

The loop validates everything cheap first (names, shapes, batch split, workdir,
an existing checkpoint's config), so bad input fails in a second with one line,
never after minutes of compilation. Then it resumes from the newest checkpoint
in the workdir if there is one, and trains with a progress bar, TensorBoard
scalars, sample GIF grids, and asynchronous checkpoints. SIGTERM (Cloud TPU
preemption) and Ctrl-C save a checkpoint and exit cleanly; a non-finite loss
stops training without saving, so the last good checkpoint stays the newest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time

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
from vgan_jax.video_io import encode_gif, to_uint8, write_videos

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


def check_config(config) -> None:
    """Every check that needs no compilation: names, sizes, batch split, steps."""
    data_lib.check_data_config(config.data)
    check_model_config(config.model, video_shape_from_config(config))
    check_compute_dtype(config.train.compute_dtype)
    get_loss(config.train.loss)
    check_augment_config(config.train)
    for field in ("steps", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
        if config.train[field] < 1:
            raise VganError(f"train.{field} must be >= 1, got {config.train[field]}")
    if config.train.num_sample_videos < 1:
        raise VganError("train.num_sample_videos must be >= 1")
    check_fvd_config(config)


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


def check_fvd_data(config, mesh) -> None:
    """What `train.fvd_every` needs of the mesh and the dataset (after `make_mesh`,
    still before compiling): `fvd_num_videos` splits over the devices, as a training
    batch does, and the real split holds that many videos (with
    `data.short_videos='skip'` some may still be too short; that fails at the first FVD)."""
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
    source, _ = data_lib.open_source(config.data, TRAINING_FVD_SPLIT)
    if len(source) < num:
        raise VganError(
            f"train.fvd_num_videos={num}, but the {TRAINING_FVD_SPLIT!r} split of "
            f"{config.data.name!r} holds {len(source)} videos; use "
            f"--config.train.fvd_num_videos={max(devices, len(source) // devices * devices)} "
            f"or fewer, or more clips"
        )


def check_class_labels(config) -> None:
    """A class-conditional model (`model.num_classes` > 0) needs a dataset whose labels
    are all below `model.num_classes`; raises `VganError` otherwise (before compiling:
    out-of-range labels inside the step would only show up as NaNs)."""
    wanted = config.model.num_classes
    if not wanted:
        return
    _, info = data_lib.open_source(config.data, "train")
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

    JAX's `multihost_utils.reached_preemption_sync_point` (TSL's protocol, which
    Orbax's `reached_preemption` calls) also agreed on a step with gloo here, but only
    for SIGTERM, only while no Python SIGTERM handler replaces its C++ one, and a notice
    that arrives before the loop's first call names a step a resumed run has passed.

    On one process it is the local flag, at no cost: no program, no device read.
    """

    def __init__(self, request: _StopRequest, mesh):
        self._request = request
        self._pending = None
        self._multiprocess = jax.process_count() > 1
        if self._multiprocess:
            self._sharding = batch_sharded(mesh)
            self._local_devices = len(mesh.local_devices)
            # `step + 0`: a new array, so the next step depends on this program (an
            # input returned unchanged would be passed through without waiting).
            self._reduce = jax.jit(
                lambda step, flags: (step + 0, jnp.max(flags)),
                out_shardings=(replicated(mesh), replicated(mesh)),
            )

    def __call__(self, state):
        """Call once per step on every process, right after dispatching the step that
        returned `state`. Returns `(state, signal name or None)`: the state to train on,
        and the signal's name when every process stops after this step."""
        if not self._multiprocess:
            return state, self._request.signal_name
        flags = np.full(self._local_devices, self._request.signal_number, np.int32)
        flags = jax.make_array_from_process_local_data(self._sharding, flags)
        step, current = self._reduce(state.step, flags)
        agreed, self._pending = self._pending, current
        number = 0 if agreed is None else int(agreed)
        return state.replace(step=step), (signal.Signals(number).name if number else None)


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


def _mean_metrics(history: list[dict]) -> dict[str, float]:
    fetched = jax.device_get(history)
    return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
    """Trains (or resumes) the run described by `config` in `workdir`.

    Returns the last step and its logged metrics. Raises `VganError` for bad input
    (before compiling) and `TrainingDiverged` if the loss becomes non-finite.
    """
    check_config(config)
    check_workdir(workdir)
    check_class_labels(config)
    mesh = make_mesh(config.mesh.num_devices)
    check_batch_size(config.train.batch_size, mesh)
    check_fvd_data(config, mesh)
    checkpointer = Checkpointer(workdir, keep=config.train.keep_checkpoints)
    latest = checkpointer.latest_step()
    if latest is not None:
        check_resumable(checkpointer.read_meta(latest)["config"], config)
    meta = {"config": config.to_dict(), "jax_version": jax.__version__}
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(config.to_dict(), f, indent=2)

    gan = build_gan(config)
    iterator = data_lib.make_train_iterator(
        config.data,
        seed=config.seed,
        global_batch_size=config.train.batch_size,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    if latest is None:
        state = create_train_state(gan, config.seed, mesh)
    else:
        state = checkpointer.restore(abstract_train_state(gan, config.seed, mesh), iterator, latest)
    step = start_step = int(jax.device_get(state.step))

    train_step = make_train_step(gan, mesh)
    generate = make_generate_fn(gan)
    standing_statistics = make_standing_statistics_fn(gan)
    # z (and labels i % num_classes, per-frame noise) for the grid; fixed over the run.
    sample_inputs = sampling_inputs(gan, config.seed + 1, config.train.num_sample_videos)
    samples_dir = os.path.join(workdir, "samples")
    logdir = os.path.join(workdir, "logs")
    os.makedirs(samples_dir, exist_ok=True)
    logger = _Logger(logdir)
    fvd = _make_fvd_hook(config, workdir, mesh, gan, generate, standing_statistics)

    is_main = jax.process_index() == 0
    if is_main:
        print(
            f"vgan_jax: {config.model.name} G {count_params(state.g_params):,} params, "
            f"D {count_params(state.d_params):,} params, {mesh.devices.size} device(s), "
            f"{'resuming at step ' + str(step) if latest is not None else 'starting'}\n"
            f"  checkpoints: {checkpointer.directory}\n  samples:     {samples_dir}\n"
            f"  logs:        {logdir} (tensorboard --logdir {logdir})",
            flush=True,
        )

    def save():
        checkpointer.save(step, state, iterator, meta)

    def write_samples():
        g_state = standing_statistics(state.ema_params, state.g_state)
        videos = to_uint8(jax.device_get(generate(state.ema_params, g_state, **sample_inputs)))
        if is_main:
            write_videos(os.path.join(samples_dir, f"step_{step:07d}.gif"), videos)
            # A still strip beside the GIF: frames 0, 4, 8, 12 and the last (clamped to
            # the clip length), readable where GIFs don't play.
            from vgan_jax.video_io import write_frame_strip

            last = videos.shape[1] - 1
            strip_frames = sorted({min(f, last) for f in (0, 4, 8, 12)} | {last})
            write_frame_strip(
                os.path.join(samples_dir, f"step_{step:07d}.png"), videos, strip_frames
            )
            logger.video(step, "samples/ema", videos)

    history: list[dict] = []
    logged: dict[str, float] = {}
    stopped_by = None
    steps_at_log, time_at_log = step, time.perf_counter()
    progress = tqdm(
        total=config.train.steps,
        initial=step,
        disable=not is_main,
        dynamic_ncols=True,
        desc="train",
    )
    try:
        with _StopRequest() as stop:
            agreed_stop = _StopAgreement(stop, mesh)
            while step < config.train.steps:
                batch = global_batch(next(iterator), mesh)
                state, metrics = train_step(state, batch)
                step += 1
                # Every process gets the same answer after the same step (see _StopAgreement).
                state, stopping = agreed_stop(state)
                history.append(metrics)
                progress.update(1)
                must_save = step % config.train.checkpoint_every == 0 or step == config.train.steps
                # must_save: a checkpoint is only written after its metrics passed the NaN check.
                if step % config.train.log_every == 0 or must_save or stopping:
                    logged = _mean_metrics(history)
                    history.clear()
                    if logged["nonfinite"] > 0:
                        raise TrainingDiverged(
                            f"loss became NaN/Inf by step {step}; stopped without saving, the last "
                            f"good checkpoint is step {checkpointer.latest_step()}; lower the "
                            f"learning rates or enable R1 (--config.train.r1_gamma)"
                        )
                    now = time.perf_counter()
                    logged["steps_per_second"] = (step - steps_at_log) / max(
                        now - time_at_log, 1e-9
                    )
                    steps_at_log, time_at_log = step, now
                    logger.scalars(step, {f"train/{k}": v for k, v in logged.items()})
                    progress.set_postfix(
                        d=f"{logged['d_loss']:.3f}",
                        g=f"{logged['g_loss']:.3f}",
                        sps=f"{logged['steps_per_second']:.2f}",
                    )
                if step % config.train.sample_every == 0 or step == config.train.steps:
                    write_samples()
                if fvd is not None and step % config.train.fvd_every == 0:
                    logger.scalars(
                        step,
                        {f"eval/{k}": v for k, v in fvd(state).items() if isinstance(v, float)},
                    )
                if must_save or stopping:
                    save()
                if stopping:
                    stopped_by = stopping
                    checkpointer.wait()
                    if is_main:
                        progress.write(
                            f"vgan_jax: {stopped_by} received, saved step {step}, exiting"
                        )
                    break
    finally:
        progress.close()
        checkpointer.close()
        logger.close()
        with contextlib.suppress(Exception):
            iterator.close()
    return TrainResult(
        step=step,
        start_step=start_step,
        workdir=workdir,
        metrics=logged,
        state=state,
        stopped_by_signal=bool(stopped_by),
    )


def _make_fvd_hook(config, workdir: str, mesh, gan, generate, standing_statistics):
    """A callable `state -> metrics` computing a small-N FVD of the EMA generator, or None.

    `generate` and `standing_statistics` are the loop's jitted functions (one jit each,
    not a second one). The videos are made as global batches split over the mesh, as
    training batches are, and scored where they were made: on N hosts each device
    generates and extracts its share, and every process gets the same metrics."""
    if not config.train.fvd_every:
        return None
    from vgan_jax.metrics.extractor import put_rows
    from vgan_jax.metrics.extractor import to_uint8 as to_uint8_on_device
    from vgan_jax.metrics.training_hook import TRAINING_FVD_SPLIT, FvdEvaluator

    evaluator = FvdEvaluator(
        config.data,
        num_videos=config.train.fvd_num_videos,
        seed=config.seed,
        cache_dir=os.path.join(workdir, "fvd_cache"),
        mesh=mesh,
        split=TRAINING_FVD_SPLIT,
    )
    num, batch = config.train.fvd_num_videos, evaluator.extractor.batch_size
    # Host copies, the same on every process: each places only its devices' rows.
    inputs = jax.tree.map(
        np.asarray, sampling_inputs(gan, config.seed + 2, config.train.fvd_num_videos)
    )
    sharding = batch_sharded(mesh)
    quantise = jax.jit(to_uint8_on_device, out_shardings=sharding)

    def run(state):
        g_state = standing_statistics(state.ema_params, state.g_state)

        def videos(start):
            # `num` divides over the devices (check_fvd_data), so every batch does too.
            part = jax.tree.map(lambda x: put_rows(x[start : start + batch], sharding), inputs)
            return quantise(generate(state.ema_params, g_state, **part))

        return evaluator(videos(start) for start in range(0, num, batch))

    return run
