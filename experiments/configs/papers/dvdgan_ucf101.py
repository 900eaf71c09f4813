"""DVD-GAN on UCF-101 (Clark, Donahue, Simonyan 2019), as far as the paper specifies it;
no official code was released.

From the paper: class-conditional (UCF-101's 101 classes), z and the class embedding
120-dimensional each, hinge loss, spectral normalisation, spatial critic on k = 8
random frames, temporal critic on the 2x average-pooled clip, ConvGRU + residual
groups in G. The optimizer settings below are BigGAN's (Brock et al. 2019: Adam,
beta1 = 0, beta2 = 0.999, G 5e-5 / D 2e-4), which DVD-GAN builds on; the DVD-GAN
paper's own learning rates, batch size (hundreds of clips on TPU pods) and step count
were not checked for this file, so treat them as a starting point. The scaled-down
architecture is described in vgan_jax/models/dvdgan.py.
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "dvdgan"
    config.model.num_classes = 101
    config.model.latent_dim = 120  # z and e(y): 120-dimensional each (the paper)
    config.model.width = 64
    config.model.num_upsamples = 4  # 4x4 -> 64x64
    config.model.d_spectral_norm = True
    config.model.d_image_frames = 8  # k = 8 (the paper)
    config.model.d_minibatch_std_group = 0  # not in DVD-GAN
    config.train.loss = "hinge"
    config.train.g_lr, config.train.d_lr = 5e-5, 2e-4  # BigGAN's (see the docstring)
    config.train.g_beta1 = config.train.d_beta1 = 0.0
    config.train.g_beta2 = config.train.d_beta2 = 0.999
    config.train.batch_size = 64
    config.train.steps = 100_000
    config.data.name = "ucf101"
    config.data.resolution = 64
    config.data.frames = 16
    config.data.channels = 3
    return config
