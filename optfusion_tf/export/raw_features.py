"""`RawFeatureMapper`: raw per-column strings -> global feature ids [B, F], inside the graph.

The mapping preprocessing applies (DatasetStats.fields; the rules come from `graph_rules`):

- categorical fields: the raw string is the value.
- numeric fields: parse, bucket with the field's rule; "" is the missing value, a value of its
  own when the vocabulary kept it.
- Avazu hour parts (hour_of_day, weekday, is_weekend): one YYMMDDHH `hour` column, split in
  the graph.

Each field's values become keys (`vocab_assets`) and all F keys of a row are looked up in one
`tf.lookup.StaticHashTable` over the vocabulary asset. A value the vocabulary does not hold, and
a cell preprocessing would have dropped the row for (not a number, not a YYMMDDHH hour), gets
the field's OOV id: bad values never raise. Fields are processed in groups of the same kind
(stacked [B, n] tensors), so the graph's size does not grow with F.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import tensorflow as tf

from optfusion_tf.data import formats
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.export import graph_rules
from optfusion_tf.export.vocab_assets import MISSING_NUMBER, field_prefix, write_lookup_asset

_HOUR_PARTS = {formats.HOUR_OF_DAY: 0, formats.WEEKDAY: 1, formats.IS_WEEKEND: 2}


def signature_input_names(stats: DatasetStats) -> dict[str, str]:
    """Raw column -> its `predict_raw` input name, one per raw column feeding a field.

    Columns come in field order (Avazu's `hour` once). A name is the column name where that is
    a valid TensorFlow name (Criteo I1..I13, C1..C26, Avazu's and KDD12's columns); other
    characters become "_", a name not starting with a letter or digit gets an "f" prefix, and
    a clash gets a numeric suffix.
    """
    names: dict[str, str] = {}
    for source in dict.fromkeys(f.source for f in stats.fields):
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", source)
        if not re.match(r"[A-Za-z0-9]", name):
            name = "f" + name
        stem, k = name, 1
        while name in names.values():
            name, k = f"{stem}_{k}", k + 1
        names[source] = name
    return names


class RawFeatureMapper(tf.Module):
    """Raw string columns -> int64 feature ids, with the dataset's rules and vocabularies.

    Args:
        stats: the dataset's stats.json.
        dataset_dir: the dataset directory (vocab/<field>.tsv).
        asset_dir: where to write the lookup asset; it must outlive this object until the
            SavedModel is written (tf.saved_model.save copies it into assets/).

    Call arguments:
        raw: input name (`input_names`) -> tf.string [B]; every input the same B.

    Returns:
        int64 [B, F] global feature ids.
    """

    def __init__(self, stats: DatasetStats, dataset_dir: str, asset_dir: str) -> None:
        super().__init__(name="raw_features")
        self.columns = signature_input_names(stats)
        asset = write_lookup_asset(stats, dataset_dir, asset_dir)
        self._table = None
        if asset.path is not None:
            initializer = tf.lookup.TextFileInitializer(
                asset.path, tf.string, 0, tf.int64, 1, delimiter="\t", name="vocabulary"
            )
            self._table = tf.lookup.StaticHashTable(initializer, default_value=-1)
        fields = stats.fields
        kinds = [f.kind for f in fields]
        self._categorical = [i for i, k in enumerate(kinds) if k == formats.CATEGORICAL]
        self._numeric = [i for i, k in enumerate(kinds) if k == formats.NUMERIC]
        self._hour = [i for i, k in enumerate(kinds) if k in _HOUR_PARTS]
        groups = self._categorical + self._numeric + self._hour
        self._field_order = tf.constant(np.argsort(groups), tf.int32)  # grouped -> field order
        self._sources = [fields[i].source for i in range(len(fields))]
        self._hour_parts = [_HOUR_PARTS[kinds[i]] for i in self._hour]
        self._prefixes = [tf.constant([field_prefix(i) for i in group]) for group in (self._categorical, self._numeric, self._hour)]
        self._oov = tf.constant([f.oov_id for f in fields], tf.int64)
        if self._numeric:
            rules = [fields[i].rule for i in self._numeric]
            self._log_square = tf.constant([r == "log_square" for r in rules])
            # Buckets above a field's largest kept one are OOV: thresholds up to it suffice.
            max_buckets = [
                int(max(0.0, asset.numbers[i][np.isfinite(asset.numbers[i])].max(initial=0.0))) if r == "log_square" else None
                for i, r in zip(self._numeric, rules)
            ]  # fmt: skip
            self._thresholds = tf.constant(graph_rules.padded_thresholds(max_buckets), tf.float64)
        if self._hour:
            self._date_tables = tuple(tf.constant(t) for t in graph_rules.date_tables())

    @property
    def input_names(self) -> tuple[str, ...]:
        """The signature's input names, one per raw column, in field order."""
        return tuple(self.columns.values())

    def input_signature(self) -> dict[str, tf.TensorSpec]:
        """input name -> tf.TensorSpec([None], tf.string, name=input name)."""
        return {name: tf.TensorSpec([None], tf.string, name=name) for name in self.input_names}

    def __call__(self, raw: Mapping[str, tf.Tensor]) -> tf.Tensor:
        keys, ok = [], []
        if self._categorical:
            text = self._stack(raw, self._categorical)
            keys.append(self._prefixes[0] + tf.io.encode_base64(text))
            ok.append(tf.ones_like(text, tf.bool))
        if self._numeric:
            values, missing, valid = graph_rules.parse_numbers(self._stack(raw, self._numeric))
            buckets = graph_rules.zero_signed_and_subnormal(
                graph_rules.bucket_numbers(values, self._log_square, self._thresholds)
            )
            keys.append(self._number_keys(tf.where(missing, MISSING_NUMBER, buckets), self._prefixes[1]))
            ok.append(valid | missing)
        if self._hour:
            parts = {}
            for i in self._hour:
                if self._sources[i] not in parts:
                    values, _, valid = graph_rules.parse_numbers(raw[self.columns[self._sources[i]]])
                    parts[self._sources[i]] = graph_rules.decompose_hour(values, valid, *self._date_tables)
            hour_parts = [parts[self._sources[i]] for i in self._hour]
            numbers = tf.stack([p[k] for p, k in zip(hour_parts, self._hour_parts)], axis=1)
            keys.append(self._number_keys(numbers, self._prefixes[2]))
            ok.append(tf.stack([p[3] for p in hour_parts], axis=1))
        keys = tf.gather(tf.concat(keys, axis=1), self._field_order, axis=1)
        ok = tf.gather(tf.concat(ok, axis=1), self._field_order, axis=1)
        found = self._table.lookup(keys) if self._table is not None else tf.fill(tf.shape(keys), tf.constant(-1, tf.int64))
        return tf.where(ok & (found >= 0), found, self._oov)

    def _stack(self, raw: Mapping[str, tf.Tensor], group: list[int]) -> tf.Tensor:
        """The raw columns of the fields in `group`, tf.string [B, len(group)]."""
        return tf.stack([raw[self.columns[self._sources[i]]] for i in group], axis=1)

    @staticmethod
    def _number_keys(numbers: tf.Tensor, prefixes: tf.Tensor) -> tf.Tensor:
        """float64 [B, n] -> their keys, prefix + decimal int64 bit pattern, tf.string [B, n]."""
        return prefixes + tf.strings.as_string(tf.bitcast(numbers, tf.int64))
