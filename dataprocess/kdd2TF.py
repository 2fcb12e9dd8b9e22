"""Thin script: see optfusion_tf.cli.kdd2tf (flags: --help)."""

from optfusion_tf.cli.kdd2tf import run

if __name__ == "__main__":
    run()
