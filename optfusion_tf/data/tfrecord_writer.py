"""TFRecord files written without TensorFlow: framing with masked CRC32C, shards, optional GZIP.

A TFRecord file is a sequence of records, each
  uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data |
  uint32 masked_crc32c(data)
with masked_crc(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2**32); a GZIP file is that
stream gzip-compressed. Writing it here keeps TensorFlow (and its seconds of import time) out
of preprocessing; CRC32C comes from google-crc32c (Google's C implementation) for one record
per block; the others' are derived from it with per-byte tables, since CRC-32C is affine and
records of a dataset have one length and differ in a few bytes only (see example_encoding).
tests/test_data_encoding.py checks the files are
byte-identical to tf.io.TFRecordWriter's and that TFRecordDataset reads them.
"""

from __future__ import annotations

import functools
import os
import zlib
from typing import BinaryIO, Callable

import google_crc32c
import numpy as np

FRAME_BYTES = 16  # a TFRecord's framing: length (8), its masked CRC (4), the data's (4)
COMPRESSIONS = ("none", "gzip")
_MASK_DELTA = np.uint32(0xA282EAD8)


def _masked(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint32)
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA


def frame_records(records: np.ndarray) -> np.ndarray:
    """Adds TFRecord framing to N serialized records of equal length.

    Args:
        records: uint8 [N, record_len].
    Returns:
        uint8 [N, record_len + 16]: length, masked CRC of the length, record, masked CRC.
    """
    n, length = records.shape
    framed = np.empty((n, length + FRAME_BYTES), np.uint8)
    length_bytes = np.array([length], "<u8").tobytes()
    framed[:, :8] = np.frombuffer(length_bytes, np.uint8)
    framed[:, 8:12] = (
        _masked(np.array([google_crc32c.value(length_bytes)])).astype("<u4").view(np.uint8)
    )
    framed[:, 12:-4] = records
    data_crc = _masked(equal_length_crc32c(records))
    framed[:, -4:] = data_crc.astype("<u4").view(np.uint8).reshape(n, 4)
    return framed


@functools.lru_cache(maxsize=8)
def _byte_tables(length: int) -> np.ndarray:
    """uint32 [length, 256]: [i, b] is the CRC-32C change that XOR-ing byte b into position i of
    any length-`length` message makes (CRC-32C is affine over GF(2), so it does not depend on
    the message). Built from the 8 single-bit changes of each position."""
    zero = google_crc32c.value(bytes(length))
    bits = np.empty((length, 8), np.uint32)
    message = bytearray(length)
    for i in range(length):
        for j in range(8):
            message[i] = 1 << j
            bits[i, j] = google_crc32c.value(bytes(message)) ^ zero
        message[i] = 0
    byte = np.arange(256)
    tables = np.zeros((length, 256), np.uint32)
    for j in range(8):
        tables[:, (byte >> j) & 1 == 1] ^= bits[:, j : j + 1]
    return tables


def equal_length_crc32c(records: np.ndarray) -> np.ndarray:
    """CRC-32C of every row of uint8 [N, L] (uint32 [N]), vectorized: the first row's CRC,
    changed by the table entry of every byte that differs from the first row's (records of a
    dataset differ in their id and label bytes only)."""
    n, length = records.shape
    if not n:
        return np.zeros(0, np.uint32)
    first = records[0]
    crc = np.full(n, google_crc32c.value(first.tobytes()), np.uint32)
    tables = _byte_tables(length)
    for i in np.flatnonzero((records != first).any(axis=0)).tolist():
        crc ^= tables[i][records[:, i] ^ first[i]]
    return crc


class ShardWriter:
    """Writes one split's framed records to `<split>-00000.tfrecord[.gz]`, `-00001`, ...

    Args:
        directory: output directory.
        split: split name (file prefix).
        compression: "none" or "gzip".
        records_per_shard: records per file before the next file is started.
        create: opens a path for binary writing (default: a local file; a Beam filesystem's
            create for remote directories).
    """

    def __init__(
        self,
        directory: str,
        split: str,
        compression: str,
        records_per_shard: int,
        create: Callable[[str], BinaryIO] | None = None,
    ):
        if compression not in COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {COMPRESSIONS}. Received: {compression!r}"
            )
        if records_per_shard < 1:
            raise ValueError(f"records_per_shard must be >= 1. Received: {records_per_shard}")
        self.directory, self.split, self.compression = directory, split, compression
        self.records_per_shard = records_per_shard
        self._create = create or (lambda path: open(path, "wb"))
        self.files: list[str] = []
        self.file_rows: list[int] = []
        self.records = 0
        self._file = None
        self._zip = None
        self._in_shard = 0

    def _open(self) -> None:
        suffix = ".tfrecord.gz" if self.compression == "gzip" else ".tfrecord"
        name = f"{self.split}-{len(self.files):05d}{suffix}"
        self.files.append(name)
        self.file_rows.append(0)
        self._file = self._create(os.path.join(self.directory, name))
        self._zip = zlib.compressobj(6, zlib.DEFLATED, 31) if self.compression == "gzip" else None
        self._in_shard = 0

    def _close_shard(self) -> None:
        if self._zip is not None:
            self._file.write(self._zip.flush())
        self._file.close()
        self._file = None

    def _put(self, chunk: np.ndarray) -> None:
        payload = np.ascontiguousarray(chunk).data
        self._file.write(payload if self._zip is None else self._zip.compress(payload))

    def write(self, framed: np.ndarray) -> None:
        """Appends framed records (uint8 [N, framed_len], see frame_records).

        A new shard is started whenever the current one is full.
        """
        start = 0
        while start < len(framed):
            if self._file is None or self._in_shard == self.records_per_shard:
                if self._file is not None:
                    self._close_shard()
                self._open()
            take = min(self.records_per_shard - self._in_shard, len(framed) - start)
            self._put(framed[start : start + take])
            start += take
            self._in_shard += take
            self.file_rows[-1] += take
            self.records += take

    def close(self) -> list[str]:
        """Closes the last shard (an empty split gets one empty file); returns the file names."""
        if self._file is None and not self.files:
            self._open()
        if self._file is not None:
            self._close_shard()
        return list(self.files)
