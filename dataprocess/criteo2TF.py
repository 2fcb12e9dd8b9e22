"""Thin script: see optfusion_tf.cli.preprocess_flags.criteo2tf (flags: --help)."""

from optfusion_tf.cli.preprocess_flags import criteo2tf

if __name__ == "__main__":
    criteo2tf()
