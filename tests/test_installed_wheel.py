"""The package works when pip-installed from its wheel, not only from a clone.

What this proves: a wheel built from pyproject.toml holds everything `vgan-jax train
--config=<preset>` and the Colab quickstart need (the presets in vgan_jax/configs/
above all), and both run against that install with the source tree out of reach.

How, without network and in about a minute of setup:
- the buildable files (pyproject.toml, README.md, vgan_jax/) are copied to a temp dir
  and built there with `pip wheel --no-build-isolation --no-index` (setuptools from
  this environment; nothing lands in the checkout);
- a fresh venv is made (`--without-pip`); a `.pth` file in it lists this environment's
  site-packages, so jax, flax, pip, nbclient... are reused. A plain path line in a
  `.pth` does not process that directory's own `.pth` files, so the editable install's
  finder (`__editable__*.pth`) stays inactive: only the wheel's copy is importable,
  which the tests check through `vgan_jax.__file__`;
- the wheel goes in with `pip install --no-deps --no-index --ignore-installed`;
- every command runs from a temp dir outside the repository with PYTHONPATH unset.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

pytestmark = pytest.mark.installed_wheel

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOK = os.path.join(REPO, "colab", "quickstart.ipynb")


def _run(command, *, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{command} exited {result.returncode}\nstdout:\n{result.stdout[-4000:]}\n"
            f"stderr:\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed: {"python", "bin", "env", "cwd", "wheel"}."""
    root = tmp_path_factory.mktemp("installed_wheel")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(os.path.join(REPO, name), source / name)
    shutil.copytree(
        os.path.join(REPO, "vgan_jax"), source / "vgan_jax",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    outside = root / "cwd"  # commands run here: no `vgan_jax/` next to them
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    dist = root / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(dist), str(source)],
        cwd=outside, env=env,
    )
    (wheel,) = dist.glob("vgan_jax-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=outside, env=env)
    python = str(venv / "bin" / "python")
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=outside, env=env,
    ).stdout.strip()
    with open(os.path.join(purelib, "_reuse_test_environment.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    _run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
         str(wheel)],
        cwd=outside, env=env,
    )
    env = {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}
    return {"python": python, "bin": str(venv / "bin"), "env": env, "cwd": str(outside),
            "wheel": str(wheel), "venv": str(venv)}


def test_the_wheel_ships_the_presets_and_the_venv_sees_only_the_wheel(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for preset in ("default", "tiny", "gpu"):
        assert f"vgan_jax/configs/{preset}.py" in names
    probe = (
        "import json, os, sys, vgan_jax, vgan_jax.config as c; "
        "print(json.dumps([vgan_jax.__file__, c.PRESETS_DIR, c.known_presets(), "
        "c.load_config('default').train.steps, [os.path.abspath(p) for p in sys.path], "
        "[repr(f) for f in sys.meta_path]]))"
    )
    module_file, presets_dir, presets, _, path, finders = json.loads(
        _run([installed["python"], "-c", probe], cwd=installed["cwd"], env=installed["env"])
        .stdout.strip().splitlines()[-1]
    )
    assert module_file.startswith(installed["venv"]) and not module_file.startswith(REPO)
    assert presets_dir.startswith(installed["venv"])
    assert {"default", "tiny", "gpu"} <= set(presets)
    # The source tree is out of reach: not on sys.path, and the editable finder is off.
    assert REPO not in path and installed["cwd"] in path
    assert not [f for f in finders if "editable" in f.lower()]


def test_cli_trains_the_tiny_preset_by_name_from_the_wheel(installed, tmp_path, data_dir):
    workdir = tmp_path / "run"
    result = _run(
        [os.path.join(installed["bin"], "vgan-jax"), "train", "--config=tiny",
         f"--workdir={workdir}", "--config.train.steps=2", f"--config.data.data_dir={data_dir}"],
        cwd=installed["cwd"], env=installed["env"],
    )
    assert "vgan_jax: dcgan" in result.stdout
    assert "2" in os.listdir(workdir / "checkpoints")


def test_quickstart_notebook_runs_against_the_wheel(installed, tmp_path, data_dir):
    # The notebook runs in a kernel started by nbclient from the fresh venv's python
    # (jupyter_client starts "python3" kernels with sys.executable); a last cell
    # reports which vgan_jax that kernel imported.
    executed = tmp_path / "executed.ipynb"
    runner = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "notebook = nbformat.read(sys.argv[1], as_version=4)\n"
        "notebook.cells.append(nbformat.v4.new_code_cell("
        "'import vgan_jax; print(\"VGAN_JAX_FILE=\" + vgan_jax.__file__)'))\n"
        "NotebookClient(notebook, timeout=600, kernel_name='python3',\n"
        "               resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "nbformat.write(notebook, sys.argv[3])\n"
    )
    env = {
        **installed["env"],
        "VGAN_JAX_NOTEBOOK_PRESET": "tiny",
        "VGAN_JAX_NOTEBOOK_WORKDIR": str(tmp_path / "run"),
        "VGAN_JAX_NOTEBOOK_DATA_DIR": data_dir,
    }
    _run([installed["python"], "-c", runner, NOTEBOOK, installed["cwd"], str(executed)],
         cwd=installed["cwd"], env=env)
    notebook = json.loads(executed.read_text())
    outputs = [o for cell in notebook["cells"] if cell["cell_type"] == "code"
               for o in cell["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
    kernel_file = printed.split("VGAN_JAX_FILE=")[1].split()[0]
    assert kernel_file.startswith(installed["venv"]) and not kernel_file.startswith(REPO)
    assert (tmp_path / "run" / "samples.gif").exists()
    assert (tmp_path / "run" / "interpolation.gif").exists()
