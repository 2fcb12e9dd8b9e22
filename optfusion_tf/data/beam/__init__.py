"""--runner=beam: the preprocessing passes as Apache Beam pipelines (DirectRunner here;
Dataflow, Flink or Spark on a cluster), with the one-machine path's output contract.

Needs the `beam` extra (`pip install "optfusion_tf[beam]"`); `preprocess_beam` says so when it
is missing. See `driver` for the passes.
"""

from __future__ import annotations

import importlib.util
import logging

from optfusion_tf.data.errors import DataError

INSTALL = 'pip install "optfusion_tf[beam]"  (in a clone: pip install -e ".[beam]")'


def preprocess_beam(*args, **kwargs):
    """`driver.preprocess_beam`, importing Apache Beam first (DataError naming the install
    command when it is missing)."""
    if importlib.util.find_spec("apache_beam") is None:
        raise DataError(f"--runner=beam needs Apache Beam, which is not installed: {INSTALL}")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # Beam's import-time notes on absent Google Cloud clients
    try:
        from optfusion_tf.data.beam.driver import preprocess_beam as run
    finally:
        root.setLevel(level)

    return run(*args, **kwargs)
