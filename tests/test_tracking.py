"""optfusion_tf.training.tracking: results.csv appended whole under concurrency; HParams values."""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import multiprocessing
import threading

import pytest

from optfusion_tf.training.config import TrainingConfig
from optfusion_tf.training.tracking import (
    RESULT_COLUMNS,
    ResultsTableError,
    append_result,
    hparam_values,
)


def _append_many(path: str, writer: int, rows: int, start: multiprocessing.Barrier) -> None:
    start.wait()  # every writer's first row (the one that may write the header) at once
    for i in range(rows):
        # A long field, so that an interleaved write would show as a torn row.
        append_result(path, {"run": f"w{writer}/{i}", "dataset": "x" * 5000, "test_auc": 0.5 + i / 1000})


def test_concurrent_appends_give_whole_rows_and_one_header(tmp_path):
    path = str(tmp_path / "results.csv")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [ctx.Process(target=_append_many, args=(path, w, 30, start)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(RESULT_COLUMNS)
    body = rows[1:]
    assert len(body) == 120 and all(len(r) == len(RESULT_COLUMNS) for r in body)
    assert sorted(r[1] for r in body) == sorted(f"w{w}/{i}" for w in range(4) for i in range(30))
    assert all(r[4] == "x" * 5000 for r in body)


def test_an_append_waits_for_a_writer_that_holds_the_lock(tmp_path):
    path = tmp_path / "results.csv"
    append_result(str(path), {"run": "run-A"})
    with open(path, "a") as other:  # another run, in the middle of its append
        fcntl.flock(other, fcntl.LOCK_EX)
        waiting = threading.Thread(target=append_result, args=(str(path), {"run": "run-B"}))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive() and "run-B" not in path.read_text()
        other.write("third-party,row\n")
        other.flush()
    waiting.join(timeout=30)  # the lock went with the close
    assert not waiting.is_alive()
    assert path.read_text().splitlines()[-2:] == ["third-party,row", ",run-B" + "," * (len(RESULT_COLUMNS) - 2)]


def test_a_table_with_other_columns_is_left_alone_with_a_message(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("run,auc\nold,0.7\n")
    with pytest.raises(ResultsTableError, match=r"results.csv: its header is 'run,auc'"):
        append_result(str(path), {"run": "new"})
    assert path.read_text() == "run,auc\nold,0.7\n"
    with pytest.raises(ValueError, match="unknown columns"):
        append_result(str(tmp_path / "other.csv"), {"auc": 0.7})


def test_hparam_values_keep_what_the_dashboard_shows():
    config = dataclasses.replace(TrainingConfig(dataset_dir="d", run_dir="runs/x"), preset="parallel")
    values = hparam_values(config)
    assert values["preset"] == "parallel" and values["emb_dim"] == config.emb_dim
    assert "run_dir" not in values and "arch" not in values  # the directory; None
    assert all(isinstance(v, (bool, int, float, str)) for v in values.values())
