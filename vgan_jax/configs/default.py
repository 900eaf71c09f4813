"""`default`: Moving MNIST on a 2-core CPU in under 15 minutes (`make train`).

32x32 frames (the 64x64 clips block-averaged 2x), 16 frames per clip. A DCGAN
generator with resize upsampling, edge padding in time and an 8-channel
full-resolution output convolution; a critic with a video head and a per-frame image
head on 8 random frames of each clip. Batch 8 at Adam lr 4e-4 for 3,000 steps: on 2
CPU cores twice the updates of batch 16 cost about the same time, and each of the
three changes lowered FVD@256 (README's "Measured": 248 -> 168 together). Use the
`gpu` preset for 64x64.
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "dcgan"
    config.model.width = 32
    config.model.d_image_frames = 8
    config.model.g_output_conv = 8
    config.data.resolution = 32
    config.data.frames = 16
    config.train.steps = 3000
    config.train.batch_size = 8
    config.train.g_lr = 4e-4
    config.train.d_lr = 4e-4
    config.train.log_every = 10
    config.train.sample_every = 500
    config.train.checkpoint_every = 500
    return config
