"""The vectorized decoder of our fixed-layout records (data/record_decoding.py)."""

import types

import numpy as np
import tensorflow as tf

from optfusion_tf.data.example_encoding import ExampleEncoder
from optfusion_tf.data.record_decoding import record_decoder
from optfusion_tf.data.tfrecord_writer import frame_records


def test_fixed_layout_decoder_all_varint_widths():
    maxima = [5, 127, 128, 300, 20_000, 3_000_000, 2**30, 2**40, 2**50, 2**62]  # widths 1..9
    rng = np.random.default_rng(1)
    ids = np.stack([rng.integers(0, m, size=64, endpoint=True) for m in maxima], axis=1)
    ids[0], ids[1] = maxima, 0
    labels = rng.random(64).astype(np.float32)
    encoder = ExampleEncoder(maxima)
    framed = frame_records(encoder.encode(ids, labels))
    stats = types.SimpleNamespace(
        fields=[types.SimpleNamespace(oov_id=m) for m in maxima], record_bytes=framed.shape[1]
    )
    got_ids, got_labels = record_decoder(stats)(tf.constant(framed))
    np.testing.assert_array_equal(got_ids.numpy(), ids)
    np.testing.assert_array_equal(got_labels.numpy()[:, 0], labels)
