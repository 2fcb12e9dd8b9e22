"""Thin script: see optfusion_tf.cli.avazu2tf (flags: --help)."""

from optfusion_tf.cli.avazu2tf import run

if __name__ == "__main__":
    run()
