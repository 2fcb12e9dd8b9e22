"""The tf.data input pipeline that training and evaluation read datasets with.

Works on directories written by our preprocessing (stats.json gives F, the shard list and the
compression) and on the reference's TFRecord directories (train_0000.tfrecord, ...; no
stats.json, so `num_fields` must be given; GZIP is detected from a .gz/.gzip suffix). Records are
tf.train.Example with `feature` int64 [F] and `label` float [1] (the reference's schema).

Two pipelines, with the same output:
- Our datasets (stats.json with `record_bytes`): every record has one length and layout (see
  example_encoding), so shards are read as fixed-length chunks of CHUNK_RECORDS records
  (FixedLengthRecordDataset, one element per chunk, GZIP included) and decoded with a handful
  of vectorized ops (bytes -> varint ids by field, float32 label), then rebatched; no per-record
  tf.data overhead and no protobuf parsing. (Record CRCs are not verified on this path.)
  Training shuffles in one of two ways (`shuffle=`):
  - "examples" (uncompressed shards): every pass draws a seeded permutation of all the split's
    chunks, reads them WINDOW_CHUNKS at a time (random access into the files, numpy) and
    permutes the rows of each window: a batch of 4096 takes about 4 rows from each of 1024
    places spread over the whole split, whatever the order of the file (sorted by user, by
    label, by time). GZIP shards cannot be read at random offsets: they fall back to "chunks".
  - "chunks": shard-range order, then chunks in a buffer of shuffle_buffer records, so a batch
    is made of runs of CHUNK_RECORDS consecutive rows from a window of the file.
- Other TFRecord directories (the reference's): TFRecordDataset per shard -> record shuffle
  buffer (training) -> batch -> tf.io.parse_example on whole batches.
Both read shards in file order when not shuffling (parallel interleave when shuffling), and
prefetch. Repeated (training) input is a sequence of passes over the split, each batched on its
own (its last batch may be smaller, so a pass is exactly one epoch of ceil(rows / batch) steps)
and shuffled with a seed derived from (seed, pass index): the order of pass k depends only on
the seed and k, so a run resumed at epoch k reads what an uninterrupted run reads there.

Under `--strategy=multi_worker` each worker reads only its slice of a split (`shard=(i, k)`):
with our fixed layout, rows [i * N // k, (i + 1) * N // k) of the split (balanced to one row,
whatever the number of files: a file range is a header/footer offset); for reference
directories, every k-th file when there are at least k files, else every k-th record.
"""

from __future__ import annotations

import functools
import glob
import os
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from optfusion_tf.data.errors import DataError
from optfusion_tf.data.example_encoding import ExampleEncoder
from optfusion_tf.data.split import SPLITS
from optfusion_tf.data.stats import STATS_FILE, DatasetStats

DEFAULT_SHUFFLE_BUFFER = 100_000
CHUNK_RECORDS = 256
# Pass k of a repeated dataset shuffles with seed * _PASS_SEED_STRIDE + k (distinct passes,
# distinct seeds, for k below the stride).
_PASS_SEED_STRIDE = 1_000_003
# "examples" shuffle: rows are permuted within windows of this many chunks (262,144 rows).
WINDOW_CHUNKS = 1024
SHUFFLES = ("examples", "chunks")
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
        record_bytes, decode = stats.record_bytes, _record_decoder(stats)
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
                ds = _shuffled_windows(dataset_dir, stats, split, pass_seed, shard)
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
        parse = _example_parser(num_fields)

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

    if not repeat:
        ds = one_pass(seed)
    else:
        if isinstance(first_pass, bool) or not isinstance(first_pass, int) or first_pass < 0:
            raise ValueError(f"first_pass must be an integer >= 0. Received: {first_pass!r}")
        # Built once, as plain Python (no AutoGraph: nothing in it branches on a tensor).
        ds = tf.data.Dataset.range(first_pass, 2**62).flat_map(
            tf.autograph.experimental.do_not_convert(
                lambda k: one_pass(
                    None if seed is None else tf.constant(seed, tf.int64) * _PASS_SEED_STRIDE + k
                )
            )
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def _second(seed: int | None) -> int | None:
    # The record/chunk shuffle must not reuse the file shuffle's seed: two equal-seed shuffles
    # of equally many elements apply the same permutation (a reversal twice is the identity).
    return None if seed is None else seed + 1


def _interleave(ds: tf.data.Dataset, make, shuffle: bool, n: int) -> tf.data.Dataset:
    # Training reads several shards at once; otherwise shards are read in order, so a split's
    # examples come in file order (load_split, row-aligned evaluation).
    return ds.interleave(
        make,
        cycle_length=min(n, 8) if shuffle else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


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
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = _interleave(
        ds,
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression, buffer_size=1 << 20),
        shuffle,
        len(files),
    )
    if shard is not None and not by_file:
        ds = ds.shard(shard[1], shard[0])
    if shuffle:
        ds = ds.shuffle(buffer, seed=_second(seed), reshuffle_each_iteration=True)
    return ds


def _example_parser(num_fields: int):
    features = {
        "feature": tf.io.FixedLenFeature([num_fields], tf.int64),
        "label": tf.io.FixedLenFeature([1], tf.float32),
    }

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_example(serialized, features)
        return example["feature"], example["label"]

    return parse


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
    if shuffle:
        ds = ds.shuffle(len(pieces), seed=seed, reshuffle_each_iteration=True)

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

    ds = _interleave(ds, read, shuffle, len(pieces))
    if shuffle:
        ds = ds.shuffle(max(1, buffer // chunk), seed=_second(seed), reshuffle_each_iteration=True)
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


def _shuffled_windows(
    dataset_dir: str,
    stats: DatasetStats,
    split: str,
    seed: tf.Tensor | int,
    shard: tuple[int, int] | None,
) -> tf.data.Dataset:
    """One "examples"-shuffled pass over uncompressed shards: uint8 [rows, record_bytes] blocks
    of up to WINDOW_CHUNKS * CHUNK_RECORDS framed records (see the module docstring)."""
    size = stats.record_bytes
    ranges = _row_ranges(dataset_dir, stats, split, shard)
    # Every chunk of the slice: (range index, first row in its file, rows).
    chunks = np.array(
        [(k, start, min(CHUNK_RECORDS, b - start))
         for k, (_, a, b, _) in enumerate(ranges) for start in range(a, b, CHUNK_RECORDS)],
        dtype=np.int64,
    ).reshape(-1, 3)

    # Built before the map, never changed after: tf.data runs `window` on several threads at
    # once, so it reads only immutable state (the memmaps are read-only views) and derives the
    # pass order from the pass seed alone (`order` is pure; lru_cache is thread-safe).
    files = [np.memmap(p, np.uint8, "r", shape=(n, size)) for p, _, _, n in ranges]

    @functools.lru_cache(maxsize=2)
    def order(key: int) -> np.ndarray:
        """The pass's chunk order: a permutation of range(len(chunks)), from its seed."""
        permutation = np.random.default_rng(key).permutation(len(chunks))
        permutation.flags.writeable = False
        return permutation

    def window(pass_seed: Any, index: Any) -> np.ndarray:
        """Rows of window `index` of the pass: uint8 [rows, record_bytes]."""
        key = int(pass_seed)
        picked = chunks[order(key)[index * WINDOW_CHUNKS:(index + 1) * WINDOW_CHUNKS]]
        block = np.concatenate([files[k][start:start + n] for k, start, n in picked])
        return block[np.random.default_rng((key, int(index))).permutation(len(block))]

    # (A numpy_function, not from_generator: TensorFlow 2.21 logs a spurious C++ error about
    # `use_unbounded_threadpool` when Keras traces a fit over a from_generator dataset.)
    windows = -(-len(chunks) // WINDOW_CHUNKS)
    return tf.data.Dataset.range(windows).map(
        lambda index: tf.ensure_shape(
            tf.numpy_function(window, [tf.cast(seed, tf.int64), index], tf.uint8, stateful=False),
            [None, size],
        )
    )


def _record_decoder(stats: DatasetStats):
    """framed records uint8 [n, record_bytes] -> (ids int64 [n, F], labels float32 [n, 1]).

    Field ids grow field by field, so varint widths never decrease along the record: the ids
    are runs of fields of equal width w, each a regular [n, fields, w] block of bytes. A field of
    width w has the continuation bit set on exactly its first w - 1 bytes, so its id is
    sum_k byte_k * 128^k minus a constant: slices, multiplies and adds, no gather.
    """
    encoder = ExampleEncoder([f.oov_id for f in stats.fields])
    if encoder.record_len + 16 != stats.record_bytes:
        raise DataError(
            f"stats: record_bytes {stats.record_bytes} does not match the fields' layout"
        )
    runs = []  # (first byte, number of fields, width)
    widths = encoder.widths.tolist()
    first = 0
    for f in range(1, len(widths) + 1):
        if f == len(widths) or widths[f] != widths[first]:
            runs.append((12 + int(encoder.starts[first]), f - first, widths[first]))
            first = f
    label_at = 12 + encoder.record_len - 4

    def decode(raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        blocks = []
        for start, count, width in runs:
            dtype = tf.int32 if width <= 4 else tf.int64  # 255 * (1 + ... + 128^3) < 2^31
            grid = tf.cast(
                tf.reshape(raw[:, start : start + count * width], [-1, count, width]), dtype
            )
            value = grid[:, :, 0]
            for k in range(1, width):
                value += grid[:, :, k] * (1 << 7 * k)
            continuation = sum(128 << 7 * k for k in range(width - 1))
            blocks.append(tf.cast(value - continuation, tf.int64))
        labels = tf.bitcast(raw[:, label_at : label_at + 4], tf.float32)[:, None]
        return tf.concat(blocks, axis=1), labels

    return decode


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
