"""Run directory rules, flags.txt round trip through --flagfile, metrics.json, seeding."""

import json
import random

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from optfusion_tf.training.run_dir import (
    RunDir,
    RunDirError,
    open_run_dir,
    script_flag_lines,
    set_seed,
    write_json_atomic,
)

METRICS = dict(valid_auc=0.8, valid_logloss=0.44, test_auc=0.79, test_logloss=0.45,
               best_epoch=2, seconds=12.5)


def _script_flags() -> flags.FlagValues:
    """Flags as a script would define them (registered under this module), plus a library's."""
    fv = flags.FlagValues()
    flags.DEFINE_string("dataset_dir", None, "dataset", flag_values=fv)
    flags.DEFINE_float("lr_nn", 1e-3, "learning rate", flag_values=fv)
    flags.DEFINE_integer("epochs", 3, "epochs", flag_values=fv)
    flags.DEFINE_boolean("batch_norm", False, "batch norm", flag_values=fv)
    flags.DEFINE_enum("shallow", "crossnet", ["crossnet", "cin"], "shallow", flag_values=fv)
    flags.DEFINE_multi_string("note", [], "notes", flag_values=fv)
    flags.DEFINE_string("run_dir", None, "run dir", flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "overwrite", flag_values=fv)
    flags.DEFINE_integer("library_knob", 7, "not the script's", flag_values=fv,
                         module_name="some.library")
    return fv


def test_flag_lines_are_the_scripts_own_sorted_and_rerunnable(tmp_path):
    fv = _script_flags()
    fv(["prog", "--lr_nn=0.01", "--batch_norm", "--note=a b", "--note=c",
        "--run_dir=runs/x", "--overwrite", "--library_knob=9"])
    lines = script_flag_lines(fv, module_name=__name__)
    assert lines == [
        "--batch_norm", "--epochs=3", "--lr_nn=0.01", "--note=a b", "--note=c",
        "--run_dir=runs/x", "--shallow=crossnet",
    ]  # sorted; dataset_dir (None), overwrite and the library's flag left out

    run = open_run_dir(tmp_path / "run", lines, program="search.py")
    text = open(run.flags_path).read()
    assert text.startswith("# Re-run: python search.py --flagfile=")
    again = _script_flags()
    again(["prog", f"--flagfile={run.flags_path}"])
    assert script_flag_lines(again, module_name=__name__) == lines
    assert again.lr_nn == 0.01 and again.batch_norm and again.note == ["a b", "c"]
    # Started as a console script (no .py), the command is the program itself, not python + it.
    console = open_run_dir(tmp_path / "console", lines, program="optfusion-search")
    assert open(console.flags_path).read().startswith("# Re-run: optfusion-search --flagfile=")


def test_new_run_layout(tmp_path):
    run = open_run_dir(tmp_path / "runs" / "a", ["--seed=1"])
    assert not run.resuming
    assert (tmp_path / "runs/a/checkpoints").is_dir()
    assert (tmp_path / "runs/a/tensorboard").is_dir()
    assert run.best_weights_path.endswith("checkpoints/best.weights.h5")
    assert run.backup_dir.endswith("a/backup") and run.arch_path.endswith("a/arch.json")
    assert {p.name for p in (tmp_path / "runs/a").iterdir()} == {
        "flags.txt", "checkpoints", "tensorboard"}
    # An existing empty directory is a new run as well.
    (tmp_path / "empty").mkdir()
    open_run_dir(tmp_path / "empty", ["--seed=1"])


def test_same_flags_resume_from_backup(tmp_path):
    path = tmp_path / "run"
    open_run_dir(path, ["--seed=1"])
    (path / "backup").mkdir()
    (path / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    (path / "epochs.json").write_text("{}")
    assert open_run_dir(path, ["--seed=1"]).resuming
    assert (path / "epochs.json").exists() and (path / "backup").exists()


def test_same_flags_without_backup_start_anew(tmp_path):
    path = tmp_path / "run"
    open_run_dir(path, ["--seed=1"])
    (path / "epochs.json").write_text("{}")  # e.g. a NaN stop: fit ended, backup deleted
    (path / "checkpoints" / "best.weights.h5").write_text("stale")
    assert not open_run_dir(path, ["--seed=1"]).resuming
    assert not (path / "epochs.json").exists()
    assert list((path / "checkpoints").iterdir()) == []


def test_different_flags_refused_unless_overwrite(tmp_path):
    path = tmp_path / "run"
    open_run_dir(path, ["--lr_nn=0.01", "--seed=1"])
    (path / "epochs.json").write_text("{}")
    with pytest.raises(RunDirError, match=r"other flags.*--lr_nn=0.01.*--lr_nn=0.1.*--overwrite"):
        open_run_dir(path, ["--lr_nn=0.1", "--seed=1"])
    assert (path / "epochs.json").exists()  # refusal writes nothing

    run = open_run_dir(path, ["--lr_nn=0.1", "--seed=1"], overwrite=True)
    assert not (path / "epochs.json").exists()
    assert open(run.flags_path).read().splitlines()[1:] == ["--lr_nn=0.1", "--seed=1"]


def test_a_run_written_before_a_flag_existed_resumes_at_its_implicit_value(tmp_path):
    path = tmp_path / "run"
    open_run_dir(path, ["--lr_nn=0.01", "--seed=1"])  # before --deep_dtype existed
    (path / "backup").mkdir()
    (path / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    assert open_run_dir(path, ["--deep_dtype=float32", "--lr_nn=0.01", "--seed=1"]).resuming
    with pytest.raises(RunDirError, match=r"other flags.*now: \['--deep_dtype=mixed_bfloat16'\]"):
        open_run_dir(path, ["--deep_dtype=mixed_bfloat16", "--lr_nn=0.01", "--seed=1"])
    # A run that wrote the flag compares it as any other line.
    open_run_dir(tmp_path / "new", ["--deep_dtype=mixed_bfloat16", "--seed=1"])
    with pytest.raises(RunDirError, match="other flags"):
        open_run_dir(tmp_path / "new", ["--deep_dtype=float32", "--seed=1"])


def test_complete_run_refused_unless_overwrite(tmp_path):
    run = open_run_dir(tmp_path / "run", ["--seed=1"])
    run.write_metrics(**METRICS)
    with pytest.raises(RunDirError, match="complete run"):
        open_run_dir(tmp_path / "run", ["--seed=1"])
    assert not open_run_dir(tmp_path / "run", ["--seed=1"], overwrite=True).resuming
    with pytest.raises(RunDirError, match="not completed"):
        RunDir(str(tmp_path / "run")).read_metrics()


def test_foreign_directory_never_touched(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match="not a run directory"):
            open_run_dir(tmp_path / "home", ["--seed=1"], overwrite=overwrite)
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        open_run_dir(tmp_path / "file", [])


def test_metrics_json(tmp_path):
    run = open_run_dir(tmp_path / "run", [])
    written = run.write_metrics(**{**METRICS, "valid_auc": np.float32(0.75)}, fusion="hard")
    assert json.loads(open(run.metrics_path).read()) == written == run.read_metrics()
    assert written["valid_auc"] == pytest.approx(0.75) and written["fusion"] == "hard"
    assert list(written)[:6] == ["valid_auc", "valid_logloss", "test_auc", "test_logloss",
                                 "best_epoch", "seconds"]
    for bad in (float("nan"), None, "0.8"):
        with pytest.raises(ValueError, match="test_auc must be a finite number"):
            run.write_metrics(**{**METRICS, "test_auc": bad})
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "x.json", {"a": float("inf")})
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "x.json").exists()


def _draws() -> tuple:
    return random.random(), np.random.rand(), float(tf.random.uniform(()))


def test_set_seed_repeats_random_draws():
    set_seed(123, deterministic_ops=False)
    first = _draws()
    set_seed(123, deterministic_ops=False)
    assert _draws() == first
    set_seed(124, deterministic_ops=False)
    assert _draws() != first
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="non-negative integer"):
            set_seed(bad)


def test_set_seed_with_deterministic_ops():
    # TF exports only enable_op_determinism; the test undoes it through the module that defines
    # it, so later tests in this process run as usual.
    from tensorflow.python.framework import config

    try:
        set_seed(5)
        assert config.is_op_determinism_enabled()
    finally:
        config.disable_op_determinism()


def test_run_dir_paths_golden():
    run = RunDir("/r")
    assert [run.flags_path, run.arch_path, run.architecture_png, run.calibration_png,
            run.epochs_path, run.metrics_path, run.checkpoints_dir, run.best_weights_path,
            run.backup_dir, run.tensorboard_dir] == [
        "/r/flags.txt", "/r/arch.json", "/r/architecture.png", "/r/calibration_test.png",
        "/r/epochs.json", "/r/metrics.json", "/r/checkpoints", "/r/checkpoints/best.weights.h5",
        "/r/backup", "/r/tensorboard"]
    assert "BackupAndRestore" in RunDir.backup_dir.__doc__
    assert RunDir.arch_path.__doc__ == "<run dir>/arch.json"
