"""What each raw click-log format holds: its columns, its feature fields and its label rule.

A `RawFormat` is pure data; `block_parser` applies it. The per-dataset rules are DESIGN.md
section 2 (and the reference's dataprocess/*2TF.py):

- Criteo: TSV, no header: label, I1..I13 (integers, may be empty or negative), C1..C26.
  I-fields use the `log_square` rule and keep every value seen (min count 1).
- Avazu: CSV with header. `id` is dropped, `click` is the label, `hour` (YYMMDDHH) becomes the
  fields hour (HH, in place of the column), weekday (0-6, Sunday = 0, as strftime("%w")) and
  is_weekend (appended at the end, as the reference appends them): 24 fields.
- KDD12 track 2: TSV, no header, 12 columns; label = 1 if Click > 0; the other 11 columns
  (Impression included, as in the reference's kdd2TF.py) are categorical fields.
- CSV: any delimited file; the user names the label, categorical and numeric columns.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from optfusion_tf.data.errors import DataError

CATEGORICAL = "categorical"
NUMERIC = "numeric"
HOUR_OF_DAY = "hour_of_day"
WEEKDAY = "weekday"
IS_WEEKEND = "is_weekend"
FIELD_KINDS = (CATEGORICAL, NUMERIC, HOUR_OF_DAY, WEEKDAY, IS_WEEKEND)
HOUR_KINDS = (HOUR_OF_DAY, WEEKDAY, IS_WEEKEND)
NUMERIC_RULES = ("log_square", "identity")
LABEL_DOMAINS = ("binary", "count", "number")

CRITEO_INT_FIELDS = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CAT_FIELDS = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS = ("label",) + CRITEO_INT_FIELDS + CRITEO_CAT_FIELDS
KDD12_COLUMNS = (
    "Click",
    "Impression",
    "DisplayURL",
    "AdID",
    "AdvertiserID",
    "Depth",
    "Position",
    "QueryID",
    "KeywordID",
    "TitleID",
    "DescriptionID",
    "UserID",
)
AVAZU_ID, AVAZU_LABEL, AVAZU_HOUR = "id", "click", "hour"

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_COMPARATORS = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One feature field: where its raw value comes from and how it becomes a vocabulary key.

    Attributes:
        name: field name (stats.json, vocab/<name>.tsv).
        kind: one of FIELD_KINDS. `categorical`: the raw string is the key ("" = missing).
            `numeric`: the raw number goes through `rule` (see `bucketing`). The hour kinds derive
            from an Avazu YYMMDDHH column.
        source: raw column the value is read from.
        rule: numeric rule, one of NUMERIC_RULES (numeric fields only).
        min_count: count a value needs in the vocabulary scope to get its own id; None means
            the run's --threshold (Criteo I-fields use 1: no frequency threshold).
    """

    name: str
    kind: str
    source: str
    rule: str | None = None
    min_count: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(
                f"field {self.name!r}: kind must be one of {FIELD_KINDS}. Received: {self.kind!r}"
            )
        if (self.kind == NUMERIC) != (self.rule is not None):
            raise ValueError(
                f"field {self.name!r}: a rule is required for numeric fields only. "
                f"Received: {self.rule!r}"
            )
        if self.rule is not None and self.rule not in NUMERIC_RULES:
            raise ValueError(
                f"field {self.name!r}: rule must be one of {NUMERIC_RULES}. Received: {self.rule!r}"
            )


@dataclasses.dataclass(frozen=True)
class LabelRule:
    """How the label column becomes 0/1.

    Attributes:
        domain: which raw values are valid: `binary` (0 or 1), `count` (integer >= 0),
            `number` (any finite number).
        positive_if: comparison making a label positive, e.g. ">0" or ">=4"; None for `binary`.
    """

    domain: str = "binary"
    positive_if: str | None = None

    def __post_init__(self) -> None:
        if self.domain not in LABEL_DOMAINS:
            raise ValueError(
                f"label domain must be one of {LABEL_DOMAINS}. Received: {self.domain!r}"
            )
        if self.positive_if is not None and not _COMPARISON.match(self.positive_if):
            raise ValueError(
                "label rule must be a comparison with a number such as '>0' or '>=4'. "
                f"Received: {self.positive_if!r}"
            )
        if self.domain != "binary" and self.positive_if is None:
            raise ValueError(f"label domain {self.domain!r} needs a positive_if comparison")

    def apply(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw label numbers (float64 [N], NaN = missing) -> (labels float32 [N], bad bool [N])."""
        finite = np.isfinite(values)
        if self.domain == "binary":
            bad = ~((values == 0.0) | (values == 1.0))
        elif self.domain == "count":
            bad = ~(finite & (values >= 0) & (np.floor(values) == values))
        else:
            bad = ~finite
        if self.positive_if is None:
            positive = values == 1.0
        else:
            op, number = _COMPARISON.match(self.positive_if).group(1, 2)
            with np.errstate(invalid="ignore"):
                positive = _COMPARATORS[op](values, float(number))
        return positive.astype(np.float32), bad

    def describe(self) -> str:
        """Human-readable rule for logs and stats.json, e.g. 'count, positive if >0'."""
        return (
            self.domain
            if self.positive_if is None
            else f"{self.domain}, positive if {self.positive_if}"
        )


@dataclasses.dataclass(frozen=True)
class RawFormat:
    """A raw file layout and what to make of it.

    Attributes:
        dataset: dataset name (criteo | avazu | kdd12 | the CSV's name).
        delimiter: one-character field separator.
        has_header: whether the first line holds column names.
        columns: every raw column, in file order.
        label_column: raw column holding the label.
        label_rule: how the label becomes 0/1.
        fields: the feature fields, in id-layout order.
        quoting: whether fields may be double-quoted (CSV); False for the TSV logs.
    """

    dataset: str
    delimiter: str
    has_header: bool
    columns: tuple[str, ...]
    label_column: str
    label_rule: LabelRule
    fields: tuple[FieldSpec, ...]
    quoting: bool = False

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or not self.delimiter.isascii() or self.delimiter in '\r\n"':
            raise ValueError(
                "delimiter must be one ASCII character other than a quote or newline. "
                f"Received: {self.delimiter!r}"
            )
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"field names must be unique. Received: {names}")
        known = set(self.columns)
        for source in [self.label_column] + [f.source for f in self.fields]:
            if source not in known:
                raise ValueError(
                    f"column {source!r} is not in the format's columns {list(self.columns)}"
                )
        if not self.fields:
            raise ValueError("a format needs at least one feature field")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def numeric_columns(self) -> list[str]:
        """Raw columns parsed as numbers: the label, numeric fields, Avazu hour (each once)."""
        cols = [self.label_column] + [f.source for f in self.fields if f.kind != CATEGORICAL]
        return list(dict.fromkeys(cols))

    @property
    def string_columns(self) -> list[str]:
        """Raw columns kept as strings: the sources of categorical fields (each once)."""
        return list(dict.fromkeys(f.source for f in self.fields if f.kind == CATEGORICAL))


def criteo_format() -> RawFormat:
    """Criteo Display Advertising Challenge train.txt: 39 fields (13 integer, 26 categorical)."""
    fields = tuple(
        FieldSpec(c, NUMERIC, c, rule="log_square", min_count=1) for c in CRITEO_INT_FIELDS
    )
    fields += tuple(FieldSpec(c, CATEGORICAL, c) for c in CRITEO_CAT_FIELDS)
    return RawFormat("criteo", "\t", False, CRITEO_COLUMNS, "label", LabelRule("binary"), fields)


def kdd12_format() -> RawFormat:
    """KDD Cup 2012 track 2 training.txt: label = Click > 0, 11 categorical fields."""
    fields = tuple(FieldSpec(c, CATEGORICAL, c) for c in KDD12_COLUMNS[1:])
    return RawFormat("kdd12", "\t", False, KDD12_COLUMNS, "Click", LabelRule("count", ">0"), fields)


def avazu_format(header: Sequence[str]) -> RawFormat:
    """Avazu train.csv with its header row: 24 fields (hour split into hour/weekday/is_weekend)."""
    header = tuple(header)
    for required in (AVAZU_LABEL, AVAZU_HOUR):
        if required not in header:
            raise DataError(
                f"Avazu header must have a {required!r} column. Received: {list(header)}"
            )
    fields = []
    for col in header:
        if col == AVAZU_HOUR:
            fields.append(FieldSpec(AVAZU_HOUR, HOUR_OF_DAY, AVAZU_HOUR))
        elif col not in (AVAZU_ID, AVAZU_LABEL):
            fields.append(FieldSpec(col, CATEGORICAL, col))
    fields += [
        FieldSpec("weekday", WEEKDAY, AVAZU_HOUR),
        FieldSpec("is_weekend", IS_WEEKEND, AVAZU_HOUR),
    ]
    return RawFormat(
        "avazu", ",", True, header, AVAZU_LABEL, LabelRule("binary"), tuple(fields), quoting=True
    )


def resolve_columns(spec: Sequence[str], columns: Sequence[str], flag: str) -> list[str]:
    """Column references (header names or 0-based indexes, as in --categorical_cols) -> names."""
    names = []
    for ref in spec:
        ref = ref.strip()
        if ref in columns:
            names.append(ref)
        elif ref.isdigit() and int(ref) < len(columns):
            names.append(columns[int(ref)])
        else:
            raise DataError(
                f"--{flag}: {ref!r} is neither a column name nor a 0-based index "
                f"below {len(columns)}; "
                f"columns are {list(columns)}"
            )
    return names


def csv_format(
    name: str,
    columns: Sequence[str],
    *,
    label_col: str,
    categorical_cols: Sequence[str],
    numeric_cols: Sequence[str],
    numeric_rule: str = "log_square",
    delimiter: str = ",",
    has_header: bool = True,
    label_positive_if: str | None = None,
) -> RawFormat:
    """A user's delimited file. Column references are header names or 0-based indexes.

    Without a header, columns are named column_0, column_1, ... A numeric field with the
    `log_square` rule keeps every seen value (min count 1, as Criteo's I-fields); `identity`
    numeric and categorical fields use --threshold.
    """
    columns = tuple(columns)
    (label,) = resolve_columns([label_col], columns, "label_col")
    categorical = resolve_columns(categorical_cols, columns, "categorical_cols")
    numeric = resolve_columns(numeric_cols, columns, "numeric_cols")
    used = [label] + categorical + numeric
    if len(set(used)) != len(used):
        raise DataError(
            "a column may appear once among --label_col, --categorical_cols, --numeric_cols. "
            f"Received: {used}"
        )
    if not categorical and not numeric:
        raise DataError(
            "give at least one feature column with --categorical_cols or --numeric_cols"
        )
    min_count = 1 if numeric_rule == "log_square" else None
    fields = [FieldSpec(c, NUMERIC, c, rule=numeric_rule, min_count=min_count) for c in numeric]
    fields += [FieldSpec(c, CATEGORICAL, c) for c in categorical]
    # Fields follow file column order, as the reference's field order follows its DataFrame's.
    fields.sort(key=lambda f: columns.index(f.source))
    rule = LabelRule("binary") if not label_positive_if else LabelRule("number", label_positive_if)
    return RawFormat(name, delimiter, has_header, columns, label, rule, tuple(fields), quoting=True)
