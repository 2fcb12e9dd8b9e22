"""Vectorized Example encoding and TFRecord writing, checked against TensorFlow's own."""

import os

import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.data.example_encoding import ExampleEncoder, varint_width
from optfusion_tf.data.tfrecord_writer import ShardWriter, frame_records

FIELD_MAX = [5, 127, 128, 20_000, 3_000_000, 2**40, 2**63 - 1]


def _rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, m, size=n, endpoint=True) for m in FIELD_MAX], axis=1)
    ids[0], ids[1] = FIELD_MAX, 0  # extremes: every field's largest id, and id 0
    labels = rng.integers(0, 2, size=n).astype(np.float32)
    labels[2] = 0.25
    return ids, labels


def test_varint_width():
    assert [varint_width(v) for v in (0, 127, 128, 16383, 16384, 2**63 - 1)] == [1, 1, 2, 2, 3, 9]


def test_records_parse_equal_to_tf_train_example():
    ids, labels = _rows()
    records = ExampleEncoder(FIELD_MAX).encode(ids, labels)
    assert records.shape[0] == len(ids)
    for row, rec in zip(range(len(ids)), records):
        ex = tf.train.Example.FromString(rec.tobytes())
        want = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "feature": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=ids[row].tolist())
                    ),
                    "label": tf.train.Feature(float_list=tf.train.FloatList(value=[labels[row]])),
                }
            )
        )
        assert ex == want, row
    parsed = tf.io.parse_example(
        tf.constant([r.tobytes() for r in records]),
        {
            "feature": tf.io.FixedLenFeature([len(FIELD_MAX)], tf.int64),
            "label": tf.io.FixedLenFeature([1], tf.float32),
        },
    )
    np.testing.assert_array_equal(parsed["feature"].numpy(), ids)
    np.testing.assert_array_equal(parsed["label"].numpy()[:, 0], labels)


def test_fixed_width_varints_cost_at_most_one_byte_per_field():
    ids, labels = _rows()
    records = ExampleEncoder(FIELD_MAX).encode(ids, labels)
    canonical = max(
        len(tf.train.Example.FromString(r.tobytes()).SerializeToString()) for r in records
    )
    assert records.shape[1] - canonical <= len(FIELD_MAX)


def test_out_of_range_ids_are_refused():
    encoder = ExampleEncoder([10, 200])
    with pytest.raises(ValueError, match="range"):
        encoder.encode(np.array([[1, 2**14]]), np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="columns"):
        encoder.encode(np.zeros((1, 3), np.int64), np.zeros(1, np.float32))


def test_framing_is_byte_identical_to_tf_writer(tmp_path):
    ids, labels = _rows(50)
    records = ExampleEncoder(FIELD_MAX).encode(ids, labels)
    writer = ShardWriter(str(tmp_path), "train", "none", records_per_shard=1000)
    writer.write(frame_records(records))
    assert writer.close() == ["train-00000.tfrecord"]
    with tf.io.TFRecordWriter(str(tmp_path / "ref.tfrecord")) as ref:
        for r in records:
            ref.write(r.tobytes())
    assert (tmp_path / "train-00000.tfrecord").read_bytes() == (
        tmp_path / "ref.tfrecord"
    ).read_bytes()


def test_shards_rotate_and_gzip_reads_back(tmp_path):
    ids, labels = _rows(25)
    framed = frame_records(ExampleEncoder(FIELD_MAX).encode(ids, labels))
    writer = ShardWriter(str(tmp_path), "validation", "gzip", records_per_shard=10)
    writer.write(framed[:7])
    writer.write(framed[7:])
    files = writer.close()
    assert files == [f"validation-0000{i}.tfrecord.gz" for i in range(3)] and writer.records == 25
    got = [
        r.numpy()
        for f in files
        for r in tf.data.TFRecordDataset(str(tmp_path / f), compression_type="GZIP")
    ]
    assert got == [r[12:-4].tobytes() for r in framed]
    empty = ShardWriter(str(tmp_path), "test", "none", records_per_shard=10)
    assert empty.close() == ["test-00000.tfrecord"]
    assert os.path.getsize(tmp_path / "test-00000.tfrecord") == 0
