"""Benchmark: I3D throughput and FVD wall time on whatever devices JAX sees.

    python experiments/benchmark_fvd.py --num_videos 2048 --batch_size 64  # GPU / TPU
    python experiments/benchmark_fvd.py --preset gpu128 --num_videos 256  # a preset's clips
    python experiments/benchmark_fvd.py --num_videos 16 --batch_size 8   # a small CPU

`--preset` takes the clip shape (frames, resolution, channels) from a training preset;
`--frames/--resolution/--channels` override it. There is no dtype flag: FVD's I3D runs
in float32 by protocol (see vgan_jax/metrics/i3d.py), whatever the training used.

Prints:
- I3D videos/s (steady state: `--steps` batches after compilation, host transfer
  included) for clips of `--frames` frames at `--resolution`, resized to 224x224 on
  device;
- FVD wall time, measured, for N generated vs N real clips (feature extraction of
  2N videos + statistics + Fréchet + KVD), compilation included and excluded;
- the host-side distance time measured directly at `--extrapolate_to` clips (random
  400-d features), and the FVD wall time at that N *extrapolated* from the measured
  throughput (labelled as such).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from vgan_jax.config import load_config
from vgan_jax.metrics import I3DFeatureExtractor, compute_fvd, make_mesh
from vgan_jax.metrics.distances import frechet_distance, kernel_distance
from vgan_jax.metrics.stats import FeatureStats


def random_videos(num: int, frames: int, resolution: int, channels: int, seed: int):
    return np.random.default_rng(seed).integers(
        0, 256, (num, frames, resolution, resolution, channels), dtype=np.uint8
    )


def distance_seconds(num: int, kvd_subsets: int, seed: int = 0) -> float:
    """Host time of statistics + Fréchet + KVD for `num` vs `num` 400-d features."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(num, 400)), rng.normal(size=(num, 400))
    start = time.perf_counter()
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    frechet_distance(sa.mean, sa.cov, sb.mean, sb.cov)
    kernel_distance(sa.features, sb.features, num_subsets=kvd_subsets)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_videos", type=int, default=256, help="N per side, measured")
    parser.add_argument("--extrapolate_to", type=int, default=2048, help="N to extrapolate to")
    parser.add_argument("--preset", default=None, help="take the clip shape from this preset")
    parser.add_argument("--frames", type=int, default=None, help="default 16 (or the preset's)")
    parser.add_argument("--resolution", type=int, default=None, help="default 64 (or preset's)")
    parser.add_argument("--channels", type=int, default=None, help="default 3 (or the preset's)")
    parser.add_argument("--batch_size", type=int, default=32, help="global videos per I3D call")
    parser.add_argument("--steps", type=int, default=3, help="timed I3D batches")
    parser.add_argument("--num_devices", type=int, default=None)
    parser.add_argument("--kvd_subsets", type=int, default=100)
    args = parser.parse_args()
    shape = dict(frames=16, resolution=64, channels=3)
    if args.preset:
        data = load_config(args.preset).data
        shape = dict(frames=data.frames, resolution=data.resolution, channels=data.channels)
    for key in shape:
        if getattr(args, key) is not None:
            shape[key] = getattr(args, key)
    args.frames, args.resolution, args.channels = (
        shape["frames"],
        shape["resolution"],
        shape["channels"],
    )

    mesh = make_mesh(args.num_devices)
    devices = mesh.devices.ravel()
    print(
        f"jax {jax.__version__}, devices: {len(devices)} x {devices[0].device_kind} "
        f"({jax.default_backend()})"
    )
    print(
        f"clips: {args.frames} frames, {args.resolution}x{args.resolution}x{args.channels}, "
        f"batch {args.batch_size}"
    )

    extractor = I3DFeatureExtractor(batch_size=args.batch_size, mesh=mesh)
    batch = random_videos(extractor.batch_size, args.frames, args.resolution, args.channels, 0)
    start = time.perf_counter()
    extractor(batch)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        extractor(batch)
    step_s = (time.perf_counter() - start) / args.steps
    videos_per_s = extractor.batch_size / step_s
    print(f"I3D compile + first batch: {compile_s:.1f} s")
    print(
        f"I3D throughput (measured, {args.steps} batches of {extractor.batch_size}, float32): "
        f"{videos_per_s:.2f} videos/s"
    )

    n = args.num_videos
    generated = random_videos(n, args.frames, args.resolution, args.channels, 1)
    real = random_videos(n, args.frames, args.resolution, args.channels, 2)
    # A fresh extractor: this wall time includes compilation, as a user's first call does.
    start = time.perf_counter()
    result = compute_fvd(
        generated, real, batch_size=args.batch_size, mesh=mesh, kvd_subsets=args.kvd_subsets
    )
    fvd_s = time.perf_counter() - start
    print(f"FVD N={n} vs {n} (measured, incl. compile): {fvd_s:.1f} s  (fvd={result['fvd']:.2f})")
    print(f"FVD N={n} vs {n} (measured, excl. compile): {fvd_s - compile_s:.1f} s (approx.)")

    big = args.extrapolate_to
    host_s = distance_seconds(big, args.kvd_subsets)
    print(f"statistics + Frechet + KVD at N={big} (measured, random features): {host_s:.1f} s")
    if big != n:
        est = 2 * big / videos_per_s + host_s + compile_s
        print(
            f"FVD N={big} vs {big} (EXTRAPOLATED from {videos_per_s:.2f} videos/s + measured "
            f"host time + compile): {est:.0f} s = {est / 60:.1f} min"
        )


if __name__ == "__main__":
    main()
