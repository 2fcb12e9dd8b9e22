"""The names of the distribution strategies and the default cluster wait: plain Python, no
TensorFlow, so that the scripts' flags take them before TensorFlow is imported
(optfusion_tf/distribute/distribution.py builds the strategies)."""

from __future__ import annotations

STRATEGIES = ("none", "mirrored", "multi_worker")
DEFAULT_CLUSTER_WAIT_S = 900
