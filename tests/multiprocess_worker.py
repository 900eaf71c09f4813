"""One process of the 2-process tests (run by test_multiprocess.py).

usage: python multiprocess_worker.py PORT PROCESS_ID OUT_JSON SPEC_JSON
Each process has 2 CPU devices; together they form a 4-device mesh. SPEC_JSON holds
{"mode": "train" | "fvd", "data_dir": DIR, "overrides": {"train.steps": 4, ...}} and,
for "train", "workdir", "clip_hashes" (record the clips this process reads) and
"sigterm_in_setup" (the process that gets SIGTERM while train() sets up).
"""

import hashlib
import json
import os
import signal
import sys


def tiny_config(data_dir: str, overrides: dict):
    from vgan_jax.config import load_config

    config = load_config("tiny")
    config.data.data_dir = data_dir
    for dotted, value in overrides.items():
        section, _, field = dotted.rpartition(".")
        target = config
        for part in section.split(".") if section else []:
            target = target[part]
        target[field] = value
    return config


def params_sha1(tree) -> str:
    """sha1 of every leaf's bytes (this process's copy of replicated arrays)."""
    import jax
    import numpy as np

    leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(tree)]
    return hashlib.sha1(b"".join(leaf.tobytes() for leaf in leaves)).hexdigest()


def run_train(config, spec: dict) -> dict:
    import jax

    from vgan_jax import data as data_lib
    from vgan_jax.train import train

    clip_hashes = []
    if spec.get("clip_hashes"):
        # The clips this process reads in its first batches (the iterator train() builds).
        iterator = data_lib.make_train_iterator(
            config.data, seed=config.seed, global_batch_size=config.train.batch_size,
            process_index=jax.process_index(), process_count=jax.process_count(),
        )
        clip_hashes = [
            hashlib.sha1(clip.tobytes()).hexdigest()
            for _ in range(2)
            for clip in next(iterator)["video"]
        ]
        iterator.close()
    if spec.get("sigterm_in_setup") == jax.process_index():
        # This process is signalled while train() builds its input, before any step.
        make_iterator = data_lib.make_train_iterator

        def make_then_signal(*args, **kwargs):
            iterator = make_iterator(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)
            return iterator

        data_lib.make_train_iterator = make_then_signal
    result = train(config, spec["workdir"])
    return {
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "start_step": result.start_step,
        "step": result.step,
        "stopped_by_signal": result.stopped_by_signal,
        "clip_hashes": clip_hashes,
        "params_sha1": params_sha1(result.state.g_params),
        "d_loss": result.metrics.get("d_loss"),  # None when stopped before the first step
    }


def connect(mesh) -> None:
    """One collective over the mesh while the processes are still in step (just after
    `jax.distributed.initialize`). gloo on CPU connects a group of devices at its first
    collective and gives up if the processes arrive more than 30 s apart, which the two
    processes' compilations on a busy 2-core machine can exceed; once connected, later
    programs on the same devices wait as long as they need."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from vgan_jax.parallel import batch_sharded, replicated

    ones = np.ones(len(mesh.local_devices), np.int32)
    total = jax.jit(jnp.sum, out_shardings=replicated(mesh))(
        jax.make_array_from_process_local_data(batch_sharded(mesh), ones)
    )
    assert int(total) == mesh.devices.size


def run_fvd(config, spec: dict) -> dict:
    """The training loop's FVD hook on the seed's initial state, with a stand-in
    extractor on the same sharded-extractor path as I3D (tiny clips are too short for I3D)."""
    from standin_extractor import install_standin_extractor

    from vgan_jax.metrics.training_hook import make_training_fvd
    from vgan_jax.parallel import make_mesh
    from vgan_jax.sampling import make_generate_fn, make_standing_statistics_fn
    from vgan_jax.state import build_gan, create_train_state

    install_standin_extractor()
    mesh = make_mesh()
    gan = build_gan(config)
    state = create_train_state(gan, config.seed, mesh)
    hook = make_training_fvd(
        config, spec["workdir"], mesh, gan, make_generate_fn(gan), make_standing_statistics_fn(gan)
    )
    first = hook(state)  # real statistics computed (cache miss)
    second = hook(state)  # real statistics from memory
    return {"fvd": first["fvd"], "kvd": first["kvd"], "fvd_again": second["fvd"]}


def main() -> None:
    port, process_id, out_path, spec_json = sys.argv[1:]
    spec = json.loads(spec_json)
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.distributed.initialize(
        f"127.0.0.1:{port}", num_processes=2, process_id=int(process_id)
    )
    from vgan_jax.parallel import make_mesh

    connect(make_mesh())
    config = tiny_config(spec["data_dir"], spec.get("overrides", {}))
    result = (run_fvd if spec["mode"] == "fvd" else run_train)(config, spec)
    with open(out_path, "w") as f:
        json.dump(result, f)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
