"""Test setup: 8 fake CPU devices, set before jax is imported anywhere."""

import os
import tempfile

# The suite's time is almost all XLA:CPU compilation of tiny programs. LLVM at
# optimisation level 0 and the classic (non-MLIR) fusion emitters compile the `tiny`
# train step on 8 devices in 3.1 s instead of 10.6 s, and at these sizes the
# programs run no slower that matters; every test compares programs compiled alike.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
    + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    + " --xla_cpu_use_fusion_emitters=false"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Many tests compile the same tiny programs (fresh runs, resumes, CLI runs); a
# persistent cache lets the second compile of an identical program be a lookup.
# Subprocesses (CLI tests) inherit it through the environment.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "vgan_jax_test_jit_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One dataset directory for the whole session, so datasets are built once."""
    return str(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="session")
def tiny_config(data_dir):
    """A factory of fresh `tiny` preset configs reading data from the session's dir."""
    from vgan_jax.config import load_config

    def make(**overrides):
        config = load_config("tiny")
        config.data.data_dir = data_dir
        for dotted, value in overrides.items():
            section, _, field = dotted.rpartition("__")
            target = config
            for part in section.split("__") if section else []:
                target = target[part]
            target[field] = value
        return config

    return make


@pytest.fixture(scope="session")
def tiny_run(tiny_config, tmp_path_factory):
    """A workdir holding a finished 4-step `tiny` run on 8 devices (trained once)."""
    from vgan_jax.train import train

    workdir = str(tmp_path_factory.mktemp("tiny_run"))
    train(tiny_config(), workdir)
    return workdir
