"""GroupedOptimizerModel: one loss, one tape, three optimizer groups, with Keras' machinery."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.optimizers.lazy_adam import LazyAdam, make_embedding_optimizer
from optfusion_tf.models.training_step import GroupedOptimizerModel

VOCAB, DIM, FIELDS, BATCH = 40, 4, 3, 16
LR = {"embedding": 0.01, "network": 0.003, "architecture": 0.1}


@keras.saving.register_keras_serializable(package="optfusion_test")
class TinyModel(GroupedOptimizerModel):
    """Embedding [VOCAB, DIM] -> flatten -> Dense(8, relu) -> Dense(1), times sum(alpha)."""

    def __init__(self, search: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.search = search
        self.table = self.add_weight(
            shape=(VOCAB, DIM), initializer=keras.initializers.RandomNormal(seed=1), name="table"
        )
        self.alpha = (
            self.add_weight(shape=(2,), initializer="ones", name="alpha") if search else None
        )
        glorot = keras.initializers.GlorotUniform
        self.hidden = keras.layers.Dense(8, activation="relu", kernel_initializer=glorot(seed=2))
        self.out = keras.layers.Dense(1, kernel_initializer=glorot(seed=3))

    def build(self, input_shape):
        self.hidden.build((None, FIELDS * DIM))
        self.out.build((None, 8))

    def call(self, feature_ids):
        # The cast matters under tf.distribute: Keras 3.15 builds the model symbolically from a
        # MEAN-reduced (so float) first batch.
        feature_ids = tf.cast(feature_ids, "int64")
        embedded = tf.gather(self.table.value, feature_ids)  # [B, F, d]; IndexedSlices gradient
        hidden = tf.reshape(embedded, [-1, FIELDS * DIM])
        if self.alpha is not None:
            hidden = hidden * tf.reduce_sum(self.alpha) / 2.0
        return self.out(self.hidden(hidden))

    @property
    def embedding_variables(self):
        return [self.table]

    @property
    def network_variables(self):
        return self.hidden.trainable_variables + self.out.trainable_variables

    @property
    def architecture_variables(self):
        return [] if self.alpha is None else [self.alpha]

    def get_config(self):
        return {**super().get_config(), "search": self.search}


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB // 2, size=(n, FIELDS)).astype("int64")  # rows >= 20 never seen
    labels = rng.integers(0, 2, size=(n, 1)).astype("float32")
    return ids, labels


def _compile(model, embedding="lazy_adam", l2_emb=1e-2, l2_nn=1e-2, **kwargs):
    model.compile(
        embedding_optimizer=make_embedding_optimizer(embedding, LR["embedding"]),
        network_optimizer=keras.optimizers.Adam(LR["network"]),
        architecture_optimizer=keras.optimizers.Adam(LR["architecture"]) if model.search else None,
        l2_emb=l2_emb,
        l2_nn=l2_nn,
        **kwargs,
    )
    return model


def _built(search=True):
    model = TinyModel(search=search)
    model.build((None, FIELDS))
    return model


def _moments(optimizer):
    return [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("embedding", ["lazy_adam", "adam"])
def test_train_step_matches_manual_three_group_update(embedding):
    x, y = _data(BATCH)
    model = _compile(_built(), embedding=embedding)
    reference = _built()
    reference.set_weights(model.get_weights())
    before = model.table.numpy()

    logs = model.train_on_batch(x, y, return_dict=True)

    # By hand: one loss, one tape, each group with its own Adam, coupled L2 on emb and network.
    with tf.GradientTape() as tape:
        logits = reference(x)
        loss = keras.losses.BinaryCrossentropy(from_logits=True)(y, logits)
    groups = {
        "embedding": reference.embedding_variables,
        "network": reference.network_variables,
        "architecture": reference.architecture_variables,
    }
    l2 = {"embedding": 1e-2, "network": 1e-2, "architecture": 0.0}
    # lazy_adam decays only the rows in the batch; on a first step (zero moments) dense Adam
    # leaves rows with a zero gradient where they are, so masking the L2 gives the lazy update.
    seen = np.zeros((VOCAB, 1), "float32")
    seen[np.unique(x)] = 1.0
    mask = {"embedding": seen if embedding == "lazy_adam" else 1.0, "network": 1.0,
            "architecture": 0.0}
    grads = iter(tape.gradient(loss, [v for group in groups.values() for v in group]))
    for name, variables in groups.items():
        group_grads = [
            tf.convert_to_tensor(next(grads)) + l2[name] * mask[name] * v.value for v in variables
        ]
        epsilon = 1e-8 if name == "embedding" else 1e-7  # make_embedding_optimizer uses torch's
        keras.optimizers.Adam(LR[name], epsilon=epsilon).apply(group_grads, variables)
    assert logs["loss"] == pytest.approx(float(loss), rel=1e-5)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # Rows 20.. are never looked up: lazy_adam leaves them, dense Adam decays them (L2).
    unseen = slice(VOCAB // 2, VOCAB)
    assert np.array_equal(model.table.numpy()[unseen], before[unseen]) == (embedding == "lazy_adam")


@pytest.mark.parametrize("search, groups", [(True, 3), (False, 2)])
def test_fit_steps_every_group_and_logs_learning_rates(search, groups, tmp_path):
    x, y = _data()
    model = _compile(_built(search), metrics=["auc"], steps_per_execution=2)
    history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(str(tmp_path))])
    assert set(history.history) == {"loss", "auc"}
    assert np.all(np.isfinite(history.history["loss"]))
    steps = 2 * len(x) // BATCH
    assert model.optimizer.optimizers == [
        model.embedding_optimizer, model.network_optimizer, model.architecture_optimizer
    ][:groups]
    for optimizer in model.optimizer.optimizers:
        assert int(optimizer.iterations.numpy()) == steps
    assert isinstance(model.embedding_optimizer, LazyAdam) and model.embedding_optimizer.l2 == 1e-2
    tags = set()
    for event_file in (tmp_path / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    names = {f"epoch_learning_rate_{opt.name}" for opt in model.optimizer.optimizers}
    assert len(names) == groups and names <= tags


@pytest.mark.parametrize("clip", [0.0, 10.0, 1e-3])  # none, inactive, active
def test_jit_compile_gives_the_same_step(clip):
    # With clipping, the sparse gradient's rows were summed before LazyAdam summed them again;
    # under XLA that step differed by up to 2 x lr on the embedding rows of the batch.
    x, y = _data(BATCH)
    plain = _compile(_built(), jit_compile=False, clip_global_norm=clip)
    jitted = _compile(_built(), jit_compile=True, clip_global_norm=clip)
    jitted.set_weights(plain.get_weights())
    plain.train_on_batch(x, y)
    jitted.train_on_batch(x, y)
    for a, b in zip(plain.get_weights(), jitted.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_keras_file_round_trip_keeps_optimizer_state(tmp_path):
    x, y = _data()
    model = _compile(_built(), metrics=["auc"])
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.embedding_optimizer, LazyAdam)
    assert loaded.embedding_optimizer.l2 == 1e-2
    for name in ("embedding_optimizer", "network_optimizer", "architecture_optimizer"):
        for a, b in zip(_moments(getattr(model, name)), _moments(getattr(loaded, name))):
            np.testing.assert_array_equal(a, b)
    loaded.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # and it keeps training
    assert int(loaded.embedding_optimizer.iterations.numpy()) == 2 * len(x) // BATCH


def test_save_weights_and_checkpoint_restore_optimizer_state(tmp_path):
    x, y = _data()
    model = _compile(_built())
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    from_weights, from_checkpoint = _compile(_built()), _compile(_built())
    model.save_weights(str(tmp_path / "w.weights.h5"))
    from_weights.optimizer.build(from_weights.trainable_variables)  # as BackupAndRestore does
    from_weights.load_weights(str(tmp_path / "w.weights.h5"))
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=from_checkpoint).restore(prefix).assert_existing_objects_matched()
    from_checkpoint.optimizer.build(from_checkpoint.trainable_variables)  # deferred restore
    for fresh in (from_weights, from_checkpoint):
        for name in ("embedding_optimizer", "network_optimizer", "architecture_optimizer"):
            want, got = _moments(getattr(model, name)), _moments(getattr(fresh, name))
            assert int(got[0]) == len(x) // BATCH  # iterations
            assert len(got) == len(want) > 2  # iterations, learning rate, moments
            for a, b in zip(want, got):
                np.testing.assert_array_equal(a, b)


def _h5_arrays(path):
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.append(name) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def test_weights_file_holds_each_optimizer_variable_once(tmp_path, monkeypatch):
    # Keras' MultiOptimizer wrote every group's moments twice (under "optimizer" and under each
    # group), so a run directory's files were 5 table sizes instead of 3 (issue 26, item 7).
    x, y = _data()
    model = _compile(_built())
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    assert len(_h5_arrays(path)) == len(model.weights) + len(model.optimizer.variables)
    # A file written the old way (the state twice) still restores every group.
    old = str(tmp_path / "old.weights.h5")
    monkeypatch.setattr(type(model.optimizer), "save_own_variables",
                        keras.optimizers.MultiOptimizer.save_own_variables)
    model.save_weights(old)
    monkeypatch.undo()
    assert len(_h5_arrays(old)) > len(_h5_arrays(path))
    fresh = _compile(_built())
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(old)
    for name in ("embedding_optimizer", "network_optimizer", "architecture_optimizer"):
        for a, b in zip(_moments(getattr(model, name)), _moments(getattr(fresh, name))):
            np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations.numpy()) == len(x) // BATCH


def test_backup_and_restore_resumes_optimizer_state(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise RuntimeError("simulated kill")

    model = _compile(_built())
    with pytest.raises(RuntimeError, match="simulated kill"):
        model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup), Interrupt()])
    resumed = _compile(_built())  # as a restarted process would: BackupAndRestore needs it built
    history = resumed.fit(x, y, batch_size=BATCH, epochs=2, verbose=0,
                          callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert len(history.history["loss"]) == 1  # only the second epoch ran
    for optimizer in resumed.optimizer.optimizers:
        assert int(optimizer.iterations.numpy()) == 2 * len(x) // BATCH


def test_compile_from_names_and_config_round_trip():
    model = _built()
    model.compile(embedding_optimizer="lazy_adam", network_optimizer="adam",
                  architecture_optimizer="adam", l2_emb=3e-6)
    assert isinstance(model.embedding_optimizer, LazyAdam)
    assert model.embedding_optimizer.l2 == 3e-6
    assert model.network_optimizer.name == "network_optimizer"
    config = model.get_compile_config()
    json.dumps(config)
    other = _built()
    other.compile_from_config(config)
    assert other.get_compile_config() == config
    assert other.optimizer.built


def test_partition_errors():
    x, y = _data(BATCH)

    class Overlapping(TinyModel):
        @property
        def network_variables(self):
            return super().network_variables + [self.table]

    class Missing(TinyModel):
        @property
        def network_variables(self):
            return self.hidden.trainable_variables

    with pytest.raises(ValueError, match="in both the embedding and the network"):
        _compile(Overlapping()).train_on_batch(x, y)
    with pytest.raises(ValueError, match=r"Trainable but in no group: \['missing/dense\w*/kernel'"):
        _compile(Missing()).train_on_batch(x, y)
    # Architecture variables without an architecture optimizer get the recipe's Adam(0.1).
    model = _built()
    model.compile(embedding_optimizer="lazy_adam", network_optimizer="adam")
    assert float(model.architecture_optimizer.learning_rate.numpy()) == pytest.approx(0.1)
    model.train_on_batch(x, y)


def test_compile_argument_errors():
    model = _built()
    with pytest.raises(ValueError, match="one `optimizer` .* not both. Received: optimizer='adam' "
                       "and embedding_optimizer, network_optimizer"):
        model.compile(embedding_optimizer="lazy_adam", network_optimizer="adam", optimizer="adam")
    with pytest.raises(ValueError, match="must be a plain Keras optimizer"):
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()))
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="its own optimizer instance"):
        model.compile(embedding_optimizer=shared, network_optimizer=shared)
    with pytest.raises(ValueError, match="given twice with different values"):
        model.compile(embedding_optimizer=LazyAdam(l2=1e-3), network_optimizer="adam", l2_emb=1e-4)
    with pytest.raises(ValueError, match=r"`l2_nn` must be a finite float >= 0. Received: l2_nn=-1"):
        model.compile(embedding_optimizer="lazy_adam", network_optimizer="adam", l2_nn=-1)
    with pytest.raises(ValueError, match=r"'lazy_adam' or 'adam' .* Received: name='sgd'"):
        model.compile(embedding_optimizer="sgd", network_optimizer="adam")
    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`clip_global_norm` must be a finite float"):
            model.compile(embedding_optimizer="adam", network_optimizer="adam", clip_global_norm=bad)


def test_clip_global_norm_clips_every_group_together():
    """With SGD(lr=1) a step moves the weights by exactly the (clipped) gradient."""
    x, y = _data(BATCH)
    steps = {}
    for clip in (0.0, 1e-3):
        model = _built(search=False)
        before = [v.numpy().copy() for v in model.trainable_variables]
        model.compile(embedding_optimizer=keras.optimizers.SGD(1.0),
                      network_optimizer=keras.optimizers.SGD(1.0), clip_global_norm=clip)
        model.train_on_batch(x, y)
        steps[clip] = np.sqrt(sum(np.sum(np.square(v.numpy() - b))
                                  for v, b in zip(model.trainable_variables, before)))
    assert steps[0.0] > 1e-3
    np.testing.assert_allclose(steps[1e-3], 1e-3, rtol=1e-3)


_MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests_dir!r})
    from test_training_step import _clipped_step_for_strategy_test, _fit_for_strategy_test

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps({{"fit": _fit_for_strategy_test(strategy),
                      "clipped": _clipped_step_for_strategy_test(strategy)}}))
    """
)


def _clipped_step_for_strategy_test(strategy, clip=1e-3):
    """The norm of one SGD(1) step clipped at `clip` on a global batch whose halves are the
    same rows (each replica's share of the gradient is then half the step)."""
    x, y = _data(BATCH // 2)
    x, y = np.concatenate([x, x]), np.concatenate([y, y])
    with strategy.scope():
        model = _built(search=False)
        model.compile(embedding_optimizer=keras.optimizers.SGD(1.0),
                      network_optimizer=keras.optimizers.SGD(1.0), clip_global_norm=clip)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH), epochs=1, verbose=0)
    return float(np.sqrt(sum(np.sum(np.square(v.numpy() - b))
                             for v, b in zip(model.trainable_variables, before))))


def _fit_for_strategy_test(strategy):
    """Two epochs of the tiny search model under `strategy`; returns what the test compares."""
    x, y = _data()
    with strategy.scope():
        model = _compile(_built())
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)  # global batch
    history = model.fit(data, epochs=2, verbose=0)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "loss": history.history["loss"],
        "weights": [w.tolist() for w in model.get_weights()],
        "iterations": [int(opt.iterations.numpy()) for opt in model.optimizer.optimizers],
    }


def test_mirrored_strategy_matches_one_device():
    """Two CPU replicas (in a subprocess: logical devices are fixed per process) train exactly as
    one device with the same global batch: the loss scaling, the cross-replica sum of sparse and
    dense gradients, and the coupled L2 (carried once) are right."""
    script = _MIRRORED_SCRIPT.format(tests_dir=os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    mirrored = result["fit"]
    # Issue 24, item 7: --clip_global_norm=C bounds the whole step at C with 2 replicas as with
    # one (each replica clipped its own share at C, so the step reached 2C).
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    np.testing.assert_allclose(_clipped_step_for_strategy_test(one_device), 1e-3, rtol=1e-3)
    np.testing.assert_allclose(result["clipped"], 1e-3, rtol=1e-3)
    single = _fit_for_strategy_test(one_device)
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert single["iterations"] == mirrored["iterations"] == [2 * 64 // BATCH] * 3
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-5)
    for a, b in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", keras.optimizers.Adam(0.02)])
def test_one_optimizer_as_for_any_keras_model(optimizer):
    """Issue 26, item 3: compile(optimizer=...) as with any Keras model: every group gets its
    own copy (so a dense Adam updates the embedding too), and training runs."""
    x, y = _data(BATCH)
    model = _built()
    model.compile(optimizer=optimizer)
    groups = (model.embedding_optimizer, model.network_optimizer, model.architecture_optimizer)
    assert all(type(o) is keras.optimizers.Adam for o in groups)
    assert len({id(o) for o in groups}) == 3 and all(o is not optimizer for o in groups)
    expected = 0.001 if optimizer == "adam" else 0.02
    assert [float(o.learning_rate.numpy()) for o in groups] == pytest.approx([expected] * 3)
    before = model.table.numpy().copy()
    model.train_on_batch(x, y)
    assert not np.allclose(model.table.numpy(), before)


def test_compile_without_optimizers_is_the_recipe():
    model = _built()
    model.compile()
    assert isinstance(model.embedding_optimizer, LazyAdam)
    lrs = [float(o.learning_rate.numpy()) for o in
           (model.embedding_optimizer, model.network_optimizer, model.architecture_optimizer)]
    assert lrs == pytest.approx([1e-3, 1e-3, 0.1])
    fixed = _built(search=False)
    fixed.compile()
    assert fixed.architecture_optimizer is None
