"""Runs one command as N multi_worker processes on this machine (tools/local_workers.py).

    python tools/local_workers.py --workers=2 -- \
        python search.py --dataset_dir=data/demo --strategy=multi_worker

Each process gets a TF_CONFIG naming N workers on 127.0.0.1 (free ports) and its own task
index; their output is interleaved line by line, prefixed with `[worker i]`. When a worker exits
with an error, the others get `--grace_s` seconds to stop on their own (TensorFlow detects the
lost peer in about 10 s) and are then killed; the launcher exits with status 1 and names the
worker that failed first. `--timeout_s` bounds the whole run the same way.

For trying multi-worker training on one machine and for our tests and benchmark; on a real
cluster, start the same command on each machine with its own TF_CONFIG (docs/distribution.md,
"Several machines").
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Sequence

from absl import app, flags

from optfusion_tf.cli.flag_help import show_flags_in_help

POLL_S = 0.2


@dataclasses.dataclass(frozen=True)
class WorkersResult:
    """How a local multi-worker run ended.

    Attributes:
        returncodes: each worker's exit status (negative: killed by that signal).
        failed: the first worker that exited non-zero, or None.
        timed_out: the run was stopped by the timeout.
        message: one line saying how it ended.
    """

    returncodes: list[int]
    failed: int | None
    timed_out: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.failed is None and not self.timed_out


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """TF_CONFIG of worker `index` in a cluster of workers on 127.0.0.1 at `ports`."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def run_local_workers(
    command: Sequence[str],
    workers: int,
    *,
    threads_per_worker: int = 0,
    grace_s: float = 60.0,
    timeout_s: float | None = None,
    output: IO[str] | None = None,
    env: dict[str, str] | None = None,
) -> WorkersResult:
    """Runs `command` as `workers` processes of one multi-worker cluster and waits for them.

    Args:
        command: the program and its arguments (the same for every worker).
        workers: number of processes, >= 1.
        threads_per_worker: if > 0, TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS for each
            (so that N workers do not oversubscribe the cores).
        grace_s: after a worker fails, how long the others may take to stop before being killed.
        timeout_s: bound on the whole run (None: none).
        output: where the prefixed lines go (default stdout).
        env: base environment (default os.environ).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1. Received: {workers}")
    if not command:
        raise ValueError("Expected a command to run. Received an empty command.")
    output = sys.stdout if output is None else output
    ports = free_ports(workers)
    lock = threading.Lock()
    procs, pumps = [], []
    for index in range(workers):
        worker_env = {**(os.environ if env is None else env), "TF_CONFIG": tf_config(ports, index)}
        if threads_per_worker > 0:
            worker_env["TF_NUM_INTRAOP_THREADS"] = str(threads_per_worker)
            worker_env["TF_NUM_INTEROP_THREADS"] = str(threads_per_worker)
        proc = subprocess.Popen(
            list(command), env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace",
        )
        procs.append(proc)
        pump = threading.Thread(target=_pump, args=(proc.stdout, f"[worker {index}] ", output, lock))
        pump.start()
        pumps.append(pump)

    started = time.monotonic()
    failed, failed_at, timed_out = None, None, False
    while any(p.poll() is None for p in procs):
        now = time.monotonic()
        if failed is None:
            bad = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if bad:
                failed, failed_at = bad[0], now
        if failed is not None and now - failed_at > grace_s:
            break
        if timeout_s is not None and now - started > timeout_s:
            timed_out = True
            break
        time.sleep(POLL_S)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # TensorFlow ignores SIGTERM while it waits
    codes = [p.wait() for p in procs]
    for pump in pumps:
        pump.join()
    if failed is None:
        bad = [i for i, code in enumerate(codes) if code != 0 and not timed_out]
        failed = bad[0] if bad else None
    if timed_out:
        message = f"stopped after the {timeout_s:.0f} s timeout; exit statuses {codes}"
    elif failed is not None:
        message = (
            f"worker {failed} failed with exit status {codes[failed]} (see its [worker {failed}] "
            f"lines); exit statuses {codes}"
        )
    else:
        message = f"all {workers} workers finished"
    return WorkersResult(codes, failed, timed_out, message)


def _pump(stream: IO[str], prefix: str, output: IO[str], lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            output.write(prefix + line)
            output.flush()


FLAGS = flags.FLAGS


def main() -> None:
    """Console entry point: `optfusion-local-workers --workers=N -- command ...`."""
    flags.DEFINE_integer("workers", 2, "Number of worker processes.", lower_bound=1)
    flags.DEFINE_integer(
        "threads_per_worker", 0,
        "TensorFlow intra-/inter-op threads per worker (0: TensorFlow's default, all cores).",
        lower_bound=0,
    )
    flags.DEFINE_float(
        "grace_s", 60.0, "After a worker fails, seconds before the others are killed.",
        lower_bound=0.0,
    )
    flags.DEFINE_float("timeout_s", None, "Bound on the whole run, in seconds.", lower_bound=1.0)

    def run(argv: Sequence[str]) -> None:
        command = list(argv[1:])
        if not command:
            raise app.UsageError(
                "Expected the command after --, e.g. `-- python search.py --dataset_dir=... "
                "--strategy=multi_worker`."
            )
        result = run_local_workers(
            command, FLAGS.workers, threads_per_worker=FLAGS.threads_per_worker,
            grace_s=FLAGS.grace_s, timeout_s=FLAGS.timeout_s,
        )
        print(f"local_workers: {result.message}", file=sys.stderr if not result.ok else sys.stdout)
        sys.exit(0 if result.ok else 1)

    show_flags_in_help(sys.modules[__name__])
    app.run(run)
