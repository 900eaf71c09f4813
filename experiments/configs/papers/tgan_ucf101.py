"""TGAN on UCF-101 (Saito, Matsumoto, Saito 2017), as the official Chainer code runs it.

Sources: pfnet-research/tgan `configs/ucf101/ucf101_wgan_svd_zdim-100_no-beta.yml`
(batch 32, 16 frames of 64x64 RGB, z 100, `TGANUpdaterWGANSVC` with freq 5) and
`train.py` (RMSprop, lr 5e-5, for both networks). Prepare the data first:
`vgan-jax prepare ucf101 --data_dir DIR`, then
`vgan-jax train --config=experiments/configs/papers/tgan_ucf101.py --config.data.data_dir=DIR`.
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "tgan"
    config.model.latent_dim = 100  # z_slow_dim: 100 (the yml)
    config.model.width = 64  # the critic's mid_ch: 64 (the yml)
    config.model.num_upsamples = 4  # 4x4 -> 64x64, bottom_width 4 (the yml)
    # WGAN with singular value clipping instead of spectral norm: the paper's Section 4.
    config.model.d_spectral_norm = False
    config.model.d_minibatch_std_group = 0  # not in the paper
    config.model.d_image_frames = 0  # TGAN's critic is one 3D network
    config.train.loss = "wasserstein"
    config.train.d_singular_value_clip_every = 5  # updater args: freq 5 (the yml)
    # RMSprop(lr=5e-5) in the official train.py; vgan_jax's optimizer is Adam, which with
    # beta1 = 0 and beta2 = 0.99 (Chainer RMSprop's alpha) is RMSprop with bias correction.
    config.train.g_lr = config.train.d_lr = 5e-5
    config.train.g_beta1 = config.train.d_beta1 = 0.0
    config.train.g_beta2 = config.train.d_beta2 = 0.99
    config.train.batch_size = 32  # batchsize: 32 (the yml)
    config.train.steps = 100_000
    config.data.name = "ucf101"
    config.data.resolution = 64  # img_size: 64 (the yml)
    config.data.frames = 16  # n_frames: 16 (the yml)
    config.data.channels = 3
    return config
