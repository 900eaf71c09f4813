"""vgan_jax: train, sample and evaluate GAN video generators in JAX/Flax.

    from vgan_jax import load_config, train, sample
    config = load_config("default")           # or a path to a config file
    train(config, "runs/mnist")               # resumes if runs/mnist has a checkpoint
    videos = sample("runs/mnist", num=16, seed=0)   # uint8 [16, T, H, W, C]

Everything public is re-exported here; modules import from each other, never from
this file.
"""

from vgan_jax.checkpoint import Checkpointer
from vgan_jax.config import apply_override, base_config, load_config
from vgan_jax.errors import VganError
from vgan_jax.losses import get_loss, r1_penalty
from vgan_jax.models import VideoShape, build_models, known_models
from vgan_jax.parallel import global_batch, make_mesh
from vgan_jax.sampling import interpolate, iterate_samples, load_run_config, sample
from vgan_jax.state import Gan, TrainState, build_gan, create_train_state
from vgan_jax.train import TrainingDiverged, train
from vgan_jax.train_step import make_train_step, train_step
from vgan_jax.video_io import to_uint8, write_frame_strip, write_videos

__version__ = "0.1.0"

__all__ = [
    "Checkpointer",
    "Gan",
    "TrainState",
    "TrainingDiverged",
    "VganError",
    "VideoShape",
    "apply_override",
    "base_config",
    "build_gan",
    "build_models",
    "create_train_state",
    "get_loss",
    "global_batch",
    "interpolate",
    "iterate_samples",
    "known_models",
    "load_config",
    "load_run_config",
    "make_mesh",
    "make_train_step",
    "r1_penalty",
    "sample",
    "to_uint8",
    "train",
    "train_step",
    "write_frame_strip",
    "write_videos",
]
