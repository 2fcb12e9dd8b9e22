"""Where --runner=beam reads and writes files, and how its output directory becomes complete.

Every file of the Beam path goes through Beam's filesystems (`create`, `open_file`), so the
output directory may be local or remote (gs://, s3://, hdfs://, where the cluster's workers
can write). A local directory is built as a hidden sibling and renamed into place
(`atomic_dir`, as on one machine). A remote one is built under a hidden sibling prefix
`.<name>.tmp-<id>` and then moved file by file, stats.json last: object stores have no atomic
directory rename, but the directory never holds a stats.json before it is complete (a run
killed while files move leaves one without stats.json, which `DatasetStats.load` refuses).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import BinaryIO, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from optfusion_tf.data.atomic_dir import atomic_output_dir, stray_entries
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.stats import STATS_FILE


def is_remote(path: str) -> bool:
    """Whether `path` names a Beam filesystem other than the local one (it has a scheme)."""
    return "://" in path


def create(path: str) -> BinaryIO:
    """Opens `path` for binary writing, bytes as given (no compression by file name)."""
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_file(path: str) -> BinaryIO:
    """Opens `path` for binary reading, bytes as stored (no decompression by file name)."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def mkdirs(path: str) -> None:
    """Creates a directory (a no-op on object stores); an existing one is fine."""
    with contextlib.suppress(IOError):
        FileSystems.mkdirs(path)


def delete(paths: list[str]) -> None:
    if paths:
        FileSystems.delete(paths)


def rename(sources: list[str], destinations: list[str]) -> None:
    if sources:
        FileSystems.rename(sources, destinations)


def listing(directory: str) -> list[str]:
    """The files of a dataset directory and of its vocab/, relative to it."""
    found = []
    for pattern in (f"{directory}/*", f"{directory}/vocab/*"):
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception:  # nothing matched, on some filesystems an error
            continue
        found += [m.path[len(directory) + 1:] for m in matched if not m.path.endswith("/")]
    return sorted(set(found) - {"vocab"})


@contextlib.contextmanager
def output_dir(path: str, overwrite: bool, input_path: str | None) -> Iterator[str]:
    """Yields the directory to build the dataset in; it becomes `path` when the block exits
    normally (see the module docstring). `input_path`: a local input, which an overwritten
    local `path` must not hold."""
    if not is_remote(path):
        with atomic_output_dir(path, overwrite, input_path) as tmp:
            yield tmp
        return
    path = path.rstrip("/")
    _check_remote(path, overwrite)
    parent, name = path.rsplit("/", 1)
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"
    mkdirs(tmp)
    try:
        yield tmp
        old = _check_remote(path, overwrite)
        delete([f"{path}/{f}" for f in old])
        files = listing(tmp)
        mkdirs(path)
        mkdirs(f"{path}/vocab")
        for batch in ([f for f in files if f != STATS_FILE], [STATS_FILE]):
            rename([f"{tmp}/{f}" for f in batch], [f"{path}/{f}" for f in batch])
    finally:
        with contextlib.suppress(Exception):
            FileSystems.delete([tmp])


def _check_remote(path: str, overwrite: bool) -> list[str]:
    """The files of an existing remote `path` (empty: none), refused without --overwrite or,
    as a local one (`atomic_dir.check_output_dir`), when it is not a dataset directory this
    package wrote: no stats.json, or other files (the input, say) beside ours."""
    old = listing(path)
    if old and not overwrite:
        raise DataError(f"{path}: output directory exists; pass --overwrite to replace it")
    reason = "it has no stats.json" if STATS_FILE not in old else stray_entries(old)
    if old and reason:
        raise DataError(
            f"{path}: --overwrite replaces only a dataset directory written by this package, "
            f"but {reason}; refusing to delete it. Choose another --record."
        )
    return old
