"""Opening raw input (plain or gzip, detected by content) and cutting it into line-aligned blocks.

Blocks are whole lines, so each one can be parsed on its own by pandas' C parser, and each
knows the file line number of its first line, so bad rows can be reported as file:line.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import zlib
from typing import BinaryIO, Iterator

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
        carry = _without_bom(_read(stream, len(UTF8_BOM), path))
        line_no = 1
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
