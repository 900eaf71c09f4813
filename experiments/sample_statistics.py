"""Per-frame statistics of a run's samples next to real clips, and what its critic sees.

    python experiments/sample_statistics.py --workdir runs/default [--workdir ...]
        [--num 64] [--seed 0] [--critic]

For each run: `--num` EMA samples (sampling seed `--seed`) and as many real clips of
the test split (seed 0), all uint8. Per frame index it prints

- mean and std of the pixels (of 255): a boundary frame that is darker, brighter or
  flatter than the others shows here;
- sharpness: mean absolute difference between horizontally and vertically neighbouring
  pixels (of 255);
- speckle: of the foreground pixels (> 64), the fraction with at most one
  foreground 4-neighbour, i.e. isolated dots rather than strokes (real Moving MNIST
  strokes are ~2 px wide at 32x32, so few pixels are isolated).

and, per set, the sharpness flicker: how much a clip's sharpness changes from frame to
frame (the mean over clips of the per-frame sharpness's std over time / its mean).
Objects pasted at whole pixels, as the built-in data's, keep their sharpness as they
move; an object resampled at fractional positions is blurred by a different amount
in every frame.

`--critic` also prints the run's trained critic's mean logit per head on the real
clips, on the same clips dithered (each pixel switched fully on with probability equal
to its intensity: the same local means, speckled like the samples) and on the samples:
a critic that scores dithered clips as real as the clean ones can't teach the
generator to stop speckling. README's "Measured" quotes this script's figures.
"""

from __future__ import annotations

import argparse

import numpy as np

FOREGROUND = 64  # of 255: a pixel above it is part of a stroke


def speckle(videos: np.ndarray) -> np.ndarray:
    """uint8 `[n, T, H, W, 1]` -> float64 `[T]`: per frame, the fraction of foreground
    pixels with at most one foreground 4-neighbour."""
    on = videos[..., 0] > FOREGROUND
    padded = np.pad(on, [(0, 0), (0, 0), (1, 1), (1, 1)])
    neighbours = (
        padded[:, :, :-2, 1:-1].astype(int)
        + padded[:, :, 2:, 1:-1]
        + padded[:, :, 1:-1, :-2]
        + padded[:, :, 1:-1, 2:]
    )
    isolated = (on & (neighbours <= 1)).sum(axis=(0, 2, 3))
    return isolated / np.maximum(on.sum(axis=(0, 2, 3)), 1)


def sharpness(videos: np.ndarray) -> np.ndarray:
    """uint8 `[n, T, H, W, C]` -> float64 `[T]`: mean |neighbour difference| per frame."""
    x = videos.astype(np.float64)
    across = np.abs(np.diff(x, axis=3)).mean(axis=(0, 2, 3, 4))
    down = np.abs(np.diff(x, axis=2)).mean(axis=(0, 2, 3, 4))
    return (across + down) / 2


def sharpness_flicker(videos: np.ndarray) -> float:
    """uint8 `[n, T, H, W, C]` -> the mean over clips of (std over time / mean over
    time) of each frame's sharpness (see `sharpness`)."""
    x = videos.astype(np.float64)
    per_frame = (
        np.abs(np.diff(x, axis=3)).mean(axis=(2, 3, 4))
        + np.abs(np.diff(x, axis=2)).mean(axis=(2, 3, 4))
    ) / 2  # [n, T]
    return float(np.mean(per_frame.std(axis=1) / np.maximum(per_frame.mean(axis=1), 1e-9)))


def frame_table(name: str, videos: np.ndarray) -> None:
    """Prints the per-frame rows of `videos` (uint8 `[n, T, H, W, C]`)."""
    x = videos.astype(np.float64)
    rows = {
        "mean": x.mean(axis=(0, 2, 3, 4)),
        "std": x.std(axis=(0, 2, 3, 4)),
        "sharpness": sharpness(videos),
        "speckle %": 100 * speckle(videos),
    }
    print(f"{name}:")
    for label, values in rows.items():
        print(f"  {label:10s} " + " ".join(f"{v:5.1f}" for v in values))
    print(f"  sharpness flicker (per clip, std / mean over time): {sharpness_flicker(videos):.3f}")


def dither(videos: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each pixel fully on with probability intensity / 255 (uint8 in, uint8 out)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(videos.shape) * 255 < videos, 255, 0).astype(np.uint8)


def critic_logits(workdir: str, sets: dict[str, np.ndarray], batch: int = 8) -> None:
    """Prints the trained critic's mean logit per head on each uint8 set."""
    import jax
    import jax.numpy as jnp

    from vgan_jax.checkpoint import Checkpointer
    from vgan_jax.config import config_from_saved
    from vgan_jax.models.critics import DROPOUT_RNG, FRAMES_RNG
    from vgan_jax.parallel import make_mesh
    from vgan_jax.state import abstract_train_state, build_gan

    checkpointer = Checkpointer(workdir, create=False)
    gan = build_gan(config_from_saved(checkpointer.read_meta()["config"]))
    abstract = abstract_train_state(gan, mesh=make_mesh(1))
    parts = checkpointer.restore_parts({"d_params": abstract.d_params, "d_state": abstract.d_state})
    checkpointer.close()
    variables = {"params": parts["d_params"], **parts["d_state"]}

    @jax.jit
    def heads(videos, key):
        x = videos.astype(jnp.float32) * (2 / 255) - 1
        rngs = {FRAMES_RNG: key, DROPOUT_RNG: key}
        return gan.discriminator.apply(variables, x, rngs=rngs)

    for name, videos in sets.items():
        logits: dict[str, list] = {}
        for i, start in enumerate(range(0, len(videos) - batch + 1, batch)):
            out = heads(jnp.asarray(videos[start : start + batch]), jax.random.key(i))
            for head, value in out.items():
                logits.setdefault(head, []).append(np.asarray(value))
        means = ", ".join(f"{h} {np.mean(np.concatenate(v)):+.2f}" for h, v in logits.items())
        print(f"  critic on {name:14s} {means}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", action="append", required=True, help="a run (repeatable)")
    parser.add_argument("--num", type=int, default=64, help="samples and real clips")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--critic", action="store_true", help="also the critic's logits")
    args = parser.parse_args(argv)

    from vgan_jax.data import load_videos
    from vgan_jax.sampling import TrainedGenerator

    real = None
    for workdir in args.workdir:
        generator = TrainedGenerator(workdir)
        samples = np.concatenate(list(generator.iterate(args.num, args.seed)))
        if real is None:
            real = load_videos(generator.config.data, "test", args.num, 0)
            print(f"per frame, {args.num} videos each (frames 0..{real.shape[1] - 1})")
            frame_table("real test clips", real)
        frame_table(f"{workdir} (step {generator.step})", samples)
        if args.critic:
            sets = {"real": real, "dithered real": dither(real), "samples": samples}
            critic_logits(workdir, sets)


if __name__ == "__main__":
    main()
