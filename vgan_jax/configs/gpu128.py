"""`gpu128`: UCF-101 at 128x128x16 RGB on one GPU or a TPU slice.

The `gpu` model one stage deeper (4 upsampling stages from 1x8x8, width 64: the
critic mirrors the generator), in mixed precision (bfloat16 convolutions and
matmuls, float32 parameters and losses).

Rematerialisation is off: by XLA's memory analysis of this step (`python
experiments/benchmark_train_step.py --preset gpu128 --compile-only --conv xla --remat
none --remat stage`; an estimate, not a GPU measurement) it adds executed FLOPs and
gives no memory back here, likely because the full-resolution stages' working set,
which a rematerialised stage rebuilds for its own backward pass, is the peak either
way. README's "Measured" has the figures. It stays available
(`--config.model.remat=stage`) for models whose peak lies elsewhere; check with the
command above.

The batch divides over 8 devices (v4-8, v5e-8); scale it with the device count.
Frames are flipped horizontally at random (UCF-101's actions have no handedness).

Needs the converted dataset first: `vgan-jax prepare ucf101 --data_dir DIR` (tfds
downloads and converts it once; needs TensorFlow, see README "Data"), then train with
`--config.data.data_dir=DIR`.
Not tuned: learning rates, R1 and step count are the `gpu` preset's, unmeasured at
this size.
"""

from vgan_jax.configs import gpu


def get_config():
    """The `gpu` preset (optimizer, R1, bfloat16, schedule of logs / samples / FVD) at
    UCF-101's 128x128 RGB with one more upsampling stage."""
    config = gpu.get_config()
    config.model.num_upsamples = 4
    config.data.name = "ucf101"
    config.data.resolution = 128
    config.data.channels = 3
    config.data.flip = True
    config.data.worker_count = 8
    config.train.steps = 100000
    config.train.batch_size = 32
    return config
