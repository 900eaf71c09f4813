"""Experiment configuration: one `ml_collections.ConfigDict` per experiment.

Presets live in `vgan_jax/configs/*.py`, inside the package so an installed wheel has
them (each defines `get_config()`); they start
from `base_config()` here so every preset has every field, and any field can be
overridden from the command line (`--config.train.steps=100`). Configs are locked
(`ConfigDict.lock()`): setting a field that does not exist, in a preset, a config file
or an override, fails at load with the field's name instead of being silently ignored.

Fields
------
seed                    master seed: parameters, noise, data order.
model.name              registry name (`vgan_jax.models.registry.known_models()`).
model.latent_dim        size of the noise vector z.
model.width             channels of the highest-resolution generator stage; deeper
                        stages double it (the discriminator mirrors it).
model.d_width           the critic's first-stage channels (0: model.width), so the
                        generator and the critic can be sized apart.
model.num_upsamples     2x upsampling stages of the generator (space always, time
                        while the frame count allows).
model.g_norm            'batch' | 'group' | 'layer' | 'none': generator normalisation
                        ('batch' is synchronised over devices: 1 and N devices give
                        the same numbers; sampling uses its running averages).
model.g_upsample        'resize' | 'subpixel': how generator stages upsample (see
                        `layers.Upsample`; 'subpixel' paints a lattice, kept to compare).
model.g_output_conv     dcgan: channels of a full-resolution 3x3x3 output convolution
                        after the last upsampling stage (0: the last stage emits the
                        video, as in DCGAN). See `dcgan.VideoTrunk`.
model.g_output_blur     dcgan: a fixed [1, 2, 1] spatial blur of the pre-tanh output (no
                        parameters): the frames can't hold single-pixel dots.
model.g_time_padding    'zeros' | 'edge': how generator convolutions pad time ('edge'
                        repeats the first/last frame, so boundary frames are not darkened).
model.d_spectral_norm   spectral normalisation of discriminator layers.
model.d_minibatch_std_group  samples per minibatch-std group in the critic (0/1: off).
model.d_image_frames    frames per clip the per-frame image critic head judges (drawn at
                        random each step; 0: video head only, >= frames: all frames;
                        dvdgan: k of its spatial critic, >= 1).
model.d_image_stem      channels of a stride-1 3x3 convolution the image head applies at
                        full resolution before downsampling (0: none): per-pixel texture
                        (isolated dots against strokes) reaches its features. The
                        MultiHeadCritic models only (dvdgan's spatial critic has none).
model.d_image_width     the image head's first-stage channels (0: the critic's width,
                        model.d_width): a 2D head is cheap next to the 3D video head, so
                        it can afford to be wider. MultiHeadCritic models only.
model.d_dropout         dropout rate in the critic, before its dense logit, in training
                        steps only (0: off); masks are per sample, device-count invariant.
model.mask_l1_weight    VGAN only: weight of the L1 penalty on the foreground mask.
model.motion_dim        MoCoGAN and layered: size of the motion code, the GRU state and
                        its per-frame noise (the official code's dim_z_motion, 10); z is
                        [content (latent_dim, per layer for layered); GRU initial state
                        (motion_dim)].
model.num_layers        layered only: object layers, each drawn once per clip and moved
                        over a static background (2: Moving MNIST's two digits).
model.layer_composite   layered only: how layers combine. 'over': front to back, objects
                        occlude each other (and a sprite's opaque surround can hide the
                        object behind it); 'max': the per-pixel maximum of the layers
                        (each over black) and the background, as Moving MNIST combines
                        its digits.
model.layer_snap        layered only: place layers at whole canvas pixels (twice the
                        frame's resolution; the built-in data's 64x64 grid) in the forward
                        pass, with the bilinear placement's gradient (straight-through).
                        False: bilinear at the exact offset, which blurs a moving layer
                        by a different amount in every frame.
model.num_classes       0: unconditional. > 0: class-conditional on the data's labels
                        (in [0, num_classes)): the generator takes a label (an embedding
                        concatenated to z; MoCoGAN a one-hot code; DVD-GAN conditional
                        BatchNorm) and every critic head gets a projection term.
model.labels_per_clip   conditional runs: classes per clip, one per object, as the data
                        labels them (1: one class per clip; the built-in two-digit
                        Moving MNIST: 2, the class of each digit). With K > 1 labels are
                        int32 [batch, K]: `layered` draws layer k from label k, the other
                        generators and the critics take the sum of the K embeddings, and
                        the auxiliary classifier's target puts 1/K on each label.
model.remat             'none' | 'stage': rematerialise each generator and critic stage
                        (the backward pass recomputes a stage's activations instead of
                        storing them: less memory, more FLOPs; README has the figures);
                        same parameters and numbers, so it can change on resume.
data.name               dataset name (`vgan_jax.data.known_datasets()`).
data.data_dir           where datasets are built/read (None: tfds default dir).
data.resolution         frame height = width fed to the model.
data.frames             frames per clip.
data.channels           1 (grayscale) or 3 (RGB).
data.frame_stride       take every n-th frame.
data.random_start       random clip start within a longer video (else the first).
data.crop               'center' | 'random' crop after resizing the shorter side.
data.flip               random horizontal flip (the same for every frame of a clip).
data.short_videos       'pad' (repeat the last frame) | 'skip' videos shorter than a clip.
data.num_train_clips    built-in Moving MNIST: clips in the train split.
data.num_test_clips     built-in Moving MNIST: clips in the test split.
data.num_digits         built-in Moving MNIST: digits per clip (2, as Srivastava et al.;
                        1: one digit whose class is the clip's label, to see conditioning).
                        With n > 1 a clip's label lists each digit's class (int [n]):
                        conditional runs set model.labels_per_clip=n.
data.worker_count       grain worker processes (0: in the main process).
train.steps             optimisation steps (one D and one G update each).
train.batch_size        global batch; must divide by the number of devices.
train.loss              'non_saturating' | 'hinge' | 'wasserstein'.
train.r1_gamma          R1 penalty weight on real data (0 disables it).
train.r1_every          lazy R1 (StyleGAN2): the penalty runs on steps where
                        `step % r1_every == 0`, weighted by gamma * r1_every, so its
                        average pull is unchanged and the double backward costs
                        1/r1_every of its price (1: every step). The logged
                        `train/r1` is r1_every x the penalty on those steps and 0 on
                        the others, so its mean over a log window is the penalty.
train.mode_seeking      weight of MSGAN's mode-seeking term in the G loss (Mao et al.
                        2019; 0: off): against mode collapse, over pairs of clips on
                        each device (the per-device batch must be even); in a
                        conditional run a pair shares its class, so every z of a class
                        must not draw the same clip. Logged as `train/g_mode_seeking`.
train.class_loss        conditional runs: weight of AC-GAN's classification term (Odena
                        et al. 2017; 0: off): every critic head also has a linear
                        classifier of its pooled features; the critic learns to classify
                        real clips by their label, the generator to make fakes it
                        classifies as theirs. Logged as `train/d_class_loss` and
                        `train/g_class_loss` (cross-entropies, summed over heads).
train.g_lr, train.d_lr  Adam learning rates; g_beta1/g_beta2/d_beta1/d_beta2 its betas.
train.lr_decay_start    fraction of train.steps after which both learning rates decay
                        linearly to 0 at train.steps (1.0: constant). Can change on resume.
train.weight_decay      decoupled weight decay (AdamW) for both networks, on parameters
                        with ndim >= 2 (kernels) only: norm scales and biases are not
                        decayed. 0 (Adam) and > 0 (AdamW) can't be switched on resume.
train.ema_decay         EMA of generator weights, used for sampling.
train.d_singular_value_clip_every  TGAN's singular value clipping (Saito et al. 2017):
                        every N steps, after the D update, every critic weight with
                        ndim >= 2 (reshaped to [-1, out]) gets its singular values
                        clipped to <= 1 and any critic BatchNorm scale clamped to
                        [0.01, 1] x its running std. 0: off. The paper: 5, with
                        train.loss=wasserstein and model.d_spectral_norm=False.
train.compute_dtype     'float32' | 'bfloat16': dtype of the convolutions and matmuls of
                        both networks (mixed precision). Parameters, optimizer states, EMA,
                        checkpoints, losses, R1 gradients, BatchNorm statistics,
                        spectral-norm vectors and the non-finite guard stay float32.
train.augment           frame-consistent DiffAugment policy for real and fake clips
                        before the critic: comma-separated 'translation', 'cutout',
                        'color' (= 'brightness,saturation,contrast', each also allowed
                        alone); '' (default): off. See `vgan_jax.augment`.
train.augment_p         probability a clip gets each transform, when ada_target is 0
                        (1.0: plain DiffAugment).
train.ada_target        0: fixed p = augment_p. > 0 (ADA's 0.6): adaptive p, starting at
                        0, moved every step by sign(r_t - ada_target) * batch_size /
                        (ada_kimg * 1000), clipped to [0, 1], with r_t = E[sign(D(real))];
                        p is part of the checkpointed TrainState.
train.ada_kimg          thousands of clips for ADA's p to go from 0 to 1. 2.0: 125 steps
                        at batch 16 (StyleGAN2-ADA uses 500 for runs of 25M images; that
                        would barely move p here).
train.log_every         steps between scalar logs and NaN checks (also at every step that
                        saves, so a checkpoint is written only after its metrics passed).
train.sample_every      steps between sample grids (GIF + TensorBoard).
train.checkpoint_every  steps between checkpoints.
train.keep_checkpoints  checkpoints kept in the workdir.
train.num_sample_videos videos in each sample grid.
train.fvd_every         steps between small-N FVD evaluations (0: off).
train.fvd_num_videos    videos per side for that FVD.
train.profile_steps     steps to trace with `jax.profiler` (0: no trace), written under
                        <workdir>/logs/plugins/profile/ (TensorBoard's Profile tab); every
                        step carries a StepTraceAnnotation with its number.
train.profile_start_step  the trace starts after this step (a run's global step), and
                        never before this process's first step, which compiles (a run
                        resumed past it traces the steps after its first).
mesh.num_devices        devices on the `data` axis (None: all).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import traceback

import ml_collections

from vgan_jax.errors import VganError


def base_config() -> ml_collections.ConfigDict:
    """Every field with its default; presets change what they need."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.model = ml_collections.ConfigDict()
    config.model.name = "dcgan"
    config.model.latent_dim = 100
    config.model.width = 32
    config.model.d_width = 0
    config.model.num_upsamples = 3
    config.model.g_norm = "batch"
    config.model.g_upsample = "resize"
    config.model.g_time_padding = "edge"
    config.model.g_output_conv = 0
    config.model.g_output_blur = False
    config.model.d_spectral_norm = True
    config.model.d_minibatch_std_group = 4
    config.model.d_image_frames = 8
    config.model.d_dropout = 0.0
    config.model.d_image_stem = 0
    config.model.d_image_width = 0
    config.model.mask_l1_weight = 0.1
    config.model.motion_dim = 10
    config.model.num_layers = 2
    config.model.layer_composite = "over"
    config.model.layer_snap = False
    config.model.num_classes = 0
    config.model.labels_per_clip = 1
    config.model.remat = "none"

    config.data = ml_collections.ConfigDict()
    config.data.name = "moving_mnist_offline"
    config.data.data_dir = ml_collections.FieldReference(None, field_type=str)
    config.data.resolution = 64
    config.data.frames = 16
    config.data.channels = 1
    config.data.frame_stride = 1
    config.data.random_start = True
    config.data.crop = "center"
    config.data.flip = False
    config.data.short_videos = "pad"
    config.data.num_train_clips = 10000
    config.data.num_test_clips = 1000
    config.data.num_digits = 2
    config.data.worker_count = 0

    config.train = ml_collections.ConfigDict()
    config.train.steps = 1000
    config.train.batch_size = 16
    config.train.loss = "non_saturating"
    config.train.r1_gamma = 0.0
    config.train.r1_every = 1
    config.train.mode_seeking = 0.0
    config.train.class_loss = 0.0
    config.train.g_lr = 2e-4
    config.train.d_lr = 2e-4
    config.train.g_beta1 = 0.5
    config.train.g_beta2 = 0.999
    config.train.d_beta1 = 0.5
    config.train.d_beta2 = 0.999
    config.train.lr_decay_start = 1.0
    config.train.weight_decay = 0.0
    config.train.ema_decay = 0.999
    config.train.d_singular_value_clip_every = 0
    config.train.compute_dtype = "float32"
    config.train.augment = ""
    config.train.augment_p = 1.0
    config.train.ada_target = 0.0
    config.train.ada_kimg = 2.0
    config.train.log_every = 10
    config.train.sample_every = 200
    config.train.checkpoint_every = 200
    config.train.keep_checkpoints = 3
    config.train.num_sample_videos = 16
    config.train.fvd_every = 0
    config.train.fvd_num_videos = 256
    config.train.profile_steps = 0
    config.train.profile_start_step = 10

    config.mesh = ml_collections.ConfigDict()
    config.mesh.num_devices = ml_collections.FieldReference(None, field_type=int)
    # Presets edit this config: locked, a misspelt field raises instead of adding a
    # new field that nothing reads.
    config.lock()
    return config


def config_from_saved(saved: dict) -> ml_collections.ConfigDict:
    """A run's config from the plain dict its checkpoint stored, over `base_config()`:
    a field added to the library after the run was saved takes its default (which is
    the behaviour the run was trained with), so old runs still sample and resume."""
    config = base_config()

    def overlay(section: ml_collections.ConfigDict, values: dict) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(section.get(key), ml_collections.ConfigDict):
                overlay(section[key], value)
            else:
                section[key] = value

    # Unlocked: a field the library has since dropped is kept (nothing reads it), so a
    # saved config always loads; the result is locked again like every other config.
    with config.unlocked():
        overlay(config, saved)
    return config


# --- loading presets and command-line overrides -----------------------------

# Inside the package (not next to the source tree), so a pip-installed wheel has them.
PRESETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def known_presets() -> list[str]:
    if not os.path.isdir(PRESETS_DIR):
        return []
    return sorted(f[:-3] for f in os.listdir(PRESETS_DIR) if f.endswith(".py") and f[0] != "_")


def load_config(path_or_name: str) -> ml_collections.ConfigDict:
    """A config from a Python file defining `get_config()`, or a preset name
    (`default`, `tiny`, `gpu`, ...: the files in vgan_jax/configs)."""
    path = path_or_name
    if not os.path.exists(path):
        candidate = os.path.join(PRESETS_DIR, f"{path_or_name}.py")
        if os.path.exists(candidate):
            path = candidate
        else:
            raise VganError(
                f"config {path_or_name!r} not found; give a file defining get_config() or a "
                f"preset: {', '.join(known_presets()) or '(none found)'}"
            )
    spec = importlib.util.spec_from_file_location("vgan_jax_user_config", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise VganError(f"config file {path!r} failed to load: {error}") from error
    if not hasattr(module, "get_config"):
        raise VganError(f"config file {path!r} has no get_config() function")
    try:
        config = module.get_config()
    except Exception as error:  # a typo, a wrong type: the user's file, one line
        raise VganError(_config_error_message(path, error)) from error
    if isinstance(config, ml_collections.ConfigDict):
        config.lock()  # a file that built its own ConfigDict: overrides can't add fields
    return config


def _config_error_message(path: str, error: Exception) -> str:
    """One line for a config file whose get_config() raised, naming the file's line;
    for a field that does not exist (a locked ConfigDict's error), the field too."""
    text = str(error.args[0]) if error.args else str(error)
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f.lineno for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
    where = f"config file {path!r}" + (f", line {lines[-1]}" if lines else "")
    unknown = re.search(r'Key "([^"]+)" does not exist and cannot be added', text)
    if not unknown:
        return f"{where} failed: {type(error).__name__}: {' '.join(text.split())}"
    suggestion = re.search(r'Did you mean "([^"]+)"', text)
    hint = f" (did you mean {suggestion.group(1)!r}?)" if suggestion else ""
    return (
        f"{where} sets unknown config field {unknown.group(1)!r}{hint}; every field must "
        "exist in vgan_jax.config.base_config()"
    )


def _parse_value(text: str, current, field_type):
    """Parses `text` as the type of the field it overrides."""
    if text.lower() in ("none", "null"):
        return None
    target = field_type if current is None else type(current)
    if target is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if target is str:
        return text
    value = ast.literal_eval(text)
    if target is float and isinstance(value, int):
        value = float(value)
    if target is not None and not isinstance(value, target):
        raise ValueError(f"expected {target.__name__}, got {text!r}")
    return value


def apply_override(config: ml_collections.ConfigDict, dotted: str, text: str) -> None:
    """Sets `config.<dotted>` from the string `text`, keeping the field's type.

    Raises VganError for unknown fields (listing the section's fields) and bad values.
    """
    *parents, leaf = dotted.split(".")
    section = config
    for i, part in enumerate(parents):
        if part not in section or not isinstance(section[part], ml_collections.ConfigDict):
            where = ".".join(parents[:i]) or "config"
            raise VganError(
                f"unknown config field {dotted!r}: {where} has {', '.join(sorted(section.keys()))}"
            )
        section = section[part]
    if leaf not in section:
        raise VganError(
            f"unknown config field {dotted!r}; fields of that section: "
            f"{', '.join(sorted(section.keys()))}"
        )
    current = section[leaf]
    field_type = section.get_ref(leaf).get_type() if current is None else None
    try:
        section[leaf] = _parse_value(text, current, field_type)
    except (ValueError, SyntaxError, TypeError) as error:
        raise VganError(f"bad value for --config.{dotted}: {error}") from error
