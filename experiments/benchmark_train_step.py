"""Training-step benchmark: s/step, videos/s, model TFLOP/s and MFU.

FLOPs come from XLA's cost analysis of the compiled step (one D and one G Adam
update), so they count what the device executes. MFU ("model FLOPs utilisation") is
model FLOP/s over the devices' dense peak for the compute dtype (`PEAK_TFLOPS`);
with `model.remat=stage` the model FLOPs are those of the same step without
rematerialisation (the recomputation is work the device does, not model work), and
the executed FLOPs are printed beside them. On CPU there is no peak table: GFLOP/s only.

    python experiments/benchmark_train_step.py                      # default + gpu presets
    python experiments/benchmark_train_step.py --zoo                # every model, 2 shapes
    python experiments/benchmark_train_step.py --preset default --model all
    python experiments/benchmark_train_step.py --preset gpu --model dcgan --model vgan \\
        --dtype bfloat16 --dtype float32 --batch 64 --steps 20
    python experiments/benchmark_train_step.py --preset gpu128 --compile-only --conv xla
    python experiments/benchmark_train_step.py --preset default --set model.width=16
    python experiments/benchmark_train_step.py --peer               # vs PyTorch, see below
    python experiments/benchmark_train_step.py --peer --peer-model mocogan

Prints one line per (preset, shape, model, dtype, remat); copy the figures into README.md
with the device and jax version the first line names. `--model all` runs every
registered model; `--zoo` is the issue's model table: every registered model at the
`default` preset's shapes (batch 8 x 16x32x32x1) and at 64x64x16, batch 16 (the same
preset with `data.resolution=64`, `train.batch_size=16`), each model with the preset's
other settings (both critic heads, spectral norm, minibatch-std, EMA).

`--compile-only` compiles the step for abstract inputs (nothing is allocated or run)
and prints its FLOPs and XLA's memory analysis: how a preset's memory changes with
`--set model.remat=stage`, checked on a machine without the accelerator (`--conv xla`
compiles the accelerators' convolution path instead of the CPU's im2col; on CPU the
memory figures are XLA:CPU's, a guide to the GPU's, not the same number).

`--peer` measures vgan_jax against a PyTorch peer (needs `pip install torch==2.13.0`)
at the issue's shapes: batch 16 x 16x64x64x1, width 32, one D and one G Adam step.
`--peer-model dcgan` (the default): `peer_pytorch_gan.py`, a textbook ConvTranspose3d
/ strided Conv3d DCGAN, against the `default` preset's dcgan at 64x64 with the video
critic only and no full-resolution output conv, as the textbook model (`data.resolution=64`,
`train.batch_size=16`, `model.d_image_frames=0`, `model.g_output_conv=0`, and width 32
for G and D: `model.width=32`, `model.d_width=0`). `--peer-model
mocogan`: `peer_pytorch_mocogan.py` (GRUCell loop, ConvTranspose2d image generator,
Conv2d image critic on 8 frames, Conv3d (1, 2, 2) video critic) against the `default`
preset's mocogan at 64x64, batch 16, width 32 (`model.name=mocogan`,
`data.resolution=64`, `train.batch_size=16`, and the same width settings). Neither
peer has an R1 penalty, so both vgan_jax sides run without it (`train.r1_gamma=0`);
everything else of the step stays (EMA of G, spectral norm, minibatch-std, the
non-finite guard). Extra
`--set`s apply on top, on the vgan_jax side only. The two alternate, each in its own
subprocess (so they never share a thread pool or a warm cache), `--repeats` times; the
machine's load shows up in both.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import time

import jax
import numpy as np

from vgan_jax.config import apply_override, load_config
from vgan_jax.models import known_models, layers
from vgan_jax.parallel import global_batch, make_mesh
from vgan_jax.state import abstract_train_state, build_gan, count_params, create_train_state
from vgan_jax.train_step import make_train_step

# Dense (no sparsity) peak TFLOP/s of one JAX device, by compute dtype. "float32" is
# float32 inputs at JAX's default matmul precision: TF32 tensor cores on NVIDIA
# Ampere/Hopper, one bfloat16 pass on TPU (so it equals the bfloat16 peak there); a
# run with --config precision "highest" would get far less. Sources: NVIDIA's H100 /
# H200 / A100 datasheets (SXM figures; PCIe/NVL parts listed apart), Google Cloud's TPU
# system-architecture pages (per chip; one JAX device per chip on v4, v5e, v5p, v6e).
# Matched in order against the lower-cased `device_kind`.
PEAK_TFLOPS: tuple[tuple[str, tuple[str, ...], dict[str, float]], ...] = (
    ("H100 PCIe", ("h100 pcie",), {"bfloat16": 756.0, "float32": 378.0}),
    ("H100 NVL", ("h100 nvl",), {"bfloat16": 835.0, "float32": 417.5}),
    ("H100 SXM", ("h100",), {"bfloat16": 989.4, "float32": 494.7}),
    ("H200 NVL", ("h200 nvl",), {"bfloat16": 835.0, "float32": 417.5}),
    ("H200 SXM", ("h200",), {"bfloat16": 989.4, "float32": 494.7}),
    ("A100", ("a100",), {"bfloat16": 312.0, "float32": 156.0}),
    ("TPU v6e", ("v6 lite", "v6e"), {"bfloat16": 918.0, "float32": 918.0}),
    ("TPU v5e", ("v5 lite", "v5e", "v5litepod"), {"bfloat16": 197.0, "float32": 197.0}),
    ("TPU v5p", ("v5p", "tpu v5"), {"bfloat16": 459.0, "float32": 459.0}),
    ("TPU v4", ("v4",), {"bfloat16": 275.0, "float32": 275.0}),
)


def device_peak(device_kind: str, dtype: str) -> tuple[str, float] | None:
    """`(name, peak TFLOP/s per device)` for a JAX `device_kind` and compute dtype
    ('float32' | 'bfloat16'); None for devices not in `PEAK_TFLOPS` (CPUs)."""
    kind = device_kind.lower()
    for name, patterns, peaks in PEAK_TFLOPS:
        if any(p in kind for p in patterns):
            return name, peaks[dtype]
    return None


def compiled_flops(compiled) -> float:
    """FLOPs of one call according to XLA's cost analysis (0 if unavailable)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax returns one dict per computation
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def compiled_memory(compiled) -> dict[str, float]:
    """XLA's memory analysis of one device's program, in GiB (empty if unavailable):
    arguments (the state and batch), outputs, temporaries (activations kept for the
    backward pass and scratch), and their peak sum with aliasing (donated state)."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return {}
    if analysis is None:
        return {}
    gib = 1024.0**3
    fields = {
        "arguments": "argument_size_in_bytes",
        "outputs": "output_size_in_bytes",
        "temporaries": "temp_size_in_bytes",
        "aliased": "alias_size_in_bytes",
    }
    out = {k: getattr(analysis, f, 0) / gib for k, f in fields.items()}
    out["total"] = out["arguments"] + out["outputs"] + out["temporaries"] - out["aliased"]
    return out


def _abstract_inputs(gan, config, mesh):
    """Shapes of (state, batch) for lowering without allocating anything."""
    state = abstract_train_state(gan, config.seed, mesh)
    shape = (config.train.batch_size, *gan.video_shape.as_array_shape())
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    batch = {
        "video": jax.ShapeDtypeStruct(shape, np.float32, sharding=sharding),
        "label": jax.ShapeDtypeStruct(shape[:1], np.int32, sharding=sharding),
    }
    return state, batch


def _model_flops(config, mesh) -> float:
    """FLOPs of the step without rematerialisation (compiled, not run)."""
    plain = config.copy_and_resolve_references()
    plain.model.remat = "none"
    gan = build_gan(plain)
    lowered = make_train_step(gan, mesh).lower(*_abstract_inputs(gan, plain, mesh))
    return compiled_flops(lowered.compile())


def benchmark(config, steps: int, warmup: int = 1, compile_only: bool = False) -> dict:
    """Compiles (and unless `compile_only`, runs) the train step for `config`.

    Returns sizes, compile time, FLOPs per step (executed and model, for all devices),
    memory per device and, when run, s/step and videos/s."""
    mesh = make_mesh(config.mesh.num_devices)
    gan = build_gan(config)
    step_fn = make_train_step(gan, mesh)
    abstract_state, abstract_batch = _abstract_inputs(gan, config, mesh)
    start = time.perf_counter()
    compiled = step_fn.lower(abstract_state, abstract_batch).compile()
    compile_s = time.perf_counter() - start
    # cost_analysis is per device program under shard_map: scale by the device count.
    executed = compiled_flops(compiled) * mesh.devices.size
    model = executed
    if (config.model.get("remat") or "none") != "none":
        model = _model_flops(config, mesh) * mesh.devices.size
    result = dict(
        g_params=count_params(abstract_state.g_params),
        d_params=count_params(abstract_state.d_params),
        devices=mesh.devices.size,
        device_kind=mesh.devices.ravel()[0].device_kind,
        batch=config.train.batch_size,
        video=tuple(abstract_batch["video"].shape[1:]),
        compile_s=compile_s,
        executed_flops=executed,
        model_flops=model,
        memory=compiled_memory(compiled),
    )
    if compile_only:
        return result
    state = create_train_state(gan, config.seed, mesh)
    rng = np.random.default_rng(0)
    shape = (config.train.batch_size, *gan.video_shape.as_array_shape())
    batch = global_batch(
        {
            "video": rng.uniform(-1, 1, shape).astype(np.float32),
            "label": np.zeros(shape[0], np.int32),
        },
        mesh,
    )
    for _ in range(warmup):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    result.update(s_per_step=seconds, videos_per_s=config.train.batch_size / seconds)
    return result


def format_result(label: str, config, r: dict) -> str:
    """One line: sizes, speed, FLOP rate, MFU against the device's peak (if known)."""
    dtype = config.train.compute_dtype
    text = (
        f"{label}: G {r['g_params'] / 1e6:.2f}M + D {r['d_params'] / 1e6:.2f}M params, "
        f"{dtype}, remat {config.model.get('remat') or 'none'}, batch {r['batch']} x "
        f"{r['video']}, {r['devices']} device(s): "
    )
    gflop = r["model_flops"] / 1e9
    flops_text = f"{gflop:.1f} model GFLOP/step"
    if r["executed_flops"] != r["model_flops"]:
        flops_text += f" ({r['executed_flops'] / 1e9:.1f} executed)"
    if "s_per_step" in r:
        seconds = r["s_per_step"]
        text += f"{seconds:.3f} s/step, {r['videos_per_s']:.1f} videos/s, {flops_text}, "
        peak = device_peak(r["device_kind"], dtype)
        if peak is None:  # CPU: no meaningful peak
            text += f"{gflop / seconds:.1f} GFLOP/s"
        else:
            name, tflops = peak
            achieved = r["model_flops"] / 1e12 / seconds
            mfu = achieved / (tflops * r["devices"])
            text += (
                f"{achieved:.1f} model TFLOP/s, MFU {100 * mfu:.1f}% of {name}'s "
                f"{tflops:g} TFLOP/s {dtype} peak x {r['devices']}"
            )
    else:
        text += f"compiled only, {flops_text}"
    memory = r["memory"]
    if memory:
        text += (
            f"; memory per device (XLA): {memory['total']:.2f} GiB = arguments "
            f"{memory['arguments']:.2f} + outputs {memory['outputs']:.2f} + temporaries "
            f"{memory['temporaries']:.2f} - aliased {memory['aliased']:.2f}"
        )
    return text + f" (compile {r['compile_s']:.1f} s)"


# `--zoo`: the two shapes, applied to the `default` preset.
ZOO_PRESET = "default"
ZOO_SHAPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "64x64x16": ("data.resolution=64", "train.batch_size=16"),
}

# `--peer`: the reference shapes (batch 16 x 16x64x64x1, width 32) on the
# vgan_jax side, the PyTorch script and its own arguments, by `--peer-model`.
PEER_PRESET = "default"
PEER_BATCH = 16
# The peers' width on both sides (the `default` preset may size G and D otherwise).
PEER_WIDTH = ("model.width=32", "model.d_width=0")
# The same work on both sides: the peers' steps have no R1 penalty (the `default`
# preset's lazy R1 adds a double backward every 4th step).
PEER_SAME_WORK = ("train.r1_gamma=0",)
_HERE = os.path.dirname(os.path.abspath(__file__))
PEERS: dict[str, dict] = {
    "dcgan": dict(
        overrides=(
            "model.name=dcgan",
            "data.resolution=64",
            f"train.batch_size={PEER_BATCH}",
            "model.d_image_frames=0",
            # The textbook generator ends in its last transposed conv; the preset's
            # full-resolution output conv is a layer the peer doesn't have.
            "model.g_output_conv=0",
            *PEER_WIDTH,
            *PEER_SAME_WORK,
        ),
        script=os.path.join(_HERE, "peer_pytorch_gan.py"),
        args=("--batch", str(PEER_BATCH)),
    ),
    "mocogan": dict(
        overrides=(
            "model.name=mocogan",
            "data.resolution=64",
            f"train.batch_size={PEER_BATCH}",
            *PEER_WIDTH,
            *PEER_SAME_WORK,
        ),
        script=os.path.join(_HERE, "peer_pytorch_mocogan.py"),
        args=("--batch", str(PEER_BATCH)),
    ),
}


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
    spec = PEERS[args.peer_model]
    overrides = [*spec["overrides"], *args.set]
    ours = [sys.executable, os.path.abspath(__file__), "--preset", PEER_PRESET]
    ours += ["--steps", str(args.steps)]
    for item in overrides:
        ours += ["--set", item]
    peer = [sys.executable, spec["script"], "--steps", str(args.steps), *spec["args"]]
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
        f"pytorch:  {os.path.basename(spec['script'])} {' '.join(spec['args'])}"
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


def planned_runs(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """`(label, preset, overrides)` of every line the benchmark prints, in order: the
    product of presets (with `--zoo`'s shapes), models, dtypes and remat modes."""
    presets = args.preset or ["default", "gpu"]
    models = args.model or [None]
    shapes: dict[str, tuple[str, ...]] = {"": ()}
    if args.zoo:
        presets, models, shapes = [ZOO_PRESET], ["all"], ZOO_SHAPES
    if "all" in models:
        models = known_models()
    runs = []
    for preset, shape, model, dtype, remat in itertools.product(
        presets, shapes, models, args.dtype or [None], args.remat or [None]
    ):
        overrides = [*shapes[shape], *args.set]
        if model:
            overrides.append(f"model.name={model}")
        if dtype:
            overrides.append(f"train.compute_dtype={dtype}")
        if args.batch:
            overrides.append(f"train.batch_size={args.batch}")
        if remat:
            overrides.append(f"model.remat={remat}")
        runs.append((f"{preset:>8}{' ' + shape if shape else ''}", preset, overrides))
    return runs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="preset name or config file (repeatable)")
    parser.add_argument(
        "--model",
        action="append",
        help="model.name to run each preset with (repeatable; 'all': every registered "
        "model; default: the preset's)",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        choices=("float32", "bfloat16"),
        help="train.compute_dtype (repeatable; default: the preset's)",
    )
    parser.add_argument("--batch", type=int, help="train.batch_size N (default: the preset's)")
    parser.add_argument(
        "--remat",
        action="append",
        choices=("none", "stage"),
        help="model.remat (repeatable; default: the preset's)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps after 1 warmup")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. model.width=16")
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="compile for abstract inputs and print FLOPs and memory; run nothing",
    )
    parser.add_argument(
        "--conv",
        choices=layers.CONV_IMPLEMENTATIONS,
        default=None,
        help="force the convolution path (layers.CONV_IMPLEMENTATION); default: the backend's",
    )
    parser.add_argument(
        "--zoo",
        action="store_true",
        help=f"every registered model on the {ZOO_PRESET!r} preset, at its shapes and at "
        "64x64x16 batch 16 (replaces --preset and --model)",
    )
    parser.add_argument(
        "--peer", action="store_true", help="vgan_jax vs the PyTorch peer at the issue's shapes"
    )
    parser.add_argument(
        "--peer-model", choices=sorted(PEERS), default="dcgan", help="--peer: which peer"
    )
    parser.add_argument("--repeats", type=int, default=2, help="--peer: rounds of both")
    parser.add_argument(
        "--peer-spectral-norm", action="store_true", help="--peer: spectral norm in its critic"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.peer:
        compare_with_peer(args)
        return
    if args.conv:
        layers.CONV_IMPLEMENTATION = args.conv
    devices = jax.devices()
    print(
        f"jax {jax.__version__} on {devices[0].device_kind} x{len(devices)} "
        f"({jax.default_backend()}; convolutions: {layers.resolve_conv_implementation()})",
        flush=True,
    )
    for label, preset, overrides in planned_runs(args):
        config = load_config(preset)
        for item in overrides:
            key, _, value = item.partition("=")
            apply_override(config, key, value)
        r = benchmark(config, args.steps, compile_only=args.compile_only)
        print(format_result(f"{label} {config.model.name}", config, r), flush=True)


if __name__ == "__main__":
    main()
