"""Preprocessing and reading throughput on synthetic Criteo-format files (issue 2's figures).

    python bench/preprocess_bench.py [--sizes=1000000,4000000] [--beam_sizes=1000000]
        [--workdir=bench/out] [--workers=N]

For each size: writes (once, cached in --workdir) a demo Criteo file of that many rows, runs
dataprocess/criteo2TF.py on it as a subprocess and reports end-to-end rows/s (process start to
exit: both passes, TFRecords written), the peak RSS of the whole process tree (main process +
workers, sampled every 20 ms with psutil) and the CPU time used (main process + workers; on a
shared machine, CPU time per row is the figure that does not depend on the load). Then it
reads the largest dataset's training split with make_dataset at batch 4096, shuffled and not,
and reports examples/s. First it measures the fixed cost (`--help`, and a 1,000-row file end to
end). For each of --beam_sizes it runs the one-machine path and `--runner=beam` (Beam's
DirectRunner, --workers processes) on the same file, one after the other, and reports both and
Beam's rows/s and peak RSS as ratios of the one-machine path's. The last line printed is one
JSON object with every figure, the machine's load average included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import psutil  # noqa: E402
from absl import app, flags  # noqa: E402

from optfusion_tf.demo.demo_data import write_demo_criteo  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1000000", "4000000"], "Rows of the synthetic files.")
flags.DEFINE_string("workdir", "bench/out", "Where raw files and datasets go (git-ignored).")
flags.DEFINE_integer("workers", None, "Passed to criteo2TF --workers (default: its default).")
flags.DEFINE_integer("seed", 7, "Seed of the synthetic data.")
flags.DEFINE_list(
    "beam_sizes",
    ["1000000"],
    "Rows of the files also preprocessed with --runner=beam (Beam's DirectRunner, --workers "
    "processes), next to the one-machine path on the same file (empty: none; skipped with a "
    "message without the beam extra).",
)
flags.DEFINE_integer(
    "reader_batches", 400, "Batches of 4096 read per reader measurement (after 20 warm-up)."
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def preprocess_once(raw: str, out: str, extra: Sequence[str] = ()) -> dict[str, float]:
    """Runs criteo2TF on `raw` (with the flags `extra`); returns wall seconds, CPU seconds (the
    process and its workers) and peak tree RSS (MiB)."""
    cmd = [
        sys.executable,
        os.path.join(REPO, "dataprocess", "criteo2TF.py"),
        f"--dataset={raw}",
        f"--record={out}",
        "--overwrite",
        *extra,
    ]
    if FLAGS.workers is not None:
        cmd.append(f"--workers={FLAGS.workers}")
    start, cpu = time.monotonic(), _children_cpu()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, _tree_rss(watched))
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.monotonic() - start
    if proc.returncode:
        raise RuntimeError(f"criteo2TF failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    return {"seconds": wall, "cpu_seconds": _children_cpu() - cpu, "peak_rss_mib": peak / 2**20}


def startup_seconds(workdir: str, repeats: int = 3) -> dict[str, float]:
    """criteo2TF's fixed cost: wall seconds (median of `repeats`) of `--help` and of the whole
    run on a 1,000-row file (both passes, output written). Neither imports TensorFlow
    (tests/test_data_cli.py::test_preprocessing_never_imports_tensorflow)."""
    raw = os.path.join(workdir, f"demo_criteo_1000_{FLAGS.seed}.txt")
    if not os.path.exists(raw):
        write_demo_criteo(raw, 1000, FLAGS.seed)
    script = os.path.join(REPO, "dataprocess", "criteo2TF.py")
    commands = {
        "help": [sys.executable, script, "--help"],
        "rows_1000": [sys.executable, script, f"--dataset={raw}",
                      f"--record={os.path.join(workdir, 'criteo_1000')}", "--overwrite"],
    }
    result = {}
    for name, cmd in commands.items():
        times = []
        for _ in range(repeats):
            start = time.monotonic()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times.append(time.monotonic() - start)
        result[f"{name}_seconds"] = round(statistics.median(times), 3)
    return result


def reader_throughput(dataset_dir: str, shuffle: bool) -> float:
    """Examples/s of make_dataset(train, batch 4096) after a warm-up."""
    from optfusion_tf.data.reader import make_dataset  # TensorFlow only from here on

    ds = make_dataset(dataset_dir, "train", 4096, shuffle=shuffle, seed=1, repeat=True)
    it = iter(ds)
    for _ in range(20):
        next(it)
    start = time.monotonic()
    n = 0
    for _ in range(FLAGS.reader_batches):
        x, _ = next(it)
        n += int(x.shape[0])
    return n / (time.monotonic() - start)


def raw_file(size: int) -> str:
    """The cached synthetic Criteo file of `size` rows (written on first use)."""
    raw = os.path.join(FLAGS.workdir, f"demo_criteo_{size}_{FLAGS.seed}.txt")
    if not os.path.exists(raw):
        print(f"writing {raw} ...", flush=True)
        write_demo_criteo(raw + ".partial", size, FLAGS.seed)
        os.replace(raw + ".partial", raw)
    return raw


def measured(run: dict[str, float], size: int) -> dict[str, float]:
    """`run` with rows/s and CPU microseconds per row, rounded."""
    run = {**run, "rows_per_s": size / run["seconds"],
           "cpu_us_per_row": run["cpu_seconds"] / size * 1e6}
    return {k: round(v, 2) for k, v in run.items()}


def beam_against_local(size: int) -> dict[str, object]:
    """--runner=beam and the one-machine path on the same `size`-row file, one after the
    other: both figures, and Beam's rows/s and peak RSS as ratios of the one-machine path's."""
    if importlib.util.find_spec("apache_beam") is None:
        print('beam: skipped, the beam extra is not installed (pip install -e ".[beam]")')
        return {"skipped": "apache-beam not installed"}
    raw = raw_file(size)
    local = measured(preprocess_once(raw, os.path.join(FLAGS.workdir, f"criteo_{size}")), size)
    beam = measured(preprocess_once(raw, os.path.join(FLAGS.workdir, f"criteo_beam_{size}"),
                                    ["--runner=beam"]), size)
    ratios = {
        "rows_per_s_ratio": round(beam["rows_per_s"] / local["rows_per_s"], 3),
        "peak_rss_ratio": round(beam["peak_rss_mib"] / local["peak_rss_mib"], 3),
    }
    print(f"{size:,} rows with --runner=beam (DirectRunner): {beam['rows_per_s']:,.0f} rows/s, "
          f"peak RSS {beam['peak_rss_mib']:.0f} MiB, {beam['cpu_us_per_row']:.1f} us CPU per row; "
          f"one machine {local['rows_per_s']:,.0f} rows/s, {local['peak_rss_mib']:.0f} MiB, "
          f"{local['cpu_us_per_row']:.1f} us CPU per row", flush=True)
    return {"beam": beam, "local": local, **ratios}


def main(argv: Sequence[str]) -> None:
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    result: dict[str, object] = {
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
    }
    result["startup"] = startup_seconds(FLAGS.workdir)
    print(f"start-up: --help {result['startup']['help_seconds']:.2f} s, a 1,000-row file "
          f"{result['startup']['rows_1000_seconds']:.2f} s end to end", flush=True)
    largest = None
    for size in sorted(int(s) for s in FLAGS.sizes):
        out = os.path.join(FLAGS.workdir, f"criteo_{size}")
        run = measured(preprocess_once(raw_file(size), out), size)
        result[f"preprocess_{size}"] = run
        print(
            f"{size:,} rows: {run['seconds']:.1f} s, {run['rows_per_s']:,.0f} rows/s, "
            f"peak RSS {run['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        largest = out
    for size in sorted(int(s) for s in FLAGS.beam_sizes):
        result[f"beam_{size}"] = beam_against_local(size)
    sizes = sorted(int(s) for s in FLAGS.sizes)
    if len(sizes) >= 2:
        small, big = result[f"preprocess_{sizes[0]}"], result[f"preprocess_{sizes[-1]}"]
        ratio = big["peak_rss_mib"] / small["peak_rss_mib"]  # type: ignore[index]
        result["peak_rss_ratio"] = round(ratio, 3)
    for shuffle in (False, True):
        rate = reader_throughput(largest, shuffle)
        result[f"reader_examples_per_s_{'shuffled' if shuffle else 'in_order'}"] = round(rate)
        print(f"reader (batch 4096, shuffle={shuffle}): {rate:,.0f} examples/s", flush=True)
    result["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
