"""Checkpoints that a kill cannot leave half-written: the best weights and the resume backup.

- `AtomicBestWeights`: Keras' `ModelCheckpoint(save_best_only=True, save_weights_only=True)`
  for a metric to maximize, but the weights go to a temporary file next to the target, are
  fsynced and renamed over it, so `checkpoints/best.weights.h5` is always a whole file (Keras
  writes it in place: a SIGKILL during the write left it truncated).
- `ResumeBackup`: `keras.callbacks.BackupAndRestore(double_checkpoint=True)`, which keeps the
  previous epoch's state as `*.bkp` and falls back to it when the latest weights do not open;
  `repair_backup` (called before `fit`) also covers what Keras does not: a truncated
  `training_metadata.json` (Keras' json.loads would raise), a torn pair (the weights of epoch E
  with the metadata of epoch E-1, both readable), and a damaged `.bkp` pair.
"""

from __future__ import annotations

import filecmp
import json
import math
import os
import shutil
from typing import Any

import h5py
import keras
from absl import logging

from optfusion_tf.architecture.atomic_file import replace_atomically

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"
PREVIOUS = ".bkp"  # Keras' suffix for double_checkpoint's previous state


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """`model.save_weights(path)` through a temporary sibling, fsynced, then renamed."""
    replace_atomically(
        path, lambda tmp: model.save_weights(tmp, overwrite=True),
        tmp=f"{os.path.splitext(path)[0]}.tmp.weights.h5",  # Keras needs the .weights.h5 ending
        fsync=True,
    )


class AtomicBestWeights(keras.callbacks.Callback):
    """Saves the weights, atomically, after every epoch whose `monitor` beats the best so far.

    Args:
        path: the weights file (ends with `.weights.h5`).
        monitor: the epoch-log metric to maximize; NaN or missing is never an improvement.
        initial_value_threshold: the best value before this fit (a resumed run's), or None.
    """

    def __init__(self, path: str, monitor: str = "val_auc",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = -math.inf if initial_value_threshold is None else float(initial_value_threshold)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)) or not float(value) > self.best:
            return
        self.best = float(value)
        save_weights_atomically(self.model, self.path)


class ResumeBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that keeps the previous epoch's state too (`double_checkpoint`) and
    does not delete the backup when `fit` ends (`delete_checkpoint=False`): a kill between the
    end of `fit` and the phase's results would otherwise leave nothing to resume from. The
    caller removes it once the results are written."""

    def __init__(self, backup_dir: str) -> None:
        super().__init__(backup_dir, double_checkpoint=True, delete_checkpoint=False)


def _epoch(metadata: str) -> int:
    """The epoch a training_metadata.json names; raises OSError, ValueError, KeyError or
    TypeError when it cannot be read."""
    with open(metadata, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def _readable(weights: str, metadata: str) -> str | None:
    """Why the (weights, metadata) pair cannot be restored, or None if it can."""
    try:
        with h5py.File(weights, "r") as f:
            f.visit(lambda name: None)
    except (OSError, RuntimeError) as e:
        return f"{os.path.basename(weights)}: {e}"
    try:
        _epoch(metadata)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{os.path.basename(metadata)}: {e}"
    return None


def _torn(weights: str, metadata: str) -> str | None:
    """Why a readable latest pair may be torn, or None.

    `BackupAndRestore` saves epoch E by copying the latest pair to `*.bkp`, then writing the
    weights, then the metadata, each in place. Only a kill after the weights and before the
    metadata leaves both latest files readable yet of different epochs (E's weights, E-1's
    metadata); its mark is a latest metadata that names the same epoch as the previous one,
    which a finished save never leaves, with weights that differ from the previous ones (after
    a kill between the copies and the weights' write, or after a fallback, the latest pair is a
    copy of the previous one: nothing to repair).
    """
    try:
        latest, previous = _epoch(metadata), _epoch(metadata + PREVIOUS)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if latest != previous or filecmp.cmp(weights, weights + PREVIOUS, shallow=False):
        return None  # a finished save, or the latest pair is a copy of the previous one
    return (f"{METADATA} names epoch {latest}, as the previous backup does: the weights may be "
            f"those of epoch {latest + 1}, written before a kill stopped its metadata")


def repair_backup(backup_dir: str) -> str | None:
    """Makes `backup_dir` restorable before `fit`: a damaged latest state (a kill during its
    write) is replaced by the previous epoch's, or, if that is damaged too, the backup is
    removed so that the phase starts anew. Returns a message saying what was done (None when
    the backup was fine or absent)."""
    weights, metadata = os.path.join(backup_dir, WEIGHTS), os.path.join(backup_dir, METADATA)
    if not os.path.exists(weights) and not os.path.exists(metadata):
        return None
    problem = _readable(weights, metadata) or _torn(weights, metadata)
    if problem is None:
        return None
    previous = _readable(weights + PREVIOUS, metadata + PREVIOUS)
    if previous is None:
        for name in (WEIGHTS, METADATA):
            src = os.path.join(backup_dir, name + PREVIOUS)
            replace_atomically(
                os.path.join(backup_dir, name), lambda tmp, src=src: shutil.copyfile(src, tmp)
            )
        epoch = _epoch(metadata)
        return (f"{backup_dir}: the latest backup is damaged ({problem}), probably by a kill "
                f"while it was written; resuming from the previous one (after epoch {epoch}).")
    shutil.rmtree(backup_dir)
    return (f"{backup_dir}: the backup is damaged ({problem}) and so is the previous one "
            f"({previous}); this phase starts again from its first epoch.")


def log_repair(backup_dir: str) -> Any:
    """`repair_backup`, with its message logged as a warning."""
    message = repair_backup(backup_dir)
    if message:
        logging.warning("%s", message)
    return message
