"""search -> retrain end to end on tiny synthetic data (issue 4), with its error paths."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import pytest
import tensorflow as tf
from conftest import demo_dataset
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2 as hparams_plugin_data_pb2

from optfusion_tf.architecture.arch_spec import ArchSpec
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.optimizers.lazy_adam import LazyAdam
from optfusion_tf.training import experiment as experiment_module
from optfusion_tf.training.experiment import (
    ExperimentError,
    TrainingConfig,
    compile_for_training,
    retrain_arch,
    run_retrain,
    run_search,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
METRIC_KEYS = {"valid_auc", "valid_logloss", "test_auc", "test_logloss", "best_epoch", "seconds"}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return demo_dataset(tmp_path_factory.mktemp("data"), 4000)


def _config(dataset_dir: str, run_dir: pathlib.Path, **overrides) -> TrainingConfig:
    base = dict(
        dataset_dir=dataset_dir, run_dir=str(run_dir), emb_dim=2, n=1, batch_size=512,
        epochs=1, seed=7,
    )
    return TrainingConfig(**{**base, **overrides})


def _tags(log_dir: pathlib.Path) -> set[str]:
    tags: set[str] = set()
    for events in log_dir.rglob("events.out.tfevents.*"):
        acc = event_accumulator.EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        for kind in acc.Tags().values():
            if isinstance(kind, list):
                tags.update(kind)
    return tags


@pytest.fixture(scope="module")
def search_run(dataset_dir, tmp_path_factory) -> pathlib.Path:
    run_dir = tmp_path_factory.mktemp("runs") / "search"
    run_search(_config(dataset_dir, run_dir, epochs=2), ["--epochs=2"])
    return run_dir


def test_search_writes_the_run_directory(search_run, dataset_dir):
    metrics = json.loads((search_run / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert 0.5 < metrics["test_auc"] <= 1.0 and metrics["best_epoch"] in (1, 2)
    arch = ArchSpec.load(search_run / "arch.json")
    assert (arch.n, arch.emb_dim, arch.source) == (1, 2, "search")
    for name in ("flags.txt", "epochs.json", "architecture.png", "model.keras",
                 "calibration_test.png"):
        assert (search_run / name).is_file(), name
    # Issue 26, item 5: calibration of the test split next to its AUC.
    assert 0.0 <= metrics["test_ece"] < 1.0 and 0.0 < metrics["test_observed_rate"] < 1.0
    assert 0.0 < metrics["test_mean_predicted"] < 1.0
    bins = metrics["test_calibration_bins"]
    assert 1 <= len(bins) <= 10 and sum(b["examples"] for b in bins) == DatasetStats.load(dataset_dir).rows["test"]
    assert (search_run / "checkpoints" / "best.weights.h5").is_file()
    assert not (search_run / "backup").exists(), "a complete run keeps no resume state"
    tags = _tags(search_run / "tensorboard")
    for tag in ("epoch_loss", "val_auc", "val_logloss", "alpha", "alpha/connection_matrix",
                "beta/O/add", "architecture", "lr/embedding", "lr/network", "lr/architecture",
                "operation_scale/O/prod", "operation_zeros/S1/att", "calibration/test",
                "_hparams_/session_start_info", "final/test_auc", "final/valid_auc"):
        assert tag in tags, f"{tag} missing from {sorted(tags)}"
    # Issue 26, item 4: the run's flags in the HParams dashboard, and a row in results.csv.
    plugin = event_accumulator.EventAccumulator(
        str(next((search_run / "tensorboard" / "hparams").glob("events.*"))),
        size_guidance={"tensors": 0})
    plugin.Reload()
    start = hparams_plugin_data_pb2.HParamsPluginData.FromString(
        plugin.SummaryMetadata("_hparams_/session_start_info").plugin_data.content).session_start_info
    assert start.hparams["emb_dim"].number_value == 2 and start.group_name == "search"
    assert start.hparams["embedding_optimizer"].string_value == "auto"
    final_auc = tf.make_ndarray(plugin.Tensors("final/test_auc")[0].tensor_proto)
    assert final_auc == pytest.approx(metrics["test_auc"])
    rows = list(csv.DictReader((search_run.parent / "results.csv").open()))
    assert len(rows) == 1 and rows[0]["run"] == str(search_run)
    assert (rows[0]["stage"], rows[0]["model"], rows[0]["emb_dim"]) == ("search", "search", "2")
    assert float(rows[0]["test_auc"]) == metrics["test_auc"]
    epochs = json.loads((search_run / "epochs.json").read_text())["epochs"]
    assert int(rows[0]["epochs"]) == len(epochs) and int(rows[0]["best_epoch"]) == metrics["best_epoch"]


@pytest.mark.parametrize("fusion", ["hard", "soft"])
def test_retrain_from_the_searched_arch(dataset_dir, search_run, tmp_path, fusion):
    config = _config(dataset_dir, tmp_path / fusion, arch=str(search_run / "arch.json"),
                     fusion=fusion, init_from_search=fusion == "hard")
    metrics = run_retrain(config, [], given=set())
    assert METRIC_KEYS <= set(metrics) and metrics["fusion"] == fusion
    assert ArchSpec.load(tmp_path / fusion / "arch.json") == ArchSpec.load(search_run / "arch.json")
    (row,) = csv.DictReader((tmp_path / "results.csv").open())
    assert (row["stage"], row["model"], float(row["test_auc"])) == ("retrain", fusion, metrics["test_auc"])


def test_flags_txt_of_an_arch_retrain_holds_the_arch_values(dataset_dir, search_run, tmp_path):
    """Issue 12, item 3: the parsed defaults (--emb_dim=16, --n=3) are not what the run used;
    flags.txt records the arch's, so --flagfile=<run>/flags.txt is accepted."""
    arch = str(search_run / "arch.json")
    config = _config(dataset_dir, tmp_path / "r", arch=arch, fusion="add", emb_dim=16, n=3)
    parsed = [f"--arch={arch}", "--emb_dim=16", "--epochs=1", "--n=3", "--operation_norm=none",
              "--shallow=crossnet"]
    run_retrain(config, parsed, given=set())
    lines = [line for line in (tmp_path / "r" / "flags.txt").read_text().splitlines()
             if line.startswith("--")]
    assert lines == [f"--arch={arch}", "--emb_dim=2", "--epochs=1", "--n=1",
                     "--operation_norm=none", "--shallow=crossnet"]
    again = dataclasses.replace(config, emb_dim=2, n=1)
    retrain_arch(again, DatasetStats.load(dataset_dir), given={"emb_dim", "n", "shallow"})


@pytest.mark.parametrize("preset", ["parallel", "stacked"])
def test_presets_need_no_search(dataset_dir, tmp_path, preset):
    metrics = run_retrain(_config(dataset_dir, tmp_path / preset, preset=preset), [], given=set())
    expected = {"parallel": ["E", "S1", "D1", "O"], "stacked": ["E", "S0", "D1", "O"]}[preset]
    assert metrics["live_nodes"] == expected


def test_sequential_selection_searches_connections_then_operations(dataset_dir, tmp_path):
    run_dir = tmp_path / "seq"
    run_search(_config(dataset_dir, run_dir, selection="sequential"), [])
    arch = ArchSpec.load(run_dir / "arch.json")
    assert arch.source == "search_operations"
    for phase in ("phase1_connections", "phase2_operations"):
        assert (run_dir / phase / "checkpoints" / "best.weights.h5").is_file()


def test_same_flags_and_seed_give_the_same_metrics(dataset_dir, search_run, tmp_path):
    first = json.loads((search_run / "metrics.json").read_text())
    second = run_search(_config(dataset_dir, tmp_path / "again", epochs=2), [])
    for key in ("valid_auc", "valid_logloss", "test_auc", "test_logloss", "best_epoch"):
        assert first[key] == second[key], key
    assert (tmp_path / "again" / "arch.json").read_text() == (search_run / "arch.json").read_text()


def test_mirrored_strategy_on_one_device(dataset_dir, search_run, tmp_path):
    """--strategy=mirrored (one CPU replica here): the model and optimizers live in the
    strategy's scope, batches come from distribute_datasets_from_function, and evaluation runs
    outside Keras' predict. Keras' symbolic build under a strategy draws one shuffled pass of
    the training split before training, so the order (not the model) differs from the plain
    run's."""
    plain = json.loads((search_run / "metrics.json").read_text())
    mirrored = run_search(_config(dataset_dir, tmp_path / "mirrored", epochs=2, strategy="mirrored"), [])
    assert (mirrored["strategy"], mirrored["replicas"]) == ("mirrored", 1)
    assert abs(mirrored["valid_auc"] - plain["valid_auc"]) < 0.03
    assert (tmp_path / "mirrored" / "model.keras").is_file()


def test_arch_from_another_dataset_or_shape_is_refused(dataset_dir, search_run, tmp_path):
    data = json.loads((search_run / "arch.json").read_text())
    data["feature_num"] += 1
    other = tmp_path / "other_arch.json"
    other.write_text(json.dumps({k: v for k, v in data.items() if k in ArchSpec.__dataclass_fields__
                                 or k in ("format_version", "operation_order")}))
    unfinished = tmp_path / "unfinished_search"  # arch.json and model.keras, no metrics.json
    unfinished.mkdir()
    for name in ("arch.json", "model.keras"):
        (unfinished / name).write_bytes((search_run / name).read_bytes())
    cases = [
        (dict(arch=str(unfinished / "arch.json"), init_from_search=True), set(),
         "unfinished_search/metrics.json not found"),
        (dict(arch=str(other)), set(), "feature_num"),
        (dict(arch=str(search_run / "arch.json"), n=2), {"n"}, "--n=2"),
        (dict(arch=str(search_run / "arch.json"), shallow="cin"), {"shallow"}, "--shallow='cin'"),
        (dict(arch=str(tmp_path / "missing.json")), set(), "no such arch file"),
        (dict(), set(), "exactly one of --arch"),
        (dict(preset="stacked", init_from_search=True), set(), "--init_from_search needs --arch"),
    ]
    for overrides, given, message in cases:
        run_dir = tmp_path / "refused"
        with pytest.raises(ExperimentError, match=message.replace("[", r"\[")):
            run_retrain(_config(dataset_dir, run_dir, **overrides), [], given=given)
        assert not run_dir.exists(), "a refused run writes nothing"


def test_missing_or_incomplete_dataset_dir_is_refused(dataset_dir, tmp_path):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for path in (tmp_path / "absent", incomplete):
        with pytest.raises(ExperimentError, match="--dataset_dir"):
            run_search(_config(str(path), tmp_path / "run"), [])
        assert not (tmp_path / "run").exists()


def test_damaged_datasets_are_refused_before_anything_is_written(dataset_dir, tmp_path):
    """Issue 12, items 10-12: shards missing or truncated, paths in stats.json that leave the
    directory, a split with one class: refused up front, no run directory left behind."""
    def damaged(name, change_stats=None, change_files=None):
        copy = tmp_path / name
        shutil.copytree(dataset_dir, copy)
        if change_stats:
            stats = json.loads((copy / "stats.json").read_text())
            change_stats(stats)
            (copy / "stats.json").write_text(json.dumps(stats))
        if change_files:
            change_files(copy)
        return copy

    train_shard = json.loads((pathlib.Path(dataset_dir) / "stats.json").read_text())["shards"]["train"][0]

    def truncate(copy):
        path = copy / train_shard
        path.write_bytes(path.read_bytes()[:-7])

    cases = [
        (damaged("missing", change_files=lambda c: (c / train_shard).unlink()), f"{train_shard} is missing"),
        (damaged("truncated", change_files=truncate), f"{train_shard} has .* bytes, expected"),
        (damaged("outside", lambda st: st["shards"]["train"].__setitem__(0, "../../x.tfrecord")),
         "is not a path inside the dataset directory"),
        (damaged("absolute", lambda st: st["fields"][0].__setitem__("vocab_file", "/etc/passwd")),
         "vocab_file '/etc/passwd' is not a path inside"),
        (damaged("one_class", lambda st: st["positives"].__setitem__("validation", 0)),
         "every one of the .* validation rows has label 0"),
    ]
    for path, message in cases:
        run_dir = tmp_path / "refused"
        with pytest.raises(ExperimentError, match=message):
            run_retrain(_config(str(path), run_dir, preset="parallel"), [], given=set())
        assert not run_dir.exists(), "a refused run writes nothing"


def test_nan_loss_stops_with_a_message(dataset_dir, tmp_path):
    config = _config(dataset_dir, tmp_path / "nan", lr_nn=1e30, lr_emb=1e30, epochs=3)
    with pytest.raises(ExperimentError, match="NaN|nan") as raised:
        run_retrain(dataclasses.replace(config, preset="stacked"), [], given=set())
    # Issue 12, item 7: an epoch that ends with NaN weights is never saved as the best.
    assert "no epoch finished with finite weights" in str(raised.value)
    assert not (tmp_path / "nan" / "checkpoints" / "best.weights.h5").exists()
    # A search whose alpha / beta went NaN ends with the same message, not an ArchSpecError
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


def _cli(script: str, *args: str, env_extra: dict | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, str(REPO / script), *args], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, **kwargs,
    )


def test_unknown_flag_values_exit_nonzero_and_write_nothing(dataset_dir, tmp_path):
    cases = (["--fusion=bogus"], ["--preset=diamond"], ["--shallow=fm"], ["--l2_nn=nan"],
             ["--lr_emb=inf"], ["--kernel_init=he"],
             ["--patience=0", "--patience_steps=0", "--plateau_lr_factor=0.1"],
             ["--min_lr=0.01", "--plateau_lr_factor=0.5"], ["--seed=-1"], [f"--seed={2**32}"])
    # All at once (each process is mostly TensorFlow's import), each with its own run dir.
    procs = [_cli("retrain.py", f"--dataset_dir={dataset_dir}", f"--run_dir={tmp_path / str(i)}", *args)
             for i, args in enumerate(cases)]
    for i, (args, proc) in enumerate(zip(cases, procs)):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode != 0 and args[0].split("=")[0][2:] in out, out
        assert not (tmp_path / str(i)).exists()


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
            "--epochs=8", "--patience=1", "--seed=5", "--lr_emb=0.03", "--lr_nn=0.03"]
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


def test_the_scripts_print_our_lines_only(dataset_dir, tmp_path):
    """Issue 26, item 2: by default a script shows our progress, summaries and warnings: no
    TensorFlow C++ start-up lines, no other library's INFO lines, no progress-bar escapes in a
    file; --verbosity=1 (absl's) and TF_CPP_MIN_LOG_LEVEL bring the detail back."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = [sys.executable, str(REPO / "retrain.py"), f"--dataset_dir={dataset_dir}",
            "--preset=parallel", "--emb_dim=2", "--n=1", "--epochs=1", "--overwrite"]

    def run(*extra: str, **more_env: str) -> str:
        done = subprocess.run([*args, f"--run_dir={tmp_path / 'r'}", *extra], capture_output=True,
                              text=True, env={**env, **more_env}, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "\x1b[" not in done.stdout  # no progress bar written to a file
        return done.stdout + done.stderr

    out = run()
    lines = out.strip().splitlines()
    assert not [line for line in lines if "I0000" in line or "cudart_stub" in line], out
    assert not [line for line in lines if "] " in line and "experiment.py" not in line
                and "evaluation.py" not in line], out
    assert "epoch 1/1:" in out and "retrain done: valid AUC" in out
    assert len(lines) <= 6, out
    detailed = run("--verbosity=1", TF_CPP_MIN_LOG_LEVEL="0")  # one run for both switches
    assert "I0000" in detailed  # the C++ lines
    assert [line for line in detailed.splitlines() if "] " in line and "I0000" not in line
            and "experiment.py" not in line and "evaluation.py" not in line]  # other libraries'


@pytest.mark.parametrize("coverage, expected", [(0.5, keras.optimizers.Adam), (0.49, LazyAdam)])
def test_auto_embedding_optimizer_follows_the_batch_coverage(
        dataset_dir, monkeypatch, caplog, coverage, expected):
    """The default `auto` (issue 23): dense Adam when a batch looks up at least half of the
    table's rows on average (from the vocabulary counts), lazy_adam below, said in the log; the
    network gets the default L2 1e-5."""
    stats = DatasetStats.load(dataset_dir)
    asked = []
    monkeypatch.setattr(experiment_module, "batch_coverage",
                        lambda *args: asked.append(args) or coverage)
    model = OptFusionModel(feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=2,
                           n=1, seed=0)
    with caplog.at_level("INFO"):
        compile_for_training(model, _config(dataset_dir, "unused"), stats)
    assert asked == [(dataset_dir, stats, 512)]
    assert type(model.embedding_optimizer) is expected
    assert f"looks up {100 * coverage:.0f}% of the table" in caplog.text
    assert model.get_compile_config()["l2_nn"] == 1e-5


def test_fusion_weights_without_gradient_are_explained_once_and_keras_does_not_warn(
        dataset_dir, search_run, tmp_path, caplog):
    """Issue 26, item 2: Keras named the weights of an ATT fusion over a single input ("Gradients
    do not exist for variables [... fusion_D1/kernel ...]": softmax of one score is 1) at every
    model's first step; we say it once in our words and hide Keras' line for those weights."""
    import warnings

    from optfusion_tf.architecture.validation import OPERATIONS
    from optfusion_tf.architecture.search_space import SearchSpace, edge_name

    arch = ArchSpec.load(search_run / "arch.json")
    alpha = {}
    for src, dst in SearchSpace(arch.n).edges:
        name = edge_name(src, dst)
        keep = {("E", "D1"): 1.0, ("D1", "O"): 1.0}
        alpha[name] = keep.get((src, dst), -1.0 if dst == "D1" else arch.alpha[name])
    att = tuple(1.0 if op == "att" else 0.0 for op in OPERATIONS)
    single = dataclasses.replace(arch, alpha=alpha, beta={**arch.beta, "D1": att})
    assert single.connections["D1"] == ("E",) and single.operations_for("hard")["D1"] == "att"
    single.save(tmp_path / "arch.json")
    config = _config(dataset_dir, tmp_path / "run", arch=str(tmp_path / "arch.json"), fusion="hard")
    caplog.set_level("INFO")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_retrain(config, [], given=set())
    keras_lines = [str(w.message) for w in caught if "Gradients do not exist" in str(w.message)]
    assert not keras_lines, keras_lines
    ours = [r.getMessage() for r in caplog.records if "get no gradient" in r.getMessage()]
    assert len(ours) == 1 and "D1: ATT over a single input" in ours[0], ours
