"""export_savedmodel's CLI and error paths: what is refused, with which message, leaving nothing."""

import os
import subprocess
import sys

import pytest
from absl import flags

from optfusion_tf.cli import export_savedmodel as cli
from optfusion_tf.export import savedmodel
from optfusion_tf.export.errors import ExportError
from optfusion_tf.export.savedmodel import export_savedmodel, next_version
from test_export_helpers import make_model, make_retrain_run, make_search_run, preprocess_sample

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def kdd(tmp_path_factory):
    """A tiny preprocessed dataset (the KDD12 sample) and a hard re-train run on it."""
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (they ship beside the repo, not in it)")
    root = tmp_path_factory.mktemp("kdd")
    stats = preprocess_sample("kdd12", SHARED_DATA / "kdd12_sample.txt", root / "kdd", ratio=(0.6, 0.2, 0.2), threshold=1)
    return stats, root / "kdd", make_retrain_run(root / "run", root / "kdd")


def _run_cli(*args):
    """cli.main with parsed flags (in-process); returns the exit status."""
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["export_savedmodel", *args])
    try:
        return cli.main(["export_savedmodel"])
    finally:
        flags.FLAGS.unparse_flags()


def _refused(match, *args, **kwargs):
    with pytest.raises(ExportError, match=match):
        export_savedmodel(*args, **kwargs)


def test_next_version(tmp_path):
    assert next_version(str(tmp_path / "absent")) == 1
    for name in ("1", "3", "10", ".11.tmp-abc", "notes", "7x"):
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 11


def test_missing_and_wrong_run_directories_are_refused(kdd, tmp_path):
    _, dataset_dir, _ = kdd
    export_dir = str(tmp_path / "export")
    _refused(r"--run_dir=.*absent: directory not found", str(tmp_path / "absent"), export_dir)
    (tmp_path / "empty").mkdir()
    _refused(r"no flags.txt, so not a run directory", str(tmp_path / "empty"), export_dir)
    search = make_search_run(tmp_path / "search", dataset_dir)
    _refused(r"a search run \(.*flags.txt has no --fusion\).*retrain.py --arch=.*search/arch.json", search, export_dir)
    assert not os.path.exists(export_dir)


def test_incomplete_runs_and_missing_datasets_are_refused(kdd, tmp_path):
    _, dataset_dir, _ = kdd
    export_dir = str(tmp_path / "export")
    unfinished = make_retrain_run(tmp_path / "unfinished", dataset_dir)
    os.remove(os.path.join(unfinished, "metrics.json"))
    _refused(r"no metrics.json, the run has not completed", unfinished, export_dir)
    no_model = make_retrain_run(tmp_path / "no_model", dataset_dir)
    os.remove(os.path.join(no_model, "model.keras"))
    _refused(r"no model.keras", no_model, export_dir)
    moved = make_retrain_run(tmp_path / "moved", dataset_dir)
    text = open(os.path.join(moved, "flags.txt")).read().replace(str(dataset_dir), str(tmp_path / "gone"))
    open(os.path.join(moved, "flags.txt"), "w").write(text)
    _refused(r"--dataset_dir of .*flags.txt: .*gone: dataset directory not found", moved, export_dir)
    assert not os.path.exists(export_dir)


def test_a_supernet_in_a_retrain_run_is_refused(kdd, tmp_path):
    stats, dataset_dir, _ = kdd
    run = make_retrain_run(tmp_path / "run", dataset_dir, model=make_model(stats, "search"))
    _refused(r"model.keras: a search supernet \(fusion='search'\)", run, str(tmp_path / "export"))
    assert not os.path.exists(tmp_path / "export")


def test_bad_names_and_existing_versions_are_refused(kdd, tmp_path):
    _, _, run = kdd
    export_dir = tmp_path / "export"
    _refused(r"--model_name='a/b': expected a plain directory name", run, str(export_dir), "a/b")
    _refused(r"--version=0: expected a positive integer", run, str(export_dir), version=0)
    (export_dir / "optfusion" / "4").mkdir(parents=True)
    (export_dir / "optfusion" / "4" / "keep").write_text("x")
    _refused(r"optfusion/4 already exists; versions are never overwritten.*next free one \(5\)", run, str(export_dir), version=4)
    assert os.listdir(export_dir / "optfusion" / "4") == ["keep"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _refused("--export_dir: .*a_file exists and is not a directory", run, str(a_file))
    (tmp_path / "e2").mkdir()
    (tmp_path / "e2" / "optfusion").write_text("x")
    _refused("--export_dir: .*optfusion exists and is not a directory", run, str(tmp_path / "e2"))


def test_a_failed_check_leaves_no_version_directory(kdd, tmp_path, monkeypatch):
    _, _, run = kdd

    def failing_check(*args):
        raise ExportError("check failed")

    monkeypatch.setattr(savedmodel, "_check", failing_check)
    (tmp_path / "export").mkdir()
    _refused("check failed", run, str(tmp_path / "export"))
    assert os.listdir(tmp_path / "export") == []  # the model directory it made is gone too


def test_cli_exports_the_next_version_and_reports_errors(kdd, tmp_path, capsys):
    _, _, run = kdd
    export_dir = tmp_path / "export"
    (export_dir / "optfusion" / "2").mkdir(parents=True)
    assert _run_cli(f"--run_dir={run}", f"--export_dir={export_dir}") == 0
    out = capsys.readouterr().out
    assert f"exported hard model, version 3: {export_dir}/optfusion/3" in out
    assert f"--model_base_path={export_dir}/optfusion" in out
    # KDD12 has a fixed raw layout, so both bodies are there.
    assert sorted(os.listdir(export_dir / "optfusion" / "3")) == ["assets", "fingerprint.pb", "request_example.json", "saved_model.pb", "variables"]
    assert _run_cli(f"--run_dir={run}", f"--export_dir={export_dir}", "--version=3") == 1
    assert "error: --version: " in capsys.readouterr().err


def test_root_script_exits_1_with_a_message(tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "export_savedmodel.py"), f"--run_dir={tmp_path / 'absent'}"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"export_savedmodel.py: error: --run_dir={tmp_path / 'absent'}: directory not found" in done.stderr
