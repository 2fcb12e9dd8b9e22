"""optfusion_tf.training.checkpoints: best weights written atomically, a damaged backup repaired."""

import json

import h5py
import keras
import pytest

from optfusion_tf.training.checkpoints import (
    METADATA,
    PREVIOUS,
    WEIGHTS,
    AtomicBestWeights,
    repair_backup,
    save_weights_atomically,
)


def _model(value: float) -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")])
    model.layers[0].bias.assign([value])
    return model


def _bias(path) -> float:
    model = _model(0.0)
    model.load_weights(path)
    return float(model.layers[0].bias.numpy()[0])


def test_a_failed_write_leaves_the_previous_best_whole(tmp_path, monkeypatch):
    path = str(tmp_path / "best.weights.h5")
    save_weights_atomically(_model(1.0), path)
    broken = _model(2.0)

    def half_written(filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"\x89HDF\r\n")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(broken, "save_weights", half_written)
    with pytest.raises(KeyboardInterrupt):
        save_weights_atomically(broken, path)
    assert _bias(path) == 1.0


def test_best_weights_only_on_a_finite_improvement(tmp_path):
    path = str(tmp_path / "best.weights.h5")
    callback = AtomicBestWeights(path, initial_value_threshold=0.7)
    callback.set_model(_model(3.0))
    for value in (0.6, float("nan"), None):
        callback.on_epoch_end(0, {} if value is None else {"val_auc": value})
    assert not (tmp_path / "best.weights.h5").exists()
    callback.on_epoch_end(1, {"val_auc": 0.8})
    assert _bias(path) == 3.0 and callback.best == 0.8


def _backup(directory, epoch: int, value: float, suffix: str = "") -> None:
    """A BackupAndRestore state (suffix PREVIOUS: double_checkpoint's previous one)."""
    directory.mkdir(exist_ok=True)
    _model(value).save_weights(str(directory / "w.weights.h5"))  # Keras wants this ending
    (directory / "w.weights.h5").rename(directory / (WEIGHTS + suffix))
    (directory / (METADATA + suffix)).write_text(json.dumps({"epoch": epoch, "batch": 0}))


def test_a_damaged_backup_falls_back_to_the_previous_one(tmp_path):
    backup = tmp_path / "backup"
    assert repair_backup(str(backup)) is None  # no backup: nothing to do
    _backup(backup, 1, 1.0, PREVIOUS)
    _backup(backup, 2, 2.0)
    assert repair_backup(str(backup)) is None  # both fine
    data = (backup / WEIGHTS).read_bytes()
    (backup / WEIGHTS).write_bytes(data[: len(data) // 2])
    message = repair_backup(str(backup))
    assert "latest backup is damaged" in message and "(after epoch 1)" in message
    assert _bias(backup / WEIGHTS) == 1.0
    assert json.loads((backup / METADATA).read_text())["epoch"] == 1
    with h5py.File(backup / WEIGHTS, "r"):
        pass
    # A truncated metadata file (Keras' json.loads would raise) is repaired the same way.
    (backup / METADATA).write_text('{"epo')
    assert "latest backup is damaged" in repair_backup(str(backup))
    # Both states damaged: the backup is removed and the phase starts anew.
    (backup / (WEIGHTS + PREVIOUS)).write_bytes(b"junk")
    (backup / WEIGHTS).write_bytes(b"junk")
    assert "so is the previous one" in repair_backup(str(backup))
    assert not backup.exists()
    assert repair_backup(str(backup)) is None


def test_a_torn_backup_falls_back_to_the_previous_one(tmp_path):
    """Issue 24, item 2: a kill after Keras wrote epoch 2's weights and before it rewrote the
    metadata leaves both latest files readable: epoch 2's weights with epoch 1's metadata (the
    previous pair, copied before the write, is epoch 1's). Restoring them would train epoch 2
    twice; the previous pair is restored instead."""
    backup = tmp_path / "backup"
    _backup(backup, 1, 1.0, PREVIOUS)
    _backup(backup, 1, 2.0)  # epoch 2's weights, epoch 1's metadata
    message = repair_backup(str(backup))
    assert "names epoch 1, as the previous backup does" in message, message
    assert "(after epoch 1)" in message
    assert _bias(backup / WEIGHTS) == 1.0
    assert json.loads((backup / METADATA).read_text())["epoch"] == 1
    # After that fallback the latest pair is a copy of the previous one: same epoch, same
    # weights; a kill before the next save must not be reported as damage again.
    assert repair_backup(str(backup)) is None
    # A finished save (latest one epoch ahead of the previous) is left alone.
    _backup(backup, 2, 2.0)
    assert repair_backup(str(backup)) is None and _bias(backup / WEIGHTS) == 2.0
    # An unreadable previous metadata says nothing about the latest pair.
    (backup / (METADATA + PREVIOUS)).write_text('{"ep')
    assert repair_backup(str(backup)) is None
