"""Thin script: see optfusion_tf.cli.criteo2tf (flags: --help)."""

from optfusion_tf.cli.criteo2tf import run

if __name__ == "__main__":
    run()
