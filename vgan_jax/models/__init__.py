"""Video GAN architectures, one file per paper, behind `build_models`."""

from vgan_jax.models.registry import (
    ModelPair,
    VideoShape,
    build_models,
    check_model_config,
    known_models,
)

__all__ = ["ModelPair", "VideoShape", "build_models", "check_model_config", "known_models"]
