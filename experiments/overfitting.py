"""Experiment: does augmentation keep the critic from overfitting a small training set?

    python experiments/overfitting.py --steps 1000 --out runs/overfitting
    python experiments/overfitting.py --preset tiny --steps 4 --fvd_videos 8 \\
        --config.data.frames=16 --out /tmp/overfitting_smoke      # smoke check only

Trains one preset (default: `default`) on `--num_train_clips` clips (default 256, a
40th of Moving MNIST's 10,000) in several arms, the same number of steps each:

  none         no augmentation (the critic sees the clean clips);
  diffaugment  `--augment` at p = 1 (DiffAugment);
  ada          `--augment` with ADA's adaptive p (`--ada_target`, default 0.6).

Then it scores each arm's EMA generator (latest checkpoint) by FVD/KVD against the
*test* split, with the protocol of `vgan-jax eval` (`metrics.real_stats` for the real
statistics, `compute_fvd` on `sampling.iterate_samples`), and prints a table (FVD, KVD,
final augment_p, final r_t) and the r_t curve every arm logged to TensorBoard
(`train/ada_rt` = E[sign(D(real))]: near 1 when the critic recognises every training
clip, ADA's overfitting signal). In the augmented arms r_t is measured on the augmented
reals the critic saw. Everything is also written to `<out>/summary.json`.

Cost: each arm is a full training run (`default`: ~0.65 s/step on 2 CPU cores) and
FVD extracts I3D features of `--fvd_videos` clips per arm plus the real ones once
(~1 video/s on that CPU, so N = 256 takes ~4 minutes per set; real statistics are
cached in `<out>/fvd_cache`). I3D needs clips of at least 9 frames (the `tiny`
preset's 4 are too few: override `--config.data.frames`). Workdirs are kept: running
again with more steps resumes each arm.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import struct
import sys

import numpy as np

ARMS = ("none", "diffaugment", "ada")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """The script's flags, and `--config.a.b=value` overrides applied to every arm."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="default", help="config preset or file")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per arm")
    parser.add_argument("--num_train_clips", type=int, default=256, help="training clips")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"subset of {','.join(ARMS)}")
    parser.add_argument("--augment", default="translation,cutout,color", help="policy")
    parser.add_argument("--ada_target", type=float, default=0.6, help="ADA's r_t target")
    parser.add_argument("--fvd_videos", type=int, default=256, help="clips per FVD side")
    parser.add_argument("--fvd_split", default="test", help="real split FVD compares with")
    parser.add_argument("--fvd_batch_size", type=int, default=16, help="videos per I3D call")
    parser.add_argument("--seed", type=int, default=0, help="seed of samples and real clips")
    parser.add_argument("--curve_rows", type=int, default=20, help="rows of the r_t curve")
    parser.add_argument("--out", default="runs/overfitting", help="folder of the arms' runs")
    rest, overrides = [], []
    for arg in argv:
        if arg.startswith("--config.") and "=" in arg:
            key, _, value = arg[len("--config.") :].partition("=")
            overrides.append((key, value))
        else:
            rest.append(arg)
    args = parser.parse_args(rest)
    unknown = set(args.arms.split(",")) - set(ARMS)
    if unknown:
        parser.error(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")
    return args, overrides


def arm_config(args: argparse.Namespace, overrides: list[tuple[str, str]], arm: str):
    """The preset with the small training set, the step count and the arm's augmentation."""
    from vgan_jax.config import apply_override, load_config

    config = load_config(args.preset)
    config.data.num_train_clips = args.num_train_clips
    config.train.steps = args.steps
    config.train.checkpoint_every = args.steps  # one checkpoint, at the end
    config.train.sample_every = args.steps
    for key, value in overrides:
        apply_override(config, key, value)
    if arm == "none":
        config.train.augment = ""
        config.train.ada_target = 0.0
    else:
        config.train.augment = args.augment
        config.train.augment_p = 1.0
        config.train.ada_target = args.ada_target if arm == "ada" else 0.0
    return config


def read_scalars(logdir: str) -> dict[str, dict[int, float]]:
    """`{tag: {step: value}}` of every scalar in the TensorBoard event files of `logdir`.

    Reads the TFRecord framing directly (u64 length, u32 crc, data, u32 crc) with
    tensorboardX's protos, so no TensorFlow or TensorBoard is needed. Later files win
    (a resumed run rewrites the steps after its checkpoint).
    """
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            while header := f.read(12):
                (length,) = struct.unpack("<Q", header[:8])
                event = Event.FromString(f.read(length))
                f.read(4)
                for value in event.summary.value:
                    if value.WhichOneof("value") == "simple_value":
                        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def evaluate(workdir: str, args: argparse.Namespace, extractor, cache_dir: str) -> dict:
    """FVD/KVD of the run's EMA generator against `--fvd_videos` real clips of the split
    (what `vgan-jax eval` computes, with the real split and cache chosen here)."""
    from vgan_jax.metrics import RealDraw, compute_fvd, real_stats
    from vgan_jax.sampling import iterate_samples, load_run_config

    config = load_run_config(workdir)
    real = real_stats(
        RealDraw(config.data, args.fvd_split, args.fvd_videos, args.seed),
        cache_dir=cache_dir,
        extractor=extractor,
        keep_features=True,
    )
    samples = iterate_samples(workdir, args.fvd_videos, args.seed, args.fvd_batch_size)
    return compute_fvd(
        samples,
        None,
        names=("generated", "real"),
        extractor=extractor,
        stats_b=real,
        progress=True,
        totals=(args.fvd_videos, None),
    )


def _last(values: dict[int, float]) -> float:
    return values[max(values)] if values else float("nan")


def format_table(results: dict[str, dict]) -> str:
    """One row per arm: FVD, KVD, the final p (0 without augmentation) and the last r_t."""
    header = f"{'arm':12} {'FVD':>10} {'KVD':>10} {'final p':>8} {'last r_t':>9}"
    lines = [header]
    for arm, r in results.items():
        lines.append(
            f"{arm:12} {r['fvd']:10.2f} {r['kvd']:10.4g} {r['augment_p']:8.3f} {r['ada_rt']:9.3f}"
        )
    return "\n".join(lines)


def format_curve(curves: dict[str, dict[str, dict[int, float]]], rows: int) -> str:
    """r_t of every arm (and ADA's p) at up to `rows` logged steps, evenly spaced."""
    steps = sorted(set().union(*(c.get("train/ada_rt", {}) for c in curves.values())))
    if not steps:
        return "(no r_t logged)"
    shown = [steps[int(i)] for i in np.unique(np.linspace(0, len(steps) - 1, rows).round())]
    columns = [(f"r_t {arm}", c.get("train/ada_rt", {})) for arm, c in curves.items()]
    if "ada" in curves:
        columns.append(("p ada", curves["ada"].get("train/augment_p", {})))
    lines = [f"{'step':>7} " + " ".join(f"{name:>16}" for name, _ in columns)]
    for step in shown:
        cells = [f"{values[step]:16.3f}" if step in values else f"{'':16}" for _, values in columns]
        lines.append(f"{step:7d} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    from vgan_jax.metrics import I3DFeatureExtractor
    from vgan_jax.train import train

    os.makedirs(args.out, exist_ok=True)
    arms = args.arms.split(",")
    final_p, curves = {}, {}
    for arm in arms:
        print(f"== {arm}: {args.steps} steps on {args.num_train_clips} clips", flush=True)
        workdir = os.path.join(args.out, arm)
        result = train(arm_config(args, overrides, arm), workdir)
        # The state's p is the one a next step would use (the logged augment_p is a
        # mean over a log interval); an arm already trained this far trains no step.
        final_p[arm] = float(result.state.augment_p)
        curves[arm] = read_scalars(os.path.join(workdir, "logs"))

    extractor = I3DFeatureExtractor(batch_size=args.fvd_batch_size)  # compiled once
    cache_dir = os.path.join(args.out, "fvd_cache")
    results = {}
    for arm in arms:
        print(f"== FVD of {arm} vs {args.fvd_videos} {args.fvd_split} clips", flush=True)
        scores = evaluate(os.path.join(args.out, arm), args, extractor, cache_dir)
        results[arm] = {
            "fvd": scores["fvd"],
            "kvd": scores.get("kvd", float("nan")),
            "augment_p": final_p[arm],
            "ada_rt": _last(curves[arm].get("train/ada_rt", {})),
            "protocol": {k: scores[k] for k in ("detector", "frames", "sets") if k in scores},
        }

    print(
        f"\nFVD vs {args.fvd_split} split (N = {args.fvd_videos}), {args.steps} steps on "
        f"{args.num_train_clips} training clips, preset {args.preset!r}"
    )
    print(format_table(results))
    print("\nr_t = E[sign(D(real))] (augmented reals where augmenting), as logged:")
    print(format_curve(curves, args.curve_rows))
    summary = {
        "args": vars(args),
        "overrides": overrides,
        "results": results,
        "curves": {
            arm: {
                tag: {str(s): v for s, v in values.items()}
                for tag, values in c.items()
                if tag in ("train/ada_rt", "train/augment_p", "train/d_loss", "train/g_loss")
            }
            for arm, c in curves.items()
        },
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    print(f"\nwrote {os.path.join(args.out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
