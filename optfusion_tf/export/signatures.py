"""The SavedModel's two serving signatures (DESIGN.md section 6), added to a Keras ExportArchive.

- `serving_default`: `feature_ids` int64 [batch, F] -> `probability` float32 [batch]. An id
  outside its column's range (valid iff offset <= id < offset + size, per stats.json) is
  replaced by that field's OOV id first, so no request can index past the embedding table.
- `predict_raw`: one tf.string [batch] input per raw column (`RawFeatureMapper.input_names`)
  -> `probability` float32 [batch], the raw -> id mapping running in the graph.

probability = sigmoid(logit) of the model in inference mode (dropout off, batch norm frozen).
"""

from __future__ import annotations

from typing import Mapping

import keras
import tensorflow as tf

from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.export.raw_features import RawFeatureMapper

SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
FEATURE_IDS = "feature_ids"
PROBABILITY = "probability"


def ids_in_range(feature_ids: tf.Tensor, stats: DatasetStats) -> tf.Tensor:
    """Replaces every out-of-range id by its field's OOV id.

    Args:
        feature_ids: int64 [B, F].
        stats: the dataset (per-field offset, size, oov_id).
    Returns:
        int64 [B, F], each column within [offset, offset + size).
    """
    offsets = tf.constant([f.offset for f in stats.fields], tf.int64)
    ends = tf.constant([f.offset + f.size for f in stats.fields], tf.int64)
    oov = tf.constant([f.oov_id for f in stats.fields], tf.int64)
    valid = (feature_ids >= offsets) & (feature_ids < ends)
    return tf.where(valid, feature_ids, oov)


def add_signatures(
    archive: keras.export.ExportArchive,
    model: keras.Model,
    stats: DatasetStats,
    raw_features: RawFeatureMapper,
) -> None:
    """Tracks `model` and `raw_features` in `archive` and adds both signatures.

    Args:
        archive: a fresh ExportArchive.
        model: the re-trained model: int64 ids [B, F] -> logits [B, 1].
        stats: its dataset.
        raw_features: the dataset's raw -> id mapping.
    """
    archive.track(model)
    archive.track(raw_features)

    def probability(ids: tf.Tensor) -> dict[str, tf.Tensor]:
        # The signature's [None, F] is not enforced on a served request: [3, F, 1], [F] and a
        # scalar were accepted. ensure_shape fails them with the expected shape in the message.
        ids = tf.ensure_shape(ids, [None, stats.num_fields], name="expected_batch_by_fields")
        logits = model(ids_in_range(ids, stats), training=False)
        return {PROBABILITY: tf.reshape(tf.sigmoid(tf.cast(logits, tf.float32)), [-1])}

    def predict_raw(raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raw = {name: tf.ensure_shape(value, [None], name=f"expected_batch_{name}")
               for name, value in raw.items()}
        return probability(raw_features(raw))

    archive.add_endpoint(
        SERVING_DEFAULT, probability,
        input_signature=[tf.TensorSpec([None, stats.num_fields], tf.int64, name=FEATURE_IDS)],
    )  # fmt: skip
    archive.add_endpoint(PREDICT_RAW, predict_raw, input_signature=[raw_features.input_signature()])
