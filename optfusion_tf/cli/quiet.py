"""Keeps library chatter out of the user's way (issue 26, item 2).

What a script prints by default: our progress (absl INFO lines of optfusion_tf's own modules),
its summaries, and every warning and error. What it hides:

- TensorFlow's C++ start-up lines. `TF_CPP_MIN_LOG_LEVEL=2` hides the C++ INFO and WARNING
  lines, but since TF 2.17 the lines written while TensorFlow loads and finds its devices
  ("oneDNN custom operations are on", "Could not find cuda drivers", "failed call to cuInit")
  come before its logging is initialised and ignore that variable (tensorflow/tensorflow#100442).
  `import_tensorflow_quietly` loads TensorFlow and lists the devices with the process' stderr
  (file descriptor 2) sent to /dev/null, then restores it. Setting `TF_CPP_MIN_LOG_LEVEL`
  yourself (to any value) turns this off and shows them; the processes a script starts
  (preprocessing workers, which import the script again) inherit its quiet start.
- INFO lines of other libraries (TensorFlow's SavedModel writer, Keras): `quiet_library_logs`
  lets absl's handler pass INFO records of optfusion_tf's own modules only and sets the
  `tensorflow` logger to WARNING. absl's own `--verbosity=1` (or higher) shows everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null (C++ writes there directly), then restores it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Set beside TF_CPP_MIN_LOG_LEVEL when that value is ours, not the user's: child processes
# inherit both (a worker started by spawn or forkserver imports the script's __main__ again)
# and stay quiet, where the variable alone would read as the user asking for the lines.
SET_BY_US = "OPTFUSION_TF_QUIET_TF_CPP_MIN_LOG_LEVEL"


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and initialises its devices without the C++ start-up lines, unless
    the user set TF_CPP_MIN_LOG_LEVEL (then as TensorFlow does by itself). Call it before
    anything imports TensorFlow; an import error is raised after stderr is restored."""
    if "tensorflow" in sys.modules:
        return
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if level is not None and level != os.environ.get(SET_BY_US):
        import tensorflow  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[SET_BY_US] = "2"
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_physical_devices()


class _OursOrWarnings(logging.Filter):
    """Passes warnings and errors from anywhere, INFO and DEBUG from optfusion_tf only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.pathname.startswith(PACKAGE_DIR)


def quiet_library_logs(verbosity: int) -> None:
    """After flag parsing: with absl's default `--verbosity` (0, INFO) or lower, other
    libraries' INFO lines are dropped; with 1 or more (DEBUG) nothing is filtered."""
    from absl import logging as absl_logging

    handler = absl_logging.get_absl_handler()
    for existing in [f for f in handler.filters if isinstance(f, _OursOrWarnings)]:
        handler.removeFilter(existing)
    if verbosity >= 1:
        return
    handler.addFilter(_OursOrWarnings())
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
