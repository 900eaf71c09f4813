"""`default`: Moving MNIST on a 2-core CPU in under 15 minutes (`make train`).

32x32 frames (the 64x64 clips block-averaged 2x), 16 frames per clip, a 2.6M + 1.6M
parameter DCGAN: 0.76 s per step on 2 cores, so 1,000 steps fit in 15 minutes
with compilation, samples and checkpoints. Use the `gpu` preset for 64x64.
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "dcgan"
    config.model.width = 32
    config.data.resolution = 32
    config.data.frames = 16
    config.train.steps = 1000
    config.train.batch_size = 16
    config.train.log_every = 10
    config.train.sample_every = 250
    config.train.checkpoint_every = 250
    return config
