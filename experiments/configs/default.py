"""`default`: Moving MNIST 64x64x16 on a 2-core CPU in under 15 minutes (`make train`)."""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "dcgan"
    config.model.width = 16
    config.data.resolution = 64
    config.data.frames = 16
    config.train.steps = 600
    config.train.batch_size = 16
    return config
