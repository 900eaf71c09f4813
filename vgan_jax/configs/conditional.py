"""`conditional`: the `default` preset made class-conditional, so `--label` can be seen.

The one-digit Moving MNIST (`data.num_digits=1`: the label is the clip's digit) and a
one-layer `layered` generator that takes the label (a learned embedding beside z).
Every critic head adds a projection term (Miyato & Koyama 2018) and an auxiliary
classifier of its pooled features (AC-GAN, Odena et al. 2017, `train.class_loss`):
with the projection term alone the critic learned the classes too slowly, and the
generator drew wrong digits for most labels (README's "Measured" has both runs).
No mode-seeking term: at weight 0.5 it left a grey haze in the background and did
not stop every z of a label drawing the same digit (the `layered` generator's clips
already differ by their motion). Same schedule, optimiser and critic as `default`:

    vgan-jax train --config=conditional --workdir=runs/conditional
    vgan-jax sample --workdir=runs/conditional --label 7 --num 8 --out sevens.png
"""

from vgan_jax.configs.default import get_config as default_config


def get_config():
    config = default_config()
    config.data.num_digits = 1
    config.model.num_classes = 10
    config.model.num_layers = 1
    config.train.class_loss = 1.0
    return config
