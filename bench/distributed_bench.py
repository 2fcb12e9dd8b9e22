"""Data-parallel training throughput with 1 and 2 local workers, and the communication per step
(issue 6 figures).

The search model (fusion="search", n=2 and d=8 by default, CrossNet, three optimizer groups, lazy_adam) trains on
synthetic demo data preprocessed into a temporary directory, with one global batch size for
every configuration:
- `none`: one plain process (--strategy=none);
- `workers_1`, `workers_2`: MultiWorkerMirroredStrategy with 1 and 2 worker processes on this
  machine (tools/local_workers.py: free ports, one TF_CONFIG each), each reading its slice of
  the split with per-replica batches of batch_size / workers.
Each configuration runs `--warmup` untimed steps, then `--steps` timed ones (one `fit` call);
samples/s = steps x batch_size / seconds, as measured by worker 0 (every worker takes the same
steps, in lockstep).

Communication per step: in the same 2-worker processes, after training, the collectives of one
step alone, on tensors of the step's shapes: the all-reduce of the dense gradients (network
and architecture variables) and the all-gather of the embedding gradient (IndexedSlices of
batch_size / workers x F rows of d values, and their ids), timed over `--comm_reps` runs; the
median is reported.

On a 2-core machine two workers share the two cores that one process uses alone, so the gain
is small or negative: the figure to read is the communication cost, which stays with more
cores or machines. `--threads_per_worker` sets each worker's TensorFlow thread pools.

Usage:
    python bench/distributed_bench.py                 # 100k rows, batch 4096, d=8, n=2
    python bench/distributed_bench.py --quick         # a smoke run (a few minutes)

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from optfusion_tf.cli.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # before keras: hides TensorFlow's C++ start-up lines

RESULT_TAG = "DISTRIBUTED_BENCH "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic rows to preprocess")
    parser.add_argument("--batch_size", type=int, default=4096, help="global batch size")
    parser.add_argument("--emb_dim", type=int, default=8)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--comm_reps", type=int, default=20)
    parser.add_argument("--threads_per_worker", type=int, default=0,
                        help="TF intra/inter-op threads per worker (0: TensorFlow's default)")
    parser.add_argument("--quick", action="store_true", help="20k rows, batch 1024, 5 steps")
    parser.add_argument("--dataset_dir", help=argparse.SUPPRESS)  # worker role
    parser.add_argument("--strategy", default=None, help=argparse.SUPPRESS)  # worker role
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.batch_size, args.steps, args.warmup, args.comm_reps = 20_000, 1024, 5, 2, 5
    return args


def worker(args: argparse.Namespace) -> None:
    """One process of a configuration: trains, times, and (2 workers) times the collectives."""
    from optfusion_tf.distribute.distribution import in_multi_worker_mode, make_strategy

    dist = make_strategy(args.strategy, cluster_wait_s=300)

    import keras

    from optfusion_tf.data.stats import DatasetStats
    from optfusion_tf.training.config import TrainingConfig
    from optfusion_tf.training.fit import compile_for_training, epoch_steps, training_batches
    from optfusion_tf.models.model import OptFusionModel

    stats = DatasetStats.load(args.dataset_dir)
    config = TrainingConfig(
        dataset_dir=args.dataset_dir, run_dir="unused", emb_dim=args.emb_dim, n=args.n,
        batch_size=args.batch_size, strategy=args.strategy, seed=1,
    )
    keras.utils.set_random_seed(1)
    with dist.scope():
        model = OptFusionModel(
            feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=args.emb_dim,
            n=args.n, fusion="search", seed=1, dataset=stats.dataset,
        )
        compile_for_training(model, config, stats)
        batches = training_batches(config, dist, epoch_steps(stats, config.batch_size))
        model.fit(batches, epochs=1, steps_per_epoch=args.warmup, verbose=0)
        started = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
        seconds = time.perf_counter() - started
    result = {
        "samples_per_s": args.steps * args.batch_size / seconds,
        "step_ms": 1000 * seconds / args.steps,
        "replicas": dist.replicas,
    }
    if in_multi_worker_mode(dist.strategy):
        result["comm_ms_per_step"] = _time_collectives(dist.strategy, model, stats, args)
    if dist.role.is_chief:
        print(RESULT_TAG + json.dumps(result), flush=True)


def _time_collectives(strategy, model, stats, args) -> dict[str, float]:
    """Median ms of the step's collectives on same-shaped tensors: dense all-reduce, sparse
    all-gather (IndexedSlices), and both."""
    import tensorflow as tf

    dense = [tf.ones(v.shape, v.dtype) for v in model.network_variables + model.architecture_variables]
    rows = args.batch_size // strategy.num_replicas_in_sync * stats.num_fields
    sparse = tf.IndexedSlices(
        tf.ones([rows, args.emb_dim]), tf.range(rows, dtype=tf.int64) % stats.feature_num,
        tf.constant([stats.feature_num, args.emb_dim], tf.int64),
    )

    def step(what: str):
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            out = []
            if what in ("dense", "both"):
                out.append(ctx.all_reduce(tf.distribute.ReduceOp.SUM, dense))
            if what in ("sparse", "both"):
                out.append(ctx.all_reduce(tf.distribute.ReduceOp.SUM, sparse))
            return out

        return tf.function(lambda: strategy.run(replica_fn))

    timings = {}
    for what in ("dense", "sparse", "both"):
        fn = step(what)
        fn()  # trace and warm up
        samples = []
        for _ in range(args.comm_reps):
            started = time.perf_counter()
            tf.nest.map_structure(
                lambda t: t.numpy() if hasattr(t, "numpy") else t,
                strategy.experimental_local_results(fn()),
            )
            samples.append(1000 * (time.perf_counter() - started))
        timings[what] = statistics.median(samples)
    return timings


def _prepare_data(root: str, rows: int) -> str:
    from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
    from optfusion_tf.demo.demo_data import write_demo_criteo

    raw = write_demo_criteo(os.path.join(root, "raw.txt"), rows, seed=1)
    preprocess("criteo", raw, os.path.join(root, "ds"), PreprocessOptions(workers=0))
    return os.path.join(root, "ds")


def _run(args: argparse.Namespace, dataset_dir: str, strategy: str, workers: int) -> dict:
    from optfusion_tf.cli.local_workers import run_local_workers

    command = [
        sys.executable, os.path.abspath(__file__), f"--dataset_dir={dataset_dir}",
        f"--strategy={strategy}", f"--batch_size={args.batch_size}", f"--emb_dim={args.emb_dim}",
        f"--n={args.n}", f"--steps={args.steps}", f"--warmup={args.warmup}",
        f"--comm_reps={args.comm_reps}",
    ]
    if strategy == "none":
        done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
        out, ok = done.stdout + done.stderr, done.returncode == 0
    else:
        buffer = io.StringIO()
        result = run_local_workers(
            command, workers, threads_per_worker=args.threads_per_worker, timeout_s=1200,
            output=buffer,
        )
        out, ok = buffer.getvalue(), result.ok
    lines = [line for line in out.splitlines() if RESULT_TAG in line]
    if not ok or not lines:
        raise RuntimeError(f"{strategy} x{workers} failed:\n{out[-4000:]}")
    return json.loads(lines[-1].split(RESULT_TAG, 1)[1])


def main() -> None:
    args = parse_args()
    if args.strategy is not None:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="distributed_bench_") as root:
        print(f"preprocessing {args.rows} synthetic rows ...", flush=True)
        dataset_dir = _prepare_data(root, args.rows)
        figures = {}
        for name, strategy, workers in (
            ("none", "none", 1), ("workers_1", "multi_worker", 1), ("workers_2", "multi_worker", 2)
        ):
            print(f"{name}: {args.warmup} + {args.steps} steps of batch {args.batch_size} ...", flush=True)
            figures[name] = _run(args, dataset_dir, strategy, workers)
            print(f"  {figures[name]['samples_per_s']:,.0f} samples/s, "
                  f"{figures[name]['step_ms']:.1f} ms/step", flush=True)
    comm = figures["workers_2"]["comm_ms_per_step"]
    summary = {
        "rows": args.rows,
        "batch_size": args.batch_size,
        "emb_dim": args.emb_dim,
        "n": args.n,
        "steps": args.steps,
        "cpu_count": os.cpu_count(),
        "threads_per_worker": args.threads_per_worker,
        "samples_per_s": {name: round(f["samples_per_s"], 1) for name, f in figures.items()},
        "step_ms": {name: round(f["step_ms"], 2) for name, f in figures.items()},
        "speedup_2_vs_1_workers": round(
            figures["workers_2"]["samples_per_s"] / figures["workers_1"]["samples_per_s"], 3
        ),
        "comm_ms_per_step_2_workers": {k: round(v, 2) for k, v in comm.items()},
        "comm_share_of_step_2_workers": round(comm["both"] / figures["workers_2"]["step_ms"], 3),
    }
    print(f"2 workers vs 1: x{summary['speedup_2_vs_1_workers']}; communication "
          f"{comm['both']:.1f} ms of a {figures['workers_2']['step_ms']:.1f} ms step "
          f"(dense {comm['dense']:.1f} ms, sparse {comm['sparse']:.1f} ms)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
