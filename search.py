"""Thin script: see optfusion_tf.cli.search (flags: --help)."""

from optfusion_tf.cli.search import run

if __name__ == "__main__":
    run()
