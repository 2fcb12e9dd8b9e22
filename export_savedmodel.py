"""Thin script: see optfusion_tf.cli.export_savedmodel (flags: --help)."""

from optfusion_tf.cli.export_savedmodel import run

if __name__ == "__main__":
    run()
