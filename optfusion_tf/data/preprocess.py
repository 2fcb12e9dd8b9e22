"""The two-pass preprocessing pipeline: raw log -> TFRecord shards, vocab/*.tsv, stats.json.

Pass 1 (`count_pass`) streams the raw file once, in line-aligned blocks: each block is parsed
and validated, its lines are assigned to splits, every field's values get provisional ids and
are counted (train rows only with vocab_scope=train, all rows with vocab_scope=all), and the
rows' codes and their block's provisional ids go to an on-disk cache (`id_cache`). Between the
passes each field's vocabulary is fixed and written (`vocabulary`). Pass 2 (`write_pass`)
reads the cache, remaps provisional ids to global ids with numpy takes per block, and writes
the Examples. Parsing, counting and encoding run in a pool of worker processes (`worker_pool`).

Memory grows with the number of distinct values only; the output directory is built in a
temporary sibling and renamed into place at the end (`atomic_dir`).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import time
from typing import BinaryIO, Callable

import numpy as np
from absl import logging

from optfusion_tf.data import formats
from optfusion_tf.data.atomic_dir import atomic_output_dir, check_output_dir
from optfusion_tf.data.bad_rows import BadRowLog
from optfusion_tf.data.count_pass import count_pass
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.raw_input import read_first_line
from optfusion_tf.data.stats import DatasetStats, FieldInfo
from optfusion_tf.data.vocabulary import FieldVocabulary, ValueCounter, write_vocab
from optfusion_tf.data.options import PreprocessOptions
from optfusion_tf.data.worker_pool import OrderedPool
from optfusion_tf.data.write_pass import WrittenSplits, write_pass

DATASET_KINDS = ("criteo", "avazu", "kdd12", "csv")
_CACHE_FILE = "_ids.cache"
_REMAP_FILE = "_remap.npy"
_PRELOAD = ("optfusion_tf.data.block_parser", "optfusion_tf.data.write_pass")


@dataclasses.dataclass(frozen=True)
class CsvOptions:
    """How to read a user's delimited file (csv2TF flags of the same names).

    Attributes:
        label_col: label column (header name or 0-based index).
        categorical_cols: categorical columns.
        numeric_cols: numeric columns.
        numeric_rule: "log_square" (Criteo's) or "identity".
        delimiter: field separator.
        header: whether the first line holds column names.
        label_positive_if: comparison making a label positive ("", or e.g. ">0", ">=4");
            "" means the label column must hold 0 or 1.
        name: dataset name (default: the input file name without extensions).
    """

    label_col: str
    categorical_cols: tuple[str, ...] = ()
    numeric_cols: tuple[str, ...] = ()
    numeric_rule: str = "log_square"
    delimiter: str = ","
    header: bool = True
    label_positive_if: str = ""
    name: str = ""


def dataset_name(kind: str, input_path: str, csv_options: CsvOptions | None = None) -> str:
    """criteo | avazu | kdd12, or the CSV's --name (default: input file name sans extensions)."""
    if kind != "csv":
        return kind
    if csv_options is not None and csv_options.name:
        return csv_options.name
    return os.path.basename(input_path).split(".")[0] or "csv"


def default_record_dir(name: str, threshold: int) -> str:
    """The --record default: tfrecords/<name>_<threshold>."""
    return os.path.join("tfrecords", f"{name}_{threshold}")


def raw_format(
    kind: str, input_path: str, csv_options: CsvOptions | None = None
) -> formats.RawFormat:
    """The RawFormat of `input_path` (Avazu and CSV take their columns from its first line).

    Raises:
        DataError: unknown kind, empty input, or a header/column spec that does not fit.
    """
    if kind not in DATASET_KINDS:  # before reading the input
        raise DataError(f"dataset kind must be one of {DATASET_KINDS}. Received: {kind!r}")
    return format_from_first_line(kind, read_first_line(input_path), input_path, csv_options)


def format_from_first_line(
    kind: str, first: str | None, input_path: str, csv_options: CsvOptions | None = None
) -> formats.RawFormat:
    """`raw_format` given the input's first line (`first`, None for an empty input)."""
    if kind not in DATASET_KINDS:
        raise DataError(f"dataset kind must be one of {DATASET_KINDS}. Received: {kind!r}")
    if first is None:
        raise DataError(f"{input_path}: empty input (no header, no rows)")
    if kind == "criteo":
        return formats.criteo_format()
    if kind == "kdd12":
        return formats.kdd12_format()
    if kind == "avazu":
        return formats.avazu_format(first.split(","))
    if csv_options is None:
        raise DataError(
            "csv input needs CsvOptions (--label_col, --categorical_cols, --numeric_cols)"
        )
    o = csv_options
    if len(o.delimiter) != 1:
        raise DataError(f"--delimiter must be one character. Received: {o.delimiter!r}")
    cells = next(csv.reader([first], delimiter=o.delimiter))
    columns = cells if o.header else [f"column_{i}" for i in range(len(cells))]
    if o.header and len(set(columns)) != len(columns):
        raise DataError(f"{input_path}:1: header has repeated column names: {columns}")
    return formats.csv_format(
        dataset_name(kind, input_path, o),
        columns,
        label_col=o.label_col,
        categorical_cols=o.categorical_cols,
        numeric_cols=o.numeric_cols,
        numeric_rule=o.numeric_rule,
        delimiter=o.delimiter,
        has_header=o.header,
        label_positive_if=o.label_positive_if or None,
    )


def _vocab_file_names(names: list[str]) -> list[str]:
    """vocab/<field>.tsv paths, with characters unsafe in file names replaced by '_'."""
    out, used = [], set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "field"
        stem, k = base, 1
        while stem.lower() in used:
            stem, k = f"{base}_{k}", k + 1
        used.add(stem.lower())
        out.append(f"vocab/{stem}.tsv")
    return out


def field_min_counts(fmt: formats.RawFormat, threshold: int) -> list[int]:
    """Each field's min count: its own (Criteo's I-fields: 1), else --threshold."""
    return [threshold if spec.min_count is None else spec.min_count for spec in fmt.fields]


def write_vocabularies(
    fmt: formats.RawFormat,
    vocabs: list[FieldVocabulary],
    out_dir: str,
    threshold: int,
    create: Callable[[str], BinaryIO] | None = None,
) -> list[FieldInfo]:
    """Writes every field's vocab/<field>.tsv and lays out the global ids (field by field).

    `create`: opens a path for binary writing where `out_dir` is not local (see write_vocab).
    """
    if create is None:
        os.makedirs(os.path.join(out_dir, "vocab"))
    infos, offset = [], 0
    min_counts = field_min_counts(fmt, threshold)
    vocab_files = _vocab_file_names(fmt.field_names)
    for spec, vocab, vocab_file, min_count in zip(fmt.fields, vocabs, vocab_files, min_counts):
        write_vocab(os.path.join(out_dir, vocab_file), vocab, offset, create)
        infos.append(
            FieldInfo(
                name=spec.name,
                kind=spec.kind,
                source=spec.source,
                rule=spec.rule,
                offset=offset,
                size=vocab.size,
                oov_id=offset + vocab.size - 1,
                min_count=min_count,
                vocab_file=vocab_file,
                distinct_values=vocab.distinct,
                oov_count=vocab.oov_count,
            )
        )
        offset += vocab.size
    return infos


def _fix_vocabularies(
    fmt: formats.RawFormat, counters: list[ValueCounter], out_dir: str, threshold: int
) -> tuple[list[FieldInfo], np.ndarray, np.ndarray]:
    """Fixes every field's vocabulary, writes vocab/<field>.tsv and lays out the global ids.

    Returns:
        (per-field FieldInfo; remap int64 [sum of fields' distinct keys], provisional id ->
        global id, fields concatenated; bases int64 [F], each field's start in remap).
    """
    min_counts = field_min_counts(fmt, threshold)
    vocabs = [c.finalize(m) for c, m in zip(counters, min_counts)]
    infos = write_vocabularies(fmt, vocabs, out_dir, threshold)
    remaps = [v.remap + info.offset for v, info in zip(vocabs, infos)]
    bases = np.cumsum([0] + [len(r) for r in remaps[:-1]]).astype(np.int64)
    return infos, np.concatenate(remaps), bases


def preprocess(
    kind: str,
    input_path: str,
    record_dir: str | None = None,
    options: PreprocessOptions = PreprocessOptions(),
    csv_options: CsvOptions | None = None,
) -> DatasetStats:
    """Preprocesses one raw file into a dataset directory.

    Args:
        kind: "criteo", "avazu", "kdd12" or "csv".
        input_path: the raw file, plain or gzip.
        record_dir: output directory; default tfrecords/<name>_<threshold>.
        options: options shared by all formats.
        csv_options: required for kind "csv".
    Returns:
        The written DatasetStats (also in <record_dir>/stats.json).
    Raises:
        DataError: unusable input or output (missing/empty/corrupt file, existing output
            without overwrite, no valid rows, a bad row with on_bad_row="error").
    """
    start = time.monotonic()
    fmt = raw_format(kind, input_path, csv_options)
    record_dir = record_dir or default_record_dir(fmt.dataset, options.threshold)
    check_output_dir(record_dir, options.overwrite, input_path)
    logging.info(
        "preprocessing %s (%s, %d fields) -> %s",
        input_path,
        fmt.dataset,
        len(fmt.fields),
        record_dir,
    )
    o = options
    with atomic_output_dir(record_dir, o.overwrite, input_path) as tmp, OrderedPool(
        o.workers, _PRELOAD
    ) as pool:
        cache_path = os.path.join(tmp, _CACHE_FILE)
        counted = count_pass(fmt, input_path, cache_path, pool, o)
        bad, lines, blank = counted.bad, counted.lines, counted.blank_lines
        check_rows(input_path, lines, blank, bad)

        infos, remap, bases = _fix_vocabularies(fmt, counted.counters, tmp, o.threshold)
        del counted.counters[:]  # pass 1's largest structure
        remap_path = os.path.join(tmp, _REMAP_FILE)
        np.save(remap_path, remap)
        del remap
        written = write_pass(
            cache_path,
            counted.cache_offsets,
            remap_path,
            bases,
            [f.oov_id for f in infos],
            tmp,
            pool,
            o,
        )
        os.remove(cache_path)
        os.remove(remap_path)

        stats = dataset_stats(
            fmt, infos, written, o, os.path.abspath(input_path), lines, blank, bad
        )
        stats.save(tmp)
    log_written(record_dir, stats, time.monotonic() - start)
    return stats


def check_rows(input_path: str, lines: int, blank: int, bad: BadRowLog) -> None:
    """Logs the bad-row summary; raises DataError for an input without a valid row."""
    bad.log_summary()
    if not lines:
        raise DataError(f"{input_path}: empty input (no data rows)")
    if lines == blank + bad.total:
        raise DataError(
            f"{input_path}: no valid rows ({lines} lines read, {bad.total} bad, {blank} blank)"
        )


def dataset_stats(
    fmt: formats.RawFormat,
    infos: list[FieldInfo],
    written: WrittenSplits,
    options: PreprocessOptions,
    input_path: str,
    lines: int,
    blank: int,
    bad: BadRowLog,
) -> DatasetStats:
    """The stats.json of a written dataset."""
    return DatasetStats(
        dataset=fmt.dataset,
        field_names=fmt.field_names,
        num_fields=len(infos),
        feature_num=infos[-1].oov_id + 1,
        fields=infos,
        rows=written.rows,
        shards=written.shards,
        shard_rows=written.shard_rows,
        record_bytes=written.record_bytes,
        **options.recorded(),
        label={"column": fmt.label_column, "rule": fmt.label_rule.describe()},
        positives=written.positives,
        input_path=input_path,
        input_lines=lines,
        blank_lines=blank,
        bad_rows=bad.summary(),
    )


def log_written(record_dir: str, stats: DatasetStats, elapsed: float) -> None:
    """The end-of-run log line, and the one-class warnings."""
    logging.info(
        "wrote %s: rows %s, feature_num %s, %d bad rows, %.1f s (%s lines/s end to end)",
        record_dir,
        stats.rows,
        f"{stats.feature_num:,}",
        sum(r["count"] for r in stats.bad_rows.values()),
        elapsed,
        f"{stats.input_lines / max(elapsed, 1e-9):,.0f}",
    )
    for warning in one_class_warnings(stats):
        logging.warning("%s", warning)


def one_class_warnings(stats: DatasetStats) -> list[str]:
    """One line per non-empty split whose rows all have one label (e.g. a label rule such as
    '>-1' that every value meets): search.py and retrain.py refuse such a dataset."""
    return [
        f"{stats.input_path}: every one of the {stats.rows[split]:,} {split} rows has label "
        f"{label} (label {stats.label['column']!r}, rule {stats.label['rule']!r}); AUC needs "
        "both classes, so training will refuse it"
        for split, label in stats.one_class_splits().items()
    ]
