"""The checks of a run's inputs before anything is written (optfusion_tf/training/config.py):
datasets that are missing, incomplete or damaged are refused and leave no run directory."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from conftest import demo_dataset
from test_experiment import _config

from optfusion_tf.training.config import ExperimentError, TrainingConfig
from optfusion_tf.training.experiment import run_retrain, run_search


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return demo_dataset(tmp_path_factory.mktemp("data"), 4000)


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


FLAG_DEFAULTS = """
import json
from absl import flags
from optfusion_tf.cli import training_flags
for define in ("common", "search", "retrain"):
    getattr(training_flags, f"define_{define}_flags")()
module_flags = flags.FLAGS.flags_by_module_dict()[training_flags.__name__]
print(json.dumps({flag.name: flag.default for flag in module_flags}))
"""
# TrainingConfig fields without a default, each with why its flag's default (None) is not one.
NO_CONFIG_DEFAULT = {
    "dataset_dir": "required: the flag's None is refused by load_dataset_stats",
    "run_dir": "the CLI makes runs/<stage>_<dataset dir name> of the flag's None (config_from_flags)",
}


def test_flag_defaults_are_the_training_config_defaults():
    """Issue 28, item 5: the defaults of optfusion_tf/cli/training_flags.py and of
    TrainingConfig are the same values (a run from Python is the run of the CLI's defaults)."""
    proc = subprocess.run(
        [sys.executable, "-c", FLAG_DEFAULTS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    flag_defaults = json.loads(proc.stdout.splitlines()[-1])
    fields = {field.name: field.default for field in dataclasses.fields(TrainingConfig)}
    assert sorted(flag_defaults) == sorted(fields)
    assert {name for name, default in fields.items() if default is dataclasses.MISSING} == set(
        NO_CONFIG_DEFAULT
    )
    assert all(flag_defaults[name] is None for name in NO_CONFIG_DEFAULT)
    differ = {
        name: (flag_defaults[name], default)
        for name, default in fields.items()
        if name not in NO_CONFIG_DEFAULT and flag_defaults[name] != default
    }
    assert not differ, f"flag default != TrainingConfig default: {differ}"


@pytest.mark.parametrize("stage", [run_search, run_retrain])
def test_a_decay_with_a_plateau_step_is_refused_before_anything_is_written(
        dataset_dir, tmp_path, stage):
    """Both would set the network's learning rate (the plateau step assigns to a schedule)."""
    config = _config(dataset_dir, tmp_path / "run", preset="parallel", plateau_lr_factor=0.1,
                     lr_nn_decay_epochs=3)
    if stage is run_search:
        config = dataclasses.replace(config, preset=None)
    with pytest.raises(ExperimentError, match="plateau_lr_factor=0.1 and lr_nn_decay_epochs=3"):
        stage(config, []) if stage is run_search else stage(config, [], given=set())
    assert not (tmp_path / "run").exists()
