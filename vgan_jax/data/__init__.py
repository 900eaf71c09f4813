"""Datasets and the input pipeline.

Public API (used by training, evaluation and the CLI):

    known_datasets()                    names accepted as config.data.name
    check_data_config(config.data)      VganError for a bad data config, before heavy work
    open_source(config.data, split)     (random-access source, info) of "train" / "test"
    make_train_iterator(config.data, seed=, global_batch_size=, process_index=,
                        process_count=) endless, resumable float32 [-1, 1] batches
    load_videos(config.data, split, num, seed)
                                        uint8 [num, frames, res, res, channels] clips
    dataset_fingerprint(config.data)    short hash of the dataset files (cache keys)

Modules: `moving_mnist` (the built-in offline dataset, a tfds builder), `transforms`
(numpy clip transforms), `pipeline` (registry, sources, grain iterator). Importing
this package is cheap: tfds and grain load on first use.
"""

from vgan_jax.data.pipeline import (
    InputIterator,
    check_data_config,
    dataset_fingerprint,
    known_datasets,
    load_videos,
    make_train_iterator,
    open_source,
)

__all__ = [
    "InputIterator",
    "check_data_config",
    "dataset_fingerprint",
    "known_datasets",
    "load_videos",
    "make_train_iterator",
    "open_source",
]
