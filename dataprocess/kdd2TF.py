"""Thin script: see optfusion_tf.cli.preprocess_flags.kdd2tf (flags: --help)."""

from optfusion_tf.cli.preprocess_flags import kdd2tf

if __name__ == "__main__":
    kdd2tf()
