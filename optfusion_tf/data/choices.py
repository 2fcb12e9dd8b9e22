"""The names of the training-order modes (--shuffle): plain Python, no TensorFlow, so that the
scripts' flags take them before TensorFlow is imported (optfusion_tf/data/shuffle.py reads
them)."""

from __future__ import annotations

SHUFFLES = ("examples", "chunks")
