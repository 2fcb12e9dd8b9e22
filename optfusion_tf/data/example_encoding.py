"""Vectorized serialization of the fixed-layout tf.train.Example the datasets hold.

Every record is an Example with the reference's two features: `feature`, an Int64List of the
F global ids, and `label`, a FloatList of one value. Building tf.train.Example objects row by
row in Python costs ~20 us a row; here a whole block is encoded at once with numpy.

Field f's ids are written as varints of a fixed width w_f, the varint width of the field's
largest id (smaller ids get redundant continuation bytes, e.g. 5 in two bytes is 85 00).
Protobuf parsers accept such varints (any varint of up to 10 bytes decodes), and every record
of a dataset then has the same length, so a block is one uint8 matrix [N, record_len] built
column by column, with no per-row work. Ids within a field are a contiguous range, so the
padding costs at most one byte per field. tests/test_data_encoding.py checks the records parse
equal to tf.train.Example's with tf.train.Example.FromString and tf.io.parse_example.

Wire layout of one record (protobuf; v(n) is the varint of n):
  0A v(n1) | 0A v(n2) 0A 07 "feature" 12 v(n3) 1A v(n4) 0A v(L) <the F varint ids, L bytes>
           | 0A 11 0A 05 "label" 12 08 12 06 0A 04 <float32 little-endian>
where n4 = 1 + |v(L)| + L is the Int64List, n3 the Feature, n2 the map entry, n1 the Features.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_LABEL_ENTRY_HEAD = b"\x0a\x11\x0a\x05label\x12\x08\x12\x06\x0a\x04"
MAX_VARINT_WIDTH = 10


def varint_width(value: int) -> int:
    """Bytes in the minimal base-128 varint encoding of a non-negative integer."""
    return max(1, (int(value).bit_length() + 6) // 7)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _prefixed(tag: int, payload_len: int) -> tuple[bytes, int]:
    """(tag byte + varint length, total length including payload) of a length-delimited field."""
    head = bytes([tag]) + _varint(payload_len)
    return head, len(head) + payload_len


class ExampleEncoder:
    """Encodes rows of F ids and a label into fixed-length serialized tf.train.Examples.

    Args:
        field_max_ids: largest global id of each field (its OOV id), sets the varint widths.
    """

    def __init__(self, field_max_ids: Sequence[int]):
        self.widths = np.array([varint_width(m) for m in field_max_ids], np.int64)
        if not len(self.widths) or self.widths.max() > MAX_VARINT_WIDTH or min(field_max_ids) < 0:
            raise ValueError(
                f"field_max_ids must be non-negative int64 values. Received: {list(field_max_ids)}"
            )
        self._limits = np.array(
            [(1 << 7 * w) - 1 if 7 * w < 63 else 2**63 - 1 for w in self.widths.tolist()], np.int64
        )
        ids_len = int(self.widths.sum())
        list_head, list_len = _prefixed(0x0A, ids_len)  # Int64List.value, packed
        feature_head, feature_len = _prefixed(0x1A, list_len)  # Feature.int64_list
        key = b"\x0a\x07feature"
        entry_head, entry_len = _prefixed(
            0x0A, len(key) + 1 + len(_varint(feature_len)) + feature_len
        )
        features_len = entry_len + len(_LABEL_ENTRY_HEAD) + 4
        head = (
            _prefixed(0x0A, features_len)[0]
            + entry_head
            + key
            + b"\x12"
            + _varint(feature_len)
            + feature_head
            + list_head
        )
        self._head = np.frombuffer(head, np.uint8)
        self._tail_head = np.frombuffer(_LABEL_ENTRY_HEAD, np.uint8)
        self.record_len = len(head) + ids_len + len(_LABEL_ENTRY_HEAD) + 4
        # Byte offset of each field's first varint byte in a record.
        self.starts = len(head) + np.concatenate([[0], np.cumsum(self.widths)[:-1]])

    def encode(self, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Serializes N examples.

        Args:
            ids: int64 [N, F], field f's ids in [0, field_max_ids[f]].
            labels: float32 [N].
        Returns:
            uint8 [N, record_len], one serialized tf.train.Example per row.
        """
        n, f = ids.shape
        if f != len(self.widths):
            raise ValueError(
                f"ids must have {len(self.widths)} columns. Received shape {ids.shape}"
            )
        if n and ((ids < 0) | (ids > self._limits)).any():
            raise ValueError("ids out of their field's range")
        out = np.empty((n, self.record_len), np.uint8)
        out[:, : len(self._head)] = self._head
        columns = np.ascontiguousarray(ids.T)  # field-major: contiguous per-field arithmetic
        for f, (start, width) in enumerate(zip(self.starts.tolist(), self.widths.tolist())):
            for k in range(width):
                byte = ((columns[f] >> (7 * k)) & 0x7F).astype(np.uint8)
                if k < width - 1:
                    byte |= 0x80
                out[:, start + k] = byte
        out[:, -4 - len(self._tail_head) : -4] = self._tail_head
        out[:, -4:] = labels.astype("<f4").view(np.uint8).reshape(n, 4)
        return out
