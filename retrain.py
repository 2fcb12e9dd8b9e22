"""Thin script: see optfusion_tf.cli.train_main.retrain (flags: --help)."""

from optfusion_tf.cli.train_main import retrain

if __name__ == "__main__":
    retrain()
