"""The Beam path's unit of work: a byte range of one input file, and the lines it owns.

Input files (a path or a glob, local or any Beam filesystem: gs://, s3://, hdfs://) are taken
in sorted path order, as if concatenated. A plain file is cut into ranges of `range_bytes`; a
range owns the lines that *start* inside it, so every line belongs to exactly one range
wherever the cuts fall. A gzip file (detected by its magic bytes) cannot be read from the
middle: it is one range. A range is read by one worker, as line-aligned blocks of
`block_bytes` (`raw_input.iter_stream_blocks`, the one-machine path's reader).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
from typing import BinaryIO, Iterator

from optfusion_tf.data.beam.options import DEFAULT_RANGE_BYTES
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.raw_input import GZIP_MAGIC, RawBlock, iter_stream_blocks

_PIECE = 1 << 16


@dataclasses.dataclass(frozen=True)
class InputRange:
    """A byte range of one input file.

    Attributes:
        index: position among all ranges, in file order (files in sorted path order).
        path: the file.
        file_index: position of the file among the inputs.
        start: first byte (lines starting at or after it are owned).
        end: end byte, exclusive (lines starting before it are owned); None: to the file's end.
        gzip: the file is gzip (then start is 0 and end None).
    """

    index: int
    path: str
    file_index: int
    start: int
    end: int | None
    gzip: bool

    @property
    def first_in_file(self) -> bool:
        """Whether the range starts the file (and so holds its header, if any)."""
        return self.start == 0


def _filesystems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _open(path: str) -> BinaryIO:
    from apache_beam.io.filesystem import CompressionTypes

    try:
        return _filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as e:  # Beam raises BeamIOError / IOError variants per filesystem
        raise DataError(f"{path}: cannot read input: {e}") from e


def list_inputs(pattern: str) -> list[tuple[str, int]]:
    """(path, size) of every file matching `pattern` (a path or glob), sorted by path.

    Raises:
        DataError: nothing matches, or every match is empty.
    """
    if os.path.isdir(pattern):
        raise DataError(f"{pattern}: is a directory, expected a raw data file")
    try:
        matched = _filesystems().match([pattern])[0].metadata_list
    except Exception as e:
        raise DataError(f"{pattern}: input file not found ({e})") from e
    files = sorted((m.path, m.size_in_bytes) for m in matched)
    if not files:
        raise DataError(f"{pattern}: input file not found")

    if not any(size for _, size in files):
        raise DataError(f"{pattern}: empty input (no header, no rows)")
    return files


def plan_ranges(files: list[tuple[str, int]], range_bytes: int = DEFAULT_RANGE_BYTES
                ) -> list[InputRange]:
    """Cuts every file into ranges (a gzip file, an empty one: one range)."""
    if range_bytes < 1:
        raise ValueError(f"range_bytes must be >= 1. Received: {range_bytes}")
    ranges: list[InputRange] = []
    for file_index, (path, size) in enumerate(files):
        with _open(path) as f:
            is_gzip = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        if is_gzip or size <= range_bytes:
            cuts = [(0, None)]
        else:
            cuts = [(s, min(s + range_bytes, size)) for s in range(0, size, range_bytes)]
            cuts[-1] = (cuts[-1][0], None)
        for start, end in cuts:
            ranges.append(InputRange(len(ranges), path, file_index, start, end, is_gzip))
    return ranges


def _owned_bytes(f: BinaryIO, start: int, end: int | None) -> bytes:
    """The bytes of the lines that start in [start, end) of the plain file `f` (end None: to
    the end of the file)."""
    head = max(start - 1, 0)
    f.seek(head)
    data = f.read() if end is None else f.read(end - head)
    if start > 0:  # skip the line that started before the range
        newline = data.find(b"\n")
        if newline < 0 or newline + 1 >= len(data):
            return b""
        data = data[newline + 1:]
    if end is None:
        return data
    if data.endswith(b"\n"):
        return data
    tail = bytearray()
    while True:  # finish the last line, which runs past the range
        piece = f.read(_PIECE)
        if not piece:
            break
        newline = piece.find(b"\n")
        if newline >= 0:
            tail += piece[: newline + 1]
            break
        tail += piece
    return data + bytes(tail)


def range_blocks(
    r: InputRange, first_line: int, skip_lines: int, block_bytes: int
) -> Iterator[RawBlock]:
    """The lines `r` owns after its first `skip_lines`, as blocks of about `block_bytes`.

    Args:
        r: the range.
        first_line: 1-based file line number of the range's first line.
        skip_lines: lines to skip first (1 for a file's header).
        block_bytes: block size.
    Raises:
        DataError: unreadable input or a corrupt gzip stream.
    """
    with _open(r.path) as raw:
        if r.gzip:
            stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")
        else:
            try:
                stream = io.BytesIO(_owned_bytes(raw, r.start, r.end))
            except OSError as e:
                raise DataError(f"{r.path}: cannot read input: {e}") from e
        yield from iter_stream_blocks(
            stream, r.path, skip_lines=skip_lines, block_bytes=block_bytes, first_line=first_line
        )


def first_line(path: str) -> str | None:
    """The file's first line (decoded as UTF-8, a byte order mark and the newline stripped), or
    None for an empty file; reads only as far as that line."""
    with _open(path) as f:
        is_gzip = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    head = InputRange(0, path, 0, 0, None if is_gzip else _PIECE, is_gzip)
    for block in range_blocks(head, 1, 0, _PIECE):
        return block.data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    return None
