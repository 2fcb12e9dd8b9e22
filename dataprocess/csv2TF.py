"""Thin script: see optfusion_tf.cli.csv2tf (flags: --help)."""

from optfusion_tf.cli.csv2tf import run

if __name__ == "__main__":
    run()
