"""Writing a file atomically: into a temporary sibling, then renamed over the target
(`os.replace`), so that a reader, or a kill mid-write, never sees half a file.

It lives here because architecture/ imports no other folder, and every folder that writes such
files (architecture: arch.json; analysis: the architecture PNG; training: run files and
checkpoints) may import architecture/ (tests/test_layout.py). Plain Python, no TensorFlow.
"""

from __future__ import annotations

import os
from typing import Callable


def replace_atomically(
    path: str | os.PathLike,
    write: Callable[[str], object],
    *,
    tmp: str | None = None,
    fsync: bool = False,
) -> None:
    """Calls `write(tmp)` to write the file at `tmp` (default `<path>.tmp`), fsyncs it if
    `fsync`, then renames it to `path`. When `write` raises, `path` is left as it was."""
    path = os.fspath(path)
    tmp = f"{path}.tmp" if tmp is None else tmp
    write(tmp)
    if fsync:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` through `<path>.tmp`."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    replace_atomically(path, write)
