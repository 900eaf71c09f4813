"""Training-step benchmark: seconds per step, videos/s and achieved FLOP/s.

FLOPs come from XLA's cost analysis of the compiled step (one D and one G Adam
update), so the FLOP/s figure counts what the device actually executed.

    python experiments/benchmark_train_step.py                      # default + gpu presets
    python experiments/benchmark_train_step.py --preset default --steps 5
    python experiments/benchmark_train_step.py --preset default --set model.width=16

Prints one line per preset; copy the figures into README.md.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from vgan_jax.config import apply_override, load_config
from vgan_jax.parallel import global_batch, make_mesh
from vgan_jax.state import build_gan, count_params, create_train_state
from vgan_jax.train_step import make_train_step


def compiled_flops(compiled) -> float:
    """FLOPs of one call according to XLA's cost analysis (0 if unavailable)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax returns one dict per computation
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def benchmark(config, steps: int, warmup: int = 1) -> dict:
    mesh = make_mesh(config.mesh.num_devices)
    gan = build_gan(config)
    state = create_train_state(gan, config.seed, mesh)
    step_fn = make_train_step(gan, mesh)
    shape = (config.train.batch_size, *gan.video_shape.as_array_shape())
    rng = np.random.default_rng(0)
    batch = global_batch(
        {
            "video": rng.uniform(-1, 1, shape).astype(np.float32),
            "label": np.zeros(shape[0], np.int32),
        },
        mesh,
    )
    start = time.perf_counter()
    compiled = step_fn.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    flops = compiled_flops(compiled)
    for _ in range(warmup):
        state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    # cost_analysis is per device program under shard_map: scale by the device count.
    total_flops = flops * mesh.devices.size
    return dict(
        g_params=count_params(state.g_params),
        d_params=count_params(state.d_params),
        devices=mesh.devices.size,
        batch=config.train.batch_size,
        video=shape[1:],
        compile_s=compile_s,
        s_per_step=seconds,
        videos_per_s=config.train.batch_size / seconds,
        gflop_per_step=total_flops / 1e9,
        gflop_per_s=total_flops / 1e9 / seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="preset name or config file (repeatable)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="override, e.g. model.width=16")
    args = parser.parse_args()
    presets = args.preset or ["default", "gpu"]
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} x{jax.device_count()}")
    for preset in presets:
        config = load_config(preset)
        for item in args.set:
            key, _, value = item.partition("=")
            apply_override(config, key, value)
        r = benchmark(config, args.steps)
        print(
            f"{preset:>10}: {config.model.name} G {r['g_params'] / 1e6:.2f}M + D "
            f"{r['d_params'] / 1e6:.2f}M params, batch {r['batch']} x {r['video']}, "
            f"{r['devices']} device(s): {r['s_per_step']:.3f} s/step, "
            f"{r['videos_per_s']:.1f} videos/s, {r['gflop_per_step']:.1f} GFLOP/step, "
            f"{r['gflop_per_s']:.1f} GFLOP/s (compile {r['compile_s']:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
