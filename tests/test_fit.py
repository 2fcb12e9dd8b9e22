"""A phase's fit (optfusion_tf/training/fit.py) through the stages: the NaN stop, the resume
after a kill at any point of an epoch, and the optimizers of --embedding_optimizer=auto."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import signal
import time

import h5py
import keras
import pytest
from conftest import demo_dataset
from test_experiment import _cli, _config

from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.optimizers.lazy_adam import LazyAdam
from optfusion_tf.training import fit
from optfusion_tf.training.config import ExperimentError
from optfusion_tf.training.experiment import run_retrain, run_search
from optfusion_tf.training.fit import compile_for_training


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return demo_dataset(tmp_path_factory.mktemp("data"), 4000)


def test_nan_loss_stops_with_a_message(dataset_dir, tmp_path):
    config = _config(dataset_dir, tmp_path / "nan", lr_nn=1e30, lr_emb=1e30, epochs=3)
    with pytest.raises(ExperimentError, match="NaN|nan") as raised:
        run_retrain(dataclasses.replace(config, preset="stacked"), [], given=set())
    # Issue 12, item 7: an epoch that ends with NaN weights is never saved as the best.
    assert "no epoch finished with finite weights" in str(raised.value)
    assert not (tmp_path / "nan" / "checkpoints" / "best.weights.h5").exists()
    # A search whose alpha / beta went NaN ends with the same message, not an ArchitectureSpecError
    # from the epoch's architecture summary.
    with pytest.raises(ExperimentError, match="NaN or infinite in epoch 1"):
        run_search(dataclasses.replace(config, run_dir=str(tmp_path / "nan_search")), [])
    # Issue 24 (review of item 1): Keras backs the NaN epoch up as finished; with the backup
    # kept after fit, the same command resumed from NaN weights (here: skipped training as
    # "ended" and failed differently; with an earlier finite best it reported success). The
    # NaN stop removes the phase's backup, so the rerun starts anew and meets the same NaN.
    once = dataclasses.replace(config, run_dir=str(tmp_path / "nan_once"), epochs=1)
    for _ in range(2):
        with pytest.raises(ExperimentError, match="NaN or infinite in epoch 1"):
            run_search(once, [])
        assert not list((tmp_path / "nan_once").rglob("latest.weights.h5"))


KILL_DURING_SECOND_BACKUP = """
import os, signal
import keras

_save = keras.Model.save_weights
_calls = []


def save_weights(self, filepath, *args, **kwargs):
    if str(filepath).endswith("latest.weights.h5"):
        _calls.append(filepath)
        if len(_calls) == 2:  # epoch 2's backup: write it (or half of it), then die
            _save(self, filepath, *args, **kwargs)
            if os.environ.get("TEST_TRUNCATE") == "1":
                size = os.path.getsize(filepath)
                with open(filepath, "r+b") as f:
                    f.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return _save(self, filepath, *args, **kwargs)


keras.Model.save_weights = save_weights
"""

# Issue 24, item 1: SIGKILL after fit ended, while the phase's model.keras is written (before its
# done marker): Keras' BackupAndRestore deleted backup/ at the end of fit, so nothing was left.
KILL_WHILE_SAVING_THE_MODEL = """
import os, signal
import keras

_save = keras.Model.save


def save(self, filepath, *args, **kwargs):
    if str(filepath).endswith("model.keras"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _save(self, filepath, *args, **kwargs)


keras.Model.save = save
"""


def _with_hook(tmp_path: pathlib.Path, name: str, code: str) -> dict:
    """The environment of a child whose sitecustomize.py is `code`."""
    hooks = tmp_path / name
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": f"{hooks}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_killed_search_resumes_and_stops_where_an_uninterrupted_run_stops(dataset_dir, tmp_path):
    """A run killed after epoch 1 and started again resumes at epoch 2 with the early-stopping
    state (best val AUC, epochs without gain) and the data order of the uninterrupted run, so it
    stops at the same epoch with the same metrics."""
    args = [f"--dataset_dir={dataset_dir}", "--emb_dim=2", "--n=1", "--batch_size=64",
            "--epochs=8", "--patience=1", "--seed=5", "--lr_emb=0.03", "--lr_nn=0.03",
            "--lr_nn_decay_epochs=0"]  # a constant rate: the stop rule's 128 steps stop it early
    # Three runs kill themselves with a sitecustomize hook, then run once more without it:
    # (name, hook, whether the backup's latest weights open after the kill, environment).
    # Issue 12, item 2: a SIGKILL while epoch 2's backup is written (half-written file): the
    # rerun falls back to epoch 1's backup, says so, and ends as the uninterrupted run.
    # Issue 24, item 2: a SIGKILL after epoch 2's backup weights were written whole, before its
    # metadata: both files open (epoch 2's weights, epoch 1's metadata); the rerun restores
    # epoch 1's pair, trains epoch 2 once, and ends as the uninterrupted run.
    # Issue 24, item 1: a SIGKILL after fit ended, while model.keras is written: the rerun
    # trains no epoch again (the backup was kept) and ends as the uninterrupted run.
    hooked = {
        "killed_in_write": (KILL_DURING_SECOND_BACKUP, False, {"TEST_TRUNCATE": "1"}),
        "killed_before_metadata": (KILL_DURING_SECOND_BACKUP, True, {"TEST_TRUNCATE": "0"}),
        "killed_after_fit": (KILL_WHILE_SAVING_THE_MODEL, True, {}),
    }
    # Every process of a wave runs at once (independent run directories); the suite's time.
    whole = _cli("search.py", *args, f"--run_dir={tmp_path / 'whole'}")
    killed = {
        name: _cli("search.py", *args, f"--run_dir={tmp_path / name}",
                   env_extra={**_with_hook(tmp_path, f"{name}_hooks", hook), **env})
        for name, (hook, _, env) in hooked.items()
    }
    run_dir = tmp_path / "resume"
    first = _cli("search.py", *args, f"--run_dir={run_dir}")
    epochs_file = run_dir / "epochs.json"
    backup = run_dir / "backup" / "search" / "training_metadata.json"  # Keras' BackupAndRestore
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and first.poll() is None:
        if epochs_file.is_file() and backup.is_file():  # epoch 1 finished and backed up
            break
        time.sleep(0.05)
    assert first.poll() is None, "the run ended before it could be interrupted:\n" + first.communicate()[0]
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert not (run_dir / "metrics.json").exists()
    out, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, out
    for name, proc in killed.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == -signal.SIGKILL, out
        assert not (tmp_path / name / "metrics.json").exists()
        try:
            with h5py.File(tmp_path / name / "backup" / "search" / "latest.weights.h5", "r"):
                opened = True
        except OSError:
            opened = False
        assert opened == hooked[name][1], name

    # Second wave: the killed runs again, without their hooks.
    second = _cli("search.py", *args, f"--run_dir={run_dir}")
    again = {name: _cli("search.py", *args, f"--run_dir={tmp_path / name}") for name in hooked}
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    # One line per epoch, ours (no progress bar: the output is not a terminal).
    assert "Resuming" in out and "epoch 1/8:" not in out and "epoch 2/8:" in out, out
    expected = json.loads((tmp_path / "whole" / "epochs.json").read_text())["epochs"]
    resumed = json.loads(epochs_file.read_text())["epochs"]
    assert len(expected) < 8, "the uninterrupted run must stop early for this test to mean anything"
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in expected]
    for got, want in zip(resumed, expected):
        assert got["val_auc"] == want["val_auc"] and got["loss"] == want["loss"], (got, want)
    whole_metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    resumed_metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("best_epoch", "valid_auc", "test_auc", "test_logloss"):
        assert resumed_metrics[key] == whole_metrics[key], key
    # Issue 12, item 16: the whole run's time, not only the resumed process'.
    first_epoch = resumed[0]["seconds"]
    assert resumed_metrics["seconds"] >= resumed_metrics["seconds_this_process"] + first_epoch
    assert resumed_metrics["seconds_this_process"] > sum(r["seconds"] for r in resumed[1:])
    assert whole_metrics["seconds"] == whole_metrics["seconds_this_process"]

    outs = {}
    for name, proc in again.items():
        outs[name], _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, outs[name]
        rerun = json.loads((tmp_path / name / "metrics.json").read_text())
        for key in ("best_epoch", "valid_auc", "test_auc", "test_logloss"):
            assert rerun[key] == whole_metrics[key], (name, key)
    out = outs["killed_in_write"]
    assert "the latest backup is damaged" in out and "resuming from the previous one (after epoch 1)" in out, out
    out = outs["killed_before_metadata"]
    assert "as the previous backup does" in out and "(after epoch 1)" in out, out
    out = outs["killed_after_fit"]
    assert "Resuming" in out and "training ended in an earlier process" in out, out
    assert not re.search(r"epoch \d+/8:", out), out
    late_epochs = json.loads((tmp_path / "killed_after_fit" / "epochs.json").read_text())["epochs"]
    assert [r["epoch"] for r in late_epochs] == [r["epoch"] for r in expected]
    assert not (tmp_path / "killed_after_fit" / "backup").exists()


@pytest.mark.parametrize("coverage, expected", [(0.5, keras.optimizers.Adam), (0.49, LazyAdam)])
def test_auto_embedding_optimizer_follows_the_batch_coverage(
        dataset_dir, monkeypatch, caplog, coverage, expected):
    """The default `auto` (issue 23): dense Adam when a batch looks up at least half of the
    table's rows on average (from the vocabulary counts), lazy_adam below, said in the log; the
    network gets the default L2 1e-5."""
    stats = DatasetStats.load(dataset_dir)
    asked = []
    monkeypatch.setattr(fit, "batch_coverage",
                        lambda *args: asked.append(args) or coverage)
    model = OptFusionModel(feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=2,
                           n=1, seed=0)
    with caplog.at_level("INFO", logger="absl"):  # other tests may have quieted absl
        compile_for_training(model, _config(dataset_dir, "unused"), stats)
    assert asked == [(dataset_dir, stats, 512)]
    assert type(model.embedding_optimizer) is expected
    assert f"looks up {100 * coverage:.0f}% of the table" in caplog.text
    assert model.get_compile_config()["l2_nn"] == 1e-5


def test_the_networks_rate_steps_down_to_a_third_by_default(dataset_dir):
    """Defaults: lr_nn / min(1 + floor(epoch / 3), 3) for the network group, in the search and
    the re-train; --lr_nn_decay_limit=0 keeps stepping down, --lr_nn_decay_epochs=0 keeps lr_nn."""
    stats = DatasetStats.load(dataset_dir)
    steps = fit.epoch_steps(stats, 512)
    sizes = dict(feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=2, n=1,
                 seed=0)

    def rates(model: OptFusionModel, epochs: tuple[int, ...], **overrides) -> list[float]:
        compile_for_training(model, _config(dataset_dir, "unused", **overrides), stats)
        found = []
        for epoch in epochs:
            model.network_optimizer.iterations.assign(epoch * steps)
            found.append(float(keras.ops.convert_to_numpy(model.network_optimizer.learning_rate)))
        return found

    epochs = (0, 2, 3, 5, 6, 30)
    floored = [1e-3, 1e-3, 5e-4, 5e-4, 1e-3 / 3, 1e-3 / 3]
    assert rates(OptFusionModel.from_preset("parallel", **sizes), epochs) == pytest.approx(floored)
    assert rates(OptFusionModel(**sizes), epochs) == pytest.approx(floored)
    stepped = [1e-3, 1e-3, 5e-4, 5e-4, 1e-3 / 3, 1e-3 / 11]
    assert rates(OptFusionModel.from_preset("parallel", **sizes), epochs,
                 lr_nn_decay_limit=0) == pytest.approx(stepped)
    assert rates(OptFusionModel.from_preset("parallel", **sizes), epochs,
                 lr_nn_decay_epochs=0) == pytest.approx([1e-3] * len(epochs))


def test_the_stop_rule_waits_longer_at_a_lower_rate(dataset_dir):
    """--patience_steps count at the full rate: 128 steps of 17 are 8 epochs at a constant
    rate, 23 with the rate's floor at a third; long epochs keep --patience."""
    config = _config(dataset_dir, "unused", patience=2, patience_steps=128)
    assert fit.stop_patience(dataclasses.replace(config, lr_nn_decay_epochs=0), 17) == 8
    assert fit.stop_patience(dataclasses.replace(
        config, lr_nn_decay_epochs=3, lr_nn_decay_limit=3), 17) == 23
    assert fit.stop_patience(dataclasses.replace(
        config, lr_nn_decay_epochs=3, lr_nn_decay_limit=3), 8900) == 2
