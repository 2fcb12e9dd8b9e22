"""The preprocessing CLIs as users run them (subprocesses): flags, exit codes, signals."""

import glob
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from optfusion_tf.data.errors import DataError
from optfusion_tf.data.stats import DatasetStats

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def _run(script, *args, cwd, **kwargs):
    cmd = [sys.executable, str(REPO / "dataprocess" / script), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)


def test_criteo2tf_default_record_dir(tmp_path):
    done = _run(
        "criteo2TF.py",
        f"--dataset={FIXTURES / 'criteo_small.txt'}",
        "--threshold=1",
        "--workers=0",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    stats = DatasetStats.load(str(tmp_path / "tfrecords" / "criteo_1"))
    assert stats.threshold == 1 and sum(stats.rows.values()) == 10
    again = _run(
        "criteo2TF.py", f"--dataset={FIXTURES / 'criteo_small.txt'}", "--threshold=1", cwd=tmp_path
    )
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr


@pytest.mark.parametrize("script", ["criteo2TF.py", "avazu2TF.py", "kdd2TF.py", "csv2TF.py"])
def test_preprocessing_never_imports_tensorflow(tmp_path, script):
    """Issue 29 item 2: --help and a small file's run pay no TensorFlow import (-X importtime
    lists every module the process and its workers import)."""
    help_run = subprocess.run(
        [sys.executable, "-X", "importtime", str(REPO / "dataprocess" / script), "--help"],
        capture_output=True, text=True, timeout=300,
    )
    assert "--dataset" in help_run.stdout and "import time:" in help_run.stderr  # absl: exit 1
    assert not [line for line in help_run.stderr.splitlines() if line.endswith("| tensorflow")]
    if script == "criteo2TF.py":
        cmd = [sys.executable, "-X", "importtime", str(REPO / "dataprocess" / script),
               f"--dataset={FIXTURES / 'criteo_small.txt'}", f"--record={tmp_path / 'out'}",
               "--threshold=1"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert not [line for line in run.stderr.splitlines() if line.endswith("| tensorflow")]


def test_csv2tf_flags(tmp_path):
    done = _run(
        "csv2TF.py",
        f"--dataset={FIXTURES / 'ratings_small.csv'}",
        "--label_col=rating",
        "--categorical_cols=0,item",
        "--numeric_cols=price",
        "--numeric_rule=identity",
        "--label_positive_if=>=4",
        "--name=ratings",
        "--ratio=1,0,0",
        "--vocab_scope=all",
        "--compression=gzip",
        f"--record={tmp_path / 'r'}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    stats = DatasetStats.load(str(tmp_path / "r"))
    assert (
        stats.dataset == "ratings"
        and stats.field_names == ["user", "item", "price"]
        and stats.compression == "gzip"
    )
    assert stats.positives["train"] == 3


@pytest.mark.parametrize("script", ["avazu2TF.py", "kdd2TF.py"])
def test_error_mode_names_file_line_and_reason(tmp_path, script):
    source = FIXTURES / ("avazu_small.csv" if script == "avazu2TF.py" else "kdd12_small.txt")
    lines = source.read_text().splitlines()
    lines[3] = (
        lines[3].replace(",14102523,", ",1410x523,")
        if script == "avazu2TF.py"
        else "-1" + lines[3][1:]
    )
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(lines) + "\n")
    done = _run(
        script,
        f"--dataset={raw}",
        "--on_bad_row=error",
        f"--record={tmp_path / 'out'}",
        cwd=tmp_path,
    )
    reason = "bad_hour" if script == "avazu2TF.py" else "bad_label"
    assert done.returncode == 1 and f"raw.txt:4: bad row ({reason})" in done.stderr, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["raw.txt"]


def test_bad_flags_exit_nonzero(tmp_path):
    done = _run(
        "kdd2TF.py", f"--dataset={FIXTURES / 'kdd12_small.txt'}", "--ratio=0.5,0.1", cwd=tmp_path
    )
    assert done.returncode != 0 and "--ratio" in done.stderr
    done = _run(
        "kdd2TF.py", f"--dataset={FIXTURES / 'kdd12_small.txt'}", "--compression=zip", cwd=tmp_path
    )
    assert done.returncode != 0 and "compression" in done.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("flag,message", [
    ("--label_positive_if=>=abc", "label rule must be a comparison with a number"),
    ('--delimiter="', "--delimiter must be one printable ASCII character"),
    ("--delimiter=\n", "--delimiter must be one printable ASCII character"),
    ("--delimiter=\u00e9", "--delimiter must be one printable ASCII character"),
    ("--ratio=0.5,0.1", "--ratio must be three numbers"),
    ("--seed=-1", "--seed=-1: -1 is not a non-negative integer"),  # issue 24, item 6
])
def test_csv2tf_bad_flags_are_one_line_errors(tmp_path, flag, message):
    """Issue 12, item 14: no traceback, no whole --help; exit 1, nothing written."""
    done = _run("csv2TF.py", f"--dataset={FIXTURES / 'ratings_small.csv'}", "--label_col=rating",
                flag, cwd=tmp_path)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "--helpfull" in done.stderr
    assert "USAGE" not in done.stderr and os.listdir(tmp_path) == []


def test_a_label_rule_every_row_meets_is_warned_about(tmp_path):
    done = _run("csv2TF.py", f"--dataset={FIXTURES / 'ratings_small.csv'}", "--label_col=rating",
                "--categorical_cols=user", "--label_positive_if=>-1", "--ratio=1,0,0",
                f"--record={tmp_path / 'r'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "every one of the 6 train rows has label 1" in done.stderr, done.stderr


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    parents = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = pathlib.Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.split("/")[2])] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped)."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# Loaded into the CLI's processes (PYTHONPATH): after pass 1's first progress line the main
# process says so on stderr and waits there, so the signal always lands mid-run (without it
# a run could finish before the signal, or the test wait on a line that never came).
# The signal is held back while the line is written, so it never interrupts the print itself.
PAUSE_IN_PASS_1 = """
import signal, sys, time
from optfusion_tf.data import progress

_add = progress.Progress.add

def add(self, n):
    logged = self.done + n >= self._next
    _add(self, n)
    if logged and self.what.startswith("pass 1"):
        held = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        print("PAUSED IN PASS 1", file=sys.stderr, flush=True)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        time.sleep(600)

progress.Progress.add = add
"""


@pytest.mark.parametrize(
    "sig, workers",
    [(signal.SIGTERM, 2), (signal.SIGINT, 0), (signal.SIGKILL, 0), (signal.SIGKILL, 2)],
)
def test_killed_run_leaves_no_complete_directory(tmp_path, sig, workers):
    raw = tmp_path / "raw.txt"
    raw.write_text((FIXTURES / "criteo_small.txt").read_text() * 40_000)  # 400k rows
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(PAUSE_IN_PASS_1)
    cmd = [
        sys.executable,
        str(REPO / "dataprocess" / "criteo2TF.py"),
        f"--dataset={raw}",
        f"--record={tmp_path / 'out'}",
        f"--workers={workers}",
        "--log_every=20000",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(REPO)])}
    # Ctrl-C as from a terminal: a test run started in the background (nohup, `cmd &`, some CI
    # runners) has SIGINT ignored, a child inherits that, and Python then keeps ignoring it.
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in proc.stderr:  # pass 1 is under way, most of the file still ahead
        seen.append(line)
        if "PAUSED IN PASS 1" in line:
            break
    else:
        raise AssertionError(f"criteo2TF ended before pass 1's first progress line:\n{seen}")
    workers_before = _descendants(proc.pid)
    assert len(workers_before) >= workers
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    # Issue 12, item 4: no worker outlives its CLI, a SIGKILLed one included.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(map(_alive, workers_before)):
        time.sleep(0.2)
    assert not [pid for pid in workers_before if _alive(pid)], "orphaned workers"
    assert not (tmp_path / "out").exists()
    leftovers = glob.glob(str(tmp_path / ".out.tmp-*"))
    if sig == signal.SIGKILL:  # nothing can clean up; what is left never looks complete
        for path in leftovers:
            with pytest.raises(DataError, match="incomplete"):
                DatasetStats.load(path)
    else:
        assert leftovers == []
