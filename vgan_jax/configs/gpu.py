"""`gpu`: Moving MNIST 64x64x16 on one GPU or a TPU slice: a wider model, bigger batch.

A batch that divides over 8 devices (so it runs on a v4-8/v5e-8 unchanged); R1 on
real data; a long run with a small-N training FVD. Scale train.batch_size with the
number of devices. Mixed precision: bfloat16 convolutions and matmuls, float32
parameters, optimizer states and losses (`--config.train.compute_dtype=float32` for
full precision). `vgan-jax train` prints the parameter counts; step times belong in
README's "Measured" (`experiments/benchmark_train_step.py --preset gpu`).
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "dcgan"
    config.model.width = 64
    config.data.resolution = 64
    config.data.frames = 16
    config.data.worker_count = 4
    config.train.steps = 50000
    config.train.batch_size = 64
    config.train.r1_gamma = 0.1
    config.train.compute_dtype = "bfloat16"
    config.train.log_every = 50
    config.train.sample_every = 1000
    config.train.checkpoint_every = 2000
    config.train.fvd_every = 10000
    config.train.fvd_num_videos = 256
    return config
