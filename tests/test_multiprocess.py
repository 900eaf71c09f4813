"""Two JAX processes on 127.0.0.1 (gloo collectives) train one run together."""

import json
import os
import socket
import subprocess
import sys

WORKER = os.path.join(os.path.dirname(__file__), "multiprocess_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_two_processes(workdir, data_dir, steps, out_dir):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs, outs = [], []
    for pid in (0, 1):
        out = os.path.join(out_dir, f"p{pid}_{steps}.json")
        outs.append(out)
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, str(port), str(pid), workdir, data_dir, str(steps), out],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        ))
    logs = [p.communicate(timeout=420)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return [json.load(open(out)) for out in outs]


def test_two_processes_share_a_run_and_resume(tiny_config, data_dir, tmp_path):
    from vgan_jax import data as data_lib

    data_lib.open_source(tiny_config().data, "train")  # build once, not twice at once
    workdir = str(tmp_path / "run")
    first = _train_two_processes(workdir, data_dir, 2, str(tmp_path))
    assert [r["devices"] for r in first] == [4, 4]
    assert [r["local_devices"] for r in first] == [2, 2]
    # Each process reads its own shard: no clip is seen by both.
    assert not set(first[0]["clip_hashes"]) & set(first[1]["clip_hashes"])
    # One global step: both processes end with identical parameters and losses.
    assert first[0]["params_sha1"] == first[1]["params_sha1"]
    assert first[0]["d_loss"] == first[1]["d_loss"]
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))

    resumed = _train_two_processes(workdir, data_dir, 4, str(tmp_path))
    assert [r["start_step"] for r in resumed] == [2, 2]
    assert [r["step"] for r in resumed] == [4, 4]
    assert resumed[0]["params_sha1"] == resumed[1]["params_sha1"]
