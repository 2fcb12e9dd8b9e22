"""retrain.py, stage 2: re-train a searched architecture (hard/soft/one operation) or a preset.

Flags: optfusion_tf.cli.training_flags (shown by --help); main: optfusion_tf.cli.train_main.
"""

from optfusion_tf.cli import train_main


def run() -> None:
    """Console entry point."""
    train_main.run("retrain")


if __name__ == "__main__":
    run()
