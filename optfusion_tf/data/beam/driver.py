"""`preprocess_beam`: the one-machine `preprocess` contract, with the passes run by Beam.

Three pipelines, the driver in between (`pipeline`, `stages`): (1) every range's data lines,
from which each range gets its first line number and split draws; (2) parse, split and count
keys per range, merged per key; the driver then checks the bad rows (--on_bad_row=error stops
here, naming the first bad row of the input) and writes the vocabularies; (3) encode and write
each range's shards. The driver renames the shards into the one-machine names (a range's rows of
a split are one or more consecutive shards, so the shards hold each split's rows in input
order) and writes stats.json. The output directory is built as a hidden sibling and renamed
into place at the end, as on one machine (`atomic_dir`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

import numpy as np
from absl import logging

from optfusion_tf.data import split
from optfusion_tf.data.atomic_dir import check_output_dir
from optfusion_tf.data.bad_rows import REASONS, BadRowLog
from optfusion_tf.data.beam import output, pipeline
from optfusion_tf.data.beam.options import BeamOptions
from optfusion_tf.data.beam.pipeline import read_json
from optfusion_tf.data.beam.ranges import InputRange, first_line, list_inputs, plan_ranges
from optfusion_tf.data.beam.stages import Plan, range_starts
from optfusion_tf.data.errors import BadRowError, DataError
from optfusion_tf.data.example_encoding import ExampleEncoder
from optfusion_tf.data.formats import RawFormat
from optfusion_tf.data.options import PreprocessOptions
from optfusion_tf.data.preprocess import (
    CsvOptions,
    check_rows,
    dataset_stats,
    default_record_dir,
    field_min_counts,
    format_from_first_line,
    log_written,
    write_vocabularies,
)
from optfusion_tf.data.stats import STATS_FILE, DatasetStats
from optfusion_tf.data.tfrecord_writer import FRAME_BYTES
from optfusion_tf.data.vocabulary import FieldVocabulary
from optfusion_tf.data.write_pass import WrittenSplits

_WORK = "_beam"


def preprocess_beam(
    kind: str,
    input_pattern: str,
    record_dir: str | None = None,
    options: PreprocessOptions = PreprocessOptions(),
    csv_options: CsvOptions | None = None,
    beam_options: BeamOptions = BeamOptions(),
) -> DatasetStats:
    """`preprocess` with Apache Beam: same arguments, same output contract.

    Args:
        input_pattern: a file or a glob of files (local, gs://, s3://, hdfs://, ...), taken in
            sorted path order as one input; each file may be plain or gzip, and holds its own
            header where the format has one.
        record_dir: output directory, local or remote (a Beam filesystem the workers can
            write, e.g. gs://bucket/criteo_2; see `output`).
        beam_options: the runner and its options.
    Raises:
        DataError: as `preprocess`.
    """
    start = time.monotonic()
    files = list_inputs(input_pattern)
    first, first_path = _first_line(files)
    fmt = format_from_first_line(kind, first, first_path or input_pattern, csv_options)
    o = options
    record_dir = record_dir or default_record_dir(fmt.dataset, o.threshold)
    local_input = input_pattern if os.path.exists(input_pattern) else None
    if not output.is_remote(record_dir):
        check_output_dir(record_dir, o.overwrite, local_input)
    ranges = plan_ranges(files, beam_options.range_bytes)
    plan = Plan(fmt, tuple(o.ratio), o.seed, o.vocab_scope == "all", o.block_bytes)
    logging.info("preprocessing %s (%s, %d fields, %d files, %d ranges) with Beam's %s -> %s",
                 input_pattern, fmt.dataset, len(fmt.fields), len(files), len(ranges),
                 beam_options.runner, record_dir)
    log_fd, log_path = tempfile.mkstemp(prefix="optfusion_beam_", suffix=".log")
    os.close(log_fd)
    run = _Run(input_pattern, record_dir, o, beam_options, log_path, ranges, plan, local_input,
               first, first_path)
    try:
        stats = _run_passes(run)
    except BaseException:
        logging.warning("Beam's own log of this run: %s", log_path)
        raise
    os.remove(log_path)
    log_written(record_dir, stats, time.monotonic() - start)
    return stats


@dataclasses.dataclass(frozen=True)
class _Run:
    """What the passes of one `preprocess_beam` call share (its arguments, planned)."""

    input_pattern: str
    record_dir: str
    options: PreprocessOptions
    beam_options: BeamOptions
    log_path: str
    ranges: list[InputRange]
    plan: Plan
    local_input: str | None
    header: str | None  # the input's first line
    header_path: str | None  # its file


def _run_passes(run: _Run) -> DatasetStats:
    """The three pipelines and the driver's work between them; returns the written stats."""
    fmt, o, plan, ranges = run.plan.fmt, run.options, run.plan, run.ranges
    input_pattern, beam_options, log_path = run.input_pattern, run.beam_options, run.log_path
    min_counts = field_min_counts(fmt, o.threshold)
    with output.output_dir(run.record_dir, o.overwrite, run.local_input) as tmp:
        work = f"{tmp}/{_WORK}"
        output.mkdirs(work)
        logging.info("beam pass 1 of 3 (count lines)")
        pipeline.count_lines(ranges, plan, work, beam_options, log_path)
        found = {int(k): v for k, v in read_json(f"{work}/lines.json").items()}
        _check_headers(ranges, found, run.header, run.header_path)
        lines = {i: n for i, (n, _) in found.items()}
        starts = range_starts(ranges, lines, plan)
        logging.info("beam pass 2 of 3 (parse, count): %s lines", f"{sum(lines.values()):,}")
        pipeline.count_keys(starts, plan, min_counts, work, beam_options, log_path)
        summaries = sorted(read_json(f"{work}/ranges.json"), key=lambda s: s["index"])
        bad = _bad_row_log(summaries, input_pattern, o.on_bad_row)
        total = sum(s["lines"] for s in summaries)
        blank = sum(s["blank_lines"] for s in summaries)
        check_rows(input_pattern, total, blank, bad)
        output.mkdirs(f"{tmp}/vocab")
        vocabs = _vocabularies(fmt, work, min_counts)
        infos = write_vocabularies(fmt, vocabs, tmp, o.threshold, output.create)
        oov_ids = [f.oov_id for f in infos]
        logging.info("beam pass 3 of 3 (encode, write)")
        pipeline.write_examples(
            starts, plan, [f"{tmp}/{f.vocab_file}" for f in infos], oov_ids, work,
            o.compression, o.records_per_shard, beam_options, log_path,
        )
        written = _place_shards(read_json(f"{work}/written.json"), work, tmp, o.compression,
                                ExampleEncoder(oov_ids).record_len + FRAME_BYTES)
        output.delete([work])
        recorded_input = input_pattern if output.is_remote(input_pattern) else (
            os.path.abspath(input_pattern))
        stats = dataset_stats(fmt, infos, written, o, recorded_input, total, blank, bad)
        with output.create(f"{tmp}/{STATS_FILE}") as f:
            f.write(stats.to_json().encode("utf-8"))
    return stats


def _first_line(files: list[tuple[str, int]]) -> tuple[str | None, str | None]:
    """(first line, its file) of the first file that has one (empty files are skipped)."""
    for path, size in files:
        line = first_line(path) if size else None
        if line is not None:
            return line, path
    return None, None


def _check_headers(ranges: list[InputRange], found: dict[int, list], first: str | None,
                   first_path: str | None) -> None:
    """Every file's header must be the first file's (pass 1 read them)."""
    for r in ranges:
        header = found[r.index][1]
        if header is not None and header != first:
            raise DataError(
                f"{r.path}:1: header {header!r} differs from {first_path}'s {first!r}; every "
                "file of the input must have the same columns in the same order"
            )


def _bad_row_log(summaries: list[dict], input_pattern: str, on_bad_row: str) -> BadRowLog:
    """The run's bad rows from the ranges' summaries (in input order); with on_bad_row=error,
    raises BadRowError for the input's first bad row."""
    log = BadRowLog(input_pattern, "skip")
    for s in summaries:
        if s["bad"] and on_bad_row == "error":
            reason, (_, first_lines, detail) = min(s["bad"].items(), key=lambda kv: kv[1][1][0])
            raise BadRowError(s["path"], first_lines[0], reason, detail)
        for reason in REASONS:
            if reason in s["bad"]:
                count, first_lines, detail = s["bad"][reason]
                log.add(reason, count, first_lines, detail)
    return log


def _vocabularies(fmt: RawFormat, work: str, min_counts: list[int]) -> list[FieldVocabulary]:
    """Every field's final vocabulary from pass 2's files (kept keys in id order)."""
    totals = read_json(f"{work}/fields.json")
    vocabs = []
    for j in range(len(fmt.fields)):
        path = f"{work}/kept-{j:04d}.json"
        kept = read_json(path) if output.exists(path) else []
        counts = np.array([c for _, c in kept], np.int64)
        distinct, total = totals.get(str(j), (0, 0))
        vocabs.append(FieldVocabulary(
            values=[k for k, _ in kept], counts=counts, remap=np.zeros(0, np.int64),
            distinct=int(distinct), oov_count=int(total - counts.sum()),
        ))
    return vocabs


def _place_shards(ranges: list[dict], work: str, out_dir: str, compression: str,
                  record_bytes: int) -> WrittenSplits:
    """Renames the ranges' shards, in input order, to <split>-00000.tfrecord[.gz], ... (empty
    ones removed; a split without rows keeps one empty shard)."""
    suffix = ".tfrecord.gz" if compression == "gzip" else ".tfrecord"
    ranges = sorted(ranges, key=lambda w: w["index"])
    shards, shard_rows, rows, positives = {}, {}, {}, {}
    for name in split.SPLITS:
        parts = [(f, n) for w in ranges for f, n in
                 zip(w["splits"][name]["files"], w["splits"][name]["rows"])]
        kept = [(f, n) for f, n in parts if n] or parts[:1]
        shards[name] = [f"{name}-{k:05d}{suffix}" for k in range(len(kept))]
        shard_rows[name] = [n for _, n in kept]
        output.rename([f"{work}/{f}" for f, _ in kept], [f"{out_dir}/{f}" for f in shards[name]])
        rows[name] = sum(shard_rows[name])
        positives[name] = sum(w["splits"][name]["positives"] for w in ranges)
    return WrittenSplits(shards, shard_rows, rows, positives, record_bytes)
