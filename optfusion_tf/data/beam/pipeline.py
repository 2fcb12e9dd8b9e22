"""The three Beam pipelines of `--runner=beam`, and the runner options.

Each pipeline maps `stages` over the input ranges; what the driver needs back (a few figures
per range and per field, the kept keys of each field) is written as JSON files into a work
directory, through Beam's filesystems, and read by the driver between the pipelines. Counting
uses Beam's `CombinePerKey` (per-bundle partial counts, then one merge per key) and
`GroupByKey`, which is what tf.Transform's vocabulary analyzer runs underneath.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import traceback
from typing import Any, Iterable, Iterator

import apache_beam as beam

from optfusion_tf.data.beam import output, stages
from optfusion_tf.data.beam.options import BeamOptions
from optfusion_tf.data.beam.ranges import InputRange
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.vocabulary import read_vocab

def write_json(path: str, value: Any) -> None:
    """Writes `value` as JSON to `path` (any Beam filesystem)."""
    with output.create(path) as f:
        f.write(json.dumps(value).encode("utf-8"))


def read_json(path: str) -> Any:
    with output.open_file(path) as f:
        return json.loads(f.read().decode("utf-8"))


@contextlib.contextmanager
def _quiet(log_path: str) -> Iterator[None]:
    """Beam's own logging (its INFO and routine WARNING lines, and what the DirectRunner's
    worker processes print at start-up) goes to `log_path` instead of the terminal."""
    beam_logger = logging.getLogger("apache_beam")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 2)  # the worker processes inherit it
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)
        beam_logger.setLevel(level)


def _run(options: BeamOptions, build, log_path: str) -> None:
    """Runs the pipeline `build` makes; a DataError raised in a worker is raised here again
    (Beam re-raises worker errors as its own, with the message in their text)."""
    try:
        with _quiet(log_path), beam.Pipeline(options=options.pipeline_options()) as p:
            build(p)
    except DataError as e:
        if " [while running" in str(e):  # Beam's note on a worker's error, in one process
            raise DataError(str(e).split(" [while running")[0]) from e
        raise
    except Exception as e:
        found = re.search(r"DataError: (.+)", str(e))
        if found:
            raise DataError(found.group(1).split(" [while running")[0]) from e
        with open(log_path, "a", encoding="utf-8") as log:
            traceback.print_exc(file=log)
        lines = [line for line in str(e).strip().splitlines() if line.strip()]
        raise DataError(
            f"Beam's {options.runner} failed: {type(e).__name__}: "
            f"{lines[-1] if lines else ''} (the traceback is in {log_path})"
        ) from e


def count_lines(ranges: list[InputRange], plan: stages.Plan, work_dir: str,
                options: BeamOptions, log_path: str) -> None:
    """Pipeline 1: writes lines.json ({range index: [data lines, the file's header line or
    None]}) into `work_dir`."""
    out = f"{work_dir}/lines.json"
    _run(options, lambda p: (
        p
        | "ranges" >> beam.Create(ranges, reshuffle=True)
        | "lines" >> beam.Map(stages.count_range_lines, plan)
        | "collect" >> beam.combiners.ToList()
        | "write" >> beam.Map(lambda found: write_json(out, {i: [n, h] for i, n, h in found}))
    ), log_path)


class _MergeKeyCounts(beam.CombineFn):
    """Merges a field bucket's KeyCounts over ranges: key -> [count, least first position]."""

    def create_accumulator(self) -> dict[str, list[int]]:
        return {}

    def add_input(self, merged: dict[str, list[int]], part: stages.KeyCounts):
        return stages.merge_key_counts(merged, part.keys, part.counts, part.positions)

    def merge_accumulators(self, accumulators: Iterable[dict[str, list[int]]]):
        accumulators = list(accumulators)
        if not accumulators:
            return {}
        merged, *others = sorted(accumulators, key=len, reverse=True)
        for other in others:
            pairs = list(other.values())
            stages.merge_key_counts(merged, other.keys(), [c for c, _ in pairs],
                                    [p for _, p in pairs])
        return merged

    def extract_output(self, merged: dict[str, list[int]]) -> dict[str, list[int]]:
        return merged


def _bucket_totals(item: tuple[tuple[int, int], dict[str, list[int]]]
                   ) -> tuple[int, tuple[int, int]]:
    """(field, (distinct keys with a count, total count)) of one merged bucket."""
    (j, _), merged = item
    counts = [c for c, _ in merged.values()]
    return j, (sum(1 for c in counts if c > 0), sum(counts))


def _write_kept(item: tuple[int, Iterable[list[tuple[str, int, int]]]], work_dir: str) -> None:
    j, buckets = item
    ordered = sorted((k for bucket in buckets for k in bucket), key=lambda k: (-k[1], k[2]))
    write_json(f"{work_dir}/kept-{j:04d}.json", [[key, count] for key, count, _ in ordered])


def count_keys(starts: list[stages.RangeStart], plan: stages.Plan, min_counts: list[int],
               work_dir: str, options: BeamOptions, log_path: str) -> None:
    """Pipeline 2: writes ranges.json (RangeSummary dicts), fields.json ({field: [distinct,
    total count]}) and kept-<field>.json ([[key, count]] in id order) into `work_dir`."""

    def build(p: beam.Pipeline) -> None:
        counted = (
            p
            | "ranges" >> beam.Create(starts, reshuffle=True)
            | "count" >> beam.Map(stages.count_range, plan)
        )
        (
            counted
            | "summaries" >> beam.Map(lambda c: dataclasses.asdict(c[1]))
            | "collect summaries" >> beam.combiners.ToList()
            | "write summaries" >> beam.Map(lambda s: write_json(f"{work_dir}/ranges.json", s))
        )
        merged = (
            counted
            | "keys" >> beam.FlatMap(lambda c: c[0])
            | "merge" >> beam.CombinePerKey(_MergeKeyCounts())
        )
        (
            merged
            | "field totals" >> beam.Map(_bucket_totals)
            | "sum totals" >> beam.CombinePerKey(lambda v: tuple(map(sum, zip(*v))))
            | "collect totals" >> beam.combiners.ToList()
            | "write totals" >> beam.Map(
                lambda t: write_json(f"{work_dir}/fields.json", {str(j): v for j, v in t}))
        )

        def kept(item: tuple[tuple[int, int], dict[str, list[int]]]):
            (j, _), merged = item
            least = max(min_counts[j], 1)
            return j, [(k, c, p) for k, (c, p) in merged.items() if c >= least]

        (
            merged
            | "kept" >> beam.Map(kept)
            | "group" >> beam.GroupByKey()
            | "write kept" >> beam.Map(_write_kept, work_dir)
        )

    _run(options, build, log_path)


class _WriteRange(beam.DoFn):
    """Pass 3 of one range; loads the vocabularies once per worker."""

    def __init__(self, plan: stages.Plan, vocab_paths: list[str], oov_ids: list[int],
                 out_dir: str, compression: str, records_per_shard: int):
        self._plan, self._vocab_paths, self._oov_ids = plan, vocab_paths, oov_ids
        self._out = (out_dir, compression, records_per_shard)
        self._lookups: list[dict[str, int]] | None = None

    def setup(self) -> None:
        self._lookups = []
        for path in self._vocab_paths:
            with output.open_file(path) as stream:
                vocab = read_vocab(path, stream)
            self._lookups.append(dict(zip(vocab["value"].tolist(), vocab["id"].tolist())))

    def process(self, start: stages.RangeStart):
        yield stages.write_range(
            start, self._plan, self._lookups, self._oov_ids, *self._out, create=output.create
        )


def write_examples(starts: list[stages.RangeStart], plan: stages.Plan, vocab_paths: list[str],
                   oov_ids: list[int], work_dir: str, compression: str, records_per_shard: int,
                   options: BeamOptions, log_path: str) -> None:
    """Pipeline 3: writes every range's shards and their list (written.json) into `work_dir`."""
    out_dir, written = work_dir, f"{work_dir}/written.json"
    _run(options, lambda p: (
        p
        | "ranges" >> beam.Create(starts, reshuffle=True)
        | "write" >> beam.ParDo(_WriteRange(plan, vocab_paths, oov_ids, out_dir, compression,
                                            records_per_shard))
        | "collect" >> beam.combiners.ToList()
        | "write list" >> beam.Map(lambda w: write_json(written, w))
    ), log_path)
