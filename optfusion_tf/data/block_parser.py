"""One block of raw lines -> validated labels and per-field vocabulary keys, vectorized.

Steps, none of them a per-row Python loop on clean input:
1. Column counts per line with numpy (delimiter positions vs line ends); lines with the wrong
   count are reported and cut out before pandas sees them (pandas would silently pad a short
   row). Blocks of quoting formats that contain a quote character are counted with the csv
   module instead, line by line, since a quoted delimiter does not separate columns.
2. Arrow's CSV reader with every used column dictionary-encoded (`arrow_block`), where its
   result is the same as pandas' (no '\r', no quote, numbers only in numeric columns; most
   blocks), else pandas' C parser: numeric columns straight to float64 ("" = missing), the rest
   as untouched strings (keep_default_na=False, so "NA", "null", "nan" stay strings). A non-numeric
   cell makes the parser raise; only then is the block re-parsed as strings and checked cell by
   cell with pd.to_numeric to find the bad rows.
3. Labels, numeric cells and Avazu hours are validated; each bad row is reported once, under
   its first reason in bad_rows.REASONS order.
4. Each field is factorized (Arrow's dictionary, or pandas' hash table): per-row codes into a
   small list of unique keys in first-seen order, so vocabulary work downstream is per unique
   value, not per row.
"""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pandas as pd

from optfusion_tf.data import arrow_block, bad_rows, bucketing, formats
from optfusion_tf.data.raw_input import UTF8_BOM, RawBlock

_NEWLINE, _CR = 10, 13
_HOUR_PART = {
    formats.HOUR_OF_DAY: "hour",
    formats.WEEKDAY: "weekday",
    formats.IS_WEEKEND: "is_weekend",
}


@dataclasses.dataclass(frozen=True)
class FieldKeys:
    """One field's keys in a block, factorized.

    Attributes:
        codes: [R], index into `uniques` for every kept row; uint8, uint16 or int32, the
            narrowest that holds len(uniques) - 1 (less to send from the worker processes).
        uniques: the distinct vocabulary keys (str), in first-seen order.
    """

    codes: np.ndarray
    uniques: list[str]

    @classmethod
    def narrowed(cls, codes: np.ndarray, uniques: list[str]) -> "FieldKeys":
        """FieldKeys with `codes` (any integer type) in the narrowest type that holds them."""
        n = len(uniques)
        dtype = np.uint8 if n <= 1 << 8 else np.uint16 if n <= 1 << 16 else np.int32
        return cls(codes.astype(dtype, copy=False), uniques)


@dataclasses.dataclass(frozen=True)
class ParsedBlock:
    """What a block holds after validation.

    Attributes:
        n_lines: physical lines in the block (bad and blank ones included).
        row_lines: int64 [R], 0-based block line index of every kept row.
        labels: float32 [R], 0 or 1.
        fields: one FieldKeys per format field, in format order.
        bad: bad rows per reason.
        blank_lines: empty lines (skipped silently, as pandas does, and counted).
    """

    n_lines: int
    row_lines: np.ndarray
    labels: np.ndarray
    fields: list[FieldKeys]
    bad: list[bad_rows.BadRows]
    blank_lines: int


def _column_counts(
    block: RawBlock, fmt: formats.RawFormat, arr: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Number of columns on every line (int64 [n_lines]); -1 for a line the csv module rejects."""
    if fmt.quoting and b'"' in block.data:
        counts = np.empty(len(starts), np.int64)
        for i, line in enumerate(block.data.split(b"\n")[:-1]):
            try:
                text = line.rstrip(b"\r").decode("utf-8", errors="replace")
                counts[i] = len(next(csv.reader([text], delimiter=fmt.delimiter, strict=True)))
            except (csv.Error, StopIteration):
                counts[i] = -1
        return counts
    delims = np.flatnonzero(arr == ord(fmt.delimiter))
    return np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1


def _read_columns(data: bytes, fmt: formats.RawFormat, numeric_as_float: bool) -> pd.DataFrame:
    """pandas C parser over whole lines; columns named by raw column name."""
    index = {c: i for i, c in enumerate(fmt.columns)}
    numeric = [index[c] for c in fmt.numeric_columns]
    strings = [index[c] for c in fmt.string_columns]
    dtype = {i: object for i in strings}
    dtype.update({i: (np.float64 if numeric_as_float else object) for i in numeric})
    if b"\r" in data:  # CRLF line ends; a lone CR stays in its cell (not a line end)
        data = data.replace(b"\r\n", b"\n")
    df = pd.read_csv(
        io.BytesIO(data),
        lineterminator="\n",
        sep=fmt.delimiter,
        header=None,
        names=list(range(len(fmt.columns))),
        usecols=sorted(numeric + strings),
        dtype=dtype,
        keep_default_na=False,
        na_values={i: [""] for i in numeric} if numeric_as_float else None,
        na_filter=numeric_as_float,
        quoting=csv.QUOTE_MINIMAL if fmt.quoting else csv.QUOTE_NONE,
        engine="c",
        encoding="utf-8",
        encoding_errors="replace",
        skip_blank_lines=False,
    )
    df.columns = [fmt.columns[i] for i in df.columns]
    return df


class _PandasColumns:
    """One block's used columns read by pandas' C parser (the general path).

    Numeric columns are parsed as float64; a non-numeric cell makes the parser raise, and only
    then is the block re-parsed as strings and checked cell by cell with pd.to_numeric.

    Attributes:
        values: float64 [R] per numeric column (NaN = empty cell, and in the string path also
            an unparsable cell).
        raw: per numeric column, the raw strings when parsed as strings (for messages and
            bad-cell masks); empty when parsed as numbers.
    """

    def __init__(self, data: bytes, fmt: formats.RawFormat):
        self.values: dict[str, np.ndarray] = {}
        self.raw: dict[str, np.ndarray] = {}
        try:
            self._df = _read_columns(data, fmt, numeric_as_float=True)
            for col in fmt.numeric_columns:
                self.values[col] = self._df[col].to_numpy(np.float64)
        except ValueError as e:  # a non-numeric cell in a numeric column: find it cell by cell
            if isinstance(e, pd.errors.ParserError):
                raise
            self._df = _read_columns(data, fmt, numeric_as_float=False)
            for col in fmt.numeric_columns:
                self.raw[col] = self._df[col].to_numpy(object)
                self.values[col] = pd.to_numeric(
                    self._df[col].mask(self.raw[col] == ""), errors="coerce"
                ).to_numpy(np.float64)

    def categorical(self, col: str, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The kept rows' strings of `col`, factorized in first-seen order."""
        codes, uniques = pd.factorize(self._df[col].to_numpy(object)[keep])
        return codes.astype(np.int32), list(uniques)

    def numeric(self, rule: str, col: str, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The kept rows' `rule` buckets of `col`, factorized in first-seen order (NaN a key)."""
        return _factorize_numbers(bucketing.apply_rule(rule, self.values[col][keep]))


def _factorize_numbers(keys: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bucketed numbers float64 [R] -> (int32 codes [R], canonical keys in first-seen order)."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    return codes.astype(np.int32), [bucketing.canonical_key(u) for u in uniques.tolist()]


def _describe(col: str, i: int, values: dict[str, np.ndarray], raw: dict[str, np.ndarray]) -> str:
    if col in raw:
        return repr(raw[col][i])
    v = values[col][i]
    return "an empty cell" if np.isnan(v) else f"{v:g}"


def _lines_with_right_count(
    block: RawBlock, fmt: formats.RawFormat
) -> tuple[bytes, np.ndarray, list[bad_rows.BadRows], int]:
    """Checks every line's column count.

    Returns:
        (bytes of the good lines, their int64 block line indexes, wrong-count bad rows,
        blank lines).
    """
    arr = np.frombuffer(block.data, np.uint8)
    ends = np.flatnonzero(arr == _NEWLINE)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts
    blank = lengths == 0
    one = lengths == 1
    blank[one] = arr[starts[one]] == _CR
    counts = _column_counts(block, fmt, arr, starts, ends)
    ncols = len(fmt.columns)
    wrong = (counts != ncols) & ~blank
    bad = []
    if wrong.any():
        first = int(np.argmax(wrong))
        found = "an unparsable quoted line" if counts[first] < 0 else f"{counts[first]}"
        bad.append(
            bad_rows.BadRows(
                bad_rows.WRONG_COLUMN_COUNT,
                block.first_line + np.flatnonzero(wrong),
                f"expected {ncols} columns separated by {fmt.delimiter!r}, found {found}",
            )
        )
    good = ~(wrong | blank)
    data = block.data if good.all() else arr[np.repeat(good, lengths + 1)].tobytes()
    return data, np.flatnonzero(good), bad, int(blank.sum())


def parse_block(block: RawBlock, fmt: formats.RawFormat) -> ParsedBlock:
    """Validates and factorizes one block (see the module docstring).

    A block Arrow parses whole (every line with the right column count, see `arrow_block`) is
    only validated. Otherwise, a block whose delimiter total is exactly n_lines * (columns - 1)
    goes to pandas directly: if no line has too many columns (the C parser raises on those),
    none has too few either.

    Args:
        block: whole lines of the raw file.
        fmt: the raw format.
    Returns:
        A ParsedBlock with R kept rows (R <= block.n_lines).
    """
    block = _without_line_boms(block)
    every_line = np.arange(block.n_lines)
    columns = arrow_block.read_block(block.data, block.n_lines, fmt)
    if columns is not None:
        return _checked(block, fmt, columns, every_line, [], 0)
    quoted = fmt.quoting and b'"' in block.data
    if not quoted and block.data.count(fmt.delimiter.encode()) == block.n_lines * (
        len(fmt.columns) - 1
    ):
        try:
            return _checked(block, fmt, _PandasColumns(block.data, fmt), every_line, [], 0)
        except pd.errors.ParserError:
            pass  # some line has too many columns (and another too few): count line by line
    data, line_index, bad, blank = _lines_with_right_count(block, fmt)
    if not line_index.size:
        return ParsedBlock(block.n_lines, line_index, np.zeros(0, np.float32), [], bad, blank)
    return _parse_lines(block, fmt, data, line_index, bad, blank)


def _without_line_boms(block: RawBlock) -> RawBlock:
    """`block` without a UTF-8 byte order mark at the start of any line.

    Arrow's and pandas' parsers drop one at the start of the data they are given, that is at a
    block's start, and keep it elsewhere; so the output would depend on where blocks are cut
    (files once BOM-prefixed and then concatenated have one at the start of a line mid-file).
    Dropping it at every line start makes the parse independent of the cuts.
    """
    if UTF8_BOM not in block.data:
        return block
    data = block.data.replace(b"\n" + UTF8_BOM, b"\n")
    data = data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data
    return RawBlock(data, block.first_line, block.n_lines)


def _parse_lines(
    block: RawBlock,
    fmt: formats.RawFormat,
    data: bytes,
    line_index: np.ndarray,
    bad: list[bad_rows.BadRows],
    blank: int,
) -> ParsedBlock:
    """Parses lines that have the right column count; `line_index` are their block line indexes."""
    columns = arrow_block.read_block(data, len(line_index), fmt)
    if columns is None:
        columns = _PandasColumns(data, fmt)
    return _checked(block, fmt, columns, line_index, bad, blank)


def _checked(
    block: RawBlock,
    fmt: formats.RawFormat,
    columns: _PandasColumns | arrow_block.ArrowColumns,
    line_index: np.ndarray,
    bad: list[bad_rows.BadRows],
    blank: int,
) -> ParsedBlock:
    """Validates the parsed lines (`line_index`: their block line indexes) and factorizes."""
    values, raw = columns.values, columns.raw
    labels, rejected = fmt.label_rule.apply(values[fmt.label_column])
    checks = [
        (
            bad_rows.BAD_LABEL,
            rejected,
            fmt.label_column,
            f"is not a valid label ({fmt.label_rule.describe()})",
        )
    ]
    for f in fmt.fields:
        if f.kind == formats.NUMERIC:
            v = values[f.source]
            cells = (
                np.isinf(v) | (np.isnan(v) & (raw[f.source] != ""))
                if f.source in raw
                else np.isinf(v)
            )
            checks.append((bad_rows.NON_NUMERIC, cells, f.source, "is not a finite number"))
    hours = {}
    for f in fmt.fields:
        if f.kind in formats.HOUR_KINDS and f.source not in hours:
            hours[f.source] = bucketing.decompose_hour(values[f.source])
            checks.append(
                (bad_rows.BAD_HOUR, hours[f.source].bad, f.source, "is not a YYMMDDHH hour")
            )
    rejected = np.zeros(len(labels), bool)
    for reason in bad_rows.REASONS[1:]:
        found = [(cells & ~rejected, col, what) for r, cells, col, what in checks if r == reason]
        new = np.zeros(len(labels), bool)
        for cells, _, _ in found:
            new |= cells
        if new.any():
            # The detail describes the first bad line (the one the message names): its first
            # bad cell, not the first bad cell of some later line.
            i = int(np.argmax(new))
            col, what = next((col, what) for cells, col, what in found if cells[i])
            detail = f"column {col!r}: {_describe(col, i, values, raw)} {what}"
            bad.append(bad_rows.BadRows(reason, block.first_line + line_index[new], detail))
            rejected |= new
    keep = ~rejected

    keys = []
    for f in fmt.fields:
        if f.kind == formats.CATEGORICAL:
            keys.append(FieldKeys.narrowed(*columns.categorical(f.source, keep)))
        elif f.kind == formats.NUMERIC:
            keys.append(FieldKeys.narrowed(*columns.numeric(f.rule, f.source, keep)))
        else:
            part = getattr(hours[f.source], _HOUR_PART[f.kind])[keep]
            keys.append(FieldKeys.narrowed(*_factorize_numbers(part)))
    bad.sort(key=lambda b: b.lines[0])
    return ParsedBlock(block.n_lines, line_index[keep], labels[keep], keys, bad, blank)
