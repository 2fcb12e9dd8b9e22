"""search -> retrain end to end on tiny synthetic data (issue 4), with its error paths; the
fit's own (NaN, resume, optimizers) are in tests/test_fit.py, the refused datasets in
tests/test_training_config.py."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf
from conftest import demo_dataset, start_up_lines
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2 as hparams_plugin_data_pb2

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.training.config import ExperimentError, TrainingConfig, retrain_arch
from optfusion_tf.training.experiment import run_retrain, run_search

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
    arch = ArchitectureSpec.load(search_run / "arch.json")
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
    assert ArchitectureSpec.load(tmp_path / fusion / "arch.json") == ArchitectureSpec.load(search_run / "arch.json")
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
    arch = ArchitectureSpec.load(run_dir / "arch.json")
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
    other.write_text(json.dumps({k: v for k, v in data.items() if k in ArchitectureSpec.__dataclass_fields__
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


def _cli(script: str, *args: str, env_extra: dict | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, str(REPO / script), *args], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, **kwargs,
    )


def test_unknown_flag_values_exit_nonzero_and_write_nothing(dataset_dir, tmp_path):
    cases = (["--fusion=bogus"], ["--preset=diamond"], ["--shallow=fm"], ["--l2_nn=nan"],
             ["--lr_emb=inf"], ["--kernel_init=he"],
             ["--patience=0", "--patience_steps=0", "--plateau_lr_factor=0.1",
              "--lr_nn_decay_epochs=0"],
             ["--min_lr=0.01", "--plateau_lr_factor=0.5", "--lr_nn_decay_epochs=0"],
             ["--plateau_lr_factor=0.1", "--lr_nn_decay_epochs=3"],  # both set the rate
             ["--plateau_lr_factor=0.1"],  # so does the default decay
             ["--lr_nn_decay_epochs=-1"], ["--seed=-1"], [f"--seed={2**32}"])
    # The flags are checked before TensorFlow is imported: here it cannot be.
    no_tf = tmp_path / "no_tf" / "tensorflow"
    no_tf.mkdir(parents=True)
    (no_tf / "__init__.py").write_text("raise ImportError('TensorFlow imported before the flags')")
    env = {"PYTHONPATH": f"{no_tf.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [_cli("retrain.py", f"--dataset_dir={dataset_dir}", f"--run_dir={tmp_path / str(i)}",
                  *args, env_extra=env) for i, args in enumerate(cases)]
    for i, (args, proc) in enumerate(zip(cases, procs)):
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode != 0 and args[0].split("=")[0][2:] in out, out
        assert "TensorFlow imported before the flags" not in out, out
        assert not (tmp_path / str(i)).exists()
    for script in ("retrain.py", "search.py"):
        out, _ = _cli(script, "--help", env_extra=env).communicate(timeout=600)
        assert "--dataset_dir" in out and "--deep_dtype" in out, out


# The modules that log during a run: the stage's (experiment.py and the modules it was split
# into in issue 28) and evaluation.py. absl's lines name the file that logged.
OUR_LOGGING_MODULES = ("experiment.py", "config.py", "workers.py", "fit.py", "results.py",
                       "evaluation.py")


def _ours(line: str) -> bool:
    return any(module in line for module in OUR_LOGGING_MODULES)


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
    assert not start_up_lines(out), out
    assert not [line for line in lines if "] " in line and not _ours(line)], out
    assert "epoch 1/1:" in out and "retrain done: valid AUC" in out
    assert len(lines) <= 6, out
    detailed = run("--verbosity=1", TF_CPP_MIN_LOG_LEVEL="0")  # one run for both switches
    assert "I0000" in detailed  # the C++ lines
    assert [line for line in detailed.splitlines() if "] " in line and "I0000" not in line
            and not _ours(line)]  # other libraries'


def test_fusion_weights_without_gradient_are_explained_once_and_keras_does_not_warn(
        dataset_dir, search_run, tmp_path, caplog):
    """Issue 26, item 2: Keras named the weights of an ATT fusion over a single input ("Gradients
    do not exist for variables [... fusion_D1/kernel ...]": softmax of one score is 1) at every
    model's first step; we say it once in our words and hide Keras' line for those weights."""
    import warnings

    from optfusion_tf.architecture.validation import OPERATIONS
    from optfusion_tf.architecture.search_space import SearchSpace, edge_name

    arch = ArchitectureSpec.load(search_run / "arch.json")
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
    caplog.set_level("INFO", logger="absl")  # other tests may have quieted absl
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_retrain(config, [], given=set())
    keras_lines = [str(w.message) for w in caught if "Gradients do not exist" in str(w.message)]
    assert not keras_lines, keras_lines
    ours = [r.getMessage() for r in caplog.records if "get no gradient" in r.getMessage()]
    assert len(ours) == 1 and "D1: ATT over a single input" in ours[0], ours
