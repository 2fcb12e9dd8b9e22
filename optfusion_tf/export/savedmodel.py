"""`export_savedmodel`: a re-train run -> `<export_dir>/<model_name>/<version>/`, TF Serving's layout.

Steps: open and check the run (`retrain_run`), build the raw -> id mapping (`raw_features`) and
both signatures (`signatures`) in a Keras `ExportArchive`, write the SavedModel into a hidden
temporary sibling (`.<version>.tmp-*`, a name TF Serving never loads), check it, write
request_example.json, and only then rename it to `<version>`. A failure leaves nothing behind
(directories it created are removed), and TF Serving, which polls the model directory, never
sees a partial version.

The check: the written SavedModel, loaded back with `tf.saved_model.load`, must reproduce the
Keras model's probabilities on up to CHECK_ROWS rows of the test split through both signatures
(within CHECK_TOLERANCE), the model run as a tf.function like the evaluation's (the graph fuses
a deep block's matmul, bias and ReLU, so bfloat16 blocks round differently from the eager call).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from optfusion_tf.export.errors import ExportError
from optfusion_tf.export.raw_features import RawFeatureMapper
from optfusion_tf.export.request_example import (
    REQUEST_EXAMPLE_FILE,
    ExampleRows,
    example_rows,
    write_request_example,
)
from optfusion_tf.export.retrain_run import open_retrain_run
from optfusion_tf.export.signatures import PREDICT_RAW, PROBABILITY, SERVING_DEFAULT, add_signatures

CHECK_ROWS = 512
CHECK_TOLERANCE = 1e-5
EXAMPLE_ROWS = 3
_VERSION_DIR = re.compile(r"^[0-9]+$")
_DIR_MODE = 0o755


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_savedmodel` wrote.

    Attributes:
        path: the version directory `<export_dir>/<model_name>/<version>`.
        version: its version number.
        fusion: the exported model's fusion mode (hard, soft, ...).
        raw_inputs: the predict_raw signature's input names.
        max_abs_diff: largest |SavedModel - Keras| probability over the checked rows.
        checked_rows: rows checked.
        raw_example: whether request_example.json has a predict_raw body (else see the log).
    """

    path: str
    version: int
    fusion: str
    raw_inputs: tuple[str, ...]
    max_abs_diff: float
    checked_rows: int
    raw_example: bool


def next_version(model_dir: str) -> int:
    """1 + the largest integer-named subdirectory of `model_dir` (1 if none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(name) for name in os.listdir(model_dir) if _VERSION_DIR.match(name)]
    return max(versions, default=0) + 1


def export_savedmodel(
    run_dir: str,
    export_dir: str = "export",
    model_name: str = "optfusion",
    version: int | None = None,
) -> ExportResult:
    """Exports the re-trained model of `run_dir` for TF Serving (see the module docstring).

    Args:
        run_dir: a complete re-train run directory (model.keras, flags.txt, metrics.json).
        export_dir: the export root.
        model_name: TF Serving's model name: the model's base path is <export_dir>/<model_name>.
        version: version number; None = next_version().
    Returns:
        What was written.
    Raises:
        ExportError: unusable run or dataset, a bad model name or version, an existing version
            directory, or a SavedModel that does not reproduce the Keras model.
    """
    if not model_name or os.sep in model_name or model_name in (".", ".."):
        raise ExportError(f"--model_name={model_name!r}: expected a plain directory name")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ExportError(f"--version={version!r}: expected a positive integer")
    run = open_retrain_run(run_dir)
    for path in (export_dir, os.path.join(export_dir, model_name)):
        if os.path.lexists(path) and not os.path.isdir(path):
            raise ExportError(f"--export_dir: {path} exists and is not a directory")
    model_dir = os.path.join(export_dir, model_name)
    version = next_version(model_dir) if version is None else version
    final = os.path.join(model_dir, str(version))
    _refuse_existing(final, model_dir)
    model = run.load_model()

    created = _missing_dirs(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=model_dir)
    try:
        os.chmod(staging, _DIR_MODE)  # mkdtemp's 0700 would hide it from a server run as another user
        with tempfile.TemporaryDirectory() as asset_dir:
            raw_features = RawFeatureMapper(run.stats, run.dataset_dir, asset_dir)
            archive = keras.export.ExportArchive()
            add_signatures(archive, model, run.stats, raw_features)
            archive.write_out(staging, verbose=False)
            rows = example_rows(run.stats, run.dataset_dir, raw_features.columns, CHECK_ROWS)
            if rows.raw is not None and not np.array_equal(raw_features(rows.raw_columns()).numpy(), rows.ids):
                rows = dataclasses.replace(
                    rows, raw=None,
                    raw_note=f"the raw rows of {run.stats.input_path} do not map to the ids of {run.dataset_dir}'s "
                    "TFRecords (was the raw file changed after preprocessing?)",
                )  # fmt: skip
        diff = _check(staging, model, rows)
        write_request_example(os.path.join(staging, REQUEST_EXAMPLE_FILE), rows, EXAMPLE_ROWS)
        _refuse_existing(final, model_dir)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in created:  # innermost first; only if still empty
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    if rows.raw is None:
        logging.warning("request_example.json has no %s body: %s", PREDICT_RAW, rows.raw_note)
    return ExportResult(
        path=final, version=version, fusion=model.mode, raw_inputs=raw_features.input_names,
        max_abs_diff=diff, checked_rows=len(rows.ids), raw_example=rows.raw is not None,
    )  # fmt: skip


def _missing_dirs(path: str) -> list[str]:
    """`path` and its ancestors that do not exist yet, innermost first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _refuse_existing(final: str, model_dir: str) -> None:
    if os.path.lexists(final):
        raise ExportError(
            f"--version: {final} already exists; versions are never overwritten. Pick another "
            f"--version or leave it out for the next free one ({next_version(model_dir)})."
        )


def _check(path: str, model: keras.Model, rows: ExampleRows) -> float:
    """Loads the SavedModel at `path`; returns max |its probabilities - the Keras model's|.

    Raises:
        ExportError: a difference above CHECK_TOLERANCE.
    """
    loaded = tf.saved_model.load(path)
    # As the evaluation's compiled forward (optfusion_tf.training.evaluation._forward, which
    # export may not import): the metrics of the run are this function's.
    forward = tf.function(lambda ids: model(ids, training=False), autograph=False)
    expected = tf.sigmoid(forward(tf.constant(rows.ids))).numpy().reshape(-1)
    outputs = {SERVING_DEFAULT: loaded.signatures[SERVING_DEFAULT](feature_ids=tf.constant(rows.ids))}
    if rows.raw is not None:
        raw = {name: tf.constant(values) for name, values in rows.raw_columns().items()}
        outputs[PREDICT_RAW] = loaded.signatures[PREDICT_RAW](**raw)
    diffs = {name: float(np.max(np.abs(out[PROBABILITY].numpy() - expected), initial=0.0)) for name, out in outputs.items()}
    if max(diffs.values()) > CHECK_TOLERANCE:
        raise ExportError(f"{path}: the SavedModel does not reproduce the Keras model (max |diff| per signature: {diffs})")
    return max(diffs.values())
