"""search.py, stage 1: one-shot (or sequential) search of fusion connections and operations.

Flags: optfusion_tf.cli.training_flags (shown by --help); main: optfusion_tf.cli.train_main.
"""

from optfusion_tf.cli import train_main


def run() -> None:
    """Console entry point."""
    train_main.run("search")


if __name__ == "__main__":
    run()
