"""Building an output directory atomically: in a hidden temporary sibling, renamed at the end.

A failure, Ctrl-C or SIGTERM (the CLIs turn it into SystemExit) removes the temporary directory;
a SIGKILL may leave `.<name>.tmp-*` behind, which is never mistaken for a dataset (wrong name,
no stats.json) and can be deleted. With `overwrite`, an existing directory is replaced only
once the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from optfusion_tf.data.errors import DataError


def check_output_dir(path: str, overwrite: bool) -> None:
    """Raises DataError if `path` exists and may not be replaced, or is not a directory."""
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise DataError(f"{path}: output path exists and is not a directory")
        if not overwrite:
            raise DataError(f"{path}: output directory exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_output_dir(path: str, overwrite: bool) -> Iterator[str]:
    """Yields a temporary directory that becomes `path` when the block exits normally.

    Parent directories created here are removed again if the block fails.
    """
    path = os.path.abspath(path)
    check_output_dir(path, overwrite)
    parent = os.path.dirname(path)
    created = []
    probe = parent
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    try:
        yield tmp
        check_output_dir(path, overwrite)
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.rename(path, os.path.join(old, "replaced"))
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # innermost first
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise
