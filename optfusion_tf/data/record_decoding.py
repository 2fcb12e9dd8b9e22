"""Decoding the records of a split into (feature_ids, label) batches.

- `record_decoder`: our datasets' framed fixed-layout records (data/example_encoding.py writes
  them; every record of a dataset has one length and layout), uint8 [n, record_bytes] ->
  (ids int64 [n, F], labels float32 [n, 1]) with a handful of vectorized ops: no protobuf
  parsing (and no CRC check).
- `example_parser`: any tf.train.Example with `feature` int64 [F] and `label` float [1] (the
  reference's TFRecord directories), parsed a whole batch at once.
"""

from __future__ import annotations

import tensorflow as tf

from optfusion_tf.data.errors import DataError
from optfusion_tf.data.example_encoding import ExampleEncoder
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.data.tfrecord_writer import FRAME_BYTES


def record_decoder(stats: DatasetStats):
    """framed records uint8 [n, record_bytes] -> (ids int64 [n, F], labels float32 [n, 1]).

    Field ids grow field by field, so varint widths never decrease along the record: the ids
    are runs of fields of equal width w, each a regular [n, fields, w] block of bytes. A field of
    width w has the continuation bit set on exactly its first w - 1 bytes, so its id is
    sum_k byte_k * 128^k minus a constant: slices, multiplies and adds, no gather.
    """
    encoder = ExampleEncoder([f.oov_id for f in stats.fields])
    if encoder.record_len + FRAME_BYTES != stats.record_bytes:
        raise DataError(
            f"stats: record_bytes {stats.record_bytes} does not match the fields' layout"
        )
    runs = []  # (first byte, number of fields, width)
    widths = encoder.widths.tolist()
    first = 0
    for f in range(1, len(widths) + 1):
        if f == len(widths) or widths[f] != widths[first]:
            runs.append((12 + int(encoder.starts[first]), f - first, widths[first]))
            first = f
    label_at = 12 + encoder.record_len - 4

    def decode(raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        blocks = []
        for start, count, width in runs:
            dtype = tf.int32 if width <= 4 else tf.int64  # 255 * (1 + ... + 128^3) < 2^31
            grid = tf.cast(
                tf.reshape(raw[:, start : start + count * width], [-1, count, width]), dtype
            )
            value = grid[:, :, 0]
            for k in range(1, width):
                value += grid[:, :, k] * (1 << 7 * k)
            continuation = sum(128 << 7 * k for k in range(width - 1))
            blocks.append(tf.cast(value - continuation, tf.int64))
        labels = tf.bitcast(raw[:, label_at : label_at + 4], tf.float32)[:, None]
        return tf.concat(blocks, axis=1), labels

    return decode


def example_parser(num_fields: int):
    """serialized tf.train.Example [n] (the reference's schema, any encoding) -> (ids int64
    [n, F], labels float32 [n, 1]), with tf.io.parse_example."""
    features = {
        "feature": tf.io.FixedLenFeature([num_fields], tf.int64),
        "label": tf.io.FixedLenFeature([1], tf.float32),
    }

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_example(serialized, features)
        return example["feature"], example["label"]

    return parse
