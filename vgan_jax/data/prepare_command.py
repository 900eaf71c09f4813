"""`vgan-jax prepare DATASET ...`: convert a dataset once into the prepared format.

    vgan-jax prepare video_folder --source ~/my_clips --data_dir ~/data --name clips
    vgan-jax prepare ucf101 --data_dir ~/data            # needs vgan-jax[tfds]
    vgan-jax prepare kinetics --manual_dir ~/k400 --data_dir ~/data

`cli.py` registers `add_prepare_arguments` on the `prepare` subparser and calls
`run_prepare(args)`; bad input raises `VganError`, which the CLI prints as one
`error: ...` line (exit status 2). The report (what was used, what was skipped
and why) is printed at the end, also when no file was usable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from vgan_jax.data import prepared
from vgan_jax.errors import VganError

PREPARE_DATASETS = ("video_folder",) + prepared.CATALOG_DATASETS


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `prepare` subcommand's arguments to `parser`."""
    parser.add_argument(
        "dataset",
        metavar="DATASET",
        help=f"one of: {', '.join(PREPARE_DATASETS)}",
    )
    parser.add_argument(
        "--data_dir", default=None,
        help="where prepared datasets are written (default: tfds's data dir, "
        "$TFDS_DATA_DIR or ~/tensorflow_datasets); train with --config.data.data_dir=DIR",
    )
    parser.add_argument(
        "--source", default=None,
        help="video_folder: folder of .mp4/.avi/.webm/.mov/.gif files; "
        "subfolder names become class labels",
    )
    parser.add_argument(
        "--name", default=None,
        help="video_folder: dataset NAME (default: the source folder's name); "
        "train with --config.data.name=video_folder/NAME",
    )
    parser.add_argument(
        "--size", type=int, default=128,
        help="stored frame size: shorter side resized, then center-cropped square (default 128)",
    )
    parser.add_argument(
        "--max_frames", type=int, default=32,
        help="most frames per stored example; longer videos are split (default 32: each "
        "training clip decodes one whole example, so short examples read fast)",
    )
    parser.add_argument(
        "--min_frames", type=int, default=16,
        help="shortest stored example, usually the training clip length (default 16)",
    )
    parser.add_argument(
        "--short_videos", choices=prepared.SHORT_VIDEO_POLICIES, default="pad",
        help="videos shorter than --min_frames: pad (repeat last frame) or skip (default pad)",
    )
    parser.add_argument(
        "--test_fraction", type=float, default=0.0,
        help="video_folder: fraction of each class held out as the 'test' split "
        "(default 0: no held-out split, 'test' reads 'train')",
    )
    parser.add_argument(
        "--manual_dir", default=None,
        help="tfds manual_dir for datasets that need a manual download; "
        "kinetics: the folder of downloaded videos (train/<class>/*.mp4)",
    )
    parser.add_argument(
        "--tfds_config", default=None,
        help="catalog datasets: tfds builder config (e.g. ucf101_2 for UCF-101 split #2)",
    )
    parser.add_argument(
        "--max_examples", type=int, default=None,
        help="catalog datasets: convert at most this many videos per split (quick trials)",
    )
    parser.add_argument(
        "--max_segments_per_video", type=int, default=None,
        help="decode at most this many --max_frames segments of each file (default: all)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="decoding threads (default 2)",
    )
    parser.add_argument(
        "--lenient_decoding", action="store_true",
        help="keep the decodable frames of damaged files instead of skipping them",
    )


def run_prepare(args: argparse.Namespace) -> int:
    """Run `vgan-jax prepare` with parsed `args`; print the report; return 0.

    Raises:
      VganError: bad arguments, missing TensorFlow for a catalog dataset, or no
        usable video (the report is printed first).
    """
    from vgan_jax.data import catalog, video_folder

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    dataset = args.dataset
    common = dict(
        size=args.size,
        max_frames=args.max_frames,
        min_frames=args.min_frames,
        short_videos=args.short_videos,
        max_segments_per_video=args.max_segments_per_video,
        workers=args.workers,
        strict_decoding=not args.lenient_decoding,
        log=log,
    )
    try:
        if dataset == "video_folder":
            if not args.source:
                raise VganError(
                    "video_folder needs --source DIR, a folder of your videos "
                    "(subfolders become class labels)"
                )
            name = args.name or _default_name(args.source)
            report = video_folder.prepare_video_folder(
                args.source, args.data_dir, name, test_fraction=args.test_fraction, **common
            )
            train_name = prepared.VIDEO_FOLDER_PREFIX + name
        elif dataset in prepared.CATALOG_DATASETS:
            report = catalog.prepare_catalog(
                dataset, args.data_dir, manual_dir=args.manual_dir,
                tfds_config=args.tfds_config, max_examples=args.max_examples, **common,
            )
            train_name = dataset
        else:
            raise VganError(
                f"unknown dataset {dataset!r} for prepare: use one of {', '.join(PREPARE_DATASETS)}"
            )
    except video_folder.PrepareFailed as error:
        print(video_folder.format_report(error.report))
        raise
    print(video_folder.format_report(report))
    data_dir_flag = f" --config.data.data_dir={args.data_dir}" if args.data_dir else ""
    print(f"train on it with: vgan-jax train --config.data.name={train_name}{data_dir_flag}")
    return 0


def _default_name(source: str) -> str:
    """NAME from the source folder's own name, made valid for `validate_folder_name`."""
    base = os.path.basename(os.path.normpath(os.path.abspath(source)))
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", base).lstrip("._-")
    return name or "videos"
