"""Are the generated digits legible, and of the class asked for? A digit classifier says.

    python experiments/digit_classifier.py --workdir runs/default [--workdir ...]
        [--num 256] [--seed 0] [--frames 0,8,15]

A small CNN is trained (a few minutes on 2 CPU cores, once: its parameters are cached
under ~/.cache/vgan_jax; nothing is downloaded) on
frames of the built-in Moving MNIST's train split at the run's resolution, with as many
digits per frame as the run's data (`data.num_digits`, 1 or 2), and checked on the
test split. Then, on `--num` EMA samples of each run (sampling seed `--seed`) and as
many real test clips, at the frames `--frames`:

- one digit per clip: every frame gets the class the classifier finds most likely
  (softmax over 10). A class-conditional run is sampled `--num / 10` clips per label;
  it prints, per label, how many frames are classified as that label (the conditional
  accuracy: `vgan-jax sample --label 7` shows sevens when this is high for 7), and the
  mean confidence.
- two digits per clip: a sigmoid per class (which digits are in the frame); a frame
  counts as legible when its two most likely classes both have probability >= 0.9,
  or its most likely one has >= 0.9 and no second class reaches 0.1 (two copies of one
  digit). The fraction of legible frames is printed for real clips and each run. A
  run conditioned on each digit's class (`model.labels_per_clip=2`, the `default`
  preset) is sampled with the sampler's labels (every pair of classes in turn), and
  it also prints how many frames show both classes asked for (each >= 0.5).

These are proxies of what a reader sees, as FVD's I3D is: a classifier trained on
real digits is confident on real digits (the real clips' line is the reference), and
not on strokes, blobs or half-digits.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

CONFIDENT = 0.9


def _frames_and_classes(split: str, num: int, digits: int, resolution: int, seed: int):
    """Real frames `[num, resolution, resolution, 1]` in [-1, 1] and their class sets
    (int `[num, digits]`): one random frame of each of `num` clips."""
    from vgan_jax.data import moving_mnist as mm

    images, labels = mm.load_digits()
    pool = mm.digit_indices(labels, split)
    rng = np.random.default_rng(seed)
    draws = [mm.clip_parameters(seed, split, i, len(pool), digits) for i in range(num)]
    choices, starts, velocities = (np.stack(part) for part in zip(*draws, strict=True))
    chosen = pool[choices]
    frames = rng.integers(0, 16, num)
    positions = mm.bounce_positions(starts, velocities, 16)
    positions = positions[np.arange(num), :, frames][:, :, None]  # [num, D, 1, 2]
    video = mm.render_clips(images[chosen], positions)[:, 0]  # [num, 64, 64]
    factor = video.shape[1] // resolution
    video = video.reshape(num, resolution, factor, resolution, factor).mean(axis=(2, 4))
    return (video[..., None] / 127.5 - 1.0).astype(np.float32), labels[chosen]


def train_classifier(digits: int, resolution: int, steps: int = 1500, batch: int = 64):
    """`(predict, test_accuracy)`: `predict(frames [n, r, r, 1] in [-1, 1]) -> float32
    [n, 10]` class probabilities (softmax for one digit, per-class sigmoid for two)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    class Classifier(nn.Module):
        @nn.compact
        def __call__(self, x):
            for channels in (32, 64, 128):
                x = nn.relu(nn.Conv(channels, (3, 3))(x))
                x = nn.relu(nn.Conv(channels, (3, 3))(x))
                x = nn.avg_pool(x, (2, 2), (2, 2))
            return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))

    model = Classifier()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, resolution, resolution, 1)))
    # Training is deterministic, so a cached copy is exactly what training would give.
    cache = os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
        "vgan_jax", f"digit_classifier_d{digits}_r{resolution}_s{steps}_b{batch}.msgpack",
    )
    from flax import serialization

    if os.path.exists(cache):
        with open(cache, "rb") as f:
            params = serialization.from_bytes(params, f.read())
    else:
        params = _fit(model, params, digits, resolution, steps, batch)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "wb") as f:
            f.write(serialization.to_bytes(params))
    activation = jax.nn.softmax if digits == 1 else jax.nn.sigmoid
    apply = jax.jit(lambda x: activation(model.apply(params, x)))

    def predict(frames):
        return np.concatenate([apply(frames[i : i + 256]) for i in range(0, len(frames), 256)])

    test_x, test_classes = _frames_and_classes("test", 2000, digits, resolution, 2)
    probs = predict(test_x)
    if digits == 1:
        accuracy = float(np.mean(probs.argmax(-1) == test_classes[:, 0]))
    else:
        top2 = np.sort(np.argsort(probs, -1)[:, -2:], -1)
        accuracy = float(np.mean(np.all(top2 == np.sort(test_classes, -1), -1)))
    return predict, accuracy


def _fit(model, params, digits: int, resolution: int, steps: int, batch: int):
    """The classifier's parameters after `steps` Adam steps on real train frames."""
    import jax
    import optax

    x, classes = _frames_and_classes("train", steps * batch // 4, digits, resolution, 1)
    targets = np.zeros((len(x), 10), np.float32)
    np.put_along_axis(targets, classes, 1.0, axis=1)
    optimizer = optax.adam(optax.cosine_decay_schedule(2e-3, steps))
    opt_state = optimizer.init(params)

    def loss_fn(params, x, y):
        logits = model.apply(params, x)
        if digits == 1:
            return optax.softmax_cross_entropy(logits, y).mean()
        return optax.sigmoid_binary_cross_entropy(logits, y).sum(-1).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(0)
    for _ in range(steps):
        rows = rng.integers(0, len(x), batch)
        shift = rng.integers(-2, 3, 2)  # small translations: samples are not pixel-aligned
        params, opt_state = step(
            params, opt_state, np.roll(x[rows], tuple(shift), axis=(1, 2)), targets[rows]
        )
    return params


def legible(probs: np.ndarray) -> np.ndarray:
    """Two-digit frames: bool `[n]`, see the module docstring."""
    ordered = np.sort(probs, -1)
    two = ordered[:, -2] >= CONFIDENT
    one_twice = (ordered[:, -1] >= CONFIDENT) & (ordered[:, -2] < 0.1)
    return (ordered[:, -1] >= CONFIDENT) & (two | one_twice)


def _as_frames(videos_uint8: np.ndarray, frames: list[int]) -> np.ndarray:
    chosen = videos_uint8[:, frames]
    return (chosen.reshape(-1, *chosen.shape[2:]) / 127.5 - 1.0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", action="append", required=True)
    parser.add_argument("--num", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", default="0,8,15")
    args = parser.parse_args()
    frames = [int(f) for f in args.frames.split(",")]

    from vgan_jax.data.pipeline import load_videos
    from vgan_jax.sampling import sample

    configs = {}
    for workdir in args.workdir:
        with open(os.path.join(workdir, "config.json")) as f:
            configs[workdir] = json.load(f)
    first = next(iter(configs.values()))
    digits, resolution = first["data"]["num_digits"], first["data"]["resolution"]
    predict, accuracy = train_classifier(digits, resolution)
    print(f"classifier: {digits} digit(s) per {resolution}x{resolution} frame, "
          f"test accuracy {accuracy:.3f} (one random frame of 2000 test clips)")

    import ml_collections

    real = load_videos(ml_collections.ConfigDict(first["data"]), "test", args.num, seed=0)
    real_probs = predict(_as_frames(real, frames))
    if digits == 2:
        print(f"{'real test clips':>40}: legible frames {np.mean(legible(real_probs)):.3f}")
    else:
        print(f"{'real test clips':>40}: confidence {np.mean(real_probs.max(-1)):.3f}")
    for workdir, config in configs.items():
        num_classes = config["model"]["num_classes"]
        if digits == 1 and num_classes:
            per_label = max(1, args.num // num_classes)
            labels = np.repeat(np.arange(num_classes), per_label)
            videos = sample(workdir, num=len(labels), seed=args.seed, labels=labels)
            probs = predict(_as_frames(videos, frames)).reshape(len(labels), len(frames), 10)
            hits = probs.argmax(-1) == labels[:, None]
            rows = [
                f"{label}: {np.mean(hits[labels == label]):.2f}" for label in range(num_classes)
            ]
            print(f"{workdir:>40}: frames classified as their label {np.mean(hits):.3f}, "
                  f"confidence {np.mean(probs.max(-1)):.3f}")
            print(f"{'per label':>40}: " + "  ".join(rows))
            continue
        videos = sample(workdir, num=args.num, seed=args.seed)
        probs = predict(_as_frames(videos, frames))
        if digits == 2 and num_classes:
            # Conditioned on each digit's class (the sampler's labels: every pair of
            # classes in turn): are the two classes asked for the ones in the frame?
            from vgan_jax.sampling import default_labels

            pairs = default_labels(args.num, num_classes, labels_per_clip=2)
            pairs = np.repeat(pairs, len(frames), axis=0)
            found = np.take_along_axis(probs, pairs, axis=1) >= 0.5
            print(f"{workdir:>40}: legible frames {np.mean(legible(probs)):.3f}, frames "
                  f"showing both digits asked for {np.mean(found.all(-1)):.3f}")
        elif digits == 2:
            print(f"{workdir:>40}: legible frames {np.mean(legible(probs)):.3f}")
        else:
            print(f"{workdir:>40}: confidence {np.mean(probs.max(-1)):.3f}")


if __name__ == "__main__":
    main()
