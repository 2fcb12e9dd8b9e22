"""The workers' meeting points that need no cluster (optfusion_tf/training/workers.py): the
split of the work over replicas and workers, checked on every worker before anything is written
(issue 6)."""

from __future__ import annotations

import dataclasses

import pytest

from optfusion_tf.distribute.distribution import Distribution
from optfusion_tf.training import workers
from optfusion_tf.training.config import ExperimentError, TrainingConfig


def _distributed(config, validate, stage):
    """The opening of a stage (training/experiment.py: run_search, run_retrain) with `validate`
    for its checks of the inputs, then `stage` under the strategy's scope."""
    dist = workers.join_cluster(config)
    with workers.stop_unless_every_worker_succeeds(dist, workers.INPUTS_REFUSED):
        stats, checked = validate()
        workers.check_the_split_of_work(config, stats, dist)
    with dist.scope():
        return stage(dist, stats, checked)


def test_global_batch_must_split_over_the_replicas(monkeypatch, tmp_path):
    class TwoReplicas(Distribution):
        @property
        def replicas(self) -> int:
            return 2

    monkeypatch.setattr(workers, "make_strategy", lambda name, **_: TwoReplicas())
    stats = type("Stats", (), {"rows": {"train": 10}})()
    config = TrainingConfig(dataset_dir="unused", run_dir=str(tmp_path / "r"), batch_size=4097)
    stage = lambda dist, stats, checked: {"replicas": dist.replicas, "checked": checked}  # noqa: E731
    with pytest.raises(ExperimentError, match=r"--batch_size=4097 .* multiple of the 2 replicas"):
        _distributed(config, lambda: (stats, "arch"), stage)
    ok = dataclasses.replace(config, batch_size=4096)
    assert _distributed(ok, lambda: (stats, "arch"), stage) == {
        "replicas": 2, "checked": "arch"
    }
    # Every replica needs a row in each of an epoch's steps (training_batches cuts the pass
    # into steps x replicas batches): 10 rows at batch 2 are 5 steps of 2 rows; 9 rows are not.
    small = dataclasses.replace(config, batch_size=2)
    assert _distributed(small, lambda: (stats, "arch"), stage)["replicas"] == 2
    nine = type("Stats", (), {"rows": {"train": 9}})()
    with pytest.raises(ExperimentError, match=r"--batch_size=2: an epoch is 5 steps.* has 9 rows, "
                       r"fewer than the 10 batches"):
        _distributed(small, lambda: (nine, "arch"), stage)
    assert not (tmp_path / "r").exists()


def test_every_worker_needs_a_slice_of_the_training_split(monkeypatch, tmp_path):
    class ThreeWorkers(Distribution):
        @property
        def shard(self) -> tuple[int, int]:
            return (0, 3)

    monkeypatch.setattr(workers, "make_strategy", lambda name, **_: ThreeWorkers())
    stats = type("Stats", (), {"rows": {"train": 2}})()
    config = TrainingConfig(dataset_dir="unused", run_dir=str(tmp_path / "r"), batch_size=8)
    with pytest.raises(ExperimentError, match="has 2 rows, fewer than the 3 workers"):
        _distributed(config, lambda: (stats, None), lambda *_: {})


def test_every_worker_joins_the_count_and_stops_when_another_refused(monkeypatch):
    """The block's failures are counted on every worker (a collective, also by the one that
    failed), and a worker whose own block passed stops with the others' count."""
    counted = []

    def one_other_failed(strategy, values):
        counted.append(list(values))
        return [values[0] + 1]

    monkeypatch.setattr(workers, "sum_over_workers", one_other_failed)
    with pytest.raises(ExperimentError, match=r"^1 other worker\(s\) refused their inputs"):
        with workers.stop_unless_every_worker_succeeds(Distribution(), workers.INPUTS_REFUSED):
            pass
    with pytest.raises(ExperimentError, match="^this worker's own$"):
        with workers.stop_unless_every_worker_succeeds(Distribution(), workers.INPUTS_REFUSED):
            raise ExperimentError("this worker's own")
    assert counted == [[False], [True]]
