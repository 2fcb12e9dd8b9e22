"""The run directory of DESIGN.md section 7, the flags file that re-runs it, and seeding.

Layout of `runs/<name>/`:

    flags.txt            the script's own flags, one `--name=value` per line, sorted by name;
                         re-run with `python search.py --flagfile=runs/<name>/flags.txt`
    arch.json            searched / used architecture (ArchitectureSpec.save)
    architecture.png     its picture (architecture_plot.draw_architecture)
    calibration_test.png reliability diagram of the test split (analysis.calibration)
    epochs.json          per-epoch loss / val_auc / val_logloss / seconds (ExactValidationMetrics)
    metrics.json         final metrics, written last and atomically: its presence means "complete"
    checkpoints/         best.weights.h5 (ModelCheckpoint, save_best_only on val_auc)
    backup/              keras.callbacks.BackupAndRestore state while a run is unfinished
    tensorboard/         train/, validation/ (keras.callbacks.TensorBoard), architecture/,
                         calibration/ (the reliability diagram as an image)

The rule for an existing directory (`open_run_dir`):

- absent or empty: a new run.
- same flags, no metrics.json, backup/ present: resume. BackupAndRestore continues after the
  last finished epoch.
- same flags, no metrics.json, no backup/ (the process died before finishing an epoch, or fit
  ended in a NaN stop, which removes the phase's backup): started anew, as there is no training
  state to continue from; the stale epochs.json, checkpoints and events are removed. (A process
  that dies after fit ended otherwise keeps its backup, kept until metrics.json, and resumes.)
- same flags, metrics.json present: refused (the run is complete), unless `overwrite`.
- different flags: refused with the differing lines, unless `overwrite`.
- `overwrite`: the directory is deleted and started anew -- only if it holds a flags.txt, so a
  mistyped --run_dir can never delete an unrelated folder.
- a non-empty directory without flags.txt: always refused.

Under `--strategy=multi_worker` only the chief opens the run directory. Every other worker writes
the same files into a scratch copy of its own (`open_worker_run_dir`), deleted when the run ends;
to resume, it copies the chief's directory, which must therefore be on a filesystem every worker
can read (as for Keras' and TensorFlow's own multi-worker backups).
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
from typing import Any, Iterable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from optfusion_tf.architecture.atomic_file import write_text_atomically
from optfusion_tf.architecture.checks import is_int

# Flags that steer how a run is started, not what it computes: never written to flags.txt.
NON_RESULT_FLAGS = ("flagfile", "overwrite", "cluster_wait_s")
METRIC_KEYS = ("valid_auc", "valid_logloss", "test_auc", "test_logloss", "best_epoch", "seconds")


class RunDirError(ValueError):
    """The run directory cannot be used as asked (message says why and what to do)."""


def _inside(*parts: str, doc: str | None = None) -> property:
    """A `RunDir` property: the path `parts` inside the run directory (str)."""
    return property(lambda run: os.path.join(run.path, *parts), doc=doc or "<run dir>/" + "/".join(parts))


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory (see the module docstring for the layout).

    Attributes:
        path: the run directory.
        resuming: True when backup/ holds state from an interrupted run of the same flags.
    """

    path: str
    resuming: bool = False

    flags_path = _inside("flags.txt")
    arch_path = _inside("arch.json")
    architecture_png = _inside("architecture.png")
    calibration_png = _inside("calibration_test.png")
    epochs_path = _inside("epochs.json")
    metrics_path = _inside("metrics.json")
    checkpoints_dir = _inside("checkpoints")
    best_weights_path = _inside(
        "checkpoints", "best.weights.h5",
        doc="For ModelCheckpoint(save_weights_only=True); Keras requires `.weights.h5`.",
    )
    backup_dir = _inside(
        "backup", doc="For keras.callbacks.BackupAndRestore (which deletes it when fit ends)."
    )
    tensorboard_dir = _inside(
        "tensorboard", doc="`log_dir` for keras.callbacks.TensorBoard and ArchitectureSummaries."
    )

    def write_metrics(
        self,
        *,
        valid_auc: float,
        valid_logloss: float,
        test_auc: float,
        test_logloss: float,
        best_epoch: int,
        seconds: float,
        **extras: Any,
    ) -> dict[str, Any]:
        """Writes metrics.json atomically (marks the run complete) and returns what it wrote.

        `best_epoch` is 1-based, as in the progress bar. `extras` (e.g. "examples",
        "fusion") must be JSON-serializable; numpy scalars are accepted.
        """
        metrics = {
            "valid_auc": valid_auc,
            "valid_logloss": valid_logloss,
            "test_auc": test_auc,
            "test_logloss": test_logloss,
            "best_epoch": best_epoch,
            "seconds": seconds,
            **extras,
        }
        metrics = {k: v.item() if isinstance(v, np.generic) else v for k, v in metrics.items()}
        for key in METRIC_KEYS:
            value = metrics[key]
            finite = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not finite or not math.isfinite(value):
                raise ValueError(f"metrics.json: {key} must be a finite number. Received: {value!r}")
        write_json_atomic(self.metrics_path, metrics)
        return metrics

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json as a dict; RunDirError if the run has not completed."""
        if not os.path.isfile(self.metrics_path):
            raise RunDirError(f"{self.metrics_path}: no metrics (the run has not completed)")
        with open(self.metrics_path, encoding="utf-8") as f:
            return json.load(f)


def script_flag_lines(
    flag_values: flags.FlagValues = flags.FLAGS,
    module_name: str | None = None,
    exclude: Iterable[str] = NON_RESULT_FLAGS,
) -> list[str]:
    """The script's own flags as `--name=value` lines, sorted by flag name.

    "Own" means absl's key flags of the main module: the flags it defines plus those it adopts
    with `flags.adopt_module_key_flags(module)` or declares with `flags.declare_key_flag`.
    Library and absl flags (--logtostderr, ...) are left out. Booleans serialize as `--name` /
    `--noname`, multi-flags as one line per value, flags whose value is None are omitted (they
    stay at their default None when re-run).

    Args:
        flag_values: parsed flags.
        module_name: module whose key flags to take; default the main script (`sys.argv[0]`,
            the name absl registers `__main__`'s flags under).
        exclude: flag names to leave out.
    """
    module_name = sys.argv[0] if module_name is None else module_name
    excluded = set(exclude)
    chosen = sorted(
        (f for f in flag_values.get_key_flags_for_module(module_name) if f.name not in excluded),
        key=lambda f: f.name,
    )
    return [line for f in chosen for line in f.serialize().splitlines() if line]


def open_run_dir(
    path: str | os.PathLike,
    flag_lines: Sequence[str],
    *,
    overwrite: bool = False,
    program: str | None = None,
) -> RunDir:
    """Creates, resumes or restarts a run directory; see the module docstring for the rule.

    Call it only after every input has been validated: on refusal nothing is written.

    Args:
        path: the run directory.
        flag_lines: from `script_flag_lines()`; written to flags.txt and compared on resume.
        overwrite: delete an existing run directory (one with flags.txt) and start anew.
        program: script named in flags.txt's header comment; default `sys.argv[0]`'s basename.

    Returns:
        The RunDir, with checkpoints/ and tensorboard/ created and flags.txt written.
    """
    path = os.fspath(path)
    flag_lines = list(flag_lines)
    run = RunDir(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunDirError(f"{path} exists and is not a directory; choose another run directory.")
    if os.path.isdir(path) and os.listdir(path):
        if not os.path.isfile(run.flags_path):
            raise RunDirError(
                f"{path} is not empty and has no flags.txt, so it is not a run directory; "
                "refusing to write into it or delete it. Choose another run directory."
            )
        if not overwrite:
            _check_resumable(run, flag_lines)
        if not overwrite and _has_backup(run):
            run = RunDir(path, resuming=True)
        else:
            shutil.rmtree(path)
    os.makedirs(run.checkpoints_dir, exist_ok=True)
    os.makedirs(run.tensorboard_dir, exist_ok=True)
    program = os.path.basename(sys.argv[0]) if program is None else program
    command = f"python {program}" if program.endswith(".py") else program  # a console script
    header = f"# Re-run: {command} --flagfile={run.flags_path}"
    write_text_atomically(run.flags_path, "\n".join([header, *flag_lines]) + "\n")
    return run


def open_worker_run_dir(chief_path: str | os.PathLike, *, resuming: bool, worker: str) -> RunDir:
    """A non-chief worker's scratch run directory, under the system's temporary directory
    (deleted when the process exits).

    Args:
        chief_path: the run directory the chief opened.
        resuming: what the chief decided. If True, the chief's directory (all but tensorboard/)
            is copied, so that this worker restores the same epoch, weights and history.
        worker: names the worker in the directory's name and in errors.

    Raises:
        RunDirError: resuming, but this worker cannot read the chief's backup.
    """
    chief = RunDir(os.fspath(chief_path))
    scratch = tempfile.mkdtemp(prefix=f"optfusion_{worker.replace(' ', '')}_")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    run = RunDir(os.path.join(scratch, "run"), resuming=resuming)
    if not resuming:
        os.makedirs(run.checkpoints_dir)
        os.makedirs(run.tensorboard_dir)
        return run
    if not _has_backup(chief):
        raise RunDirError(
            f"{chief.path}: the chief resumes this run, but {worker} cannot read its backup/. "
            "Resuming a multi-worker run needs the run directory on a filesystem that every "
            "worker can read (NFS or similar)."
        )
    shutil.copytree(chief.path, run.path, ignore=shutil.ignore_patterns("tensorboard"))
    os.makedirs(run.tensorboard_dir)
    return run


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Writes strict JSON (NaN/inf rejected) through a temporary sibling, then renames."""
    write_text_atomically(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def set_seed(seed: int, *, deterministic_ops: bool = True) -> None:
    """Seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`).

    With `deterministic_ops` (default), also `tf.config.experimental.enable_op_determinism()`:
    process-wide and irreversible through the public API; ops without a deterministic kernel
    raise instead of silently varying, and tf.data keeps a deterministic order. On CPU it cost no
    measurable CPU time on a dense model nor on an embedding + MLP CTR model (docs/training.md, "Reproducibility").
    """
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: {seed!r}")
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


# Flag lines of options added after runs were written, at the value that such a run used
# without the flag: a flags.txt that lacks the flag still resumes with this line.
IMPLICIT_IN_OLDER_RUNS = ("--deep_dtype=float32",)


def _check_resumable(run: RunDir, flag_lines: list[str]) -> None:
    with open(run.flags_path, encoding="utf-8") as f:
        stored = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
    stored_names = {line.split("=", 1)[0] for line in stored}
    flag_lines = [line for line in flag_lines if line not in IMPLICIT_IN_OLDER_RUNS
                  or line.split("=", 1)[0] in stored_names]
    if stored != flag_lines:
        removed = [line for line in stored if line not in flag_lines]
        added = [line for line in flag_lines if line not in stored]
        raise RunDirError(
            f"{run.path} holds a run with other flags (was: {removed or 'same lines'}; now: "
            f"{added or 'same lines'}). Choose another run directory, re-run with "
            f"--flagfile={run.flags_path} to resume it, or pass --overwrite to start it anew."
        )
    if os.path.isfile(run.metrics_path):
        raise RunDirError(
            f"{run.path} is a complete run (metrics.json exists). Choose another run "
            "directory, or pass --overwrite to run it again."
        )


def _has_backup(run: RunDir) -> bool:
    return os.path.isdir(run.backup_dir) and bool(os.listdir(run.backup_dir))
