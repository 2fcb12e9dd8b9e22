"""The main functions of search.py and retrain.py: flags -> TrainingConfig -> experiment."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

from absl import flags, logging

from optfusion_tf.cli import training_flags
from optfusion_tf.experiment import ExperimentError, TrainingConfig
from optfusion_tf.run_dir import script_flag_lines

FLAGS = flags.FLAGS


def config_from_flags(stage: str) -> TrainingConfig:
    """A TrainingConfig from the parsed flags; the run dir defaults to runs/<stage>_<dataset>."""
    values = {
        field.name: FLAGS[field.name].value
        for field in dataclasses.fields(TrainingConfig)
        if field.name in FLAGS
    }
    if not values.get("run_dir"):
        dataset = os.path.basename(os.path.normpath(values.get("dataset_dir") or "dataset"))
        values["run_dir"] = os.path.join("runs", f"{stage}_{dataset}")
    return TrainingConfig(**values)


def run_stage(stage: str, run: Callable[..., dict]) -> None:
    """Runs one stage; an ExperimentError becomes one clear message and exit code 1."""
    config = config_from_flags(stage)
    module_name = training_flags.__name__  # the module that defines (so "owns") the flags
    flag_lines = script_flag_lines(module_name=module_name)
    given = {f.name for f in FLAGS.get_key_flags_for_module(module_name) if f.present}
    try:
        if stage == "search":
            metrics = run(config, flag_lines)
        else:
            metrics = run(config, flag_lines, given)
    except ExperimentError as err:
        logging.error("%s", err)
        print(f"{stage}: error: {err}", file=sys.stderr)
        sys.exit(1)
    print(
        f"{stage} done: valid AUC {metrics['valid_auc']:.5f}, log loss {metrics['valid_logloss']:.5f}; "
        f"test AUC {metrics['test_auc']:.5f}, log loss {metrics['test_logloss']:.5f}; "
        f"best epoch {metrics['best_epoch']}, {metrics['seconds']:.1f} s -> {config.run_dir}"
    )
    print(f"TensorBoard: tensorboard --logdir {os.path.join(config.run_dir, 'tensorboard')}")
