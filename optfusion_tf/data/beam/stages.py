"""What a Beam worker does with one input range, in three passes (plain Python, no Beam here).

1. `count_range_lines`: the range's data lines (so that every range knows the file line number
   and the split draws of its first line, `range_starts`).
2. `count_range`: parse and validate the range's blocks (`count_pass.count_block`, the
   one-machine path's parser), draw their splits where a sequential pass draws them
   (`SplitAssigner(lines_before=...)`), and count every field's keys in the vocabulary scope.
   Each key also gets its *first position*: (range index << 40) + its first-seen rank in the
   range, so the smallest position over ranges is the key's first occurrence in the input,
   the tie-break of the id order.
3. `write_range`: parse again, map keys to global ids with the final vocabularies, encode and
   frame the Examples (`ExampleEncoder`, `frame_records`) and write the range's shards.
"""

from __future__ import annotations

import dataclasses
import zlib
from itertools import repeat
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np

from optfusion_tf.data import split
from optfusion_tf.data.bad_rows import FIRST_LINES_KEPT
from optfusion_tf.data.beam.ranges import InputRange, first_line, range_blocks
from optfusion_tf.data.count_pass import CountedBlock, count_block
from optfusion_tf.data.example_encoding import ExampleEncoder
from optfusion_tf.data.formats import RawFormat
from optfusion_tf.data.tfrecord_writer import ShardWriter, frame_records
from optfusion_tf.data.vocabulary import ValueCounter

POSITION_BITS = 40  # first-seen ranks within a range stay below 2**40
# Keys are counted in buckets of a field (one shuffle element per bucket and range, not per
# key): few elements for the runner to move, and no bucket too large for one worker.
KEY_BUCKETS = 256


@dataclasses.dataclass(frozen=True)
class RangeStart:
    """Where a range's first line lies in the input.

    Attributes:
        range: the range.
        first_line: 1-based line number in its file of the range's first line (a file's
            header is its line 1).
        lines_before: data lines (header excluded) of the whole input before that line.
    """

    range: InputRange
    first_line: int
    lines_before: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every worker needs to parse and split a range.

    Attributes:
        fmt: the raw format.
        ratio: train/validation/test fractions.
        seed: the split's seed.
        scope_all: count every row (vocab_scope=all), not only train rows.
        block_bytes: bytes parsed at a time.
    """

    fmt: RawFormat
    ratio: tuple[float, float, float]
    seed: int
    scope_all: bool
    block_bytes: int

    def skip_lines(self, r: InputRange) -> int:
        """1 for the range that holds a file's header, else 0."""
        return int(self.fmt.has_header and r.first_in_file)


def count_range_lines(r: InputRange, plan: Plan) -> tuple[int, int, str | None]:
    """(range index, data lines the range owns (a header excluded), the file's header line
    for the range that holds one, else None)."""
    blocks = range_blocks(r, 1, plan.skip_lines(r), plan.block_bytes)
    lines = sum(b.n_lines for b in blocks)
    return r.index, lines, first_line(r.path) if plan.skip_lines(r) else None


def range_starts(ranges: list[InputRange], lines: dict[int, int], plan: Plan) -> list[RangeStart]:
    """Every range's RangeStart from its data-line count (`count_range_lines`)."""
    starts, total, file_line, file_index = [], 0, 1, -1
    for r in ranges:
        if r.file_index != file_index:
            file_index, file_line = r.file_index, 1
        starts.append(RangeStart(r, file_line, total))
        file_line += plan.skip_lines(r) + lines[r.index]
        total += lines[r.index]
    return starts


def counted_blocks(start: RangeStart, plan: Plan) -> Iterator[CountedBlock]:
    """The range's blocks, parsed, split and counted."""
    r = start.range
    assigner = split.SplitAssigner(plan.ratio, plan.seed, start.lines_before)
    for block in range_blocks(r, start.first_line, plan.skip_lines(r), plan.block_bytes):
        yield count_block(block, plan.fmt, assigner.next(block.n_lines), plan.scope_all)


@dataclasses.dataclass(frozen=True)
class RangeSummary:
    """Pass 2's per-range figures (JSON-able).

    Attributes:
        index: the range's index.
        path: its file.
        lines: physical data lines.
        blank_lines: empty lines.
        bad: per reason with rows: [count, first line numbers (up to
            FIRST_LINES_KEPT), first detail].
        split_rows: rows per split, in split.SPLITS order.
    """

    index: int
    path: str
    lines: int
    blank_lines: int
    bad: dict[str, list[Any]]
    split_rows: list[int]


def count_range(
    start: RangeStart, plan: Plan
) -> tuple[list[tuple[tuple[int, int], KeyCounts]], RangeSummary]:
    """Pass 2 over one range.

    Returns:
        ([((field index, key bucket), KeyCounts of the bucket's keys in this range)], the
        range's summary). A key's bucket is a stable hash of it (`key_bucket`), so a key falls
        in the same bucket in every range.
    """
    counters = [ValueCounter() for _ in plan.fmt.fields]
    bad: dict[str, list[Any]] = {}
    lines = blank = 0
    split_rows = np.zeros(len(split.SPLITS), np.int64)
    for counted in counted_blocks(start, plan):
        lines, blank = lines + counted.n_lines, blank + counted.blank_lines
        split_rows += np.bincount(counted.splits, minlength=len(split.SPLITS))
        for rows in counted.bad:
            if rows.lines.size:
                entry = bad.setdefault(rows.reason, [0, [], rows.first_detail])
                entry[0] += int(rows.lines.size)
                kept = entry[1] + [int(x) for x in rows.lines[:FIRST_LINES_KEPT]]
                entry[1] = kept[:FIRST_LINES_KEPT]
        for counter, uniques, counts in zip(counters, counted.uniques, counted.counts):
            counter.add(uniques, counts)
    base = start.range.index << POSITION_BITS
    parts = []
    for j, counter in enumerate(counters):
        values, counts = counter.keys_and_counts()
        buckets = np.fromiter(map(key_bucket, values), np.int64, len(values))
        keys = np.array(values, dtype=object)
        for b in np.unique(buckets).tolist():
            rank = np.flatnonzero(buckets == b)
            parts.append(((j, b), KeyCounts(keys[rank].tolist(), counts[rank].tolist(),
                                            (base + rank).tolist())))
    summary = RangeSummary(
        start.range.index, start.range.path, lines, blank, bad, split_rows.tolist()
    )
    return parts, summary


def key_bucket(key: str) -> int:
    """A stable hash of `key` in [0, KEY_BUCKETS) (Python's str hash differs per process)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % KEY_BUCKETS


@dataclasses.dataclass(frozen=True)
class KeyCounts:
    """Some keys of one field, with their counts in the vocabulary scope and first positions.

    Attributes:
        keys: the keys.
        counts: each key's count.
        positions: each key's first position ((range index << POSITION_BITS) + first-seen rank).
    """

    keys: list[str]
    counts: list[int]
    positions: list[int]


def merge_key_counts(merged: dict[str, list[int]], keys: Iterable[str], counts: Iterable[int],
                     positions: Iterable[int]) -> dict[str, list[int]]:
    """Adds keys to `merged` (key -> [total count, least first position]); returns it."""
    for key, count, position in zip(keys, counts, positions):
        seen = merged.get(key)
        if seen is None:
            merged[key] = [count, position]
        else:
            seen[0] += count
            if position < seen[1]:
                seen[1] = position
    return merged


def write_range(
    start: RangeStart,
    plan: Plan,
    lookups: list[dict[str, int]],
    oov_ids: list[int],
    out_dir: str,
    compression: str,
    records_per_shard: int,
    create: Callable[[str], BinaryIO] | None = None,
) -> dict[str, Any]:
    """Pass 3 over one range: writes `<split>-r<index>-<k>.tfrecord[.gz]` into `out_dir`.

    Args:
        lookups: per field, key -> global id (kept keys).
        oov_ids: per field, the OOV id (the largest global id of the field).
        create: opens a shard for binary writing (default: a local file).
    Returns:
        {"index": range index, "splits": {split: {"files": [...], "rows": [...],
        "positives": n}}}.
    """
    name = f"r{start.range.index:06d}"
    writers = [
        ShardWriter(out_dir, f"{s}-{name}", compression, records_per_shard, create)
        for s in split.SPLITS
    ]
    positives = [0] * len(split.SPLITS)
    encoder = ExampleEncoder(oov_ids)
    for counted in counted_blocks(start, plan):
        ids = np.empty(counted.codes.shape, np.int64)
        for j, (lookup, uniques) in enumerate(zip(lookups, counted.uniques)):
            table = np.fromiter(map(lookup.get, uniques, repeat(oov_ids[j])), np.int64,
                                len(uniques))
            ids[:, j] = table[counted.codes[:, j]]
        for s, writer in enumerate(writers):
            sel = counted.splits == s
            writer.write(frame_records(encoder.encode(ids[sel], counted.labels[sel])))
            positives[s] += int(counted.labels[sel].sum())
    splits = {}
    for s, writer in zip(split.SPLITS, writers):
        files = writer.close()
        splits[s] = {"files": files, "rows": list(writer.file_rows),
                     "positives": positives[split.SPLITS.index(s)]}
    return {"index": start.range.index, "splits": splits}
