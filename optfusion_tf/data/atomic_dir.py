"""Building an output directory atomically: in a hidden temporary sibling, renamed at the end.

A failure, Ctrl-C or SIGTERM (the CLIs turn it into SystemExit) removes the temporary directory;
a SIGKILL may leave `.<name>.tmp-*` behind, which is never mistaken for a dataset (wrong name,
no stats.json) and can be deleted. With `overwrite`, an existing directory is replaced only
once the new one is complete, and only if it is a dataset this package wrote (stats.json,
shards, vocab/ and nothing else) that does not hold the input file: `--record=.` or a folder
with the raw log in it is refused, never deleted.

The replacement is one atomic exchange of the two directories (Linux `renameat2` with
`RENAME_EXCHANGE`, called through ctypes: Python's `os` has no binding and no maintained library
wraps it), so at every instant `path` holds the old dataset or the new one. Where the exchange
is not supported (another OS, a filesystem without it) the old directory is moved aside and the
new one renamed into place; if that second rename fails the old one is put back, and a SIGKILL
between the two leaves it in `.<name>.old-*/replaced`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from typing import Iterator

from optfusion_tf.data.errors import DataError


_DATASET_ENTRY = re.compile(r"(train|validation|test)-\d{5}\.tfrecord(\.gz)?|stats\.json|vocab")


def check_output_dir(path: str, overwrite: bool, input_path: str | None = None) -> None:
    """Raises DataError if `path` exists and may not be replaced, or is not a directory.

    With `overwrite`, an existing directory may be replaced only if `_not_a_dataset` finds
    nothing against it.
    """
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise DataError(f"{path}: output path exists and is not a directory")
        if not overwrite:
            raise DataError(f"{path}: output directory exists; pass --overwrite to replace it")
        reason = _not_a_dataset(path, input_path)
        if reason:
            raise DataError(
                f"{path}: --overwrite replaces only a dataset directory written by this "
                f"package, but {reason}; refusing to delete it. Choose another --record."
            )


def _not_a_dataset(path: str, input_path: str | None) -> str | None:
    """Why `path` is not a replaceable dataset directory, or None if it is one."""
    real = os.path.realpath(path)
    if input_path is not None:
        source = os.path.realpath(input_path)
        if os.path.commonpath([real, source]) == real:
            return f"it holds the input file {input_path}"
    if not os.path.isfile(os.path.join(path, "stats.json")):
        return "it has no stats.json"
    vocab = os.path.join(path, "vocab")
    if os.path.lexists(vocab) and (not os.path.isdir(vocab) or os.path.islink(vocab)):
        return "its vocab is not a directory"
    listed = os.listdir(path)
    if os.path.isdir(vocab):
        listed += [f"vocab/{e}" for e in os.listdir(vocab)]
    return stray_entries(listed)


def stray_entries(names: list[str]) -> str | None:
    """What in a dataset directory's listing (names relative to it, vocab files as
    "vocab/<name>") this package does not write, as a reason, or None."""
    top = [n for n in names if "/" not in n]
    others = sorted(e for e in top if not _DATASET_ENTRY.fullmatch(e))
    if others:
        more = " ..." if len(others) > 5 else ""
        return f"it also holds {', '.join(map(repr, others[:5]))}{more}"
    stray = sorted(n[len("vocab/"):] for n in names if "/" in n
                   and not (n.startswith("vocab/") and n.count("/") == 1 and n.endswith(".tsv")))
    if stray:
        return f"its vocab/ also holds {', '.join(map(repr, stray[:5]))}"
    return None


@contextlib.contextmanager
def atomic_output_dir(
    path: str, overwrite: bool, input_path: str | None = None
) -> Iterator[str]:
    """Yields a temporary directory that becomes `path` when the block exits normally.

    Parent directories created here are removed again if the block fails. `input_path`: the
    file being read, which an overwritten `path` must not hold.
    """
    path = os.path.abspath(path)
    check_output_dir(path, overwrite, input_path)
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
        check_output_dir(path, overwrite, input_path)
        if not os.path.lexists(path):
            os.rename(tmp, path)
        elif exchange_paths(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old dataset
        else:
            _replace_in_two_renames(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # innermost first
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_paths(a: str, b: str) -> bool:
    """Atomically swaps the two existing paths `a` and `b` (Linux `renameat2(RENAME_EXCHANGE)`).

    Returns False, having changed nothing, where the exchange is unsupported (no `renameat2` in
    the C library, or the filesystem refuses the flag); raises OSError on any other failure.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without renameat2 (glibc < 2.28, musl)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a, None, b)


def _replace_in_two_renames(new: str, path: str) -> None:
    """Moves `path` aside and renames `new` to it; puts `path` back if that rename fails."""
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=os.path.dirname(path))
    aside = os.path.join(old, "replaced")
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)
