"""One process of the 2-process training test (run by test_multiprocess.py).

usage: python multiprocess_worker.py PORT PROCESS_ID WORKDIR DATA_DIR STEPS OUT_JSON
Each process has 2 CPU devices; together they form a 4-device mesh.
"""

import hashlib
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

port, process_id, workdir, data_dir, steps, out_path = sys.argv[1:]
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=int(process_id))

from vgan_jax import data as data_lib  # noqa: E402
from vgan_jax.config import load_config  # noqa: E402
from vgan_jax.train import train  # noqa: E402

config = load_config("tiny")
config.data.data_dir = data_dir
config.train.steps = int(steps)
config.train.checkpoint_every = 2

# The clips this process reads in its first batches (the same iterator train() builds).
iterator = data_lib.make_train_iterator(
    config.data, seed=config.seed, global_batch_size=config.train.batch_size,
    process_index=jax.process_index(), process_count=jax.process_count(),
)
clip_hashes = [
    hashlib.sha1(clip.tobytes()).hexdigest() for _ in range(2) for clip in next(iterator)["video"]
]
iterator.close()

result = train(config, workdir)
params = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(result.state.g_params)]
with open(out_path, "w") as f:
    json.dump(
        {
            "devices": jax.device_count(),
            "local_devices": jax.local_device_count(),
            "start_step": result.start_step,
            "step": result.step,
            "clip_hashes": clip_hashes,
            "params_sha1": hashlib.sha1(b"".join(p.tobytes() for p in params)).hexdigest(),
            "d_loss": result.metrics["d_loss"],
        },
        f,
    )
jax.distributed.shutdown()
