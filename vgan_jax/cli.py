"""`vgan-jax`: the command line. Thin: parses arguments, calls the library.

  vgan-jax train  --config=default|FILE.py [--config.train.steps=200] --workdir=DIR
  vgan-jax sample --workdir DIR --num 16 --seed 0 --out samples.gif|.mp4|.npy|.png
                  [--label N] [--frames T]
  vgan-jax eval   --workdir DIR [--num_videos N] [--baselines] [--json]
  vgan-jax fvd    A B [--json]
  vgan-jax prepare DATASET --data_dir DIR [...]

Bad input is printed as one `error: ...` line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vgan_jax.errors import VganError


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train (or resume) a run",
        description="Train a video GAN. Any config field can be overridden: "
        "--config.train.steps=200 --config.model.name=vgan",
    )
    p.add_argument(
        "--config", default="default", help="config file or preset name (default, tiny, gpu)"
    )
    p.add_argument("--workdir", required=True, help="checkpoints, samples and logs go here")
    p.add_argument("--coordinator_address", default=None, help="multi-host: host:port of process 0")
    p.add_argument(
        "--num_processes", type=int, default=None, help="multi-host: number of processes"
    )
    p.add_argument("--process_id", type=int, default=None, help="multi-host: this process's index")


def _labels(text: str) -> int | list[int]:
    """`--label 7` -> 7; `--label 3,7` (one class per object) -> [3, 7]."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a class or a comma-separated list of classes (e.g. 7 or 3,7)"
        ) from None
    return values[0] if len(values) == 1 else values


def _add_sample(subparsers) -> None:
    p = subparsers.add_parser("sample", help="write videos from a trained run's EMA generator")
    p.add_argument("--workdir", required=True)
    p.add_argument("--num", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        required=True,
        help="output file: .gif or .mp4 (a grid), .npy (uint8 [N,T,H,W,C]) or .png "
        "(a frame strip: one row per sample, one column per frame)",
    )
    p.add_argument("--fps", type=int, default=8)
    p.add_argument(
        "--strip_frames",
        default=None,
        help=".png only: comma-separated frame indices, one column each, e.g. 0,4,8,12,15 "
        "(default: every frame)",
    )
    p.add_argument(
        "--strip_scale",
        type=int,
        default=None,
        help=".png only: integer nearest-neighbour upscale of each frame "
        "(default: the smallest making a frame at least 64 px tall)",
    )
    p.add_argument(
        "--label",
        type=_labels,
        default=None,
        help="class-conditional runs: the class of every sample, in [0, model.num_classes) "
        "(default: sample i gets class i %% num_classes); for runs with a label per object "
        "(model.labels_per_clip K > 1) one class for all, or K comma-separated: --label 3,7",
    )
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per video (default: the trained length); recurrent models (mocogan, "
        "dvdgan, layered) unroll past the length they were trained with",
    )
    p.add_argument(
        "--interpolate_to",
        type=int,
        default=None,
        help="instead of independent samples: --num steps of latent interpolation "
        "from --seed to this seed",
    )


def _split_config_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separates `--config.a.b=value` (or `--config.a.b value`) from other arguments."""
    rest, overrides = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            key, eq, value = arg[len("--config.") :].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise VganError(f"{arg} needs a value: {arg}=VALUE")
                value = argv[i + 1]
                i += 1
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def _initialize_distributed(args) -> None:
    """Multi-host start-up. On a TPU VM pod slice jax finds its peers with no flags."""
    import jax

    explicit = [args.coordinator_address, args.num_processes, args.process_id]
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise VganError(
                "multi-host needs all of --coordinator_address, --num_processes and --process_id"
            )
        jax.distributed.initialize(
            coordinator_address=args.coordinator_address,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    elif os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("CLOUD_TPU_TASK_ID"):
        jax.distributed.initialize()


def _run_train(args, overrides) -> int:
    from vgan_jax.config import apply_override, load_config

    config = load_config(args.config)
    for key, value in overrides:
        apply_override(config, key, value)
    _initialize_distributed(args)
    from vgan_jax.train import train

    train(config, args.workdir)
    return 0


def _parse_frame_list(text: str) -> list[int]:
    """`"0,4,8"` -> `[0, 4, 8]`; anything else is a one-line `VganError`."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise VganError(
            f"--strip_frames must be comma-separated frame indices like 0,4,8, got {text!r}"
        ) from None


def _strip_options(args) -> dict:
    """`write_frame_strip` keyword arguments from --strip_*, checked before sampling."""
    is_png = os.path.splitext(args.out)[1].lower() == ".png"
    if not is_png and (args.strip_frames is not None or args.strip_scale is not None):
        raise VganError("--strip_frames and --strip_scale apply to a .png --out only")
    frames = None if args.strip_frames is None else _parse_frame_list(args.strip_frames)
    if frames is not None and not frames:
        raise VganError("--strip_frames: give at least one frame index, e.g. 0,4,8")
    if args.strip_scale is not None and args.strip_scale < 1:
        raise VganError(f"--strip_scale must be an integer >= 1, got {args.strip_scale}")
    return {"frames": frames, "scale": args.strip_scale} if is_png else {}


def _run_sample(args) -> int:
    from vgan_jax.video_io import check_output_path, write_frame_strip, write_videos

    check_output_path(args.out)
    if args.num < 1:
        raise VganError(f"--num must be >= 1, got {args.num}")
    strip = _strip_options(args)
    from vgan_jax import sampling

    if args.interpolate_to is not None:
        if args.frames is not None:
            raise VganError("--frames does not apply to --interpolate_to")
        videos = sampling.interpolate(
            args.workdir, args.seed, args.interpolate_to, steps=args.num, label=args.label
        )
    else:
        videos = sampling.sample(
            args.workdir, num=args.num, seed=args.seed, labels=args.label, frames=args.frames
        )
    if strip:
        # Frame indices are checked against the clips' T here (one line, valid range).
        write_frame_strip(args.out, videos, **strip)
    else:
        write_videos(args.out, videos, fps=args.fps)
    print(f"wrote {videos.shape[0]} videos {tuple(videos.shape[1:])} to {args.out}")
    return 0


def _add_metric_options(parser: argparse.ArgumentParser) -> None:
    """Flags `fvd` and `eval` share."""
    from vgan_jax.metrics.commands import DEFAULT_BATCH_SIZE, DEFAULT_KVD_SUBSETS

    parser.add_argument(
        "--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
        help="videos per I3D call, across all devices (rounded up to a multiple of them)",
    )
    parser.add_argument(
        "--num_devices", type=int, default=None, help="devices on the mesh (default: all)"
    )
    parser.add_argument("--no_kvd", action="store_true", help="skip KVD")
    parser.add_argument(
        "--kvd_subsets", type=int, default=DEFAULT_KVD_SUBSETS, help="KVD random subsets"
    )
    parser.add_argument(
        "--kvd_subset_size", type=int, default=None,
        help="videos per KVD subset (default min(1000, N // 2), N the smaller set; "
        "must be below N so the random subsets differ)",
    )


def _metric_options(args) -> dict:
    return {
        "batch_size": args.batch_size,
        "num_devices": args.num_devices,
        "kvd": not args.no_kvd,
        "kvd_subsets": args.kvd_subsets,
        "kvd_subset_size": args.kvd_subset_size,
    }


def _add_fvd(subparsers) -> None:
    from vgan_jax.metrics.commands import DEFAULT_FRAMES

    p = subparsers.add_parser("fvd", help="FVD/KVD between two sets of videos")
    p.add_argument("videos_a", help="uint8 .npy [N, T, H, W, C] or a folder of videos")
    p.add_argument("videos_b", help="uint8 .npy [N, T, H, W, C] or a folder of videos")
    p.add_argument(
        "--frames", type=int, default=None,
        help=f"frames per clip read from folders (default: the .npy set's T, else "
        f"{DEFAULT_FRAMES}); videos are never resampled",
    )
    p.add_argument(
        "--num_videos", type=int, default=None, help="use only the first N videos of each set"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_metric_options(p)


def _run_fvd(args) -> int:
    from vgan_jax.metrics.commands import format_fvd_result, fvd_between

    result = fvd_between(
        args.videos_a, args.videos_b, frames=args.frames, num_videos=args.num_videos,
        **_metric_options(args),
    )
    for info in result["sets"].values():
        if info.get("skipped_corrupt"):
            print(
                f"warning: skipped {info['skipped_corrupt']} undecodable videos in "
                f"{info['path']}",
                file=sys.stderr,
            )
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_fvd_result(result))
    return 0


def _add_eval(subparsers) -> None:
    from vgan_jax.metrics.commands import DEFAULT_NUM_VIDEOS

    p = subparsers.add_parser("eval", help="FVD of a trained run against its data")
    p.add_argument("--workdir", required=True, help="a training run's directory")
    p.add_argument(
        "--num_videos", type=int, default=DEFAULT_NUM_VIDEOS,
        help=f"generated and real clips each (default {DEFAULT_NUM_VIDEOS}, as StyleGAN-V)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    p.add_argument("--real_seed", type=int, default=0, help="seed of the real clip draw")
    p.add_argument("--split", default="train", help="real split (StyleGAN-V: train)")
    p.add_argument(
        "--cache_dir", default=None,
        help="real-statistics cache (default $VGAN_JAX_CACHE or ~/.cache/vgan_jax/fvd)",
    )
    p.add_argument(
        "--baselines", action="store_true",
        help="also score, at the same protocol: N other real clips (real vs real), real "
        "clips shuffled in time, and real clips with the first frame frozen (cached)",
    )
    p.add_argument("--json", action="store_true", help="print the JSON result instead of a table")
    _add_metric_options(p)


def _run_eval(args) -> int:
    """Prints the scores (a table, or the JSON the workdir gets with --json)."""
    from vgan_jax.metrics.commands import eval_result_path, evaluate_run, format_eval_table

    result = evaluate_run(
        args.workdir, num_videos=args.num_videos, seed=args.seed, real_seed=args.real_seed,
        split=args.split, cache_dir=args.cache_dir, baselines=args.baselines,
        **_metric_options(args),
    )
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_eval_table(result))
    print(f"wrote {eval_result_path(args.workdir, args.num_videos, args.seed)}", file=sys.stderr)
    return 0


# Flags of `vgan-jax prepare` with no default here: `catalog.prepare`'s apply when unset.
_PREPARE_FLAGS = (
    ("data_dir", str, "where prepared datasets are written (default: tfds's data dir, "
     "$TFDS_DATA_DIR or ~/tensorflow_datasets); train with --config.data.data_dir=DIR"),
    ("source", str, "video_folder: folder of .mp4/.avi/.webm/.mov/.gif files; "
     "subfolder names become class labels"),
    ("name", str, "video_folder: dataset NAME (default: the source folder's name); "
     "train with --config.data.name=video_folder/NAME"),
    ("test_fraction", float, "video_folder: fraction of each class held out as the 'test' "
     "split (default 0: no held-out split, 'test' reads 'train')"),
    ("manual_dir", str, "tfds manual_dir for datasets that need a manual download; "
     "kinetics: the folder of downloaded videos (train/<class>/*.mp4)"),
    ("tfds_config", str, "catalog datasets: tfds builder config (e.g. ucf101_2 for UCF-101 "
     "split #2)"),
    ("max_examples", int, "catalog datasets: convert at most this many videos per split"),
)
# Flags that set `prepared.PrepareOptions` fields (their defaults come from there).
_PREPARE_OPTION_FLAGS = (
    ("size", int, "stored frame size: shorter side resized, then center-cropped square"),
    ("max_frames", int, "most frames per stored example; longer videos are split"),
    ("min_frames", int, "shortest stored example, usually the training clip length"),
    ("max_segments_per_video", int, "decode at most this many --max_frames segments of "
     "each file (None: all)"),
    ("workers", int, "decoding threads"),
)


def _add_prepare(subparsers) -> None:
    from vgan_jax.data import registry
    from vgan_jax.data.prepared import PrepareOptions
    from vgan_jax.data.transforms import SHORT_VIDEO_CHOICES

    p = subparsers.add_parser(
        "prepare", help="convert a dataset into vgan_jax's clip format",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    names = (registry.VIDEO_FOLDER_BUILDER, *registry.CATALOG_DATASETS)
    p.add_argument("dataset", metavar="DATASET", help=f"one of: {', '.join(names)}")
    for flag, kind, text in _PREPARE_FLAGS:
        p.add_argument(f"--{flag}", type=kind, default=argparse.SUPPRESS, help=text)
    defaults = PrepareOptions()
    for flag, kind, text in _PREPARE_OPTION_FLAGS:
        p.add_argument(f"--{flag}", type=kind, default=getattr(defaults, flag), help=text)
    p.add_argument(
        "--short_videos", choices=SHORT_VIDEO_CHOICES, default=defaults.short_videos,
        help="videos shorter than --min_frames: pad (repeat the last frame) or skip",
    )
    p.add_argument(
        "--lenient_decoding", action="store_true",
        help="keep the decodable frames of damaged files instead of skipping them",
    )


def _run_prepare(args) -> int:
    """Prepares; prints the report (also when no file was usable) and how to train on it."""
    from vgan_jax.data.catalog import prepare
    from vgan_jax.data.prepared import PrepareFailed, format_report

    flags = {flag for flag, _, _ in _PREPARE_FLAGS + _PREPARE_OPTION_FLAGS} | {"short_videos"}
    options = {key: value for key, value in vars(args).items() if key in flags}
    try:
        report = prepare(
            args.dataset, strict_decoding=not args.lenient_decoding,
            log=lambda line: print(line, file=sys.stderr, flush=True), **options,
        )
    except PrepareFailed as error:
        print(format_report(error.report))
        raise
    print(format_report(report))
    data_dir = options.get("data_dir")
    where = f" --config.data.data_dir={data_dir}" if data_dir else ""
    print(f"train on it with: vgan-jax train --config.data.name={report['dataset']}{where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgan-jax", description="Video GANs in JAX.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    _add_sample(subparsers)
    _add_fvd(subparsers)
    _add_eval(subparsers)
    _add_prepare(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv, overrides = _split_config_overrides(argv)
        args = build_parser().parse_args(argv)
        if overrides and args.command != "train":
            raise VganError("--config.* overrides apply to `vgan-jax train` only")
        if args.command == "train":
            return _run_train(args, overrides)
        if args.command == "sample":
            return _run_sample(args)
        if args.command in ("fvd", "eval"):
            return (_run_fvd if args.command == "fvd" else _run_eval)(args)
        return _run_prepare(args)
    except VganError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
