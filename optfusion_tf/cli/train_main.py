"""search.py and retrain.py (optfusion-search, optfusion-retrain): flags -> TrainingConfig ->
experiment.

Their console entry points are `search()` and `retrain()` below; their flags are those of
optfusion_tf.cli.training_flags (shown by --help). Exit status 0 on success, 1 with one clear
message when an input is unusable or the loss became NaN. The flags are parsed and checked
before TensorFlow is imported, so that --help and a bad flag answer at once.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Sequence

from absl import app, flags, logging

from optfusion_tf.cli import training_flags
from optfusion_tf.cli.flag_help import show_flags_in_help
from optfusion_tf.cli.quiet import import_tensorflow_quietly, quiet_library_logs

if TYPE_CHECKING:  # imported at run time after the flags are parsed (run_stage)
    from optfusion_tf.training.config import TrainingConfig

STAGES = ("search", "retrain")

FLAGS = flags.FLAGS


def config_from_flags(stage: str) -> TrainingConfig:
    """A TrainingConfig from the parsed flags; the run dir defaults to runs/<stage>_<dataset>."""
    from optfusion_tf.training.config import TrainingConfig

    values = {
        field.name: FLAGS[field.name].value
        for field in dataclasses.fields(TrainingConfig)
        if field.name in FLAGS
    }
    if not values.get("run_dir"):
        dataset = os.path.basename(os.path.normpath(values.get("dataset_dir") or "dataset"))
        values["run_dir"] = os.path.join("runs", f"{stage}_{dataset}")
    return TrainingConfig(**values)


def search() -> None:
    """Console entry point of search.py, stage 1: one-shot (or sequential) search of fusion
    connections and operations."""
    run("search")


def retrain() -> None:
    """Console entry point of retrain.py, stage 2: re-train a searched architecture (hard, soft
    or one operation) or a preset."""
    run("retrain")


def run(stage: str) -> None:
    """The program of `stage`: defines its flags (at run time, like the other CLIs, so that
    importing this module defines none) and runs it."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}. Received: {stage!r}")
    training_flags.define_common_flags()
    getattr(training_flags, f"define_{stage}_flags")()
    show_flags_in_help(training_flags)

    def main(argv: Sequence[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
        quiet_library_logs(flags.FLAGS.verbosity)
        run_stage(stage)

    app.run(main)


def run_stage(stage: str) -> None:
    """Runs one stage from the parsed flags; an ExperimentError becomes one clear message and
    exit code 1. Imports TensorFlow (quietly) and the library first."""
    import_tensorflow_quietly()
    import tensorflow as tf

    from optfusion_tf.training import experiment
    from optfusion_tf.training.config import ExperimentError
    from optfusion_tf.training.run_dir import script_flag_lines

    config = config_from_flags(stage)
    module_name = training_flags.__name__  # the module that defines (so "owns") the flags
    flag_lines = script_flag_lines(module_name=module_name)
    given = {f.name for f in FLAGS.get_key_flags_for_module(module_name) if f.present}
    try:
        if stage == "search":
            metrics = experiment.run_search(config, flag_lines)
        else:
            metrics = experiment.run_retrain(config, flag_lines, given)
    except ExperimentError as err:
        _fail(stage, str(err))
    except (
        tf.errors.UnavailableError,
        tf.errors.DeadlineExceededError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
    ) as err:
        # A collective lost a peer (multi_worker): TensorFlow's message names the task.
        first = " ".join(str(err.message).split())[:600]
        _fail(
            stage,
            f"a worker of the cluster stopped ({first}). The run directory keeps the last "
            "finished epoch: start every worker again with the same command to resume.",
        )
    print(
        f"{stage} done: valid AUC {metrics['valid_auc']:.5f}, log loss {metrics['valid_logloss']:.5f}; "
        f"test AUC {metrics['test_auc']:.5f}, log loss {metrics['test_logloss']:.5f}; "
        f"best epoch {metrics['best_epoch']}, {metrics['seconds']:.1f} s -> {config.run_dir}"
    )
    print(f"TensorBoard: tensorboard --logdir {os.path.join(config.run_dir, 'tensorboard')}")


def _fail(stage: str, message: str) -> None:
    logging.error("%s", message)
    print(f"{stage}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)
