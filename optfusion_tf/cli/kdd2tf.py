"""kdd2TF: KDD Cup 2012 track 2 training.txt -> TFRecord shards, vocab/*.tsv and stats.json.

Flags: optfusion_tf.cli.preprocess_flags (shown by --help).
"""

from __future__ import annotations

from typing import Sequence

from absl import app

from optfusion_tf.cli import preprocess_flags


def main(argv: Sequence[str]) -> int:
    return preprocess_flags.run_preprocess("kdd12", argv)


def run() -> None:
    """Console entry point."""
    preprocess_flags.define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
