"""The tf.data input pipeline that training and evaluation read datasets with.

Works on directories written by our preprocessing (stats.json gives F, the shard list and the
compression) and on the reference's TFRecord directories (train_0000.tfrecord, ...; no
stats.json, so `num_fields` must be given; GZIP is detected from a .gz/.gzip suffix). Records are
tf.train.Example with `feature` int64 [F] and `label` float [1] (the reference's schema).

Two pipelines, with the same output:
- Our datasets (stats.json with `record_bytes`): every record has one length and layout (see
  example_encoding), so shards are read as fixed-length chunks of CHUNK_RECORDS records
  (FixedLengthRecordDataset, one element per chunk, GZIP included) and decoded with a handful
  of vectorized ops (bytes -> varint ids by field, float32 label; data/record_decoding.py),
  then rebatched; no per-record tf.data overhead and no protobuf parsing. (Record CRCs are
  not verified on this path.)
  Training shuffles by "examples" or by "chunks" (`shuffle_mode=`, data/shuffle.py).
- Other TFRecord directories (the reference's): TFRecordDataset per shard -> record shuffle
  buffer (training) -> batch -> tf.io.parse_example on whole batches.
Both read shards in file order when not shuffling (parallel interleave when shuffling), and
prefetch. Repeated (training) input is a sequence of passes over the split, each batched on its
own (its last batch may be smaller, so a pass is exactly one epoch of ceil(rows / batch) steps)
and shuffled with a seed derived from (seed, pass index) (data/shuffle.py).

This module holds the entry points (make_dataset, load_split), the split's files, its row
ranges and worker slices, and reading the records; data/record_decoding.py turns them into
(feature_ids, label) batches, data/shuffle.py orders them (source order, the "examples" and
"chunks" shuffles, the seeds of the passes).

Under `--strategy=multi_worker` each worker reads only its slice of a split (`shard=(i, k)`):
with our fixed layout, rows [i * N // k, (i + 1) * N // k) of the split (balanced to one row,
whatever the number of files: a file range is a header/footer offset); for reference
directories, every k-th file when there are at least k files, else every k-th record.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from optfusion_tf.data.choices import SHUFFLES
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.record_decoding import example_parser, record_decoder
from optfusion_tf.data.shuffle import (
    DEFAULT_SHUFFLE_BUFFER,
    read_sources,
    repeated,
    shuffle_in_buffer,
    shuffled_windows,
)
from optfusion_tf.data.split import SPLITS
from optfusion_tf.data.stats import STATS_FILE, DatasetStats

CHUNK_RECORDS = 256  # records per fixed-length read of our datasets
_GZIP_SUFFIXES = (".gz", ".gzip")


def _compression_of(path: str) -> str:
    return "GZIP" if path.endswith(_GZIP_SUFFIXES) else ""


def shard_files(dataset_dir: str, split: str) -> list[str]:
    """The split's TFRecord files: stats.json's list, or `<split>*.tfrecord*` (reference dirs)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: {split!r}")
    if os.path.isfile(os.path.join(dataset_dir, STATS_FILE)):
        files = [os.path.join(dataset_dir, f) for f in DatasetStats.load(dataset_dir).shards[split]]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise DataError(
                f"{dataset_dir}: shard files listed in {STATS_FILE} are missing: {missing}"
            )
    else:
        files = sorted(glob.glob(os.path.join(glob.escape(dataset_dir), f"{split}*.tfrecord*")))
    if not files:
        raise DataError(
            f"{dataset_dir}: no {split} shards (expected files named {split}*.tfrecord*)"
        )
    return files


def make_dataset(
    dataset_dir: str,
    split: str,
    batch_size: int,
    *,
    shuffle: bool | None = None,
    seed: int | None = None,
    repeat: bool = False,
    first_pass: int = 0,
    drop_remainder: bool = False,
    num_fields: int | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    shard: tuple[int, int] | None = None,
    shuffle_mode: str = "examples",
    batches_per_pass: int | None = None,
) -> tf.data.Dataset:
    """Batches of one split of a dataset directory.

    Args:
        dataset_dir: a preprocessed dataset directory, or a reference TFRecord directory.
        split: "train", "validation" or "test".
        batch_size: examples per batch.
        shuffle: shuffle shard order and records (buffer of `shuffle_buffer`); default True for
            "train", False otherwise.
        seed: shuffle seed (None: a different order every run: a random seed is drawn).
        repeat: repeat forever: pass k (k = first_pass, first_pass + 1, ...) shuffled with a
            seed derived from (seed, k), each pass batched on its own.
        first_pass: the index of the first pass of a repeated dataset (the number of epochs a
            resumed run has already trained).
        drop_remainder: drop a last, smaller batch.
        num_fields: F; required without stats.json, checked against it otherwise.
        shuffle_buffer: records in the shuffle buffer.
        shard: (index, count): read only this worker's slice of the split (see the module
            docstring); None reads all of it.
        shuffle_mode: how a shuffled split of our datasets is ordered, "examples" or "chunks"
            (module docstring); reference directories always shuffle records in a buffer.
        batches_per_pass: split every pass (of this slice) into exactly this many batches,
            their sizes differing by at most one row, instead of batches of `batch_size` and a
            smaller last one. A strategy's input pipeline needs it so that a pass is exactly
            one epoch of steps whatever the replicas' share of the rows (our datasets only; at
            most the slice's rows).
    Returns:
        A tf.data.Dataset of (feature_ids int64 [B, F], label float32 [B, 1]).
    Raises:
        DataError: no such directory/split, an incomplete directory, or a num_fields mismatch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count. Received: {shard}")
    if not os.path.isdir(dataset_dir):
        raise DataError(f"{dataset_dir}: dataset directory not found")
    shuffle = (split == "train") if shuffle is None else shuffle
    if shuffle and seed is None:  # a different order every run, from one seed for all passes
        seed = int.from_bytes(os.urandom(4), "little")
    if shuffle_mode not in SHUFFLES:
        raise ValueError(f"shuffle_mode must be one of {SHUFFLES}. Received: {shuffle_mode!r}")
    if os.path.isfile(os.path.join(dataset_dir, STATS_FILE)):
        stats = DatasetStats.load(dataset_dir)
        if num_fields is not None and num_fields != stats.num_fields:
            raise DataError(
                f"{dataset_dir}: num_fields={num_fields} but {STATS_FILE} says {stats.num_fields}"
            )
        shard_files(dataset_dir, split)  # checks the shards are there
        record_bytes, decode = stats.record_bytes, record_decoder(stats)
        sizes: Any = batch_size
        if batches_per_pass is not None:
            if drop_remainder:
                raise ValueError("batches_per_pass and drop_remainder exclude each other: the "
                                 "pass is cut into batches of near-equal size, none dropped")
            rows = sum(b - a for _, a, b, _ in _row_ranges(dataset_dir, stats, split, shard))
            sizes = even_batch_sizes(rows, batches_per_pass)
        by_example = shuffle and shuffle_mode == "examples" and stats.compression != "gzip"
        if shuffle and shuffle_mode == "examples" and not by_example:
            logging.warning(
                "%s: GZIP shards cannot be read at random offsets, so the %s split is shuffled "
                "by chunks (runs of %d consecutive rows) instead of per example; write the "
                "dataset with --compression=none for the per-example shuffle.",
                dataset_dir, split, CHUNK_RECORDS,
            )

        def one_pass(pass_seed: tf.Tensor | int | None) -> tf.data.Dataset:
            if by_example:
                ds = shuffled_windows(
                    _row_ranges(dataset_dir, stats, split, shard), record_bytes, CHUNK_RECORDS,
                    pass_seed,
                )
            else:
                ds = _fixed_layout_chunks(
                    dataset_dir, stats, split, shuffle, pass_seed, shuffle_buffer, shard
                )
                ds = ds.map(
                    lambda chunk: tf.reshape(tf.io.decode_raw(chunk, tf.uint8), [-1, record_bytes])
                )
            # A vector of sizes is cycled: one cycle is the whole pass.
            ds = ds.rebatch(sizes, drop_remainder=drop_remainder)
            return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    else:
        if batches_per_pass is not None:
            raise DataError(f"{dataset_dir}: batches_per_pass needs a dataset with {STATS_FILE}")
        if num_fields is None:
            raise DataError(
                f"{dataset_dir}: no {STATS_FILE} (a reference-format directory?): pass num_fields"
            )
        files = shard_files(dataset_dir, split)
        parse = example_parser(num_fields)

        def one_pass(pass_seed: tf.Tensor | int | None) -> tf.data.Dataset:
            ds = _generic_records(
                files, _compression_of(files[0]), shuffle, pass_seed, shuffle_buffer, shard
            )
            ds = ds.batch(
                batch_size,
                drop_remainder=drop_remainder,
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    ds = repeated(one_pass, seed, first_pass) if repeat else one_pass(seed)
    return ds.prefetch(tf.data.AUTOTUNE)


def _generic_records(
    files: list[str],
    compression: str,
    shuffle: bool,
    seed: int | None,
    buffer: int,
    shard: tuple[int, int] | None,
) -> tf.data.Dataset:
    """Serialized records (scalar strings) of any TFRecord files (this worker's share)."""
    by_file = shard is not None and len(files) >= shard[1]
    if by_file:
        files = files[shard[0] :: shard[1]]
    ds = read_sources(
        tf.data.Dataset.from_tensor_slices(files),
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression, buffer_size=1 << 20),
        len(files),
        shuffle,
        seed,
    )
    if shard is not None and not by_file:
        ds = ds.shard(shard[1], shard[0])
    if shuffle:
        ds = shuffle_in_buffer(ds, buffer, seed)
    return ds


def _fixed_layout_chunks(
    dataset_dir: str,
    stats: DatasetStats,
    split: str,
    shuffle: bool,
    seed: int | None,
    buffer: int,
    shard: tuple[int, int] | None,
) -> tf.data.Dataset:
    """Scalar strings holding up to CHUNK_RECORDS framed records each, from the split's shards
    (rows [first, last) of the split when `shard` is given).

    Each file's range of rows [a, b) is read as (full chunks, header = the rows before a,
    footer = the rest) then (the rest as one chunk).
    """
    size, chunk = stats.record_bytes, CHUNK_RECORDS
    pieces = []  # (file, bytes per element, header bytes, footer bytes)
    for path, a, b, rows in _row_ranges(dataset_dir, stats, split, shard):
        full, rest = divmod(b - a, chunk)
        if full:
            pieces.append((path, chunk * size, a * size, (rows - a - full * chunk) * size))
        if rest:
            pieces.append((path, rest * size, (b - rest) * size, (rows - b) * size))
    compression = "GZIP" if stats.compression == "gzip" else ""
    if not pieces:  # an empty split
        return tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
    paths, lengths, headers, footers = zip(*pieces)
    ds = tf.data.Dataset.from_tensor_slices(
        (list(paths),)
        + tuple(tf.constant(column, tf.int64) for column in (lengths, headers, footers))
    )

    def read(
        path: tf.Tensor, length: tf.Tensor, header: tf.Tensor, footer: tf.Tensor
    ) -> tf.data.Dataset:
        return tf.data.FixedLengthRecordDataset(
            path,
            length,
            header_bytes=header,
            footer_bytes=footer,
            buffer_size=1 << 22,
            compression_type=compression,
        )

    ds = read_sources(ds, read, len(pieces), shuffle, seed)
    if shuffle:
        ds = shuffle_in_buffer(ds, max(1, buffer // chunk), seed)
    return ds


def even_batch_sizes(rows: int, batches: int) -> list[int]:
    """`batches` sizes that add up to `rows` and differ by at most one, larger ones first.

    Raises:
        DataError: fewer rows than batches (a batch would be empty), or batches < 1.
    """
    if batches < 1 or rows < batches:
        raise DataError(
            f"cannot split {rows} rows into {batches} non-empty batches: every replica needs "
            "at least one row in every step of an epoch (use a smaller --batch_size or fewer "
            "replicas)"
        )
    size, larger = divmod(rows, batches)
    return [size + 1] * larger + [size] * (batches - larger)


def _row_ranges(
    dataset_dir: str, stats: DatasetStats, split: str, shard: tuple[int, int] | None
) -> list[tuple[str, int, int, int]]:
    """(file, first row, end row, rows in the file) of each shard file's part of the split's
    rows [first, last): all of them, or worker i's slice [i N // k, (i + 1) N // k)."""
    total = sum(stats.shard_rows[split])
    first, last = (0, total) if shard is None else (
        shard[0] * total // shard[1], (shard[0] + 1) * total // shard[1]
    )
    ranges = []
    start = 0  # the file's first row within the split
    for name, rows in zip(stats.shards[split], stats.shard_rows[split]):
        a, b = max(first - start, 0), min(last - start, rows)  # this file's rows to read
        if a < b:
            ranges.append((os.path.join(dataset_dir, name), a, b, rows))
        start += rows
    return ranges


def load_split(
    dataset_dir: str, split: str, *, num_fields: int | None = None, batch_size: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """A whole split in file order as numpy arrays: (ids int64 [N, F], labels float32 [N]).

    For exact metrics over a full split and for tests; memory grows with the split's size.
    """
    ids, labels = [], []
    for x, y in make_dataset(dataset_dir, split, batch_size, shuffle=False, num_fields=num_fields):
        ids.append(x.numpy())
        labels.append(y.numpy()[:, 0])
    if not ids:
        f = num_fields if num_fields is not None else DatasetStats.load(dataset_dir).num_fields
        return np.zeros((0, f), np.int64), np.zeros(0, np.float32)
    return np.concatenate(ids), np.concatenate(labels)
