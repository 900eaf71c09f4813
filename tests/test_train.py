"""The train step and loop: device-count invariance, exact resume, restore on fewer
devices, NaN handling, preemption, and refusing a checkpoint of another model."""

import dataclasses
import importlib
import os
import signal

import jax
import numpy as np
import optax
import pytest

from vgan_jax import data as data_lib
from vgan_jax.checkpoint import Checkpointer
from vgan_jax.errors import VganError
from vgan_jax.parallel import global_batch, make_mesh
from vgan_jax.state import abstract_train_state, build_gan, create_train_state
from vgan_jax.train import TrainingDiverged, train
from vgan_jax.train_step import make_train_step


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _assert_trees_close(a, b, **tolerance):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_allclose(x, y, **tolerance)


def _batch(config, seed=0):
    rng = np.random.default_rng(seed)
    shape = (
        config.train.batch_size,
        config.data.frames,
        config.data.resolution,
        config.data.resolution,
        config.data.channels,
    )
    return {
        "video": rng.uniform(-1, 1, shape).astype(np.float32),
        "label": np.zeros(shape[0], np.int32),
    }


def _run_steps(gan, config, devices, steps):
    """The state and metrics after `steps` steps on `devices` devices."""
    return _history(gan, config, devices, steps)[-1]


def _history(gan, config, devices, steps):
    """`[(state, metrics)]` after each of `steps` steps, one compilation (the step
    donates its state, so each kept state is a host copy)."""
    mesh = make_mesh(devices)
    state = create_train_state(gan, 0, mesh)
    step = make_train_step(gan, mesh)
    history = []
    for i in range(steps):
        state, metrics = step(state, global_batch(_batch(config, i), mesh))
        history.append((jax.device_get(state), jax.device_get(metrics)))
    return history


# Every feature of the `default` model on: synchronised BatchNorm in G, minibatch-std
# over the global batch and spectral norm in D, the per-frame image head (with its
# full-resolution stem), R1. With 8
# devices and a global batch of 8 each device holds one clip, so any per-device group
# or statistic would show.
_ALL_FEATURES = dict(
    train__r1_gamma=1.0,
    model__d_minibatch_std_group=4,
    model__d_image_frames=2,
    model__d_image_stem=4,
)


@pytest.mark.parametrize("model", ["vgan"])
def test_one_and_eight_devices_give_the_same_gradients(tiny_config, model):
    """With SGD a parameter change is lr * gradient, so equal parameters after one and
    two steps on 1 and 8 devices mean equal gradients of both networks (the second
    step's D sees a G that moved, and vice versa). `dcgan`'s is
    test_one_and_eight_devices_agree_with_augmentation_ada_and_dropout (the same check
    with every feature on); the zoo's models are in test_model_zoo."""
    config = tiny_config(model__name=model, **_ALL_FEATURES)
    gan = dataclasses.replace(
        build_gan(config), g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1)
    )
    one_history, eight_history = (_history(gan, config, devices, 2) for devices in (1, 8))
    for (one, one_metrics), (eight, eight_metrics) in zip(one_history, eight_history, strict=True):
        for part in ("g_params", "d_params", "ema_params", "g_state", "d_state"):
            _assert_trees_close(
                getattr(one, part), getattr(eight, part), rtol=1e-4, atol=1e-6
            )
        for name, value in one_metrics.items():
            np.testing.assert_allclose(
                value, eight_metrics[name], rtol=1e-4, atol=1e-6, err_msg=name
            )


def test_one_and_eight_devices_adam_within_bound(tiny_config):
    """The same with Adam (the default optimizer). Adam's first steps are ~lr * sign(g):
    a gradient that is ~0 in exact arithmetic (rounding differs between one device and
    a cross-device mean) can move a parameter by up to 2 * lr in either run, so the
    documented bound is an absolute 2 * lr per parameter; the losses agree tightly."""
    config = tiny_config(**_ALL_FEATURES)
    gan = build_gan(config)
    (one, one_metrics), (eight, eight_metrics) = (
        _run_steps(gan, config, devices, 2) for devices in (1, 8)
    )
    bound = 2 * max(config.train.g_lr, config.train.d_lr) * 2  # two steps
    for part in ("g_params", "d_params"):
        for x, y in zip(_leaves(getattr(one, part)), _leaves(getattr(eight, part)), strict=True):
            assert np.max(np.abs(x - y)) <= bound
    for name in ("d_loss", "g_loss", "d_real_video", "d_fake_image"):
        np.testing.assert_allclose(one_metrics[name], eight_metrics[name], rtol=1e-3, atol=1e-4)


def test_lazy_r1_runs_every_n_steps_at_n_times_the_weight(tiny_config):
    """`train.r1_every=2`: step 0 equals an every-step run with gamma doubled, step 1 a
    run without R1 (on 8 devices, so the critic's collectives inside the branch are
    exercised too)."""
    config = tiny_config(**_ALL_FEATURES)
    sgd = dict(g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1))
    eager = dataclasses.replace(build_gan(config), **sgd)
    lazy = dataclasses.replace(eager, r1_every=2)
    mesh = make_mesh(8)
    state = create_train_state(eager, 0, mesh)
    lazy_step = make_train_step(lazy, mesh)
    for step, reference_gamma in enumerate((2 * eager.r1_gamma, 0.0)):
        batch = global_batch(_batch(config, step), mesh)
        reference = dataclasses.replace(eager, r1_gamma=reference_gamma)
        # The step donates its state: the reference runs on a copy.
        copy = jax.tree.map(lambda x: x.copy(), state)
        expected, expected_metrics = make_train_step(reference, mesh)(copy, batch)
        state, metrics = lazy_step(state, batch)
        for part in ("g_params", "d_params", "d_state"):
            _assert_trees_close(getattr(state, part), getattr(expected, part), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(metrics["d_loss"], expected_metrics["d_loss"], rtol=1e-5)
        assert (float(metrics["r1"]) > 0) == (step == 0)


def test_checkpoint_saved_on_eight_devices_restores_on_one(tiny_config, tiny_run):
    gan = build_gan(tiny_config())
    checkpointer = Checkpointer(tiny_run)
    state = checkpointer.restore(abstract_train_state(gan, mesh=make_mesh(1)))
    assert int(state.step) == 4
    leaf = jax.tree.leaves(state.g_params)[0]
    assert len(leaf.sharding.device_set) == 1
    # The restored state trains on one device.
    mesh = make_mesh(1)
    state, metrics = make_train_step(gan, mesh)(state, global_batch(_batch(tiny_config()), mesh))
    assert np.isfinite(float(metrics["d_loss"])) and int(state.step) == 5


def _nan_after(real_make_iterator, good_batches):
    """A make_train_iterator whose batches turn to NaN after `good_batches`."""

    def make(*args, **kwargs):
        iterator = real_make_iterator(*args, **kwargs)

        class Poisoned:
            count = 0

            def __iter__(self):
                return self

            def __next__(self):
                batch = next(iterator)
                Poisoned.count += 1
                if Poisoned.count > good_batches:
                    batch = dict(batch, video=np.full_like(batch["video"], np.nan))
                return batch

            def get_state(self):
                return iterator.get_state()

            def set_state(self, state):
                iterator.set_state(state)

            def close(self):
                iterator.close()

        return Poisoned()

    return make


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    config = tiny_config(
        train__steps=8, train__checkpoint_every=2, train__log_every=1, mesh__num_devices=2
    )
    monkeypatch.setattr(
        data_lib, "make_train_iterator", _nan_after(data_lib.make_train_iterator, good_batches=2)
    )
    workdir = str(tmp_path / "run")
    with pytest.raises(TrainingDiverged, match="last good checkpoint is step 2"):
        train(config, workdir)
    checkpointer = Checkpointer(workdir)
    assert checkpointer.all_steps() == [2]
    state = checkpointer.restore(abstract_train_state(build_gan(config), mesh=make_mesh(1)))
    assert all(np.all(np.isfinite(x)) for x in _leaves(state))


def test_sigterm_saves_a_checkpoint_and_stops(tiny_config, tmp_path, monkeypatch):
    config = tiny_config(train__steps=50, train__checkpoint_every=100, mesh__num_devices=2)
    real_make = data_lib.make_train_iterator

    def make(*args, **kwargs):
        iterator = real_make(*args, **kwargs)
        original_next = iterator.__next__
        calls = {"n": 0}

        def next_then_signal():
            calls["n"] += 1
            if calls["n"] == 3:  # preempted while step 3 runs
                os.kill(os.getpid(), signal.SIGTERM)
            return original_next()

        iterator.__next__ = next_then_signal
        return _CallableNext(iterator)

    monkeypatch.setattr(data_lib, "make_train_iterator", make)
    result = train(config, str(tmp_path / "run"))
    assert result.stopped_by_signal and result.step == 3
    assert Checkpointer(str(tmp_path / "run")).all_steps() == [3]


def test_sigterm_during_setup_stops_before_the_first_step(
    tiny_config, tiny_run, tmp_path, monkeypatch
):
    """A signal before the first step (here while the input is built) stops the run
    before any training step is built or run: a fresh run has nothing to save, a resumed
    one keeps the checkpoint it resumed from as it was."""
    import shutil

    train_module = importlib.import_module("vgan_jax.train")
    real_make = data_lib.make_train_iterator

    def make_then_signal(*args, **kwargs):
        iterator = real_make(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return iterator

    def refuse(*_args, **_kwargs):
        raise AssertionError("a training step ran after the stop")

    monkeypatch.setattr(data_lib, "make_train_iterator", make_then_signal)
    monkeypatch.setattr(train_module, "make_train_step", lambda gan, mesh: refuse)
    handler = signal.getsignal(signal.SIGTERM)
    fresh = train(tiny_config(mesh__num_devices=2), str(tmp_path / "fresh"))
    assert fresh.stopped_by_signal and (fresh.start_step, fresh.step) == (0, 0)
    assert Checkpointer(str(tmp_path / "fresh")).all_steps() == []
    assert signal.getsignal(signal.SIGTERM) == handler  # the caller's handler is back

    workdir = str(tmp_path / "resumed")
    shutil.copytree(tiny_run, workdir)  # a finished 4-step run, resumed to 8 steps
    checkpoint = os.path.join(workdir, "checkpoints", "4")
    saved_at = os.stat(checkpoint).st_mtime_ns
    resumed = train(tiny_config(train__steps=8), workdir)
    assert resumed.stopped_by_signal and (resumed.start_step, resumed.step) == (4, 4)
    assert Checkpointer(workdir).all_steps() == [2, 4]
    assert os.stat(checkpoint).st_mtime_ns == saved_at  # not rewritten


def test_periodic_action_schedule():
    from vgan_jax.train import PeriodicAction

    def steps(action, last=8, stop_at=None):
        return [
            step for step in range(1, last + 1)
            if action.due(step, last=step == last, stopping=step == stop_at)
        ]

    noop = lambda step, state, metrics: None  # noqa: E731
    assert steps(PeriodicAction(3, noop)) == [3, 6]
    assert steps(PeriodicAction(3, noop, last=True)) == [3, 6, 8]
    assert steps(PeriodicAction((3, 4), noop)) == [3, 4, 6, 8]
    assert steps(PeriodicAction(3, noop, on_stop=True), stop_at=5) == [3, 5, 6]
    assert steps(PeriodicAction(0, noop, on_stop=True), stop_at=5) == [5]
    assert steps(PeriodicAction(0, noop, last=True)) == [8]


def _tensorboard_events(logdir):
    """Every `Event` in the TensorBoard files under `logdir` (TFRecord framing)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    events = []
    for root, _, files in os.walk(logdir):
        for name in sorted(f for f in files if "tfevents" in f):
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            offset = 0
            while offset < len(data):
                (length,) = struct.unpack("<Q", data[offset : offset + 8])
                events.append(Event.FromString(data[offset + 12 : offset + 12 + length]))
                offset += 12 + length + 4
    return events


def test_profiler_window_and_hyperparameters_in_tensorboard(tiny_config, tmp_path):
    """train.profile_steps traces steps into the workdir's TensorBoard logs; every run
    writes its config once (HParams dashboard and a text table)."""
    config = tiny_config(
        train__steps=3, train__profile_start_step=1, train__profile_steps=1,
        mesh__num_devices=2,
    )
    workdir = tmp_path / "run"
    train(config, str(workdir))
    traces = list((workdir / "logs" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert traces and all(t.stat().st_size > 0 for t in traces)
    tags = [
        (value.tag, event.step)
        for event in _tensorboard_events(str(workdir / "logs"))
        for value in event.summary.value
    ]
    assert ("_hparams_/session_start_info", 0) in tags and ("config/text_summary", 0) in tags
    assert sum(tag == "_hparams_/experiment" for tag, _ in tags) == 1
    assert ("train/d_loss", 3) in tags


class _CallableNext:
    """Routes next() through an instance attribute (dunder lookups skip instances)."""

    def __init__(self, iterator):
        self._iterator = iterator

    def __iter__(self):
        return self

    def __next__(self):
        return self._iterator.__next__()

    def __getattr__(self, name):
        return getattr(self._iterator, name)


def test_workdir_of_another_model_is_refused(tiny_config, tiny_run):
    with pytest.raises(VganError, match="different model.*model.width: 4 -> 8"):
        train(tiny_config(model__width=8), tiny_run)


def test_mode_seeking_refuses_an_odd_per_device_batch_before_compiling(tiny_config, tmp_path):
    """Its clip pairs must not straddle devices: batch 8 on 8 devices is one clip each."""
    config = tiny_config(train__mode_seeking=1.0, mesh__num_devices=8)
    with pytest.raises(VganError, match="odd per-device batch; use a multiple of 16"):
        train(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_training_logs_a_small_fvd_every_m_steps(tiny_config, tmp_path, monkeypatch):
    """train.fvd_every wires the FVD hook into the loop (a stand-in detector on I3D's
    sharded-extractor path: the tiny clips have 4 frames, I3D needs 9; test_metrics
    covers I3D itself)."""
    from standin_extractor import install_standin_extractor

    from vgan_jax.metrics import training_hook

    install_standin_extractor(monkeypatch.setattr)
    results = []
    real_call = training_hook.FvdEvaluator.__call__

    def recording_call(self, batches):
        result = real_call(self, batches)
        results.append(result)
        return result

    monkeypatch.setattr(training_hook.FvdEvaluator, "__call__", recording_call)
    config = tiny_config(train__fvd_every=2, train__fvd_num_videos=16, mesh__num_devices=2)
    train(config, str(tmp_path / "run"))
    assert len(results) == 2  # steps 2 and 4
    assert all(np.isfinite(r["fvd"]) and r["fvd"] > 0 for r in results)
    assert os.listdir(tmp_path / "run" / "fvd_cache")  # real statistics cached once


# --- overfitting countermeasures: augmentation, ADA, critic dropout ----------------

# Every transform (RGB, so saturation too), ADA with a large step (8 clips / 20 clips:
# p moves by 0.4 a step) and critic dropout. Tests start p at 0.5 (ADA starts at 0,
# where augmentation is the identity and p could only move up).
_REGULARISED = dict(
    train__augment="translation,cutout,color",
    data__channels=3,
    train__ada_target=0.6,
    train__ada_kimg=0.02,
    model__d_dropout=0.5,
)
_START_P = 0.5


def _with_augment_p(state, p):
    return state.replace(augment_p=jax.numpy.full_like(state.augment_p, p))


def _run_steps_from_p(gan, config, devices, steps, p):
    mesh = make_mesh(devices)
    state = _with_augment_p(create_train_state(gan, 0, mesh), p)
    step = make_train_step(gan, mesh)
    for i in range(steps):
        state, metrics = step(state, global_batch(_batch(config, i), mesh))
    return state, jax.device_get(metrics)


def test_one_and_eight_devices_agree_with_augmentation_ada_and_dropout(tiny_config):
    """As test_one_and_eight_devices_give_the_same_gradients, with augmentation, ADA and
    critic dropout on: transforms are drawn for the global batch and sliced, dropout
    masks come from each sample's global index, and r_t is a pmean of signs, so 1 and
    8 devices see the same clips, masks and p."""
    config = tiny_config(**_ALL_FEATURES, **_REGULARISED)
    gan = dataclasses.replace(
        build_gan(config), g_optimizer=optax.sgd(0.1), d_optimizer=optax.sgd(0.1)
    )
    (one, one_metrics), (eight, eight_metrics) = (
        _run_steps_from_p(gan, config, devices, 2, _START_P) for devices in (1, 8)
    )
    for part in ("g_params", "d_params", "ema_params", "g_state", "d_state", "augment_p"):
        _assert_trees_close(getattr(one, part), getattr(eight, part), rtol=1e-4, atol=1e-6)
    for name, value in one_metrics.items():
        np.testing.assert_allclose(value, eight_metrics[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # Step 2 used the p step 1 adapted (0.5 +- 0.4), so ADA and augmentation were live.
    assert abs(float(one_metrics["augment_p"]) - _START_P) == pytest.approx(0.4)


def _set_critic_bias(d_params, value):
    """The critic's final dense bias set to `value`: D(x) ~ value for every clip."""

    def set_bias(path, leaf):
        is_logit_bias = jax.tree_util.keystr(path).endswith("['Dense_0']['bias']")
        return jax.numpy.full_like(leaf, value) if is_logit_bias else leaf

    return jax.tree_util.tree_map_with_path(set_bias, d_params)


def test_ada_p_follows_the_sign_of_r_t_minus_target(tiny_config):
    """A critic that calls every real clip real (r_t = 1 > 0.6) raises p by
    batch / (ada_kimg * 1000); one that calls them all fake (r_t = -1) lowers it."""
    config = tiny_config(
        train__augment="translation,cutout", train__ada_target=0.6, train__ada_kimg=0.1
    )
    gan = build_gan(config)
    mesh = make_mesh(1)
    step = make_train_step(gan, mesh)
    adjustment = config.train.batch_size / (config.train.ada_kimg * 1000)  # 0.08
    for bias, r_t in ((50.0, 1.0), (-50.0, -1.0)):
        state = _with_augment_p(create_train_state(gan, 0, mesh), _START_P)
        state = state.replace(d_params=_set_critic_bias(state.d_params, bias))
        state, metrics = step(state, global_batch(_batch(config), mesh))
        assert float(metrics["ada_rt"]) == r_t
        assert float(metrics["augment_p"]) == _START_P  # the p this step used
        np.testing.assert_allclose(float(state.augment_p), _START_P + r_t * adjustment, rtol=1e-6)
    # p stays within [0, 1].
    state = _with_augment_p(create_train_state(gan, 0, mesh), 1.0)
    state = state.replace(d_params=_set_critic_bias(state.d_params, 50.0))
    state, _ = step(state, global_batch(_batch(config), mesh))
    assert float(state.augment_p) == 1.0


def test_augment_p_in_the_state_and_r_t_without_augmentation(tiny_config):
    """The state starts at the fixed p, or at 0 with ADA (as StyleGAN2-ADA); without
    augmentation the step keeps p and still logs r_t (the overfitting heuristic)."""
    fixed = build_gan(tiny_config(train__augment="cutout", train__augment_p=0.3))
    ada = build_gan(tiny_config(train__augment="cutout", train__ada_target=0.6))
    abstract_p = abstract_train_state(fixed).augment_p
    assert abstract_p.shape == () and abstract_p.dtype == np.float32
    mesh = make_mesh(1)
    assert float(create_train_state(fixed, 0, mesh).augment_p) == pytest.approx(0.3)
    assert float(create_train_state(ada, 0, mesh).augment_p) == 0.0
    gan = build_gan(tiny_config())
    state = create_train_state(gan, 0, mesh)
    state, metrics = make_train_step(gan, mesh)(state, global_batch(_batch(tiny_config()), mesh))
    assert float(state.augment_p) == float(metrics["augment_p"]) == 0.0  # nothing applied
    assert float(metrics["ada_rt"]) in {k / 8 for k in range(-8, 9)}  # mean of 8 signs


def test_resume_with_augmentation_ada_and_dropout_continues_the_same_numbers(
    tiny_config, tmp_path, monkeypatch
):
    """A run interrupted at step 2 and resumed ends where a straight run ends, and the
    checkpoint carries ADA's p (moved away from its start, so restoring it matters)."""
    # The module, not the `vgan_jax.train` function the package re-exports.
    train_module = importlib.import_module("vgan_jax.train")

    real_create = train_module.create_train_state
    monkeypatch.setattr(
        train_module,
        "create_train_state",
        lambda *args: _with_augment_p(real_create(*args), _START_P),
    )
    config = tiny_config(
        train__steps=4, train__checkpoint_every=2, mesh__num_devices=2,
        **_ALL_FEATURES, **_REGULARISED,
    )
    straight = train(config, str(tmp_path / "straight"))
    interrupted = tmp_path / "interrupted"
    config.train.steps = 2
    first = train(config, str(interrupted))
    config.train.steps = 4
    resumed = train(config, str(interrupted))
    assert resumed.start_step == 2 and resumed.step == 4
    for name in ("d_loss", "g_loss", "d_real_video", "d_fake_image", "ada_rt", "augment_p"):
        np.testing.assert_allclose(resumed.metrics[name], straight.metrics[name], rtol=1e-5)
    abstract = abstract_train_state(build_gan(config), mesh=make_mesh(1))
    saved_p = Checkpointer(str(interrupted)).restore(abstract, step=2).augment_p
    assert float(saved_p) == float(first.state.augment_p) != _START_P
    a = Checkpointer(str(tmp_path / "straight")).restore(abstract)
    b = Checkpointer(str(interrupted)).restore(abstract)
    _assert_trees_close(a, b, rtol=1e-5, atol=1e-6)
    assert all(np.all(np.isfinite(x)) for x in _leaves(b))


def test_critic_dropout_is_for_training_only_and_per_sample():
    from jax.sharding import PartitionSpec

    from vgan_jax.models.critics import DROPOUT_RNG, FRAMES_RNG, MultiHeadCritic, per_sample_dropout
    from vgan_jax.parallel import DATA_AXIS

    video = jax.random.uniform(jax.random.PRNGKey(0), (8, 4, 16, 16, 1), minval=-1, maxval=1)
    critic = MultiHeadCritic(width=4, num_downsamples=2, dropout=0.5, image_frames=2)
    plain = critic.clone(dropout=0.0)
    init_rngs = {"params": jax.random.PRNGKey(1), FRAMES_RNG: jax.random.PRNGKey(2)}
    variables = critic.init(init_rngs, video)

    def heads(module, train, dropout_seed):
        rngs = {FRAMES_RNG: jax.random.PRNGKey(2), DROPOUT_RNG: jax.random.PRNGKey(dropout_seed)}
        return module.apply(variables, video, train=train, rngs=rngs)

    # Evaluation: no dropout, whatever the key.
    _assert_trees_close(heads(critic, False, 3), heads(plain, False, 3), rtol=0, atol=0)
    _assert_trees_close(heads(critic, False, 3), heads(critic, False, 4), rtol=0, atol=0)
    # Training: the key decides the masks.
    _assert_trees_close(heads(critic, True, 3), heads(critic, True, 3), rtol=0, atol=0)
    assert not np.allclose(heads(critic, True, 3)["video"], heads(critic, True, 4)["video"])
    assert not np.allclose(heads(critic, True, 3)["video"], heads(critic, False, 3)["video"])

    # A sample's mask depends on its global index only: 8 devices drop what 1 drops.
    x = jax.random.normal(jax.random.PRNGKey(5), (16, 64))
    key = jax.random.PRNGKey(6)
    whole = per_sample_dropout(x, 0.25, key)
    sharded = jax.shard_map(
        lambda part: per_sample_dropout(part, 0.25, key, DATA_AXIS),
        mesh=make_mesh(8),
        in_specs=PartitionSpec(DATA_AXIS),
        out_specs=PartitionSpec(DATA_AXIS),
    )(x)
    np.testing.assert_array_equal(whole, sharded)
    kept = np.asarray(whole) != 0
    assert 0.65 < kept.mean() < 0.85  # rate 0.25
    np.testing.assert_allclose(np.asarray(whole)[kept], np.asarray(x)[kept] / 0.75, rtol=1e-6)
    assert not np.array_equal(kept[0], kept[1])  # masks differ between samples
