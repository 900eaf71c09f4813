"""experiments/tpu/launch_pod.sh composes the right gcloud calls.

A stand-in `gcloud` on PATH records its arguments. For `scp` it keeps the tarball; for
`ssh --worker=all` it runs the remote command once per simulated worker (two), each in
its own $HOME holding that tarball, with a stand-in `python3` that records what it was
asked to run. So the test checks the command a worker really executes (unpacking the
shipped tree, pip with the TPU extra, the training command and its arguments), not
only the text of it.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "tpu", "launch_pod.sh")
WORKERS = 2

FAKE_GCLOUD = """\
#!{python}
import json, os, shutil, subprocess, sys
args = sys.argv[1:]
log = os.environ["FAKE_GCLOUD_LOG"]
with open(log, "a") as f:
    f.write(json.dumps(args) + "\\n")
workers = os.path.join(os.environ["FAKE_GCLOUD_ROOT"], "workers")
count = {workers} if "--worker=all" in args else 1
homes = [os.path.join(workers, str(i)) for i in range(count)]
if args[:4] == ["compute", "tpus", "tpu-vm", "scp"]:
    source, target = args[4], args[5]
    name = target.split(":", 1)[1]
    for home in homes:
        os.makedirs(home, exist_ok=True)
        shutil.copy(source, os.path.join(home, name))
    shutil.copy(source, os.path.join(os.environ["FAKE_GCLOUD_ROOT"], "shipped.tar.gz"))
elif args[:4] == ["compute", "tpus", "tpu-vm", "ssh"]:
    command = args[args.index("--command") + 1]
    for i, home in enumerate(homes):
        os.makedirs(home, exist_ok=True)
        env = dict(os.environ, HOME=home, FAKE_WORKER=str(i))
        subprocess.run(["bash", "-c", command], cwd=home, env=env, check=True)
"""

# Records `python3 ARGS` per worker; pip "installs" nothing, the training command
# returns at once (it runs under nohup in the background on the worker).
FAKE_PYTHON = """\
#!/usr/bin/env bash
printf '%s\\n' "$@" > "$FAKE_GCLOUD_ROOT/python3.$FAKE_WORKER.$(date +%s%N)"
"""


def _run(tmp_path, extra_env, *args):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable, workers=WORKERS))
    python3 = bin_dir / "python3"
    python3.write_text(FAKE_PYTHON)
    for path in (gcloud, python3):
        path.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        FAKE_GCLOUD_LOG=str(tmp_path / "gcloud.log"),
        FAKE_GCLOUD_ROOT=str(tmp_path),
        TMPDIR=str(tmp_path),
        **extra_env,
    )
    done = subprocess.run(
        ["bash", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in (tmp_path / "gcloud.log").read_text().splitlines()]
    return calls, done.stdout


def _python_calls(tmp_path, worker, expected):
    """The argument lists `python3` got on one simulated worker, oldest first (waits for
    the backgrounded training command)."""
    deadline = time.time() + 30
    while True:
        files = sorted(tmp_path.glob(f"python3.{worker}.*"))
        if len(files) >= expected or time.time() > deadline:
            break
        time.sleep(0.1)
    return [f.read_text().splitlines() for f in files]


@pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"
)
def test_launch_ships_the_tree_and_starts_the_same_command_on_every_worker(tmp_path):
    env = dict(
        TPU_NAME="my-v4-32",
        ZONE="us-central2-b",
        WORKDIR="gs://bucket/runs/ucf 128",  # a space: must stay one argument
        DATA_DIR="gs://bucket/data",
        CONFIG="gpu128",
        PROJECT="my-project",
    )
    calls, stdout = _run(tmp_path, env, "--config.train.steps=10", "--config.seed=3")
    assert "copying" in stdout and "logs:" in stdout
    assert [c[:4] for c in calls] == [
        ["compute", "tpus", "tpu-vm", "scp"],
        ["compute", "tpus", "tpu-vm", "ssh"],
    ]
    scp, ssh = calls
    for call in calls:
        assert "--worker=all" in call
        assert call[call.index("--zone") + 1] == "us-central2-b"
        assert call[call.index("--project") + 1] == "my-project"
    assert scp[5].startswith("my-v4-32:")
    assert ssh[4] == "my-v4-32"

    # The shipped tarball is this working tree: the package, its presets and
    # pyproject, nothing from .venv or .git.
    with tarfile.open(tmp_path / "shipped.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"pyproject.toml", "vgan_jax/__init__.py", "vgan_jax/configs/gpu128.py"} <= names
    assert not any(n.startswith((".venv/", ".git/")) for n in names)

    for worker in range(WORKERS):
        home = tmp_path / "workers" / str(worker)
        assert (home / "vgan_jax" / "pyproject.toml").exists()  # unpacked on this worker
        pip, train = _python_calls(tmp_path, worker, 2)
        assert pip[:4] == ["-m", "pip", "install", "-q"]
        assert any(a.startswith("jax[tpu]") for a in pip) and pip[-2:] == ["-e", "."]
        assert train == [
            "-m",
            "vgan_jax.cli",
            "train",
            "--config=gpu128",
            "--workdir=gs://bucket/runs/ucf 128",
            "--config.data.data_dir=gs://bucket/data",
            "--config.train.steps=10",
            "--config.seed=3",
        ]


def test_launch_from_a_repository_clones_instead_of_copying(tmp_path):
    env = dict(
        TPU_NAME="pod",
        ZONE="europe-west4-a",
        WORKDIR="gs://b/run",
        REPO="https://example.invalid/me/vgan_jax.git",
        REF="v0.1",
    )
    # The stand-in runs the remote command, so `git clone` would really run: put a
    # stand-in git first on PATH that records and makes the directory.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.write_text(
        textwrap.dedent(
            """\
            #!/usr/bin/env bash
            echo "$@" >> "$FAKE_GCLOUD_ROOT/git.$FAKE_WORKER"
            if [ "$1" = clone ]; then mkdir -p "${@: -1}"; fi
            """
        )
    )
    git.chmod(0o755)
    calls, _ = _run(tmp_path, env)
    assert [c[3] for c in calls] == ["ssh"]  # nothing copied
    assert "--worker=all" in calls[0]
    for worker in range(WORKERS):
        lines = (tmp_path / f"git.{worker}").read_text().splitlines()
        assert lines[0] == "clone -q https://example.invalid/me/vgan_jax.git vgan_jax"
        assert lines[1] == "-C vgan_jax checkout -q v0.1"
        train = _python_calls(tmp_path, worker, 2)[-1]
        assert train[3:5] == ["--config=gpu", "--workdir=gs://b/run"]
        assert not any("data_dir" in a for a in train)


def test_launch_needs_tpu_name_zone_and_workdir(tmp_path):
    done = subprocess.run(
        ["bash", SCRIPT],
        env={k: v for k, v in os.environ.items() if k not in ("TPU_NAME", "ZONE", "WORKDIR")},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "TPU_NAME" in done.stderr
