"""`default`: Moving MNIST on a 2-core CPU in under 15 minutes (`make train`).

32x32 frames (the 64x64 clips block-averaged 2x), 16 frames per clip. A DCGAN
generator with resize upsampling and edge padding in time; a critic with a video head
and a per-frame image head on 8 random frames of each clip. Figures (s/step, FVD) are
in README's "Measured" section. Use the `gpu` preset for 64x64.
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "dcgan"
    config.model.width = 32
    config.model.d_image_frames = 8
    config.data.resolution = 32
    config.data.frames = 16
    config.train.steps = 1500
    config.train.batch_size = 16
    config.train.log_every = 10
    config.train.sample_every = 250
    config.train.checkpoint_every = 250
    return config
