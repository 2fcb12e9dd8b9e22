"""bench/peers.py: a missing `peers` extra and a failing DeepCTR run are reported, not hidden."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, demo_dataset

PEERS = REPO_ROOT / "bench" / "peers.py"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PEERS), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> str:
    return demo_dataset(tmp_path_factory.mktemp("peers"), 600)


def test_without_the_extra_it_names_the_install_command(dataset_dir, tmp_path):
    # A sitecustomize that makes deepctr and tf_keras look uninstalled to importlib.
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.util\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a, **k: (\n"
        "    None if name in ('deepctr', 'tf_keras') else _find(name, *a, **k))\n"
    )
    proc = _run(f"--dataset_dir={dataset_dir}", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'pip install -e ".[peers]"' in proc.stderr and "deepctr" in proc.stderr


def test_a_deepctr_failure_is_reported_with_its_stderr(tmp_path):
    # Not imported here: `import deepctr` starts a thread that calls PyPI.
    if any(importlib.util.find_spec(name) is None for name in ("deepctr", "tf_keras")):
        pytest.skip('needs the peers extra: pip install -e ".[peers]"')
    # Every label 0: DeepCTR's worker refuses a split with one class (exit 2).
    raw = tmp_path / "raw.txt"
    fixture = (REPO_ROOT / "tests" / "fixtures" / "criteo_small.txt").read_text().splitlines()
    raw.write_text("".join("0" + line[1:] + "\n" for line in fixture * 30))
    from optfusion_tf.data.preprocess import PreprocessOptions, preprocess

    preprocess("criteo", str(raw), str(tmp_path / "ds"), PreprocessOptions(workers=0))
    proc = _run(f"--dataset_dir={tmp_path / 'ds'}", "--peers=dcn", "--ours=parallel",
                "--seeds=1", "--emb_dim=2", f"--workdir={tmp_path / 'out'}")
    assert proc.returncode == 1
    assert "DeepCTR dcn (seed 1)" in proc.stderr and "its stderr (tail)" in proc.stderr
    assert "single class" in proc.stderr.split("its stderr (tail)")[1], proc.stderr[-2000:]


def test_a_directory_without_stats_is_a_usage_error(tmp_path):
    proc = _run(f"--dataset_dir={tmp_path}", "--peers=")
    assert proc.returncode != 0 and "no stats.json" in proc.stderr
