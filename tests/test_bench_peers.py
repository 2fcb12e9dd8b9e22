"""bench/peers.py: a missing `peers` extra and a failing DeepCTR run are reported, not hidden."""

from __future__ import annotations

import importlib.util
import json
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


def test_a_peer_patience_deepctr_peer_refuses_is_refused_at_parse(dataset_dir, tmp_path):
    # Issue 24, item 6: --peer_patience=0 was accepted here, refused by deepctr_peer.py after
    # our own runs, and the bench exited 1 at the end.
    proc = _run(f"--dataset_dir={dataset_dir}", "--peer_patience=0", f"--workdir={tmp_path / 'o'}")
    assert proc.returncode == 1 and "--peer_patience=0: 0 is not a positive integer" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_directory_without_stats_is_a_usage_error(tmp_path):
    proc = _run(f"--dataset_dir={tmp_path}", "--peers=")
    assert proc.returncode != 0 and "no stats.json" in proc.stderr


def test_a_directory_without_a_test_split_is_a_usage_error_naming_it(tmp_path):
    from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
    from optfusion_tf.demo.demo_data import write_demo_criteo

    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 300, seed=1)
    preprocess("criteo", raw, str(tmp_path / "no_test"),
               PreprocessOptions(workers=0, ratio=(0.8, 0.2, 0.0)))
    proc = _run(f"--dataset_dir={tmp_path / 'no_test'}", "--peers=", f"--workdir={tmp_path / 'o'}")
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert f"--dataset_dir={tmp_path / 'no_test'}: no test split" in proc.stderr
    assert not (tmp_path / "o" / "runs").exists()


def test_both_sides_stop_by_the_same_rule_and_the_curves_are_drawn(dataset_dir, tmp_path):
    if any(importlib.util.find_spec(name) is None for name in ("deepctr", "tf_keras")):
        pytest.skip('needs the peers extra: pip install -e ".[peers]"')
    proc = _run(f"--dataset_dir={dataset_dir}", "--peers=dcn", "--ours=parallel", "--seeds=1",
                "--emb_dim=2", "--batch_size=8", f"--workdir={tmp_path}",
                "--deep_dtype=mixed_bfloat16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])["ds"]
    # --deep_dtype reaches our runs (DeepCTR's stay float32).
    assert report["deep_dtype"] == "mixed_bfloat16"
    flag_files = list(tmp_path.rglob("flags.txt"))
    assert flag_files and all("--deep_dtype=mixed_bfloat16" in f.read_text() for f in flag_files)
    from optfusion_tf.data.stats import DatasetStats

    steps = -(-DatasetStats.load(dataset_dir).rows["train"] // 8)
    # 128 steps at the full rate are 384 at the default rate's floor of 1/3: 7 epochs of 55-64
    # steps, more than the rule's 2 (more steps an epoch, fewer epochs to wait: the suite's time).
    assert 55 <= steps <= 64
    patience = -(-128 * 3 // steps)
    assert patience > 2
    assert report["patience_epochs"] == {"2022": patience}  # the directory's split seed
    runs = {model: r["runs"][0] for model, r in report["models"].items()}
    for model, run in runs.items():
        curve = run["val_auc_curve"]
        assert run["best_epoch"] == 1 + max(range(len(curve)), key=curve.__getitem__), model
        assert len(curve) == run["best_epoch"] + patience or len(curve) == 100, model
    png = tmp_path / "ds_val_auc.png"
    assert report["curves_png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    auc_png = tmp_path / "ds_test_auc.png"  # issue 26, item 4
    assert report["test_auc_png"] == str(auc_png) and auc_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_frappe_is_the_csv2tf_split_of_the_shared_file(tmp_path):
    frappe = REPO_ROOT.parent / "shared" / "data" / "frappe.csv"
    if not frappe.is_file():
        pytest.skip(f"{frappe} not found (../shared is not beside this clone)")
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import bench_data
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    (data,) = bench_data.prepare(["frappe"], str(tmp_path), 4096)
    from optfusion_tf.data.stats import DatasetStats

    stats = DatasetStats.load(data.path)
    # csv2TF --dataset=frappe.csv --label_col=label --categorical_cols=<10 fields>
    # --threshold=2 --seed=2022 writes these (the rows of issue 23's table).
    assert data.batch_size == 4096 and stats.num_fields == 10
    assert stats.rows == {"train": 69349, "validation": 8580, "test": 8653}
    assert stats.feature_num == 5234


def test_split_seeds_pool_every_split_and_each_is_its_own_split(tmp_path):
    # Issue 23: on the 6,400-row samples one test split of ~800 rows carries an AUC noise that
    # no number of training seeds averages out; --split_seeds re-splits the same raw rows.
    proc = _run("--datasets=synthetic_600", "--split_seeds=2022,7", "--peers=", "--ours=parallel",
                "--seeds=1", "--emb_dim=2", "--batch_size=8", f"--workdir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])["synthetic_600"]
    assert report["split_seeds"] == [2022, 7]
    runs = report["models"]["ours: parallel preset"]["runs"]
    assert [(r["seed"], r["split_seed"]) for r in runs] == [(1, 2022), (1, 7)]
    assert "1 seeds x 2 splits" in proc.stdout
    from optfusion_tf.data.stats import DatasetStats

    first, second = (DatasetStats.load(str(tmp_path / d))
                     for d in ("synthetic_600", "synthetic_600_split7"))
    assert (first.seed, second.seed) == (2022, 7)
    assert sum(first.rows.values()) == sum(second.rows.values())
    assert first.rows != second.rows or first.positives != second.positives


@pytest.mark.parametrize("flag, message", [
    ("--split_seeds=1,x", "--split_seeds: expected distinct non-negative integers"),
    ("--split_seeds=3,3", "--split_seeds: expected distinct non-negative integers"),
])
def test_bad_split_seeds_are_refused_at_parse(flag, message, tmp_path):
    proc = _run("--datasets=synthetic_600", flag, "--peers=", f"--workdir={tmp_path / 'o'}")
    assert proc.returncode == 1 and message in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("script", ["peers.py", "recipe.py"])
def test_an_unknown_dataset_name_is_refused_at_parse_naming_it(script, tmp_path):
    # It was a traceback (ValueError from bench_data.prepare) after the flags were accepted.
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), "--datasets=frappe,criteo,synthetic_0",
         f"--workdir={tmp_path / 'o'}"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--datasets: unknown dataset 'criteo', 'synthetic_0'; expected frappe" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_dataset_names():
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import bench_data
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    for name in ("frappe", "criteo_sample", "avazu_sample", "synthetic_600", "synthetic_9_sorted"):
        assert bench_data.is_dataset_name(name), name
    for name in ("criteo", "synthetic_", "synthetic_0", "synthetic_1e5", "synthetic_5_shuffled",
                 "Frappe", ""):
        assert not bench_data.is_dataset_name(name), name


def test_split_seeds_with_a_dataset_dir_is_refused(dataset_dir, tmp_path):
    proc = _run(f"--dataset_dir={dataset_dir}", "--split_seeds=1", "--peers=",
                f"--workdir={tmp_path / 'o'}")
    assert proc.returncode != 0 and "--split_seeds needs --datasets" in proc.stderr
    assert not (tmp_path / "o" / "runs").exists()


def test_the_paired_gap_matches_runs_by_split_and_seed():
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import peers
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    ours = [{"split_seed": 1, "seed": 1, "test_auc": 0.70}, {"split_seed": 2, "seed": 1,
                                                             "test_auc": 0.80}]
    rival = [{"split_seed": 2, "seed": 1, "test_auc": 0.78}, {"split_seed": 1, "seed": 1,
                                                              "test_auc": 0.71}]
    gap = peers.paired_gap(ours, rival)
    # Pairs (1, 1): -0.01 and (2, 1): +0.02; the unpaired means differ by +0.005 too, but the
    # stds of the means (0.05, 0.035) hide it where the pairs' std (0.015) does not.
    assert gap["pairs"] == 2 and gap["at_or_above"] == 1
    assert gap["mean"] == pytest.approx(0.005) and gap["std"] == pytest.approx(0.015)
