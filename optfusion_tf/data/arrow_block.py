"""The fast path of `block_parser`: Arrow's CSV reader, every column dictionary-encoded.

Arrow parses a block and dictionary-encodes each used column in one pass (per-row int32
indices into the column's distinct strings, in first-seen order), so parsing, factorizing and
number conversion work per distinct string, not per row. It is taken only where its result is
the same as pandas' (`block_parser`'s general path), and `read_block` returns None otherwise:

- no '\\r' in the block (pandas and Arrow split lines on a lone '\\r' differently) and, for
  quoting formats, no '"' (quoted cells stay with pandas' QUOTE_MINIMAL rules);
- every line has the format's column count (Arrow raises otherwise; pandas reports the line),
  and every used cell is valid UTF-8 (pandas replaces bad bytes);
- every distinct string of a numeric column is a number for pandas' C parser, which converts
  them (one small parse per column and block): the values are the general path's; a block
  with a non-numeric cell goes to the general path, which reports it.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from optfusion_tf.data import bucketing, formats

# Bytes while parsing (Arrow's per-cell UTF-8 check costs ~0.5 us a Criteo row), decoded and
# checked per distinct value afterwards.
_BYTES = pa.dictionary(pa.int32(), pa.binary())
# malloc, not Arrow's default mimalloc, which keeps freed blocks' pages (peak RSS of criteo2TF
# at 1M rows, 2 workers: 597 MiB with malloc, 652 MiB with mimalloc, one run each).
_POOL = pa.system_memory_pool()


class ArrowColumns:
    """One block's used columns, dictionary-encoded (see the module docstring).

    Attributes:
        values: float64 [R] per numeric column (NaN = empty cell).
        raw: always empty (the pandas path's raw strings of numeric columns; here every numeric
            string is a number, so there is nothing to describe but its value).
    """

    def __init__(
        self, columns: dict[str, tuple[np.ndarray, pa.StringArray]], numbers: dict[str, np.ndarray]
    ):
        self._codes = {c: codes for c, (codes, _) in columns.items()}
        self._dictionaries = {c: dictionary for c, (_, dictionary) in columns.items()}
        self._numbers = numbers
        self.values = {c: u[self._codes[c]] for c, u in numbers.items()}
        self.raw: dict[str, np.ndarray] = {}

    def categorical(self, col: str, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The kept rows' strings of `col`, factorized in first-seen order: (int32 codes [R],
        distinct strings)."""
        dictionary = self._dictionaries[col]
        if keep.all():  # the dictionary is in first-seen order already
            return self._codes[col], dictionary.to_pylist()
        codes, order = _kept_entries(self._codes[col], keep, len(dictionary))
        entry_code = np.empty(len(dictionary), np.int32)
        entry_code[order] = np.arange(len(order), dtype=np.int32)
        return entry_code[codes], dictionary.take(pa.array(order)).to_pylist()

    def numeric(self, rule: str, col: str, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The kept rows' `rule` buckets of `col`, factorized in first-seen order: (int32 codes
        [R], bucket keys, see bucketing.canonical_key)."""
        codes, order = _kept_entries(self._codes[col], keep, len(self._numbers[col]))
        buckets = bucketing.apply_rule(rule, self._numbers[col][order])
        bucket_codes, uniques = pd.factorize(buckets, use_na_sentinel=False)
        entry_code = np.empty(len(self._numbers[col]), np.int32)
        entry_code[order] = bucket_codes
        return entry_code[codes], [bucketing.canonical_key(u) for u in uniques.tolist()]


def _kept_entries(
    codes: np.ndarray, keep: np.ndarray, n_entries: int
) -> tuple[np.ndarray, np.ndarray]:
    """(the kept rows' codes, the dictionary entries they use in first-seen order)."""
    if keep.all():
        return codes, np.arange(n_entries)
    codes = codes[keep]
    entries, first = np.unique(codes, return_index=True)
    return codes, entries[np.argsort(first)]


def _numbers(strings: pa.StringArray, delimiter: str) -> np.ndarray | None:
    """float64 per distinct string of a numeric column, converted by pandas' C parser exactly
    as in a block ("" -> NaN; its conversion of a cell depends on the cell's text only), or
    None if one is not a number (the pandas path then finds and reports the bad rows)."""
    try:
        return pd.read_csv(
            io.StringIO("\n".join(strings.to_pylist()) + "\n"),
            sep=delimiter,
            header=None,
            names=[0],
            dtype={0: np.float64},
            keep_default_na=False,
            na_values={0: [""]},
            skip_blank_lines=False,
            quoting=csv.QUOTE_NONE,
            engine="c",
        )[0].to_numpy()
    except ValueError:
        return None


def read_block(data: bytes, n_lines: int, fmt: formats.RawFormat) -> ArrowColumns | None:
    """Parses whole lines with Arrow, or returns None where the pandas path must decide."""
    if b"\r" in data or (fmt.quoting and b'"' in data):
        return None
    used = list(dict.fromkeys(fmt.numeric_columns + fmt.string_columns))
    names = [str(i) for i in range(len(fmt.columns))]
    by_name = {c: str(fmt.columns.index(c)) for c in used}
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(
                column_names=names, use_threads=False, block_size=len(data) + 1
            ),
            parse_options=pa_csv.ParseOptions(delimiter=fmt.delimiter, quote_char=False),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(by_name.values()),
                column_types={by_name[c]: _BYTES for c in used},
                strings_can_be_null=False,
                null_values=[],
            ),
            memory_pool=_POOL,
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != n_lines:
        return None
    columns = {}
    for c in used:
        chunks = table.column(by_name[c]).chunks
        if len(chunks) != 1:
            return None
        try:
            strings = chunks[0].dictionary.cast(pa.string())
        except pa.ArrowInvalid:  # not UTF-8: pandas replaces the bytes
            return None
        columns[c] = (chunks[0].indices.to_numpy(zero_copy_only=False), strings)
    numbers = {}
    for c in fmt.numeric_columns:
        numbers[c] = _numbers(columns[c][1], fmt.delimiter)
        if numbers[c] is None:
            return None
    return ArrowColumns(columns, numbers)
