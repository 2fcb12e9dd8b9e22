"""bench/train_bench.py: the DeepCTR DCN step next to ours, and the validation pass (issue 29)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

TRAIN_BENCH = REPO_ROOT / "bench" / "train_bench.py"
SMALL = ["--quick", "--shapes=frappe", "--jit=off", "--rounds=1", "--steps_per_round=1"]


def _run(*args: str, pythonpath: str | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    paths = [p for p in (pythonpath, str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p]
    proc = subprocess.run(
        [sys.executable, str(TRAIN_BENCH), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.pathsep.join(paths)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(proc.stdout.splitlines()[-1])


def test_without_the_peers_extra_dcn_is_skipped_with_the_install_command(tmp_path):
    # A sitecustomize that makes deepctr and tf_keras look uninstalled to importlib.
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.util\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a, **k: (\n"
        "    None if name in ('deepctr', 'tf_keras') else _find(name, *a, **k))\n"
    )
    proc, result = _run(*SMALL, "--parts=dcn", pythonpath=str(tmp_path))
    assert 'pip install -e ".[peers]"' in proc.stdout and "DeepCTR DCN skipped" in proc.stdout
    assert result["parts"] == ["hard"]
    assert "hard" in result["shapes"]["frappe"] and "dcn" not in result["shapes"]["frappe"]
    assert result["dcn_ratios"] == {} and "parallel_ge_1.5x_dcn" not in result["targets"]


def test_dcn_step_ratios_and_the_validation_pass():
    # Not imported here: `import deepctr` starts a thread that calls PyPI.
    if any(importlib.util.find_spec(name) is None for name in ("deepctr", "tf_keras")):
        pytest.skip('needs the peers extra: pip install -e ".[peers]"')
    _, result = _run(*SMALL, "--parts=dcn,validation", "--validation_shape=frappe")
    frappe = result["shapes"]["frappe"]
    assert frappe["dcn"]["model"] == "DCN" and frappe["dcn"]["steps_timed"] == 1
    assert frappe["dcn"]["settings"]["cross_num"] == 3
    assert frappe["dcn"]["settings"]["dnn_hidden_units"] == [100, 100, 100]
    ratio = frappe["hard"]["samples_per_second"] / frappe["dcn"]["samples_per_second"]
    assert result["dcn_ratios"]["frappe"]["hard_over_dcn"] == pytest.approx(ratio, rel=1e-2)
    assert isinstance(result["targets"]["parallel_ge_1.5x_dcn"]["frappe"], bool)
    # The same preset with bfloat16 deep blocks (--deep_dtype=mixed_bfloat16), in the same run.
    ratio = frappe["hard_bf16"]["samples_per_second"] / frappe["dcn"]["samples_per_second"]
    assert result["dcn_ratios"]["frappe"]["hard_bf16_over_dcn"] == pytest.approx(ratio, rel=1e-2)
    assert isinstance(result["targets"]["parallel_bf16_ge_1.5x_dcn"]["frappe"], bool)
    valid = result["validation_pass"]
    assert valid["rows"] == 100_000 and valid["exact_seconds"] > 0
    assert valid["keras_evaluate_seconds"] > 0
    # The same model on the same rows: the bucketed AUC approximates the exact one, and the
    # log losses agree.
    assert abs(valid["exact_auc"] - valid["keras_auc_200_thresholds"]) < 0.02
    assert valid["exact_logloss"] == pytest.approx(valid["keras_loss"], abs=1e-3)
