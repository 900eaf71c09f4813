"""CLI glue for `vgan-jax fvd A B` and `vgan-jax eval --workdir DIR`.

`vgan_jax/cli.py` registers these as subcommands; each `run_*` returns an exit status
and lets `VganError` propagate (the CLI prints it as `error: ...` and exits 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from vgan_jax.errors import VganError
from vgan_jax.metrics.distances import resolve_kvd_subset_size
from vgan_jax.metrics.fvd import DEFAULT_FRAMES, DEFAULT_NUM_VIDEOS, VideoSet, compute_fvd

DEFAULT_BATCH_SIZE = 16


def default_cache_dir() -> str:
    """Where real-data statistics are cached: $VGAN_JAX_CACHE or ~/.cache/vgan_jax/fvd."""
    return os.environ.get(
        "VGAN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "vgan_jax", "fvd")
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
        help="videos per I3D call, across all devices (rounded up to a multiple of them)",
    )
    parser.add_argument(
        "--num_devices", type=int, default=None, help="devices on the mesh (default: all)"
    )
    parser.add_argument("--no_kvd", action="store_true", help="skip KVD")
    parser.add_argument("--kvd_subsets", type=int, default=100, help="KVD random subsets")
    parser.add_argument(
        "--kvd_subset_size", type=int, default=None,
        help="videos per KVD subset (default min(1000, N // 2), N the smaller set; "
        "must be below N so the random subsets differ)",
    )


def add_fvd_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `vgan-jax fvd A B`."""
    parser.add_argument("videos_a", help="uint8 .npy [N, T, H, W, C] or a folder of videos")
    parser.add_argument("videos_b", help="uint8 .npy [N, T, H, W, C] or a folder of videos")
    parser.add_argument(
        "--frames", type=int, default=None,
        help=f"frames per clip read from folders (default: the .npy set's T, else "
        f"{DEFAULT_FRAMES}); videos are never resampled",
    )
    parser.add_argument(
        "--num_videos", type=int, default=None, help="use only the first N videos of each set"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_common(parser)


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    print(f"FVD: {result['fvd']:.4f}")
    if "kvd" in result:
        print(f"KVD: {result['kvd']:.6f} ± {result['kvd_std']:.6f}")
    sets = ", ".join(
        f"{name}: {info['num_videos']} videos {info['resolution'][0]}x{info['resolution'][1]}"
        for name, info in result["sets"].items()
    )
    print(f"({result['frames']} frames; {sets}; detector {result['detector']})")


def _mesh(num_devices: int | None):
    from vgan_jax.metrics.i3d import make_mesh

    return make_mesh(num_devices)


def _open_sets(args: argparse.Namespace) -> tuple[VideoSet, VideoSet]:
    """Open both sets; a folder takes its clip length from a .npy partner."""
    paths = (args.videos_a, args.videos_b)
    is_npy = [os.path.isfile(p) and p.endswith(".npy") for p in paths]
    sets = {
        p: VideoSet(p, frames=args.frames, max_videos=args.num_videos)
        for p, npy in zip(paths, is_npy, strict=True) if npy
    }
    npy_frames = next((s.frames for s in sets.values()), None)
    for p, npy in zip(paths, is_npy, strict=True):
        if not npy:
            sets[p] = VideoSet(p, frames=args.frames or npy_frames, max_videos=args.num_videos)
    set_a, set_b = sets[paths[0]], sets[paths[1]]
    if set_a.frames != set_b.frames:
        raise VganError(
            f"{args.videos_a} has {set_a.frames} frames per video but {args.videos_b} has "
            f"{set_b.frames}; FVD compares clips of equal length (videos are not resampled)"
        )
    return set_a, set_b


def run_fvd(args: argparse.Namespace) -> int:
    """`vgan-jax fvd A B`: print FVD (and KVD) between two video sets."""
    set_a, set_b = _open_sets(args)
    if not args.no_kvd:
        # Folder counts are upper bounds (corrupt videos are skipped), enough to catch
        # an impossible subset size before extraction; the final check is on the features.
        resolve_kvd_subset_size(args.kvd_subset_size, min(set_a.num_videos, set_b.num_videos))
    result = compute_fvd(
        set_a.batches(args.batch_size),
        set_b.batches(args.batch_size),
        names=("a", "b"),
        batch_size=args.batch_size,
        mesh=_mesh(args.num_devices),
        kvd=not args.no_kvd,
        kvd_subsets=args.kvd_subsets,
        kvd_subset_size=args.kvd_subset_size,
        progress=True,
        totals=(set_a.num_videos, set_b.num_videos),
    )
    for name, video_set in (("a", set_a), ("b", set_b)):
        result["sets"][name]["path"] = os.path.abspath(video_set.path)
        if video_set.skipped:
            result["sets"][name]["skipped_corrupt"] = len(video_set.skipped)
            print(
                f"warning: skipped {len(video_set.skipped)} undecodable videos in "
                f"{video_set.path}",
                file=sys.stderr,
            )
    _print_result(result, args.json)
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `vgan-jax eval --workdir DIR`."""
    parser.add_argument("--workdir", required=True, help="a training run's directory")
    parser.add_argument(
        "--num_videos", type=int, default=DEFAULT_NUM_VIDEOS,
        help=f"generated and real clips each (default {DEFAULT_NUM_VIDEOS}, as StyleGAN-V)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    parser.add_argument("--real_seed", type=int, default=0, help="seed of the real clip draw")
    parser.add_argument("--split", default="train", help="real split (StyleGAN-V: train)")
    parser.add_argument(
        "--cache_dir", default=None,
        help="real-statistics cache (default $VGAN_JAX_CACHE or ~/.cache/vgan_jax/fvd)",
    )
    parser.add_argument(
        "--baselines", action="store_true",
        help="also score, at the same protocol: N other real clips (real vs real), real "
        "clips shuffled in time, and real clips with the first frame frozen (cached)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON result instead of a table"
    )
    _add_common(parser)


def _check_eval_args(args: argparse.Namespace) -> None:
    """Cheap checks, before minutes of sampling and feature extraction."""
    if not os.path.isdir(args.workdir):
        raise VganError(f"--workdir {args.workdir}: no such directory")
    if args.num_videos < 2:
        raise VganError(
            f"--num_videos must be >= 2 (FVD needs a covariance), got {args.num_videos}"
        )
    if not args.no_kvd:
        resolve_kvd_subset_size(args.kvd_subset_size, args.num_videos)


def run_eval(args: argparse.Namespace) -> int:
    """`vgan-jax eval`: FVD of a run's EMA generator against its dataset.

    Writes `fvd_n{N}_seed{seed}.json` into the workdir (with `baselines` if asked) and
    prints a table of the scores (the JSON with --json). Progress goes to stderr.
    """
    from vgan_jax.metrics.baselines import baseline_fvds
    from vgan_jax.metrics.fvd import _check_min_frames
    from vgan_jax.metrics.training_hook import real_stats
    from vgan_jax.sampling import iterate_samples, load_run_config

    _check_eval_args(args)
    config = load_run_config(args.workdir)
    mesh = _mesh(args.num_devices)
    from vgan_jax.metrics.i3d import I3DFeatureExtractor

    extractor = I3DFeatureExtractor(batch_size=args.batch_size, mesh=mesh)
    _check_min_frames(int(config.data.frames), "the run's clips", extractor)
    kvd = not args.no_kvd
    cache_dir = args.cache_dir or default_cache_dir()
    real = real_stats(
        config.data, args.split, args.num_videos, args.real_seed,
        cache_dir=cache_dir, extractor=extractor, keep_features=kvd,
    )
    samples = iterate_samples(args.workdir, args.num_videos, args.seed, args.batch_size)
    kvd_options = {
        "kvd": kvd, "kvd_subsets": args.kvd_subsets, "kvd_subset_size": args.kvd_subset_size,
    }
    result = compute_fvd(
        samples, None, names=("generated", "real"), extractor=extractor, stats_b=real,
        progress=True, totals=(args.num_videos, None), **kvd_options,
    )
    result["sets"]["generated"].update(
        {"source": "EMA generator, latest checkpoint", "seed": args.seed}
    )
    result["workdir"] = os.path.abspath(args.workdir)
    if args.baselines:
        result["baselines"] = baseline_fvds(
            config.data, args.split, args.num_videos, args.real_seed, cache_dir, extractor,
            real=real, **kvd_options,
        )
    out_path = os.path.join(args.workdir, f"fvd_n{args.num_videos}_seed{args.seed}.json")
    _write_json(out_path, result)
    if args.json:
        _print_result(result, as_json=True)
    else:
        print(format_eval_table(result))
    print(f"wrote {out_path}", file=sys.stderr)
    return 0


def format_eval_table(result: dict) -> str:
    """The model's FVD/KVD and its baselines (if any) as a small aligned text table."""
    from vgan_jax.metrics.baselines import BASELINE_LABELS

    rows = [("generated (EMA)", result)]
    rows += [
        (BASELINE_LABELS.get(kind, kind), scores)
        for kind, scores in result.get("baselines", {}).items()
    ]
    width = max(len(label) for label, _ in rows)
    has_kvd = "kvd" in result
    header = f"{'':{width}}  {'FVD':>10}"
    lines = [header + (f"  {'KVD':>10} ± std over subsets" if has_kvd else "")]
    for label, scores in rows:
        line = f"{label:{width}}  {scores['fvd']:10.3f}"
        if has_kvd:
            line += f"  {scores['kvd']:>10.4g} ± {scores['kvd_std']:.3g}"
        if scores.get("disjoint_from_reference") is False:
            line += "  (clips overlap the reference: reads low)"
        lines.append(line)
    real = result["sets"]["real"]
    protocol = (
        f"N = {real['num_videos']}, {result['frames']} frames, "
        f"{real['resolution'][0]}x{real['resolution'][1]}, split {real.get('split')!r}"
    )
    if has_kvd:
        protocol += f", KVD {result['kvd_subsets']} subsets of {result['kvd_subset_size']}"
    lines.append(f"({protocol}; detector {result['detector']})")
    return "\n".join(lines)


def _write_json(path: str, result: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
