"""Pass 1: parse and validate the raw file, assign splits, count values, cache provisional ids.

Blocks are parsed in the worker pool (`block_parser.parse_block`); this process draws the
splits, maps each block's unique keys to provisional ids, counts them (train rows only with
vocab_scope=train) and appends the rows to the id cache, block after block, in file order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optfusion_tf.data import split
from optfusion_tf.data.bad_rows import BadRowLog
from optfusion_tf.data.block_parser import ParsedBlock, parse_block
from optfusion_tf.data.formats import RawFormat
from optfusion_tf.data.id_cache import IdCacheWriter
from optfusion_tf.data.options import PreprocessOptions
from optfusion_tf.data.progress import Progress
from optfusion_tf.data.raw_input import RawBlock, iter_blocks
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


def _parse_task(task: tuple[RawBlock, RawFormat]) -> ParsedBlock:
    return parse_block(*task)


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
    blocks = iter_blocks(input_path, skip_lines=int(fmt.has_header), block_bytes=o.block_bytes)
    try:
        for parsed in pool.map(_parse_task, ((block, fmt) for block in blocks)):
            splits = assigner.next(parsed.n_lines)
            bad.record(parsed.bad)
            lines, blank = lines + parsed.n_lines, blank + parsed.blank_lines
            row_splits = splits[parsed.row_lines]
            counted = None if o.vocab_scope == "all" else row_splits == split.TRAIN
            ids = np.empty((len(row_splits), len(fmt.fields)), np.int32)
            for j, (counter, keys) in enumerate(zip(counters, parsed.fields)):
                ids[:, j] = counter.add(keys, counted)
            cache.write(ids, parsed.labels, row_splits)
            progress.add(parsed.n_lines)
    finally:
        cache.close()
    return CountResult(counters, bad, lines, blank, cache.offsets)
