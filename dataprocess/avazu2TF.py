"""Thin script: see optfusion_tf.cli.preprocess_flags.avazu2tf (flags: --help)."""

from optfusion_tf.cli.preprocess_flags import avazu2tf

if __name__ == "__main__":
    avazu2tf()
