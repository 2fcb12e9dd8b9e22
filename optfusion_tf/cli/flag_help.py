"""Makes `--help` of a script list the flags that a library module defines.

absl's `--help` lists the key flags of the main module (named by `sys.argv[0]`); our flags are
defined in optfusion_tf.cli modules, so both the thin scripts (`python search.py --help`) and
the console entry points would otherwise print no flag at all.
"""

from __future__ import annotations

import sys
from types import ModuleType

from absl import flags


def show_flags_in_help(*modules: ModuleType) -> None:
    """Registers every flag defined in `modules` as a key flag of the running script."""
    for module in modules:
        for flag in flags.FLAGS.get_key_flags_for_module(module.__name__):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
