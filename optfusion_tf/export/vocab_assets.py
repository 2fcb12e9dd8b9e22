"""The lookup-table asset derived from a dataset's vocab/<field>.tsv files, read by `predict_raw`.

`tf.lookup.TextFileInitializer` reads plain `key<TAB>value` lines: no header, no quoting, no
empty line, no empty file. The vocab TSVs have a header, CSV quoting and a count column, so the
export writes one asset, `vocabulary.lookup.tsv`, holding every field's kept values: one line
`<field index>:<key><TAB><global id>` per value, in field order, where <key> is what the graph
computes from a raw cell:

- categorical fields: the web-safe base64 (no padding) of the value's UTF-8 bytes, as
  `tf.io.encode_base64`; values with tabs, newlines or quotes, and the missing value "", all fit.
- numeric fields and the Avazu hour parts: the decimal int64 bit pattern of the key's float64
  (`tf.bitcast`, `tf.strings.as_string`), NaN for the missing value "". Keys compare as numbers,
  which is exact where `data.bucketing.canonical_key`'s strings would need Python's float repr.

One table for all fields keeps the graph to one lookup per request, whatever F is.
"""

from __future__ import annotations

import base64
import dataclasses
import os

import numpy as np
import pandas as pd

from optfusion_tf.data import bucketing, formats
from optfusion_tf.data.stats import DatasetStats, FieldInfo
from optfusion_tf.data.vocabulary import read_vocab
from optfusion_tf.export.errors import ExportError

ASSET_FILE = "vocabulary.lookup.tsv"
# The float64 a missing number ("") becomes; its bit pattern is the missing value's key.
MISSING_NUMBER = np.float64("nan")


def field_prefix(index: int) -> str:
    """What every key of field `index` starts with, so one table serves all fields."""
    return f"{index}:"


def categorical_key(value: str) -> str:
    """A categorical value's key (without prefix): web-safe base64 of its UTF-8, no padding."""
    return base64.urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=").decode("ascii")


def number_bits(values: np.ndarray) -> np.ndarray:
    """Numbers' keys (without prefix): float64 [N] -> int64 [N] bit patterns, -0.0 as 0.0."""
    return (np.asarray(values, np.float64) + 0.0).view(np.int64)


def read_field_vocab(dataset_dir: str, field: FieldInfo) -> pd.DataFrame:
    """The field's vocab TSV (columns value, id, count), checked against stats.json.

    Raises:
        ExportError: the file is missing or unreadable, or its ids are not offset, offset + 1,
            ... up to the field's OOV id (exclusive).
    """
    path = os.path.join(dataset_dir, field.vocab_file)
    if not os.path.isfile(path):
        raise ExportError(f"{path}: vocabulary of field {field.name!r} not found (stats.json names it)")
    try:
        vocab = read_vocab(path)
    except ValueError as e:
        raise ExportError(f"{path}: unreadable vocabulary: {e}") from e
    expected = np.arange(field.offset, field.offset + len(vocab), dtype=np.int64)
    if len(vocab) != field.size - 1 or not np.array_equal(vocab["id"].to_numpy(), expected):
        raise ExportError(
            f"{path}: expected {field.size - 1} values with ids {field.offset}..{field.oov_id - 1} in "
            f"order (stats.json), found {len(vocab)} values"
        )
    return vocab


def number_keys(values: list[str], path: str) -> np.ndarray:
    """Canonical numeric vocabulary keys ("" = missing, "12", "2.5") -> float64 [N].

    Raises:
        ExportError: a key is not a number in `bucketing.canonical_key`'s form.
    """
    numbers = np.full(len(values), MISSING_NUMBER)
    for i, value in enumerate(values):
        if value == "":
            continue
        try:
            numbers[i] = float(value)
        except ValueError:
            raise ExportError(f"{path}: numeric key {value!r} is not a number") from None
        if bucketing.canonical_key(numbers[i]) != value:
            raise ExportError(f"{path}: numeric key {value!r} is not in canonical form")
    return numbers


@dataclasses.dataclass(frozen=True)
class LookupAsset:
    """The written asset.

    Attributes:
        path: the asset file, or None when no field kept any value (every id is OOV).
        numbers: per field, float64 [K] of its kept keys as numbers (NaN = missing) for numeric
            fields and hour parts, None for categorical fields.
    """

    path: str | None
    numbers: list[np.ndarray | None]


def write_lookup_asset(stats: DatasetStats, dataset_dir: str, asset_dir: str) -> LookupAsset:
    """Writes `asset_dir`/ASSET_FILE from the dataset's vocabularies (see the module docstring)."""
    path = os.path.join(asset_dir, ASSET_FILE)
    numbers: list[np.ndarray | None] = []
    lines = 0
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for index, field in enumerate(stats.fields):
            vocab = read_field_vocab(dataset_dir, field)
            values = vocab["value"].tolist()
            if field.kind == formats.CATEGORICAL:
                keys = [categorical_key(v) for v in values]
                numbers.append(None)
            else:
                numbers.append(number_keys(values, os.path.join(dataset_dir, field.vocab_file)))
                keys = number_bits(numbers[-1]).tolist()
            prefix = field_prefix(index)
            f.writelines(f"{prefix}{k}\t{i}\n" for k, i in zip(keys, vocab["id"].tolist()))
            lines += len(keys)
    if not lines:
        os.remove(path)
        return LookupAsset(None, numbers)
    return LookupAsset(path, numbers)
