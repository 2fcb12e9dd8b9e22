"""request_example.json: TF Serving REST bodies for both signatures, from real rows of the data.

The file holds one complete body per signature, to POST as is to
`/v1/models/<model_name>[/versions/<version>]:predict`:

    {"serving_default": {"signature_name": "serving_default",
                         "instances": [{"feature_ids": [F ints]}, ...]},
     "predict_raw":     {"signature_name": "predict_raw",
                         "instances": [{"I1": "1", ..., "C26": "9727dd16"}, ...]}}

Rows are the first ones of the test split (validation, then train, if it is empty): the ids from
its TFRecords, the raw values from the same lines of the raw input (stats.json's input_path),
found as preprocessing found them: the same blocks, bad-row checks (`block_parser`) and seeded
split draws (`split.SplitAssigner`). The raw rows need the raw file and its layout; Criteo,
Avazu and KDD12 have fixed layouts, a CSV's delimiter and header are not in stats.json, so a
CSV dataset (or a raw file no longer there) gets no `predict_raw` body.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from typing import Any

import numpy as np

from optfusion_tf.data.block_parser import parse_block
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.preprocess import raw_format
from optfusion_tf.data.raw_input import input_files, iter_blocks
from optfusion_tf.data.reader import make_dataset
from optfusion_tf.data.split import SPLITS, SplitAssigner
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.export.signatures import FEATURE_IDS, PREDICT_RAW, SERVING_DEFAULT

REQUEST_EXAMPLE_FILE = "request_example.json"
_FIXED_LAYOUTS = ("criteo", "avazu", "kdd12")
_SPLIT_PREFERENCE = ("test", "validation", "train")


@dataclasses.dataclass(frozen=True)
class ExampleRows:
    """Rows of one split, as ids and (when the raw input can be read) as raw values.

    Attributes:
        split: the split they come from.
        ids: int64 [N, F], the split's first N records.
        raw: the same lines' raw values, signature input name -> str, or None.
        raw_note: why `raw` is None ("" otherwise).
    """

    split: str
    ids: np.ndarray
    raw: list[dict[str, str]] | None
    raw_note: str = ""

    def raw_columns(self) -> dict[str, np.ndarray]:
        """`raw` as input name -> object array [N] (what the predict_raw signature takes)."""
        if self.raw is None:
            raise ValueError(f"no raw rows: {self.raw_note}")
        return {name: np.array([row[name] for row in self.raw], dtype=object) for name in self.raw[0]}

    def bodies(self, count: int) -> dict[str, Any]:
        """The REST bodies of the first `count` rows, signature name -> body."""
        bodies = {
            SERVING_DEFAULT: {
                "signature_name": SERVING_DEFAULT,
                "instances": [{FEATURE_IDS: row} for row in self.ids[:count].tolist()],
            }
        }
        if self.raw is not None:
            bodies[PREDICT_RAW] = {"signature_name": PREDICT_RAW, "instances": self.raw[:count]}
        return bodies


def example_rows(stats: DatasetStats, dataset_dir: str, columns: dict[str, str], count: int) -> ExampleRows:
    """The first `count` rows of the test split (or the first non-empty one).

    Args:
        stats: the dataset's stats.json.
        dataset_dir: its directory.
        columns: raw column -> signature input name (`RawFeatureMapper.columns`).
        count: rows wanted.
    """
    split = next(s for s in _SPLIT_PREFERENCE if stats.rows.get(s, 0) > 0)
    ids = next(iter(make_dataset(dataset_dir, split, count, shuffle=False)))[0].numpy()
    if stats.dataset not in _FIXED_LAYOUTS:
        note = f"the raw layout (delimiter, header) of dataset {stats.dataset!r} is not recorded in stats.json"
        return ExampleRows(split, ids, None, note)
    try:
        raw = _raw_lines(stats, split, columns, len(ids))
    except DataError as e:
        return ExampleRows(split, ids, None, f"raw input unreadable: {e}")
    if len(raw) != len(ids):
        return ExampleRows(split, ids, None, f"{stats.input_path} has fewer {split} rows than its TFRecords")
    return ExampleRows(split, ids, raw)


def write_request_example(path: str, rows: ExampleRows, count: int) -> None:
    """Writes the bodies of `rows`' first `count` rows to `path` as JSON, one body per line."""
    lines = [f"{json.dumps(name)}: {json.dumps(body)}" for name, body in rows.bodies(count).items()]
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def _raw_lines(stats: DatasetStats, split: str, columns: dict[str, str], count: int) -> list[dict[str, str]]:
    """Raw values of the first `count` valid lines of `split` in stats.input_path (the files
    of a glob in path order, each with its header)."""
    paths = input_files(stats.input_path)
    fmt = raw_format(stats.dataset, paths[0])
    wanted = SPLITS.index(split)
    assigner = SplitAssigner(stats.ratio, stats.seed)
    quoting = csv.QUOTE_MINIMAL if fmt.quoting else csv.QUOTE_NONE
    rows: list[dict[str, str]] = []
    blocks = (b for path in paths for b in iter_blocks(path, skip_lines=int(fmt.has_header)))
    for block in blocks:
        parsed = parse_block(block, fmt)
        splits = assigner.next(parsed.n_lines)
        lines = block.data.split(b"\n")
        for index in parsed.row_lines[splits[parsed.row_lines] == wanted][: count - len(rows)]:
            text = lines[index].rstrip(b"\r").decode("utf-8", errors="replace")
            cells = dict(zip(fmt.columns, next(csv.reader([text], delimiter=fmt.delimiter, quoting=quoting))))
            rows.append({name: cells[source] for source, name in columns.items()})
        if len(rows) == count:
            break
    return rows
