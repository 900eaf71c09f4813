"""No boundary-frame artifact: the first and last frames of a sample look like the rest.

The issue this guards against: an earlier generator (sub-pixel time upsampling with
zero padding in time) painted frame 0 of every sample as a grey lattice unlike the
other 15 frames. The `default` generator's choices (`model.g_upsample='resize'`,
`model.g_time_padding='edge'`) are meant to leave no frame special; this checks it on
a briefly trained small model with the same upsampling plan in time (16 frames built
by two time doublings) over many samples.
"""

import numpy as np

from vgan_jax.sampling import sample
from vgan_jax.train import train

# Of 255: how far frame 0's (or the last frame's) mean / std over 32 samples may lie
# outside the range the middle frames span. The middle frames of such a run spread
# over ~6 (mean) and ~5 (std) levels.
TOLERANCE = 5.0


def test_boundary_frames_have_the_statistics_of_the_others(tiny_config, tmp_path):
    config = tiny_config(
        data__frames=16,
        model__width=8,
        model__g_upsample="resize",
        model__g_time_padding="edge",
        train__steps=20,
        train__log_every=10,
        train__sample_every=20,
        train__checkpoint_every=20,
    )
    train(config, str(tmp_path))
    videos = sample(str(tmp_path), num=32, seed=0).astype(np.float32)  # [n, t, h, w, c]
    means = videos.mean(axis=(0, 2, 3, 4))
    stds = videos.std(axis=(0, 2, 3, 4))
    for name, per_frame in (("mean", means), ("std", stds)):
        middle = per_frame[1:-1]
        low, high = middle.min() - TOLERANCE, middle.max() + TOLERANCE
        for frame in (0, len(per_frame) - 1):
            assert low <= per_frame[frame] <= high, (
                f"frame {frame}'s {name} {per_frame[frame]:.1f} is outside the other "
                f"frames' [{middle.min():.1f}, {middle.max():.1f}] +- {TOLERANCE}"
            )
