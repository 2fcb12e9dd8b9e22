"""retrain.py: stage 2, re-train a searched architecture (hard/soft/one operation) or a preset.

Flags: optfusion_tf.cli.training_flags (shown by --help). Exit status 0 on success, 1 with one
clear message when an input is unusable or the loss became NaN.
"""

from __future__ import annotations

import os
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402

from optfusion_tf import experiment  # noqa: E402
from optfusion_tf.cli import train_main, training_flags  # noqa: E402
from optfusion_tf.cli.flag_help import show_flags_in_help  # noqa: E402


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
    train_main.run_stage("retrain", experiment.run_retrain)


def run() -> None:
    """Console entry point (flags are defined here, not at import, like the other CLIs)."""
    training_flags.define_common_flags()
    training_flags.define_retrain_flags()
    show_flags_in_help(training_flags)
    app.run(main)


if __name__ == "__main__":
    run()
