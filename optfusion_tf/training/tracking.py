"""Experiment tracking where users already look: TensorBoard's HParams dashboard and a CSV.

- `write_hparams`: the run's flags (TensorBoard's HParams plugin, `hp.hparams`) and its final
  metrics as scalars (`final/valid_auc`, ...) in `<run>/tensorboard/hparams/`, so that
  `tensorboard --logdir <runs parent>` lists every run in the HParams tab, side by side.
- `append_result`: one row per finished run in `<runs parent>/results.csv` (RESULT_COLUMNS),
  appended under an exclusive `flock`, in one write, then fsynced: two runs that finish at once
  never interleave their rows.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import os
from typing import Any, Mapping

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

RESULTS_FILE = "results.csv"
RESULT_COLUMNS = (
    "finished", "run", "stage", "model", "dataset", "emb_dim", "batch_size", "lr_emb", "lr_nn",
    "l2_emb", "l2_nn", "embedding_optimizer", "seed", "valid_auc", "valid_logloss", "test_auc",
    "test_logloss", "best_epoch", "epochs", "seconds",
)
FINAL_METRICS = ("valid_auc", "valid_logloss", "test_auc", "test_logloss", "test_ece",
                 "best_epoch", "seconds")
HPARAMS_DIR = "hparams"


class ResultsTableError(ValueError):
    """results.csv exists with other columns than RESULT_COLUMNS."""


def hparam_values(config: Any) -> dict[str, bool | int | float | str]:
    """The dataclass `config`'s fields that the HParams plugin can show (bool, int, float, str;
    None and the run directory left out)."""
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name != "run_dir" and isinstance(value, (bool, int, float, str)):
            values[field.name] = value
    return values


def write_hparams(tensorboard_dir: str, run_name: str, hparams: Mapping[str, Any],
                  metrics: Mapping[str, Any]) -> None:
    """`hparams` (see `hparam_values`) and the FINAL_METRICS of `metrics` as `final/<name>`
    scalars at step 0, in `<tensorboard_dir>/hparams/` (trial id `run_name`)."""
    writer = tf.summary.create_file_writer(os.path.join(tensorboard_dir, HPARAMS_DIR))
    with writer.as_default():
        hp.hparams(dict(hparams), trial_id=run_name)
        for name in FINAL_METRICS:
            if name in metrics:
                tf.summary.scalar(f"final/{name}", float(metrics[name]), step=0)
    writer.close()


def append_result(path: str, row: Mapping[str, Any]) -> None:
    """Appends `row` (keys: RESULT_COLUMNS; missing ones are left empty) to the CSV at `path`,
    writing the header first when the file is new or empty.

    Raises:
        ResultsTableError: the file's header is not RESULT_COLUMNS (a file of another version
            or another tool); nothing is written to it.
    """
    unknown = set(row) - set(RESULT_COLUMNS)
    if unknown:
        raise ValueError(f"append_result: unknown columns {sorted(unknown)}; known: {RESULT_COLUMNS}")
    line = io.StringIO()
    csv.writer(line).writerow(["" if row.get(c) is None else row[c] for c in RESULT_COLUMNS])
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file is closed
        f.seek(0)
        header = f.readline()
        text = line.getvalue()
        if not header:
            head = io.StringIO()
            csv.writer(head).writerow(RESULT_COLUMNS)
            text = head.getvalue() + text
        elif next(csv.reader([header])) != list(RESULT_COLUMNS):
            raise ResultsTableError(
                f"{path}: its header is {header.strip()!r}, expected {','.join(RESULT_COLUMNS)!r} "
                "(a results.csv of another version?); this run's row was not added (its "
                "metrics.json has everything). Move the file away to start a new table."
            )
        f.write(text)  # O_APPEND: at the end, in one write
        f.flush()
        os.fsync(f.fileno())
