"""FVD of two video sets on disk and of a trained run: the library functions behind
`vgan-jax fvd A B` and `vgan-jax eval --workdir DIR` (`vgan_jax/cli.py` parses their
flags and prints). Bad input raises `VganError` before any feature extraction.
"""

from __future__ import annotations

import json
import os
from typing import Any

from vgan_jax.errors import VganError
from vgan_jax.metrics.distances import resolve_kvd_subset_size
from vgan_jax.metrics.fvd import DEFAULT_FRAMES, DEFAULT_NUM_VIDEOS, VideoSet, compute_fvd

DEFAULT_BATCH_SIZE = 16
DEFAULT_KVD_SUBSETS = 100

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_FRAMES",
    "DEFAULT_KVD_SUBSETS",
    "DEFAULT_NUM_VIDEOS",
    "default_cache_dir",
    "eval_result_path",
    "evaluate_run",
    "format_eval_table",
    "format_fvd_result",
    "fvd_between",
]


def default_cache_dir() -> str:
    """Where real-data statistics are cached: $VGAN_JAX_CACHE or ~/.cache/vgan_jax/fvd."""
    return os.environ.get(
        "VGAN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "vgan_jax", "fvd")
    )


def _mesh(num_devices: int | None):
    from vgan_jax.metrics.i3d import make_mesh

    return make_mesh(num_devices)


def _open_sets(
    path_a: str, path_b: str, frames: int | None, num_videos: int | None
) -> tuple[VideoSet, VideoSet]:
    """Open both sets; a folder takes its clip length from a .npy partner."""
    paths = (path_a, path_b)
    is_npy = [os.path.isfile(p) and p.endswith(".npy") for p in paths]
    sets = {
        p: VideoSet(p, frames=frames, max_videos=num_videos)
        for p, npy in zip(paths, is_npy, strict=True) if npy
    }
    npy_frames = next((s.frames for s in sets.values()), None)
    for p, npy in zip(paths, is_npy, strict=True):
        if not npy:
            sets[p] = VideoSet(p, frames=frames or npy_frames, max_videos=num_videos)
    set_a, set_b = sets[paths[0]], sets[paths[1]]
    if set_a.frames != set_b.frames:
        raise VganError(
            f"{path_a} has {set_a.frames} frames per video but {path_b} has "
            f"{set_b.frames}; FVD compares clips of equal length (videos are not resampled)"
        )
    return set_a, set_b


def fvd_between(
    videos_a: str,
    videos_b: str,
    *,
    frames: int | None = None,
    num_videos: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_devices: int | None = None,
    kvd: bool = True,
    kvd_subsets: int = DEFAULT_KVD_SUBSETS,
    kvd_subset_size: int | None = None,
) -> dict:
    """FVD (and KVD) between two video sets on disk, each a uint8 .npy `[N, T, H, W, C]`
    or a folder of videos (a folder reads `frames` frames per clip, default: the .npy
    partner's T, else `DEFAULT_FRAMES`; videos are never resampled). `num_videos`: only
    the first N of each set. Returns `compute_fvd`'s dict; each set also records its
    `path` and, for a folder with undecodable videos (skipped), `skipped_corrupt`."""
    set_a, set_b = _open_sets(videos_a, videos_b, frames, num_videos)
    if kvd:
        # Folder counts are upper bounds (corrupt videos are skipped), enough to catch
        # an impossible subset size before extraction; the final check is on the features.
        resolve_kvd_subset_size(kvd_subset_size, min(set_a.num_videos, set_b.num_videos))
    result = compute_fvd(
        set_a.batches(batch_size),
        set_b.batches(batch_size),
        names=("a", "b"),
        batch_size=batch_size,
        mesh=_mesh(num_devices),
        kvd=kvd,
        kvd_subsets=kvd_subsets,
        kvd_subset_size=kvd_subset_size,
        progress=True,
        totals=(set_a.num_videos, set_b.num_videos),
    )
    for name, video_set in (("a", set_a), ("b", set_b)):
        result["sets"][name]["path"] = os.path.abspath(video_set.path)
        if video_set.skipped:
            result["sets"][name]["skipped_corrupt"] = len(video_set.skipped)
    return result


def format_fvd_result(result: dict) -> str:
    """`fvd_between`'s result as three lines: FVD, KVD and the protocol."""
    lines = [f"FVD: {result['fvd']:.4f}"]
    if "kvd" in result:
        lines.append(f"KVD: {result['kvd']:.6f} ± {result['kvd_std']:.6f}")
    sets = ", ".join(
        f"{name}: {info['num_videos']} videos {info['resolution'][0]}x{info['resolution'][1]}"
        for name, info in result["sets"].items()
    )
    lines.append(f"({result['frames']} frames; {sets}; detector {result['detector']})")
    return "\n".join(lines)


def eval_result_path(workdir: str, num_videos: int, seed: int) -> str:
    """Where `evaluate_run` writes its result: `<workdir>/fvd_n{N}_seed{seed}.json`."""
    return os.path.join(workdir, f"fvd_n{num_videos}_seed{seed}.json")


def evaluate_run(
    workdir: str,
    *,
    num_videos: int = DEFAULT_NUM_VIDEOS,
    seed: int = 0,
    real_seed: int = 0,
    split: str = "train",
    cache_dir: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_devices: int | None = None,
    kvd: bool = True,
    kvd_subsets: int = DEFAULT_KVD_SUBSETS,
    kvd_subset_size: int | None = None,
    baselines: bool = False,
) -> dict:
    """FVD (and KVD) of a run's EMA generator (latest checkpoint) against its dataset.

    `num_videos` generated videos of sampling seed `seed` against as many real clips of
    `split` drawn with `real_seed` (their I3D statistics cached under `cache_dir`,
    default `default_cache_dir()`). `baselines`: also score, at the same protocol, other
    real clips, real clips shuffled in time and real clips with the first frame frozen.
    Writes the result to `eval_result_path(...)` and returns it; progress goes to stderr.
    """
    from vgan_jax.metrics.baselines import baseline_fvds
    from vgan_jax.metrics.fvd import _check_min_frames
    from vgan_jax.metrics.training_hook import RealDraw, real_stats
    from vgan_jax.sampling import iterate_samples, load_run_config

    # Cheap checks, before minutes of sampling and feature extraction.
    if not os.path.isdir(workdir):
        raise VganError(f"--workdir {workdir}: no such directory")
    if num_videos < 2:
        raise VganError(f"--num_videos must be >= 2 (FVD needs a covariance), got {num_videos}")
    if kvd:
        resolve_kvd_subset_size(kvd_subset_size, num_videos)
    config = load_run_config(workdir)
    from vgan_jax.metrics.i3d import I3DFeatureExtractor

    extractor = I3DFeatureExtractor(batch_size=batch_size, mesh=_mesh(num_devices))
    _check_min_frames(int(config.data.frames), "the run's clips", extractor)
    cache_dir = cache_dir or default_cache_dir()
    draw = RealDraw(config.data, split, num_videos, real_seed)
    real = real_stats(draw, cache_dir=cache_dir, extractor=extractor, keep_features=kvd)
    samples = iterate_samples(workdir, num_videos, seed, batch_size)
    kvd_options = {"kvd": kvd, "kvd_subsets": kvd_subsets, "kvd_subset_size": kvd_subset_size}
    result = compute_fvd(
        samples, None, names=("generated", "real"), extractor=extractor, stats_b=real,
        progress=True, totals=(num_videos, None), **kvd_options,
    )
    result["sets"]["generated"].update(
        {"source": "EMA generator, latest checkpoint", "seed": seed}
    )
    result["workdir"] = os.path.abspath(workdir)
    if baselines:
        result["baselines"] = baseline_fvds(
            draw, cache_dir, extractor, real=real, **kvd_options
        )
    _write_json(eval_result_path(workdir, num_videos, seed), result)
    return result


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
