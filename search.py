"""Thin script: see optfusion_tf.cli.train_main.search (flags: --help)."""

from optfusion_tf.cli.train_main import search

if __name__ == "__main__":
    search()
