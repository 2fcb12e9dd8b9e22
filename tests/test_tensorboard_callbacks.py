"""ArchitectureSummaries writes the tags the README (TensorBoard section) promises, readable by TensorBoard."""

import keras
import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.training.evaluation import ExactValidationMetrics
from optfusion_tf.architecture.search_space import SearchSpace, edge_name
from optfusion_tf.training.tensorboard_callbacks import ArchitectureSummaries

NUM_FIELDS, VOCAB, EMB_DIM = 3, 30, 2
META = dict(shallow="crossnet", dataset="toy", num_fields=NUM_FIELDS, feature_num=VOCAB,
            emb_dim=EMB_DIM)


class StandInSearchModel(keras.Model):
    """A search model's interface on a tiny network: alpha/beta variables nudged by training."""

    def __init__(self, n: int = 1):
        super().__init__()
        self.space = SearchSpace(n)
        self.embedding = keras.layers.Embedding(VOCAB, EMB_DIM)
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(1)
        self.alpha = self.add_weight(shape=(len(self.space.edges),), name="alpha",
                                     initializer=keras.initializers.Constant(0.5))
        self.beta = self.add_weight(shape=(len(self.space.fusing_nodes), len(OPERATIONS)),
                                    name="beta", initializer="random_normal")
        self.embedding_optimizer = keras.optimizers.Adam(1e-3)
        self.network_optimizer = keras.optimizers.Adam(1e-2)
        self.architecture_optimizer = keras.optimizers.Adam(0.3)

    @property
    def architecture_variables(self):
        return [self.alpha, self.beta]

    def call(self, feature_ids):
        logits = self.dense(self.flatten(self.embedding(feature_ids)))
        arch_term = keras.ops.sum(keras.ops.tanh(self.alpha)) + keras.ops.sum(self.beta ** 2)
        return logits + 0.01 * arch_term

    def current_arch(self) -> ArchitectureSpec:
        alpha = self.alpha.numpy().tolist()
        beta = self.beta.numpy().tolist()
        return ArchitectureSpec(
            n=self.space.n,
            alpha={edge_name(s, d): a for (s, d), a in zip(self.space.edges, alpha)},
            beta={node: tuple(b) for node, b in zip(self.space.fusing_nodes, beta)},
            **META,
        )


def _dataset(rows: int, seed: int) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, size=(rows, NUM_FIELDS)).astype(np.int64)
    labels = (rng.random((rows, 1)) < 0.3 + 0.4 * (ids[:, :1] > VOCAB // 2)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(50)


def _fit(model: keras.Model, log_dir: str, summaries: ArchitectureSummaries) -> None:
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(_dataset(200, 0), epochs=2, verbose=0, shuffle=False, callbacks=[
        ExactValidationMetrics(_dataset(100, 1)),
        summaries,
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
    ])


def _tensors(run_dir: str) -> event_accumulator.EventAccumulator:
    accumulator = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator


def test_search_model_summaries_every_epoch(tmp_path):
    model = StandInSearchModel(n=1)
    _fit(model, str(tmp_path), ArchitectureSummaries(tmp_path))

    events = _tensors(str(tmp_path / "architecture"))
    tags = set(events.Tags()["tensors"])
    beta_tags = {f"beta/{v}/{op}" for v in ("S1", "D1", "O") for op in OPERATIONS}
    expected = {
        "alpha", "alpha/connected", "alpha/connection_matrix", "architecture",
        "lr/embedding", "lr/network", "lr/architecture", "val_auc", "val_logloss",
    } | beta_tags
    assert expected <= tags, expected - tags
    for tag in expected:
        assert [e.step for e in events.Tensors(tag)] == [0, 1], tag

    lr = [tf.make_ndarray(e.tensor_proto) for e in events.Tensors("lr/architecture")]
    np.testing.assert_allclose(lr, [0.3, 0.3])
    beta_s1 = sum(float(tf.make_ndarray(events.Tensors(f"beta/S1/{op}")[-1].tensor_proto))
                  for op in OPERATIONS)
    assert abs(beta_s1 - 1.0) < 1e-5
    # The image summary holds [width, height, png]; the PNG decodes to RGBA of that size.
    width, height, png = tf.make_ndarray(events.Tensors("architecture")[-1].tensor_proto)
    image = tf.io.decode_png(png)
    assert image.shape == (int(height), int(width), 4) and int(width) > 200

    # Keras' TensorBoard placed after ExactValidationMetrics logs the exact metrics as well.
    validation = set(_tensors(str(tmp_path / "validation")).Tags()["tensors"])
    assert {"epoch_auc", "epoch_logloss"} <= validation


def test_fixed_architecture_is_written_once(tmp_path):
    inputs = keras.Input((NUM_FIELDS,), dtype="int64")
    outputs = keras.layers.Dense(1)(keras.ops.cast(inputs, "float32"))
    arch = preset_arch("parallel", n=2, **META)
    _fit(keras.Model(inputs, outputs), str(tmp_path), ArchitectureSummaries(tmp_path, arch=arch))

    events = _tensors(str(tmp_path / "architecture"))
    tags = set(events.Tags()["tensors"])
    assert [e.step for e in events.Tensors("architecture")] == [0]
    assert [e.step for e in events.Tensors("val_auc")] == [0, 1]
    assert not any(tag.startswith("lr/") for tag in tags)
