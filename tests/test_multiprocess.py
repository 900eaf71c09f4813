"""Two JAX processes on 127.0.0.1 (gloo collectives) train one run together, stop
together when one of them is preempted, and compute the training FVD together."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "multiprocess_worker.py")
# Generous: the CI machine's 2 cores may be shared with other work.
TIMEOUT_S = 1500
# What the issue asks of a preempted pod: every host saved and exited by then.
STOP_WITHIN_S = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(spec: dict, out_dir: str, name: str) -> list[tuple[subprocess.Popen, str, str]]:
    """Both processes of one job; output goes to files (a full pipe would block a worker)."""
    port = _free_port()
    # The worker sets its own device count; the suite's compile-speed flags carry over.
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        flag for flag in env.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    )
    procs = []
    for pid in (0, 1):
        out = os.path.join(out_dir, f"{name}_p{pid}.json")
        log = os.path.join(out_dir, f"{name}_p{pid}.log")
        with open(log, "w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, WORKER, str(port), str(pid), out, json.dumps(spec)],
                stdout=log_file, stderr=subprocess.STDOUT, text=True, env=env,
            )
        procs.append((proc, out, log))
    return procs


def _finish(procs, timeout=TIMEOUT_S) -> list[dict]:
    deadline = time.monotonic() + timeout
    for proc, _, _ in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other, _, _ in procs:
                other.kill()
            raise
    for proc, _, log in procs:
        assert proc.returncode == 0, open(log).read()[-3000:]
    return [json.load(open(out)) for _, out, _ in procs]


def _run(spec: dict, out_dir: str, name: str) -> list[dict]:
    return _finish(_start(spec, out_dir, name))


def _train_spec(workdir, data_dir, **overrides) -> dict:
    return {"mode": "train", "workdir": workdir, "data_dir": data_dir, "overrides": overrides}


def _saved_steps(workdir: str) -> list[int]:
    directory = os.path.join(workdir, "checkpoints")
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(n) for n in names if n.isdigit())


@pytest.fixture(scope="module")
def built_data(tiny_config, data_dir):
    from vgan_jax import data as data_lib

    data_lib.open_source(tiny_config().data, "train")  # build once, not twice at once
    return data_dir


@pytest.fixture(scope="module")
def preempted_run(built_data, tmp_path_factory):
    """A 2-process run of 1000 steps; once it has saved step 2, SIGTERM goes to process 1
    only. Returns (per-process results, seconds from the signal to both exits, workdir)."""
    out_dir = str(tmp_path_factory.mktemp("preempted"))
    workdir = os.path.join(out_dir, "run")
    spec = _train_spec(workdir, built_data, **{"train.steps": 1000, "train.checkpoint_every": 2})
    procs = _start(spec, out_dir, "preempted")
    deadline = time.monotonic() + TIMEOUT_S
    while not _saved_steps(workdir):
        if time.monotonic() > deadline or any(p.poll() is not None for p, _, _ in procs):
            for p, _, _ in procs:
                p.kill()
            pytest.fail("the run never saved a checkpoint: " + open(procs[0][2]).read()[-3000:])
        time.sleep(0.2)
    signalled = time.monotonic()
    procs[1][0].send_signal(signal.SIGTERM)
    results = _finish(procs, timeout=STOP_WITHIN_S * 4)
    stopped_after = time.monotonic() - signalled
    print(f"SIGTERM to process 1 -> both processes exited {stopped_after:.1f} s later")
    return results, stopped_after, workdir


def test_sigterm_to_one_process_stops_both_at_the_same_step(preempted_run):
    results, stopped_after, workdir = preempted_run
    steps = [r["step"] for r in results]
    assert steps[0] == steps[1], steps
    assert 2 < steps[0] < 1000
    assert [r["stopped_by_signal"] for r in results] == [True, True]
    assert _saved_steps(workdir)[-1] == steps[0]  # one checkpoint of the agreed step
    assert results[0]["params_sha1"] == results[1]["params_sha1"]
    assert stopped_after < STOP_WITHIN_S


def test_preempted_run_resumes_to_the_uninterrupted_numbers(
    preempted_run, built_data, tmp_path
):
    """Resumed after the preemption, a run ends with the parameters of a run that was
    never stopped; that run also shows the sharing itself (each process its own clips,
    one global step: the same parameters on both)."""
    results, _, workdir = preempted_run
    stopped_at = results[0]["step"]
    target = stopped_at + 2
    spec = _train_spec(workdir, built_data, **{"train.steps": target})
    resumed = _run(spec, str(tmp_path), "resumed")
    assert [r["start_step"] for r in resumed] == [stopped_at, stopped_at]
    assert [r["step"] for r in resumed] == [target, target]

    fresh = _run(
        {**_train_spec(str(tmp_path / "fresh"), built_data, **{"train.steps": target}),
         "clip_hashes": True},
        str(tmp_path),
        "fresh",
    )
    assert [r["devices"] for r in fresh] == [4, 4]
    assert [r["local_devices"] for r in fresh] == [2, 2]
    # Each process reads its own shard: no clip is seen by both.
    assert not set(fresh[0]["clip_hashes"]) & set(fresh[1]["clip_hashes"])
    assert fresh[0]["params_sha1"] == fresh[1]["params_sha1"]
    assert fresh[0]["d_loss"] == fresh[1]["d_loss"]
    assert resumed[0]["params_sha1"] == fresh[0]["params_sha1"]
    assert resumed[0]["d_loss"] == fresh[0]["d_loss"]


def test_sigterm_during_setup_stops_both_processes_before_the_first_step(
    built_data, tmp_path
):
    """SIGTERM to process 1 while train() sets up: both processes agree before the first
    step (so neither waits in a step the other never runs) and stop without training."""
    spec = {**_train_spec(str(tmp_path / "run"), built_data), "sigterm_in_setup": 1}
    results = _run(spec, str(tmp_path), "setup_stop")
    assert [r["stopped_by_signal"] for r in results] == [True, True]
    assert [(r["start_step"], r["step"]) for r in results] == [(0, 0), (0, 0)]
    assert results[0]["params_sha1"] == results[1]["params_sha1"]
    assert _saved_steps(str(tmp_path / "run")) == []  # a fresh run: nothing to save


def _fvd_overrides() -> dict:
    # 24 videos in extractor batches of 16: a full batch and a padded one.
    return {"train.fvd_every": 1, "train.fvd_num_videos": 24}


def test_training_fvd_on_two_processes_equals_one_process(
    built_data, tiny_config, tmp_path, monkeypatch
):
    """The training loop's FVD hook (EMA generator on the mesh, real clips read per
    process, features gathered on every process) gives the 1-process numbers on 2
    processes. A stand-in detector on I3D's sharded-extractor path: tiny clips have 4
    frames, fewer than I3D's 9 (test_metrics checks I3D itself across device counts)."""
    from standin_extractor import install_standin_extractor

    from vgan_jax.metrics.training_hook import make_training_fvd
    from vgan_jax.parallel import make_mesh
    from vgan_jax.sampling import make_generate_fn, make_standing_statistics_fn
    from vgan_jax.state import build_gan, create_train_state

    spec = {"mode": "fvd", "workdir": str(tmp_path / "two"), "data_dir": built_data,
            "overrides": _fvd_overrides()}
    two = _run(spec, str(tmp_path), "fvd")

    install_standin_extractor(monkeypatch.setattr)
    config = tiny_config(train__fvd_every=1, train__fvd_num_videos=24)
    mesh = make_mesh(4)  # the 2 x 2 devices of the two processes, in one process
    gan = build_gan(config)
    hook = make_training_fvd(
        config, str(tmp_path / "one"), mesh, gan, make_generate_fn(gan),
        make_standing_statistics_fn(gan),
    )
    one = hook(create_train_state(gan, config.seed, mesh))
    print(f"FVD 1 process {one['fvd']!r}, 2 processes {two[0]['fvd']!r}")
    assert two[0] == two[1]  # every process holds the same result
    assert two[0]["fvd"] == two[0]["fvd_again"]  # real statistics kept, not re-drawn
    # Features of 2 processes are float32 sums in another order than 1 process's; on 24
    # clips the covariance is rank-deficient and FVD's sqrtm amplifies that to ~2e-5.
    np.testing.assert_allclose(two[0]["fvd"], one["fvd"], rtol=1e-4)
    np.testing.assert_allclose(two[0]["kvd"], one["kvd"], rtol=1e-4, atol=1e-9)
