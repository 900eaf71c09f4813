"""`tiny`: every code path in seconds on a CPU (tests, smoke checks). Not for quality."""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.width = 4
    config.model.latent_dim = 8
    config.model.num_upsamples = 2
    config.data.resolution = 16
    config.data.frames = 4
    config.data.num_train_clips = 64
    config.data.num_test_clips = 32
    config.train.steps = 4
    config.train.batch_size = 8
    config.train.log_every = 2
    config.train.sample_every = 4
    config.train.checkpoint_every = 2
    config.train.num_sample_videos = 4
    return config
