"""The presets shipped inside the package, so a pip-installed vgan_jax finds them.

Each module here defines `get_config()` starting from `vgan_jax.config.base_config()`
(or from another preset: `gpu128` is `gpu` at 128x128 RGB);
`vgan_jax.load_config(name)` loads `<name>.py` from this folder, and any new `.py`
file dropped here is a preset by its file name. Experiment files elsewhere can build
on one: `from vgan_jax.configs.default import get_config`.
"""
