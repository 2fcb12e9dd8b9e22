"""--strategy pieces that need no cluster: TF_CONFIG, per-worker input slices, the workers'
scratch run directories and the local launcher (issue 6); the batch check is in
tests/test_workers.py."""

from __future__ import annotations

import io
import json
import os
import sys

import numpy as np
import pytest

from optfusion_tf.cli.local_workers import free_ports, run_local_workers, tf_config
from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
from optfusion_tf.data.reader import load_split, make_dataset
from optfusion_tf.demo.demo_data import write_demo_criteo
from optfusion_tf.distribute.distribution import (
    Distribution,
    DistributionError,
    WorkerRole,
    broadcast_from_chief,
    gather_rows,
    make_strategy,
    parse_tf_config,
    sum_over_workers,
)
from optfusion_tf.training.run_dir import RunDirError, open_run_dir, open_worker_run_dir


def _config(cluster, task_type="worker", index=0) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_roles_number_the_chief_first():
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    chief = parse_tf_config(_config(cluster, "chief", 0))
    second = parse_tf_config(_config(cluster, "worker", 1))
    assert (chief.is_chief, chief.worker_index, chief.num_workers) == (True, 0, 3)
    assert (second.is_chief, second.worker_index, second.name) == (False, 2, "worker 1")
    only_workers = parse_tf_config(_config({"worker": ["b:1", "c:1"]}, "worker", 0))
    assert only_workers.is_chief and only_workers.num_workers == 2


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{oops", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', 'must be an object with "cluster" and "task"'),
        (_config({"worker": ["a:1"], "ps": ["b:1"]}), "no parameter servers"),
        (_config({"worker": ["a"]}), '"host:port" strings'),
        (_config({"worker": ["a:1"]}, "evaluator"), "is not a job of the cluster"),
        (_config({"worker": ["a:1", "b:1"]}, "worker", 2), r"integer in \[0, 2\)"),
        (_config({"chief": ["a:1", "b:1"], "worker": ["c:1"]}, "chief"), "at most one chief"),
    ],
)
def test_bad_tf_config_is_refused_with_what_was_expected(text, message):
    with pytest.raises(DistributionError, match=message):
        parse_tf_config(text)


def test_strategy_none_and_unknown_names():
    dist = make_strategy("none")
    assert dist.strategy is None and dist.replicas == 1 and dist.shard is None
    assert dist.role.is_chief
    with pytest.raises(DistributionError, match="--strategy must be one of"):
        make_strategy("parameter_server")


def test_collectives_are_identities_in_one_process():
    rows = np.arange(6.0).reshape(3, 2)
    assert gather_rows(None, rows) is not None and np.array_equal(gather_rows(None, rows), rows)
    assert broadcast_from_chief(Distribution(), [1, 0]) == [1, 0]
    assert sum_over_workers(None, [2, 3]) == [2, 3]


@pytest.fixture(scope="module")
def dataset_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("data")
    raw = write_demo_criteo(str(root / "raw.txt"), 3000, seed=1)
    dirs = {}
    for name, options in {
        "one_file": PreprocessOptions(workers=0),
        "many_gzip": PreprocessOptions(workers=0, records_per_shard=700, compression="gzip"),
    }.items():
        preprocess("criteo", raw, str(root / name), options)
        dirs[name] = str(root / name)
    return dirs


@pytest.mark.parametrize("layout", ["one_file", "many_gzip"])
@pytest.mark.parametrize("workers", [2, 3, 7])
def test_worker_slices_partition_a_split_in_order(dataset_dirs, layout, workers):
    """Each worker reads rows [i N / k, (i + 1) N / k): balanced to one row, whatever the files."""
    ids, labels = load_split(dataset_dirs[layout], "train")
    parts = [
        list(make_dataset(dataset_dirs[layout], "train", 128, shuffle=False, shard=(i, workers)))
        for i in range(workers)
    ]
    part_ids = [np.concatenate([x.numpy() for x, _ in part]) for part in parts]
    sizes = [len(p) for p in part_ids]
    assert sum(sizes) == len(ids) and max(sizes) - min(sizes) <= 1
    np.testing.assert_array_equal(np.concatenate(part_ids), ids)


def test_shuffled_worker_slices_cover_the_split_once(dataset_dirs):
    directory = dataset_dirs["many_gzip"]
    ids, _ = load_split(directory, "train")
    read = [
        x.numpy()
        for i in range(2)
        for x, _ in make_dataset(directory, "train", 100, shuffle=True, seed=3, shard=(i, 2))
    ]
    assert sorted(map(tuple, np.concatenate(read).tolist())) == sorted(map(tuple, ids.tolist()))


def test_bad_shard_is_refused(dataset_dirs):
    with pytest.raises(ValueError, match="0 <= index < count"):
        make_dataset(dataset_dirs["one_file"], "train", 8, shard=(2, 2))


def test_worker_scratch_run_dir_copies_the_chief_to_resume(tmp_path):
    chief = open_run_dir(tmp_path / "run", ["--seed=1"], program="search.py")
    fresh = open_worker_run_dir(chief.path, resuming=False, worker="worker 1")
    assert not fresh.resuming and str(tmp_path) not in fresh.path
    with pytest.raises(RunDirError, match="cannot read its backup/"):
        open_worker_run_dir(chief.path, resuming=True, worker="worker 1")
    (tmp_path / "run" / "backup" / "search").mkdir(parents=True)
    (tmp_path / "run" / "backup" / "search" / "training_metadata.json").write_text('{"epoch": 1}')
    (tmp_path / "run" / "epochs.json").write_text('{"epochs": []}')
    (tmp_path / "run" / "tensorboard" / "events").write_text("x")
    copy = open_worker_run_dir(chief.path, resuming=True, worker="worker 1")
    assert copy.resuming
    assert json.load(open(f"{copy.backup_dir}/search/training_metadata.json")) == {"epoch": 1}
    assert open(copy.epochs_path).read() == '{"epochs": []}'
    assert os.listdir(copy.tensorboard_dir) == []  # TensorBoard logs are the chief's alone


def test_tf_config_of_local_workers():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    role = parse_tf_config(tf_config(ports, 2))
    assert role == WorkerRole("worker", 2, 2, 3)


def test_launcher_stops_the_others_when_a_worker_fails():
    script = (
        "import json, os, sys, time\n"
        "i = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
        "print('hello from', i, flush=True)\n"
        "sys.exit(3) if i == 1 else time.sleep(120)\n"
    )
    out = io.StringIO()
    result = run_local_workers([sys.executable, "-c", script], 2, grace_s=1, timeout_s=60, output=out)
    assert (result.failed, result.timed_out, result.returncodes) == (1, False, [-9, 3])
    assert "worker 1 failed with exit status 3" in result.message
    assert "[worker 0] hello from 0" in out.getvalue() and "[worker 1] hello from 1" in out.getvalue()


def test_launcher_timeout_kills_every_worker():
    out = io.StringIO()
    result = run_local_workers(
        [sys.executable, "-c", "import time; time.sleep(120)"], 2, timeout_s=1, output=out
    )
    assert result.timed_out and not result.ok and result.returncodes == [-9, -9]
