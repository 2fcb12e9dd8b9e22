"""criteo2TF: Criteo Display Advertising Challenge train.txt -> TFRecords, vocab/*.tsv, stats.json.

Flags: optfusion_tf.cli.preprocess_flags (shown by --help).
"""

from __future__ import annotations

from typing import Sequence

from absl import app

from optfusion_tf.cli import preprocess_flags


def main(argv: Sequence[str]) -> int:
    return preprocess_flags.run_preprocess("criteo", argv)


def run() -> None:
    """Console entry point."""
    preprocess_flags.define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
