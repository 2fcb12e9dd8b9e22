"""Per-field vocabularies: pass-1 counting, id assignment, and the vocab/<field>.tsv files.

Ids (DESIGN.md section 2): within a field, values whose count in the vocabulary scope reaches the
field's min count get ids 0..K-1, most frequent first, ties in first-seen order (what the
reference's pandas value_counts gives); id K is the field's OOV id (always reserved, unlike the
reference, which reserves it only when some value was filtered out). `stats` turns these local
ids into global ones by adding the field's offset.

vocab/<field>.tsv has a header line `value<TAB>id<TAB>count` and one line per kept value, in id
order, with its global id and its count in the vocabulary scope. A missing value (empty cell)
is the value "" (an empty first column); the OOV id has no line (it is `oov_id` in
stats.json). Values holding a tab, a newline, a carriage return or a double quote are
double-quoted (csv QUOTE_MINIMAL, which alone leaves a carriage return bare); read the file with
`read_vocab`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from itertools import repeat
from typing import BinaryIO, Callable

import numpy as np
import pandas as pd

from optfusion_tf.data.stats import DatasetStats

VOCAB_COLUMNS = ("value", "id", "count")


@dataclasses.dataclass(frozen=True)
class FieldVocabulary:
    """A field's final vocabulary (local ids; OOV = len(values)).

    Attributes:
        values: kept keys in id order.
        counts: int64 [K], count of each kept key in the vocabulary scope.
        remap: int64 [P], provisional (first-seen) id -> local id, OOV for dropped keys.
        distinct: number of distinct keys seen in the vocabulary scope.
        oov_count: total scope count of the keys that map to OOV.
    """

    values: list[str]
    counts: np.ndarray
    remap: np.ndarray
    distinct: int
    oov_count: int

    @property
    def size(self) -> int:
        """Ids the field owns: its kept values plus the OOV id."""
        return len(self.values) + 1


class ValueCounter:
    """Pass 1 for one field: a provisional id per distinct key (first-seen order) and its count.

    Memory grows with the number of distinct keys only (a dict entry and an int64 each).
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._counts = np.zeros(1024, np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, uniques: list[str], counts: np.ndarray) -> np.ndarray:
        """Registers one block's distinct keys.

        Args:
            uniques: the block's distinct keys of this field, in first-seen order.
            counts: int [len(uniques)], each key's rows in the vocabulary scope.
        Returns:
            int32 [len(uniques)] provisional ids of the keys.
        """
        ids = self._ids
        # Per *distinct* key of the block (not per row), and at C speed (map, dict.update): dict
        # is the only exact, growable string -> id map in the standard stack. The block's keys
        # are distinct, so its new keys take the next ids in their (first-seen) order.
        n = len(uniques)
        uniq_ids = np.fromiter(map(ids.get, uniques, repeat(-1)), np.int64, n)
        new = np.flatnonzero(uniq_ids < 0)
        if new.size:
            start = len(ids)
            uniq_ids[new] = np.arange(start, start + new.size)
            ids.update(zip([uniques[i] for i in new.tolist()], range(start, start + new.size)))
        if len(ids) > len(self._counts):
            self._counts = np.concatenate(
                [
                    self._counts,
                    np.zeros(max(len(ids), 2 * len(self._counts)) - len(self._counts), np.int64),
                ]
            )
        self._counts[uniq_ids] += counts
        return uniq_ids.astype(np.int32)

    def keys_and_counts(self) -> tuple[list[str], np.ndarray]:
        """Every key in provisional-id (first-seen) order, and int64 [len(self)] their counts."""
        return list(self._ids), self._counts[: len(self._ids)].copy()

    def finalize(self, min_count: int) -> FieldVocabulary:
        """Keeps keys with scope count >= max(min_count, 1), ordered as the module says."""
        n = len(self._ids)
        counts = self._counts[:n]
        kept = np.flatnonzero(counts >= max(min_count, 1))
        order = kept[np.lexsort((kept, -counts[kept]))]
        remap = np.full(n, len(order), np.int64)
        remap[order] = np.arange(len(order))
        keys = list(self._ids)
        dropped = counts.sum() - counts[order].sum()
        return FieldVocabulary(
            values=[keys[i] for i in order.tolist()],
            counts=counts[order].copy(),
            remap=remap,
            distinct=int(np.count_nonzero(counts)),
            oov_count=int(dropped),
        )


def write_vocab(
    path: str, vocab: FieldVocabulary, offset: int, create: Callable[[str], BinaryIO] | None = None
) -> None:
    """Writes vocab/<field>.tsv: header, then value, global id (offset + local id), count.

    `create` opens `path` for binary writing where it is not a local file (a Beam filesystem).
    """
    frame = pd.DataFrame(
        {
            "value": pd.Series(vocab.values, dtype=object),
            "id": offset + np.arange(len(vocab.values)),
            "count": vocab.counts,
        }
    )
    options = dict(sep="\t", index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    if any("\r" in v for v in vocab.values):
        # csv's QUOTE_MINIMAL leaves a lone carriage return unquoted (it is not in the line
        # terminator), and every CSV reader takes it for a line end: quote such cells too.
        rows = zip(vocab.values, frame["id"], frame["count"])
        text = "\t".join(VOCAB_COLUMNS) + "\n" + "".join(
            f"{_quoted(v)}\t{i}\t{n}\n" for v, i, n in rows
        )
    else:
        text = None
    if create is None and text is None:
        frame.to_csv(path, **options)
        return
    text = frame.to_csv(**options) if text is None else text
    with (open(path, "wb") if create is None else create(path)) as f:
        f.write(text.encode("utf-8"))


def _quoted(value: str) -> str:
    """`value` as a vocab file cell: QUOTE_MINIMAL's quoting, extended to carriage returns."""
    if any(c in value for c in '\t\n\r"'):
        return '"' + value.replace('"', '""') + '"'
    return value


def read_vocab(path: str, stream: BinaryIO | None = None) -> pd.DataFrame:
    """Reads a vocab/<field>.tsv as columns value (str, "" = missing), id (int64), count (int64)
    (from `stream`, opened at `path`, where given)."""
    frame = pd.read_csv(
        path if stream is None else stream,
        sep="\t",
        dtype={"value": object, "id": np.int64, "count": np.int64},
        keep_default_na=False,
        na_filter=False,
        quoting=csv.QUOTE_MINIMAL,
    )
    if tuple(frame.columns) != VOCAB_COLUMNS:
        raise ValueError(f"{path}: expected header {VOCAB_COLUMNS}, found {tuple(frame.columns)}")
    return frame


def batch_coverage(dataset_dir: str, stats: DatasetStats, batch_size: int) -> float:
    """Expected fraction of the embedding table's rows that one batch of rows looks up.

    A batch of `batch_size` rows drawn from the vocabulary scope holds table row r (a kept value,
    or a field's OOV id) with probability 1 - (1 - c_r / N_f) ** batch_size, where c_r is the
    row's count in vocab/<field>.tsv (the OOV row's: the field's `oov_count`) and N_f the field's
    total count; the result is the sum over the `feature_num` rows divided by `feature_num`, in
    [0, 1]. Skewed fields (a few frequent values, a long tail) cover far less of their rows than
    batch ids / rows suggests.
    """
    covered = 0.0
    for field in stats.fields:
        counts = read_vocab(os.path.join(dataset_dir, field.vocab_file))["count"].to_numpy()
        counts = np.append(counts, field.oov_count).astype(np.float64)
        if counts.sum() > 0:
            covered += float(np.sum(1.0 - np.power(1.0 - counts / counts.sum(), batch_size)))
    return covered / stats.feature_num
