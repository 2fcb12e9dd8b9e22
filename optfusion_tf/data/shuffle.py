"""The order make_dataset (data/reader.py) reads a split in: source order, the shuffles, passes.

Sources (shard files, or pieces of them) are read one at a time in file order when not
shuffling, so a split's examples come in file order (load_split, row-aligned evaluation); when
shuffling, in a seeded order, several at once (`read_sources`), and then the elements go
through a seeded shuffle buffer (`shuffle_in_buffer`). A training split of our datasets is
shuffled in one of two ways (optfusion_tf/data/choices.py `SHUFFLES`, make_dataset's `shuffle_mode=`):
- "examples" (uncompressed shards, `shuffled_windows`): every pass draws a seeded permutation of
  all the split's chunks, reads them WINDOW_CHUNKS at a time (random access into the files,
  numpy) and permutes the rows of each window: a batch of 4096 takes about 4 rows from each of
  1024 places spread over the whole split, whatever the order of the file (sorted by user, by
  label, by time). GZIP shards cannot be read at random offsets: they fall back to "chunks".
- "chunks": shard-range order, then chunks in a buffer of shuffle_buffer records, so a batch is
  made of runs of CHUNK_RECORDS consecutive rows from a window of the file.
Reference directories always shuffle records in a buffer.

Repeated (training) input is a sequence of passes over the split (`repeated`), each shuffled
with a seed derived from (seed, pass index): the order of pass k depends only on the seed and
k, so a run resumed at epoch k reads what an uninterrupted run reads there.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import tensorflow as tf

DEFAULT_SHUFFLE_BUFFER = 100_000
# Pass k of a repeated dataset shuffles with seed * _PASS_SEED_STRIDE + k (distinct passes,
# distinct seeds, for k below the stride).
_PASS_SEED_STRIDE = 1_000_003
# "examples" shuffle: rows are permuted within windows of this many chunks (262,144 rows).
WINDOW_CHUNKS = 1024


def read_sources(
    sources: tf.data.Dataset, read: Callable, count: int, shuffle: bool, seed: Any
) -> tf.data.Dataset:
    """The elements of `count` sources, each read with `read`: in order, one source at a time,
    or (shuffle) the sources in a seeded order, up to 8 at once."""
    if shuffle:
        sources = sources.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return sources.interleave(
        read,
        cycle_length=min(count, 8) if shuffle else 1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def shuffle_in_buffer(ds: tf.data.Dataset, buffer: int, seed: Any) -> tf.data.Dataset:
    """`ds` through a seeded shuffle buffer of `buffer` elements."""
    # Not the source order's seed: two equal-seed shuffles of equally many elements apply the
    # same permutation (a reversal twice is the identity).
    second = None if seed is None else seed + 1
    return ds.shuffle(buffer, seed=second, reshuffle_each_iteration=True)


def repeated(
    one_pass: Callable[[Any], tf.data.Dataset], seed: int | None, first_pass: int
) -> tf.data.Dataset:
    """Passes first_pass, first_pass + 1, ... forever, pass k being `one_pass(pass seed)`, the
    pass seed derived from (seed, k) (None stays None)."""
    if isinstance(first_pass, bool) or not isinstance(first_pass, int) or first_pass < 0:
        raise ValueError(f"first_pass must be an integer >= 0. Received: {first_pass!r}")
    # Built once, as plain Python (no AutoGraph: nothing in it branches on a tensor).
    return tf.data.Dataset.range(first_pass, 2**62).flat_map(
        tf.autograph.experimental.do_not_convert(
            lambda k: one_pass(
                None if seed is None else tf.constant(seed, tf.int64) * _PASS_SEED_STRIDE + k
            )
        )
    )


def shuffled_windows(
    ranges: list[tuple[str, int, int, int]],
    record_bytes: int,
    chunk_records: int,
    seed: tf.Tensor | int,
) -> tf.data.Dataset:
    """One "examples"-shuffled pass over uncompressed shards: uint8 [rows, record_bytes] blocks
    of up to WINDOW_CHUNKS * chunk_records framed records (see the module docstring).

    Args:
        ranges: (file, first row, end row, rows in the file) of each file's part of the rows
            to read (reader's row ranges).
        record_bytes: bytes per framed record (every record has the same length).
        chunk_records: rows per chunk, the unit the pass order permutes.
        seed: the pass seed.
    """
    size = record_bytes
    # Every chunk of the slice: (range index, first row in its file, rows).
    chunks = np.array(
        [(k, start, min(chunk_records, b - start))
         for k, (_, a, b, _) in enumerate(ranges) for start in range(a, b, chunk_records)],
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
