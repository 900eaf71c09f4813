"""MoCoGAN on UCF-101 (Tulyakov, Liu, Yang, Kautz 2018), as the official code trains it.

Sources: sergeytulyakov/mocogan `src/train.py` defaults (64x64, video_length 16,
every_nth 4, dim_z_content 50, dim_z_motion 10, 100,000 batches; image_batch 10 and
video_batch 3) and `src/trainers.py` (Adam lr 2e-4, betas (0.5, 0.999), weight_decay 1e-5 for
G and both critics; BCE-with-logits GAN loss, i.e. the non-saturating loss). The
conditional run of the paper (UCF-101's 101 classes, `--dim_z_category`) is
`--config.model.num_classes=101`. Prepare the data first: `vgan-jax prepare ucf101
--data_dir DIR`, then `vgan-jax train --config=experiments/configs/papers/mocogan_ucf101.py
--config.data.data_dir=DIR`.

Differences that remain: one batch of 16 clips feeds both critics here (the official
code samples a separate image batch of 10 frames and 3 videos per step), and PyTorch's
Adam weight decay is an L2 term in the gradient where vgan_jax's AdamW decays
decoupled (`train.weight_decay`).
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "mocogan"
    config.model.latent_dim = 50  # dim_z_content
    config.model.motion_dim = 10  # dim_z_motion
    config.model.width = 64  # ngf / ndf 64 in src/models.py
    config.model.num_upsamples = 4  # 4x4 -> 64x64
    config.model.d_spectral_norm = False  # not in MoCoGAN
    config.model.d_minibatch_std_group = 0  # not in MoCoGAN
    config.model.d_image_frames = 1  # the image critic judges single frames
    config.train.loss = "non_saturating"  # nn.BCEWithLogitsLoss
    config.train.g_lr = config.train.d_lr = 2e-4
    config.train.g_beta1 = config.train.d_beta1 = 0.5
    config.train.g_beta2 = config.train.d_beta2 = 0.999
    config.train.weight_decay = 1e-5
    config.train.batch_size = 16  # one batch for both critics (see the docstring)
    config.train.steps = 100_000  # --batches
    config.data.name = "ucf101"
    config.data.resolution = 64  # --image_size
    config.data.frames = 16  # --video_length
    config.data.frame_stride = 4  # --every_nth
    config.data.channels = 3
    return config
