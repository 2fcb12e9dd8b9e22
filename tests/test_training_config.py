"""The checks of a run's inputs before anything is written (optfusion_tf/training/config.py):
datasets that are missing, incomplete or damaged are refused and leave no run directory."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from conftest import demo_dataset
from test_experiment import _config

from optfusion_tf.training.config import ExperimentError
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
