"""Pass 1: parse and validate the raw file, assign splits, count values, cache provisional ids.

This process draws each block's splits and hands the block to the worker pool, which parses
it (`block_parser.parse_block`), counts every field's block-distinct keys in the vocabulary
scope (train rows only with vocab_scope=train) and packs the rows' codes into one matrix
(`count_block`). Back here, block after block in file order, only per distinct key work is
left: each field's keys get provisional ids (`ValueCounter`), and the block's codes, the ids
of its distinct keys, labels and splits go to the id cache; no per-row work is done here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optfusion_tf.data import split
from optfusion_tf.data.bad_rows import BadRowLog, BadRows
from optfusion_tf.data.block_parser import FieldKeys, parse_block
from optfusion_tf.data.formats import RawFormat
from optfusion_tf.data.id_cache import IdCacheWriter
from optfusion_tf.data.options import PreprocessOptions
from optfusion_tf.data.progress import Progress
from optfusion_tf.data.raw_input import FileSlice, RawBlock, iter_block_sources
from optfusion_tf.data.vocabulary import ValueCounter
from optfusion_tf.data.worker_pool import OrderedPool


@dataclasses.dataclass
class CountResult:
    """What pass 1 found.

    Attributes:
        counters: per-field provisional ids and scope counts.
        bad: the bad-row log.
        lines: data lines read (header excluded).
        blank_lines: empty lines skipped.
        cache_offsets: offset of every block in the id cache.
    """

    counters: list[ValueCounter]
    bad: BadRowLog
    lines: int
    blank_lines: int
    cache_offsets: list[int]


@dataclasses.dataclass(frozen=True)
class CountedBlock:
    """A parsed block, counted (what a worker sends back).

    Attributes:
        n_lines: physical lines in the block (bad and blank ones included).
        blank_lines: empty lines.
        bad: bad rows per reason.
        labels: float32 [R], the kept rows' labels.
        splits: uint8 [R], the kept rows' splits.
        codes: [R, F] (uint8, uint16 or int32, the narrowest that holds every field's codes),
            row r's key of field j is uniques[j][codes[r, j]].
        uniques: per field, the block's distinct keys in first-seen order.
        counts: per field, int64 [len(uniques[j])], each key's rows in the vocabulary scope.
    """

    n_lines: int
    blank_lines: int
    bad: list[BadRows]
    labels: np.ndarray
    splits: np.ndarray
    codes: np.ndarray
    uniques: list[list[str]]
    counts: list[np.ndarray]


def count_block(
    block: RawBlock | FileSlice, fmt: RawFormat, splits: np.ndarray, scope_all: bool
) -> CountedBlock:
    """Parses `block` and counts its keys.

    Args:
        block: whole lines of the raw file, or where they lie in it.
        fmt: the raw format.
        splits: uint8 [block.n_lines], every line's split.
        scope_all: count every row (vocab_scope=all), not only train rows.
    """
    parsed = parse_block(block.read(), fmt)
    n_rows = len(parsed.row_lines)
    fields = parsed.fields or [FieldKeys(np.zeros(0, np.uint8), [])] * len(fmt.fields)
    row_splits = splits[parsed.row_lines]
    counted = None if scope_all else row_splits == split.TRAIN
    codes = np.empty((n_rows, len(fields)), np.result_type(*[k.codes.dtype for k in fields]))
    counts = []
    for j, keys in enumerate(fields):
        codes[:, j] = keys.codes
        scoped = keys.codes if counted is None else keys.codes[counted]
        counts.append(np.bincount(scoped, minlength=len(keys.uniques)))
    return CountedBlock(
        n_lines=parsed.n_lines,
        blank_lines=parsed.blank_lines,
        bad=parsed.bad,
        labels=parsed.labels,
        splits=row_splits,
        codes=codes,
        uniques=[keys.uniques for keys in fields],
        counts=counts,
    )


def _count_task(task: tuple[RawBlock | FileSlice, RawFormat, np.ndarray, bool]) -> CountedBlock:
    return count_block(*task)


def count_pass(
    fmt: RawFormat,
    input_path: str,
    cache_path: str,
    pool: OrderedPool,
    options: PreprocessOptions,
) -> CountResult:
    """Runs pass 1 over `input_path` (its ratio, seed, vocab_scope, on_bad_row, block_bytes
    and log_every from `options`)."""
    counters = [ValueCounter() for _ in fmt.fields]
    o = options
    assigner = split.SplitAssigner(o.ratio, o.seed)
    bad = BadRowLog(input_path, o.on_bad_row)
    cache = IdCacheWriter(cache_path)
    progress = Progress("pass 1 (parse, count)", o.log_every)
    lines = blank = 0
    blocks = iter_block_sources(
        input_path, skip_lines=int(fmt.has_header), block_bytes=o.block_bytes
    )
    tasks = (
        (block, fmt, assigner.next(block.n_lines), o.vocab_scope == "all") for block in blocks
    )
    try:
        for counted in pool.map(_count_task, tasks):
            bad.record(counted.bad)
            lines, blank = lines + counted.n_lines, blank + counted.blank_lines
            ids = [c.add(u, n) for c, u, n in zip(counters, counted.uniques, counted.counts)]
            cache.write(counted.codes, ids, counted.labels, counted.splits)
            progress.add(counted.n_lines)
    finally:
        cache.close()
    return CountResult(counters, bad, lines, blank, cache.offsets)
