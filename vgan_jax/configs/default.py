"""`default`: Moving MNIST sized for a 2-core CPU (`make train`).

32x32 frames (the 64x64 clips block-averaged 2x), 16 frames per clip. The `layered`
generator: two object layers, each drawn once per clip by a 2D DCGAN generator
(width 64) and moved by MoCoGAN-style GRU motion codes as integrated velocities that
reflect at the frame's edges, over a static background. A digit then keeps its
shape in every frame and the image generator draws one centred digit per layer, where
the 3D `dcgan` generator (this preset's model before) drew speckled strokes that
drifted across the frames. The critic: a narrow video head (width 16) and a
per-frame image head on random frames of each clip, which starts with a
full-resolution 3x3 convolution (`d_image_stem`: without it the critic's first conv
sees 2x2 blocks and lets a generator speckle). A small batch at a raised learning
rate (on 2 CPU cores more, smaller updates cost about the same time as fewer large
ones); R1 on real clips (gamma 4), lazily every 4th step at 4x the weight. A wider
critic, a wider image head and 4,000 steps scored no better (README's "Measured" has
the runs, their scores and the run time; figures live there and in the benchmarks,
not here, so they can't go stale). `--config.model.name=dcgan` trains the 3D DCGAN
with the same critic and optimiser. Use the `gpu` preset for 64x64.
"""

from vgan_jax.config import base_config


def get_config():
    config = base_config()
    config.model.name = "layered"
    config.model.num_layers = 2
    config.model.width = 64
    config.model.d_width = 16
    config.model.d_image_frames = 8
    config.model.d_image_stem = 16
    config.model.g_output_conv = 8  # dcgan only (`--config.model.name=dcgan`)
    config.data.resolution = 32
    config.data.frames = 16
    config.train.steps = 2800
    config.train.batch_size = 8
    config.train.g_lr = 4e-4
    config.train.d_lr = 4e-4
    config.train.r1_gamma = 4.0
    config.train.r1_every = 4
    config.train.log_every = 10
    config.train.sample_every = 500
    config.train.checkpoint_every = 500
    return config
