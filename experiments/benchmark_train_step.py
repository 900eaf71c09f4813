"""Training-step benchmark: seconds per step, videos/s and achieved FLOP/s.

FLOPs come from XLA's cost analysis of the compiled step (one D and one G Adam
update), so the FLOP/s figure counts what the device actually executed.

    python experiments/benchmark_train_step.py                      # default + gpu presets
    python experiments/benchmark_train_step.py --preset default --steps 5
    python experiments/benchmark_train_step.py --preset default --set model.width=16
    python experiments/benchmark_train_step.py --peer               # vs PyTorch, see below

Prints one line per preset; copy the figures into README.md.

`--peer` measures vgan_jax against the PyTorch peer (`peer_pytorch_gan.py`, a
textbook ConvTranspose3d / strided Conv3d DCGAN; needs `pip install
torch==2.13.0`) at the issue's shapes: batch 16 x 16x64x64x1, width 32, one D and
one G Adam step. vgan_jax runs the `default` preset at 64x64 with the video critic
only (`data.resolution=64`, `model.d_image_frames=0`; extra `--set`s apply on
top). The two alternate, each in its own subprocess (so they never share a thread
pool or a warm cache), `--repeats` times; the machine's load shows up in both.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
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


# The reference shapes on the vgan_jax side of `--peer`.
PEER_PRESET = "default"
PEER_OVERRIDES = ("data.resolution=64", "model.d_image_frames=0")
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_pytorch_gan.py")


def _run(command: list[str]) -> tuple[str, float]:
    """Runs one side in a fresh process; its output line and its s/step."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if "s/step" in line]
    if done.returncode or not lines:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    seconds = float(re.search(r"([0-9.]+) s/step", lines[-1]).group(1))
    return lines[-1], seconds


def compare_with_peer(args) -> None:
    """vgan_jax and the PyTorch peer back to back, `args.repeats` times each."""
    overrides = [*PEER_OVERRIDES, *args.set]
    ours = [sys.executable, os.path.abspath(__file__), "--preset", PEER_PRESET]
    ours += ["--steps", str(args.steps)]
    for item in overrides:
        ours += ["--set", item]
    peer = [sys.executable, PEER_SCRIPT, "--steps", str(args.steps)]
    if args.peer_spectral_norm:
        peer.append("--spectral-norm")
    config = load_config(PEER_PRESET)
    for item in overrides:
        key, _, value = item.partition("=")
        apply_override(config, key, value)
    m = config.model
    print(
        f"vgan_jax: preset {PEER_PRESET!r} with {', '.join(overrides)}: {m.name}, generator "
        f"of stride-1 convs + depth-to-space ({m.get('g_upsample', '?')} upsampling, "
        f"{m.g_norm} norm, time padding {m.get('g_time_padding', 'zeros')}), critic of "
        f"space-to-depth + stride-1 convs "
        f"(video head{' + image head' if m.d_image_frames else ' only'}, spectral norm "
        f"{'on' if m.d_spectral_norm else 'off'}, minibatch-std group "
        f"{m.d_minibatch_std_group}), loss {config.train.loss}, R1 {config.train.r1_gamma}, "
        f"EMA of G, non-finite guard\n"
        f"pytorch:  {os.path.basename(PEER_SCRIPT)}"
        f"{' --spectral-norm' if args.peer_spectral_norm else ''} (see its docstring)\n"
        f"{args.steps} timed steps after 1 warmup on each side, alternating subprocesses; "
        f"the machine's other load is in both",
        flush=True,
    )
    times: dict[str, list[float]] = {"vgan_jax": [], "pytorch": []}
    for _ in range(args.repeats):
        for name, command in (("vgan_jax", ours), ("pytorch", peer)):
            line, seconds = _run(command)
            times[name].append(seconds)
            print(line, flush=True)
    for name, values in times.items():
        print(f"{name:>10}: " + ", ".join(f"{v:.3f}" for v in values) + " s/step")
    ratio = min(times["pytorch"]) / min(times["vgan_jax"])
    print(f"best of each: vgan_jax is {ratio:.2f}x the speed of the PyTorch peer", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="preset name or config file (repeatable)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="override, e.g. model.width=16")
    parser.add_argument(
        "--peer", action="store_true", help="vgan_jax vs the PyTorch peer at the issue's shapes"
    )
    parser.add_argument("--repeats", type=int, default=2, help="--peer: rounds of both")
    parser.add_argument(
        "--peer-spectral-norm", action="store_true", help="--peer: spectral norm in its critic"
    )
    args = parser.parse_args()
    if args.peer:
        compare_with_peer(args)
        return
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
