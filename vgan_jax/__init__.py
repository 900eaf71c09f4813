"""vgan_jax."""
