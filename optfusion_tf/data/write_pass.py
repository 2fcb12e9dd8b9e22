"""Pass 2: cached provisional ids -> global ids -> framed tf.train.Example records -> shards.

Each cached block is remapped and encoded in the worker pool (the remap table is a .npy file
that workers memory-map, so it is never copied between processes); this process writes the
framed records of each split to its shards, block after block, in file order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optfusion_tf.data import split
from optfusion_tf.data.example_encoding import ExampleEncoder
from optfusion_tf.data.id_cache import read_id_block
from optfusion_tf.data.options import PreprocessOptions
from optfusion_tf.data.progress import Progress
from optfusion_tf.data.tfrecord_writer import FRAME_BYTES, ShardWriter, frame_records
from optfusion_tf.data.worker_pool import OrderedPool


@dataclasses.dataclass(frozen=True)
class WrittenSplits:
    """What pass 2 wrote, per split name.

    Attributes:
        shards: shard file names.
        shard_rows: examples in each shard.
        rows: examples.
        positives: examples with label 1.
        record_bytes: length of every framed record (all records of a dataset have one length).
    """

    shards: dict[str, list[str]]
    shard_rows: dict[str, list[int]]
    rows: dict[str, int]
    positives: dict[str, int]
    record_bytes: int


@dataclasses.dataclass(frozen=True)
class _EncodeTask:
    cache_path: str
    offset: int
    remap_path: str
    bases: np.ndarray  # int64 [F]
    encoder: ExampleEncoder


def _encode_task(task: _EncodeTask) -> tuple[list[np.ndarray], list[int]]:
    """One cached block -> per split (framed records uint8 [n_s, framed_len], positives)."""
    block = read_id_block(task.cache_path, task.offset)
    labels, splits = block.labels, block.splits
    global_ids = block.global_ids(np.load(task.remap_path, mmap_mode="r"), task.bases)
    framed, positives = [], []
    for s in range(len(split.SPLITS)):
        sel = splits == s
        framed.append(frame_records(task.encoder.encode(global_ids[sel], labels[sel])))
        positives.append(int(labels[sel].sum()))
    return framed, positives


def write_pass(
    cache_path: str,
    cache_offsets: list[int],
    remap_path: str,
    bases: np.ndarray,
    field_max_ids: list[int],
    out_dir: str,
    pool: OrderedPool,
    options: PreprocessOptions,
) -> WrittenSplits:
    """Writes every split's shards into `out_dir`.

    Args:
        cache_path: the id cache written by pass 1.
        cache_offsets: its block offsets.
        remap_path: .npy of int64 [sum of fields' distinct keys], provisional id -> global id,
            fields concatenated.
        bases: int64 [F], each field's start in the remap table.
        field_max_ids: each field's largest global id (its OOV id).
        options: its compression, records_per_shard and log_every are used.
    """
    writers = [
        ShardWriter(out_dir, name, options.compression, options.records_per_shard)
        for name in split.SPLITS
    ]
    positives = [0] * len(split.SPLITS)
    progress = Progress("pass 2 (encode, write)", options.log_every)
    encoder = ExampleEncoder(field_max_ids)
    tasks = (
        _EncodeTask(cache_path, offset, remap_path, bases, encoder) for offset in cache_offsets
    )
    for framed, block_positives in pool.map(_encode_task, tasks):
        for s, writer in enumerate(writers):
            writer.write(framed[s])
            positives[s] += block_positives[s]
        progress.add(sum(len(f) for f in framed))
    return WrittenSplits(
        shards={name: w.close() for name, w in zip(split.SPLITS, writers)},
        shard_rows={name: list(w.file_rows) for name, w in zip(split.SPLITS, writers)},
        rows={name: w.records for name, w in zip(split.SPLITS, writers)},
        positives=dict(zip(split.SPLITS, positives)),
        record_bytes=encoder.record_len + FRAME_BYTES,
    )
