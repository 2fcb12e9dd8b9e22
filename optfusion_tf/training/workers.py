"""Where the workers of a run meet (`--strategy`): joining the cluster, agreeing, who writes.

Every worker runs the same stage (optfusion_tf/training/experiment.py) and meets the others
here, in this order:

1. `join_cluster`: the Distribution of config.strategy; under multi_worker it returns once every
   worker of TF_CONFIG is there.
2. `stop_unless_every_worker_succeeds` around the checks of the inputs (and
   `check_the_split_of_work`): a worker that refuses its inputs (a dataset or arch missing on its
   machine) stops every worker with a message, instead of leaving them waiting for it.
3. `open_run`: the chief opens the run directory and tells the others whether it resumes; they
   open a scratch copy, and no worker goes on until every worker has its directory.

Who writes what: the chief writes the run directory. The other workers write the same files
(checkpoints, backup/, model.keras) into their scratch copy, deleted when they exit: saving
reads mirrored variables, a collective that every worker must join. Only the chief adds the
finished run to results.csv and the HParams dashboard (`results.write_results`).

A collective waits for every worker: every function here is called by every worker, error or not.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from absl import logging

from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.distribute.distribution import (
    Distribution,
    DistributionError,
    broadcast_from_chief,
    make_strategy,
    sum_over_workers,
)
from optfusion_tf.training.config import ExperimentError, TrainingConfig
from optfusion_tf.training.fit import epoch_steps
from optfusion_tf.training.run_dir import (
    RunDir,
    RunDirError,
    open_run_dir,
    open_worker_run_dir,
    set_seed,
)

INPUTS_REFUSED = "{failed} other worker(s) refused their inputs (see their logs); stopping too."


def join_cluster(config: TrainingConfig) -> Distribution:
    """--strategy's Distribution (under multi_worker: once every worker has joined)."""
    try:
        return make_strategy(config.strategy, cluster_wait_s=config.cluster_wait_s)
    except DistributionError as err:
        raise ExperimentError(str(err)) from None


@contextlib.contextmanager
def stop_unless_every_worker_succeeds(dist: Distribution, others_failed: str) -> Iterator[None]:
    """A block that every worker finishes, or that stops every worker: this worker's
    ExperimentError from the block is raised once the workers have counted their failures, and
    if only other workers failed, ExperimentError(`others_failed`) with "{failed}" replaced by
    their number. A collective at the end of the block: every worker runs it, error or not."""
    error = None
    try:
        yield
    except ExperimentError as err:
        error = err
    failed = sum_over_workers(dist.strategy, [error is not None])[0]
    if error is not None:
        raise error
    if failed:
        raise ExperimentError(others_failed.replace("{failed}", str(failed)))


def check_the_split_of_work(config: TrainingConfig, stats: DatasetStats, dist: Distribution) -> None:
    """The global batch must split evenly over the replicas, the training split over the workers."""
    if config.batch_size % dist.replicas:
        raise ExperimentError(
            f"--batch_size={config.batch_size} is the global batch and must be a multiple of "
            f"the {dist.replicas} replicas of --strategy={config.strategy}."
        )
    workers = dist.shard[1] if dist.shard else 1
    if stats.rows["train"] < workers:
        raise ExperimentError(
            f"--dataset_dir: the train split has {stats.rows['train']} rows, fewer than the "
            f"{workers} workers that each need a slice of it."
        )
    if dist.replicas > 1:
        # training_batches cuts each worker's slice into steps x (its replicas) batches.
        steps = epoch_steps(stats, config.batch_size)
        needed = steps * (dist.replicas // workers)
        smallest = stats.rows["train"] // workers
        if smallest < needed:
            raise ExperimentError(
                f"--batch_size={config.batch_size}: an epoch is {steps} "
                f"steps, and each of the {dist.replicas} replicas needs a row in every step, but "
                f"a worker's slice of the train split has {smallest} rows, fewer than the "
                f"{needed} batches it must make; use a larger --batch_size."
            )


def open_run(config: TrainingConfig, flag_lines: list[str], dist: Distribution) -> RunDir:
    """The chief opens the run directory (open_run_dir's rules) and tells the other workers
    whether it resumes; they open a scratch copy (open_worker_run_dir). No worker goes on (and
    the chief writes nothing more) until every worker has its directory."""
    if dist.role.is_chief:
        try:
            run = open_run_dir(config.run_dir, flag_lines, overwrite=config.overwrite)
        except RunDirError as err:
            broadcast_from_chief(dist, [0, 0])
            raise ExperimentError(f"--run_dir: {err}") from None
        broadcast_from_chief(dist, [1, int(run.resuming)])
    else:
        opened, resuming = broadcast_from_chief(dist, [0, 0])
        if not opened:
            raise ExperimentError(
                f"--run_dir: the chief could not open {config.run_dir}; see the chief's log."
            )
    with stop_unless_every_worker_succeeds(
        dist, f"--run_dir: {{failed}} worker(s) could not copy {config.run_dir} to resume "
        "it (see their logs): it must be on a filesystem every worker can read.",
    ):
        if not dist.role.is_chief:
            try:
                run = open_worker_run_dir(config.run_dir, resuming=bool(resuming), worker=dist.role.name)
            except RunDirError as err:
                raise ExperimentError(f"--run_dir: {err}") from None
    set_seed(config.seed)
    if run.resuming:
        logging.info("Resuming %s from its last finished epoch (backup/).", run.path)
    return run
