"""An ordered, bounded process pool: the CPU-heavy per-block work of both passes runs here.

pandas' C parser and the numpy encoders hold the GIL for most of their work, so throughput on
several cores needs processes. Results come back in submission order (the output must not
depend on the number of workers) and at most `2 * workers` blocks are in flight, so memory
stays bounded however long the input is. workers=0 runs everything in the calling process.

Start method: `fork` while the caller is single-threaded and has not imported TensorFlow
(the CLIs; fast, and the caller's __main__ is not re-imported), else `forkserver` (never fork
a process with TensorFlow threads). With forkserver or spawn the caller's main module is
imported again in the workers, so a script calling `preprocess` must guard its entry point with
`if __name__ == "__main__":` (or pass workers=0), as for any multiprocessing code.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Worker processes used by default: one per CPU, at most MAX_DEFAULT_WORKERS."""
    return min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)


PARENT_CHECK_SECONDS = 0.5


def _init_worker(owner: int) -> None:
    """Worker start: ignore Ctrl-C (it reaches the whole process group; the caller handles it
    and stops the workers), and exit when the process that owns the pool is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(owner, os.getppid()), daemon=True).start()


def _exit_with(owner: int, parent: int) -> None:
    """Ends this worker once `owner` (the pool's process) or its own parent process is gone: a
    SIGKILLed CLI used to leave its workers behind, reparented and blocked in a pipe write,
    deaf to SIGTERM. A thread still runs while the main thread is blocked in that write."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid was reused by another user's process
            os._exit(1)
        if os.getppid() != parent:
            os._exit(1)


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and "tensorflow" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class OrderedPool:
    """Maps a picklable top-level function over items in worker processes, in order.

    Args:
        workers: worker processes; 0 runs inline in this process.
        preload: modules the workers import once, before the first task.
    """

    def __init__(self, workers: int, preload: tuple[str, ...] = ()):
        if workers < 0:
            raise ValueError(f"workers must be >= 0. Received: {workers}")
        self.workers = workers
        self._executor = None
        if workers:
            context = multiprocessing.get_context(_start_method())
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload(list(preload))
            self._executor = concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
            )

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Yields fn(item) for every item, in order, keeping at most 2 * workers in flight."""
        if self._executor is None:
            yield from map(fn, items)
            return
        pending: collections.deque[concurrent.futures.Future] = collections.deque()
        for item in items:
            pending.append(self._executor.submit(fn, item))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        """Stops the workers (cancelling queued work)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "OrderedPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
