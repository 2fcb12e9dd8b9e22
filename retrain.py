"""Thin script: see optfusion_tf.cli.retrain (flags: --help)."""

from optfusion_tf.cli.retrain import run

if __name__ == "__main__":
    run()
