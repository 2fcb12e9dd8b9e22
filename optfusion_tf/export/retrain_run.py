"""Opening a re-train run directory (DESIGN.md section 7) for export, with its dataset and model.

A re-train run that can be exported holds `flags.txt` (with `--dataset_dir` and `--fusion`),
`metrics.json` (written last: the run completed) and `model.keras` (the best re-trained model).
A search run has flags of its own (`--selection`, `--arch_lr`) and no `--fusion`; its supernet
is not what users serve.
"""

from __future__ import annotations

import dataclasses
import os

import keras

from optfusion_tf.data.errors import DataError
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.export.errors import ExportError
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.models.node_plan import CONNECTION_SEARCH_MODES, OPERATION_SEARCH_MODES

FLAGS_FILE, METRICS_FILE, MODEL_FILE = "flags.txt", "metrics.json", "model.keras"
_SEARCH_ONLY_FLAGS = ("selection", "arch_lr")


@dataclasses.dataclass(frozen=True)
class RetrainRun:
    """A complete re-train run.

    Attributes:
        path: the run directory.
        flags: flags.txt's `--name=value` lines as name -> value.
        dataset_dir: its --dataset_dir.
        stats: the dataset's stats.json.
    """

    path: str
    flags: dict[str, str]
    dataset_dir: str
    stats: DatasetStats

    @property
    def model_path(self) -> str:
        return os.path.join(self.path, MODEL_FILE)

    def load_model(self) -> OptFusionModel:
        """model.keras, checked to be a re-trained OptFusionModel of this run's dataset."""
        try:
            model = keras.saving.load_model(self.model_path, compile=False)
        except (OSError, ValueError, TypeError) as e:
            raise ExportError(f"{self.model_path}: cannot load the model: {e}") from e
        if not isinstance(model, OptFusionModel):
            raise ExportError(f"{self.model_path}: expected an OptFusionModel, found {type(model).__name__}")
        if model.mode in CONNECTION_SEARCH_MODES + OPERATION_SEARCH_MODES:
            raise ExportError(
                f"{self.model_path}: a search supernet (fusion={model.mode!r}); export a re-trained model"
            )
        if (model.num_fields, model.feature_num) != (self.stats.num_fields, self.stats.feature_num):
            raise ExportError(
                f"{self.model_path}: model has num_fields={model.num_fields}, feature_num={model.feature_num}; "
                f"{self.dataset_dir}/stats.json has {self.stats.num_fields}, {self.stats.feature_num}"
            )
        return model


def parse_flags_file(path: str) -> dict[str, str]:
    """flags.txt's `--name=value` lines -> name -> value.

    Comments (#) and boolean lines (`--name`, `--noname`) are skipped: the export needs none.
    """
    parsed: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("--"):
                raise ExportError(f"{path}:{number}: expected a --flag line, found {line!r}")
            name, sep, value = line[2:].partition("=")
            if sep:
                parsed[name] = value
    return parsed


def open_retrain_run(run_dir: str) -> RetrainRun:
    """Validates `run_dir` as a complete re-train run and loads its dataset's stats.

    Raises:
        ExportError: missing directory, a search run, an unfinished run, no model.keras, or a
            missing or incomplete dataset directory; the message says which and what to do.
    """
    if not os.path.isdir(run_dir):
        raise ExportError(f"--run_dir={run_dir}: directory not found (expected a retrain.py run directory)")
    flags_path = os.path.join(run_dir, FLAGS_FILE)
    if not os.path.isfile(flags_path):
        raise ExportError(f"--run_dir={run_dir}: no {FLAGS_FILE}, so not a run directory of search.py / retrain.py")
    flags = parse_flags_file(flags_path)
    if "fusion" not in flags:
        what = "a search run" if any(name in flags for name in _SEARCH_ONLY_FLAGS) else "not a re-train run"
        raise ExportError(
            f"--run_dir={run_dir}: {what} ({flags_path} has no --fusion). Export a re-trained model: "
            f"run retrain.py --arch={os.path.join(run_dir, 'arch.json')} and pass its run directory."
        )
    if not os.path.isfile(os.path.join(run_dir, METRICS_FILE)):
        raise ExportError(f"--run_dir={run_dir}: no {METRICS_FILE}, the run has not completed; finish or re-run it")
    if not os.path.isfile(os.path.join(run_dir, MODEL_FILE)):
        raise ExportError(f"--run_dir={run_dir}: no {MODEL_FILE} (the best re-trained model is expected there)")
    dataset_dir = flags.get("dataset_dir")
    if not dataset_dir:
        raise ExportError(f"{flags_path}: no --dataset_dir line")
    try:
        stats = DatasetStats.load(dataset_dir)
    except DataError as e:
        relative = "" if os.path.isabs(dataset_dir) else f" (relative to the current directory {os.getcwd()})"
        raise ExportError(f"--dataset_dir of {flags_path}{relative}: {e}") from e
    return RetrainRun(run_dir, flags, dataset_dir, stats)
