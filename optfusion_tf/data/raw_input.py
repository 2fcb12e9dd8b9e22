"""Opening raw input (plain or gzip, detected by content) and cutting it into line-aligned blocks.

Blocks are whole lines, so each one can be parsed on its own by pandas' C parser, and each
knows the file line number of its first line, so bad rows can be reported as file:line.
`iter_block_sources` cuts a plain file into `FileSlice`s (where each block lies; the worker
process that parses one reads its bytes itself, so they are never copied between processes)
and a gzip file into `RawBlock`s.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import mmap
import os
import zlib
from typing import BinaryIO, Iterator

import numpy as np

from optfusion_tf.data.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_BLOCK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class RawBlock:
    """A run of whole input lines.

    Attributes:
        data: the lines' bytes; every line, the last one included, ends with b"\\n".
        first_line: 1-based file line number of the first line (a header is line 1).
        n_lines: number of lines in `data`.
    """

    data: bytes
    first_line: int
    n_lines: int

    def read(self) -> "RawBlock":
        """The block itself (what `FileSlice.read` gives for a block of a plain file)."""
        return self


@dataclasses.dataclass(frozen=True)
class FileSlice:
    """Where a block of whole lines lies in a plain file.

    Attributes:
        path: the file.
        offset: byte offset of the block's first line.
        size: bytes of the block (its last line may lack a newline: the file's last line).
        first_line: 1-based file line number of the first line.
        n_lines: number of lines in the block.
    """

    path: str
    offset: int
    size: int
    first_line: int
    n_lines: int

    def read(self) -> RawBlock:
        """The block's lines, a newline added to a last line without one.

        Raises:
            DataError: the file is shorter than when it was cut into blocks.
        """
        try:
            with open(self.path, "rb") as f:
                data = os.pread(f.fileno(), self.size, self.offset)
        except OSError as e:
            raise DataError(f"{self.path}: cannot read input: {e}") from e
        if len(data) != self.size:
            raise DataError(f"{self.path}: the file changed while it was being read")
        data = data if data.endswith(b"\n") else data + b"\n"
        return RawBlock(data, self.first_line, self.n_lines)


def input_files(path: str) -> list[str]:
    """[`path`], or for a glob (stats.json's input_path of a `--runner=beam` run over many
    files) the files it matches, in path order: one input, as Beam reads it.

    Raises:
        DataError: a glob that matches no file.
    """
    if os.path.exists(path) or not glob.has_magic(path):
        return [path]
    matches = sorted(glob.glob(path))
    if not matches:
        raise DataError(f"{path}: no input file matches")
    return matches


def open_raw(path: str) -> BinaryIO:
    """Opens `path` for binary reading, decompressing gzip (detected by its magic bytes).

    Raises:
        DataError: the file is missing, is a directory, or cannot be read.
    """
    if not os.path.exists(path):
        raise DataError(f"{path}: input file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, expected a raw data file")
    try:
        raw = open(path, "rb")
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
    except OSError as e:
        raise DataError(f"{path}: cannot read input: {e}") from e
    return gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw


def _read(stream: BinaryIO, size: int, path: str) -> bytes:
    try:
        return stream.read(size)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: unreadable gzip input: {e}") from e


def _without_bom(first_piece: bytes) -> bytes:
    """The file's first bytes without a UTF-8 byte order mark (editors on Windows write one)."""
    return first_piece[len(UTF8_BOM):] if first_piece.startswith(UTF8_BOM) else first_piece


def read_first_line(path: str) -> str | None:
    """The first line (decoded as UTF-8, a leading byte order mark and the newline stripped),
    or None for an empty file."""
    with open_raw(path) as stream:
        line = bytearray(_without_bom(_read(stream, 1 << 16, path)))
        while line and not line.endswith(b"\n"):
            piece = _read(stream, 1 << 16, path)
            if not piece:
                break
            line += piece
        if not line:
            return None
        return bytes(line).split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")


def iter_blocks(
    path: str, *, skip_lines: int = 0, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[RawBlock]:
    """Yields the file's lines after the first `skip_lines`, in blocks of about `block_bytes`.

    A final line without a newline gets one. A single line longer than `block_bytes` makes
    its block longer; it is never cut. A UTF-8 byte order mark at the start is dropped.

    Raises:
        DataError: the input cannot be opened or its gzip stream is corrupt or truncated.
    """
    with open_raw(path) as stream:
        yield from iter_stream_blocks(stream, path, skip_lines=skip_lines, block_bytes=block_bytes)


def iter_stream_blocks(
    stream: BinaryIO,
    path: str,
    *,
    skip_lines: int = 0,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    first_line: int = 1,
) -> Iterator[RawBlock]:
    """`iter_blocks` over an open binary stream (decompressed) whose first line is file line
    `first_line` (a byte order mark is dropped only at line 1); `path` names it in errors."""
    carry = _read(stream, len(UTF8_BOM), path)
    carry = _without_bom(carry) if first_line == 1 else carry
    line_no = first_line
    while skip_lines:
        while skip_lines and b"\n" in carry:
            carry = carry.split(b"\n", 1)[1]
            skip_lines -= 1
            line_no += 1
        if skip_lines:
            piece = _read(stream, 1 << 16, path)
            if not piece:
                return
            carry += piece
    while True:
        piece = _read(stream, block_bytes, path)
        if not piece:
            break
        buf = carry + piece
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            carry = buf
            continue
        data, carry = buf[:cut], buf[cut:]
        n = data.count(b"\n")
        yield RawBlock(data, line_no, n)
        line_no += n
    if carry:  # lines left after the header, or a last line without a newline
        data = carry if carry.endswith(b"\n") else carry + b"\n"
        yield RawBlock(data, line_no, data.count(b"\n"))


def iter_block_sources(
    path: str, *, skip_lines: int = 0, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[RawBlock | FileSlice]:
    """The blocks of `iter_blocks`, cut at the same bytes (same lines, line numbers and block
    boundaries): `FileSlice`s for a plain file, which this process only scans for newlines
    (memory mapped, never copied), `RawBlock`s for a gzip one.

    The cuts are `iter_blocks`' because the bad-row messages are not independent of them (a bad
    row's message quotes its cell only when its block also holds a non-numeric cell), so other
    cuts could change them: iter_blocks
    reads 3 bytes (a possible BOM), then 64 KiB pieces while it skips the header, then
    `block_bytes` at a time, and ends each block at the last newline read so far.

    Raises:
        DataError: the input cannot be opened or its gzip stream is corrupt or truncated.
    """
    with open_raw(path) as stream:
        size = None if isinstance(stream, gzip.GzipFile) else os.fstat(stream.fileno()).st_size
    if not size:  # gzip, or an empty file (which cannot be memory mapped)
        yield from iter_blocks(path, skip_lines=skip_lines, block_bytes=block_bytes)
        return
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        read_to = min(len(UTF8_BOM), size)  # where iter_blocks' reads have reached
        start = len(UTF8_BOM) if mm[: len(UTF8_BOM)] == UTF8_BOM else 0
        line_no = 1
        while skip_lines:
            newline = mm.find(b"\n", start, read_to)
            if newline >= 0:
                start, line_no, skip_lines = newline + 1, line_no + 1, skip_lines - 1
            elif read_to == size:
                return
            else:
                read_to = min(read_to + (1 << 16), size)
        while start < size:
            # Touching mapped pages past the end of a file truncated since it was mapped kills
            # the process (SIGBUS), so look before scanning each block.
            if os.fstat(f.fileno()).st_size < size:
                raise DataError(f"{path}: the file changed while it was being read")
            if read_to < size:
                read_to = min(read_to + block_bytes, size)
                cut = mm.rfind(b"\n", start, read_to) + 1
                if cut == 0:  # no newline yet: the block grows by the next read
                    continue
            else:  # lines after the last newline read, or a last line without one
                cut = size
            lines = np.frombuffer(mm, np.uint8, cut - start, start)
            n = int(np.count_nonzero(lines == ord("\n"))) + int(lines[-1] != ord("\n"))
            del lines  # releases the map's buffer, so that it can be closed
            # Unmaps the pages read (they stay in the page cache), so that this process's
            # resident memory does not grow with the file.
            page = start - start % mmap.PAGESIZE
            mm.madvise(mmap.MADV_DONTNEED, page, cut - page)
            yield FileSlice(path, start, cut - start, line_no, n)
            start, line_no = cut, line_no + n
