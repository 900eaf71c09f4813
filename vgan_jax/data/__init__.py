"""Datasets and the input pipeline.

Public API (used by training, evaluation and the CLI):

    known_datasets()                    names accepted as config.data.name
    check_data_config(config.data)      VganError for a bad data config, before heavy work;
                                        returns it checked (later calls do not check again)
    open_source(config.data, split)     (random-access source, info) of "train" / "test"
    make_train_iterator(config.data, seed=, global_batch_size=, process_index=,
                        process_count=) endless, resumable float32 [-1, 1] batches
    load_videos(config.data, split, num, seed)
                                        uint8 [num, frames, res, res, channels] clips
    dataset_fingerprint(config.data)    short hash of the dataset files (cache keys)

Modules: `registry` (dataset names, data dirs), `transforms` (numpy clip transforms),
`pipeline` (sources, grain iterator), `moving_mnist` (the built-in offline dataset),
`video_decode` (video files -> frames), `prepared` (the prepared format and the one
preparation engine), `video_folder` and `catalog` (sources for it; `catalog.prepare`
is `vgan-jax prepare`). Importing this package is cheap: tfds and grain load on first use.
"""

from vgan_jax.data.pipeline import (
    CheckedDataConfig,
    InputIterator,
    check_data_config,
    dataset_fingerprint,
    load_videos,
    make_train_iterator,
    open_source,
)
from vgan_jax.data.registry import known_datasets

__all__ = [
    "CheckedDataConfig",
    "InputIterator",
    "check_data_config",
    "dataset_fingerprint",
    "known_datasets",
    "load_videos",
    "make_train_iterator",
    "open_source",
]
