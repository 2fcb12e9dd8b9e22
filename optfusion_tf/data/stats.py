"""`DatasetStats`: the stats.json of a preprocessed dataset directory (JSON, never pickle).

Ids are global across fields (one embedding table), field by field: field f owns ids
[offset, offset + size); its last id, offset + size - 1, is its OOV id (the reference's
`field_offset[f] - 1`; here always reserved). feature_num = sum of sizes. A directory with a
stats.json is complete: preprocessing writes it last and renames the directory into place.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from optfusion_tf.data.errors import DataError

FORMAT_VERSION = 1
STATS_FILE = "stats.json"


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One field's id range and how a raw value becomes its id (what serving must redo).

    Attributes:
        name: field name.
        kind: formats.FIELD_KINDS: categorical (raw string -> vocab), numeric (number -> `rule`
            -> canonical key -> vocab), hour_of_day / weekday / is_weekend (from an Avazu
            YYMMDDHH `source` column, key is the decimal integer).
        source: raw column the value comes from.
        rule: numeric rule (log_square | identity) for numeric fields, else None.
        offset: first global id of the field.
        size: ids the field owns (kept values + 1 OOV).
        oov_id: offset + size - 1.
        min_count: count (in the vocabulary scope) a value needed to get its own id.
        vocab_file: path of the field's vocabulary, relative to the dataset directory.
        distinct_values: distinct keys seen in the vocabulary scope.
        oov_count: rows of the vocabulary scope whose key maps to OOV.
    """

    name: str
    kind: str
    source: str
    rule: str | None
    offset: int
    size: int
    oov_id: int
    min_count: int
    vocab_file: str
    distinct_values: int
    oov_count: int


@dataclasses.dataclass(frozen=True)
class DatasetStats:
    """Everything about a preprocessed dataset that training, evaluation and serving need.

    Attributes:
        dataset: criteo | avazu | kdd12 | the CSV's name.
        field_names: field names in id-layout order.
        num_fields: F.
        feature_num: embedding table size (sum of field sizes).
        fields: per-field FieldInfo, in order.
        rows: split -> examples written.
        shards: split -> shard file names.
        shard_rows: split -> examples in each shard.
        record_bytes: length of every framed TFRecord record (records have one fixed layout,
            see example_encoding), which the reader's fast path relies on.
        compression: "none" or "gzip".
        threshold: --threshold.
        seed: --seed.
        ratio: train/validation/test fractions.
        vocab_scope: "train" or "all".
        label: {"column": raw column, "rule": how it became 0/1}.
        positives: split -> examples with label 1.
        input_path: the raw file.
        input_lines: data lines read (header excluded).
        blank_lines: empty lines skipped.
        bad_rows: reason -> {"count": n, "first_lines": [...]}.
        format_version: stats.json schema version.
    """

    dataset: str
    field_names: list[str]
    num_fields: int
    feature_num: int
    fields: list[FieldInfo]
    rows: dict[str, int]
    shards: dict[str, list[str]]
    shard_rows: dict[str, list[int]]
    record_bytes: int
    compression: str
    threshold: int
    seed: int
    ratio: list[float]
    vocab_scope: str
    label: dict[str, str]
    positives: dict[str, int]
    input_path: str
    input_lines: int
    blank_lines: int
    bad_rows: dict[str, dict[str, Any]]
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        offset = 0
        for f in self.fields:
            if f.offset != offset or f.size < 1 or f.oov_id != f.offset + f.size - 1:
                raise DataError(
                    f"stats: field {f.name!r} has an inconsistent id range "
                    f"(offset {f.offset}, size {f.size}, oov {f.oov_id})"
                )
            offset += f.size
        if (
            offset != self.feature_num
            or self.num_fields != len(self.fields)
            or self.field_names != [f.name for f in self.fields]
        ):
            raise DataError(
                f"stats: feature_num {self.feature_num} / num_fields {self.num_fields} / "
                "field_names do not match the fields"
            )

    def field(self, name: str) -> FieldInfo:
        """The FieldInfo named `name`."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field {name!r}; fields are {self.field_names}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetStats":
        data = dict(data)
        data["fields"] = [FieldInfo(**f) for f in data["fields"]]
        return cls(**data)

    def save(self, dataset_dir: str) -> None:
        """Writes <dataset_dir>/stats.json."""
        with open(os.path.join(dataset_dir, STATS_FILE), "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, dataset_dir: str) -> "DatasetStats":
        """Reads <dataset_dir>/stats.json.

        Raises:
            DataError: the directory is missing, has no stats.json (incomplete or not ours),
                or the file is malformed or from an unsupported format version.
        """
        path = os.path.join(dataset_dir, STATS_FILE)
        if not os.path.isdir(dataset_dir):
            raise DataError(
                f"{dataset_dir}: dataset directory not found (run dataprocess/*2TF.py first)"
            )
        if not os.path.isfile(path):
            raise DataError(
                f"{dataset_dir}: no {STATS_FILE}, so the directory is incomplete "
                "(an interrupted run?) "
                "or not made by optfusion_tf preprocessing"
            )
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            version = data.get("format_version")
            if version != FORMAT_VERSION:
                raise DataError(f"{path}: format_version {version!r}, expected {FORMAT_VERSION}")
            stats = cls.from_dict(data)
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise DataError(f"{path}: malformed stats file: {e}") from e
        names = [("vocab_file", f.vocab_file) for f in stats.fields] + [
            (f"shards[{split!r}]", shard) for split, files in stats.shards.items() for shard in files
        ]
        for key, name in names:
            if not _inside(dataset_dir, name):
                raise DataError(
                    f"{path}: {key} {name!r} is not a path inside the dataset directory; "
                    "refusing to read it"
                )
        return stats

    def one_class_splits(self) -> dict[str, int]:
        """Non-empty splits whose rows all have one label: split -> that label (0 or 1)."""
        return {
            split: int(self.positives.get(split, 0) > 0)
            for split, rows in self.rows.items()
            if rows and self.positives.get(split, 0) in (0, rows)
        }

    def shard_problems(self, dataset_dir: str) -> list[str]:
        """What is wrong with the shard files: missing ones, and uncompressed ones whose size is
        not rows x record_bytes (truncated or replaced). Empty when all are as written."""
        problems = []
        for split, files in self.shards.items():
            for name, rows in zip(files, self.shard_rows.get(split, [None] * len(files))):
                path = os.path.join(dataset_dir, name)
                if not os.path.isfile(path):
                    problems.append(f"{name} is missing")
                elif self.compression == "none" and rows is not None:
                    size, expected = os.path.getsize(path), rows * self.record_bytes
                    if size != expected:
                        problems.append(
                            f"{name} has {size:,} bytes, expected {expected:,} "
                            f"({rows:,} records of {self.record_bytes} bytes)"
                        )
        return problems


def _inside(directory: str, name: str) -> bool:
    """Whether the relative path `name` stays inside `directory` (no absolute path, no ..)."""
    if not isinstance(name, str) or not name or os.path.isabs(name):
        return False
    root = os.path.realpath(directory)
    return os.path.commonpath([root, os.path.realpath(os.path.join(root, name))]) == root
