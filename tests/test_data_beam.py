"""--runner=beam (Apache Beam's DirectRunner) against the one-machine path: same ids, vocabulary,
OOV, split membership, bad-row counts; atomic output; the range cuts; the flags.

Skipped without the beam extra (apache-beam), with the command that installs it.
"""

import dataclasses
import gzip
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from optfusion_tf.data import split
from optfusion_tf.data.beam import INSTALL, preprocess_beam
from optfusion_tf.data.beam.options import BeamOptions
from optfusion_tf.data.errors import BadRowError, DataError
from optfusion_tf.data.preprocess import CsvOptions, PreprocessOptions, preprocess
from optfusion_tf.data.reader import load_split
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.demo.demo_data import write_demo_criteo

pytest.importorskip("apache_beam", reason=f"the beam extra is not installed: {INSTALL}")

from apache_beam.io.filesystem import FileMetadata, MatchResult  # noqa: E402
from apache_beam.io.localfilesystem import LocalFileSystem  # noqa: E402

from optfusion_tf.data.beam import ranges  # noqa: E402

LOCAL = PreprocessOptions(workers=0)
# Small ranges, so that every sample is cut into many (and lines cross the cuts).
SMALL_RANGES = BeamOptions(range_bytes=64 << 10)


def _same_dataset(local_dir: str, beam_dir: str, *, ignore: tuple[str, ...] = ()) -> None:
    """Every row of every split has the same ids and label, in the same order; the vocabulary
    files are byte-identical; stats.json agrees but for the shard layout and `ignore`."""
    a, b = DatasetStats.load(local_dir), DatasetStats.load(beam_dir)
    for field in dataclasses.fields(DatasetStats):
        if field.name not in ("shards", "shard_rows") + ignore:
            assert getattr(a, field.name) == getattr(b, field.name), field.name
    for name in split.SPLITS:
        ids_a, labels_a = load_split(local_dir, name)
        ids_b, labels_b = load_split(beam_dir, name)
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(labels_a, labels_b)
    for field in a.fields:
        with open(os.path.join(local_dir, field.vocab_file), "rb") as fa, open(
            os.path.join(beam_dir, field.vocab_file), "rb"
        ) as fb:
            assert fa.read() == fb.read(), field.vocab_file


@pytest.mark.parametrize(
    "kind,name", [("criteo", "criteo_sample.txt"), ("avazu", "avazu_sample.csv"),
                  ("kdd12", "kdd12_sample.txt")]
)
def test_real_samples_match_the_one_machine_output(shared_data, tmp_path, kind, name):
    path = str(shared_data / name)
    preprocess(kind, path, str(tmp_path / "local"), LOCAL)
    stats = preprocess_beam(kind, path, str(tmp_path / "beam"), LOCAL, beam_options=SMALL_RANGES)
    assert stats.input_lines > 0
    _same_dataset(str(tmp_path / "local"), str(tmp_path / "beam"))


def test_synthetic_file_with_two_worker_processes_and_vocab_scope_all(tmp_path):
    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 100_000, seed=5)
    options = dataclasses.replace(LOCAL, vocab_scope="all", threshold=3, seed=7)
    preprocess("criteo", raw, str(tmp_path / "local"), options)
    preprocess_beam("criteo", raw, str(tmp_path / "beam"), options,
                    beam_options=BeamOptions(range_bytes=4 << 20, workers=2))
    _same_dataset(str(tmp_path / "local"), str(tmp_path / "beam"))


def _bad_criteo(path) -> str:
    good = "\t".join(["1"] + ["3"] * 13 + ["a"] * 26)
    lines = [good] * 30
    lines[3] = "\t".join(["0", "abc"] + ["3"] * 12 + ["b"] * 26)  # non_numeric, line 4
    lines[9] = "1\t2"  # wrong_column_count, line 10
    lines[12] = ""  # blank, line 13
    lines[20] = "\t".join(["7"] + ["3"] * 13 + ["c"] * 26)  # bad_label, line 21
    lines[25] = lines[3]
    lines[14] = "\ufeff" + good  # a byte order mark at a line start mid-file: dropped
    path.write_text("\n".join(lines))  # no final newline
    return str(path)


def test_bad_rows_are_counted_as_on_one_machine(tmp_path):
    raw = _bad_criteo(tmp_path / "bad.txt")
    local = preprocess("criteo", raw, str(tmp_path / "local"), LOCAL)
    beam = preprocess_beam("criteo", raw, str(tmp_path / "beam"), LOCAL,
                           beam_options=BeamOptions(range_bytes=200))
    assert beam.bad_rows == local.bad_rows
    assert beam.bad_rows["non_numeric"] == {"count": 2, "first_lines": [4, 26]}
    assert beam.blank_lines == local.blank_lines == 1
    _same_dataset(str(tmp_path / "local"), str(tmp_path / "beam"))


def test_bad_row_lines_count_the_header(tmp_path):
    rows = ["id,click,hour,site"] + [f"{i},{i % 2},14102100,s{i % 3}" for i in range(20)]
    rows[4] = "3,7,14102100,s0"  # bad_label on line 5 (the header is line 1)
    raw = tmp_path / "av.csv"
    raw.write_text("\n".join(rows) + "\n")
    local = preprocess("avazu", str(raw), str(tmp_path / "local"), LOCAL)
    for range_bytes in (64 << 20, 30):
        beam = preprocess_beam("avazu", str(raw), str(tmp_path / f"beam{range_bytes}"), LOCAL,
                               beam_options=BeamOptions(range_bytes=range_bytes))
        assert beam.bad_rows == local.bad_rows
        assert beam.bad_rows["bad_label"]["first_lines"] == [5]


def test_glob_files_must_share_the_header_and_may_start_empty(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "a.csv").write_text("")
    (parts / "b.csv").write_text("id,click,hour,site\n1,0,14102100,x\n2,1,14102100,y\n")
    (parts / "c.csv").write_text("id,click,hour,site\n3,1,14102101,x\n")
    stats = preprocess_beam("avazu", str(parts / "*.csv"), str(tmp_path / "ok"), LOCAL)
    assert stats.input_lines == 3
    (parts / "d.csv").write_text("id,click,site,hour\n4,1,x,14102101\n")
    with pytest.raises(DataError, match=r"d\.csv:1: header 'id,click,site,hour' differs from "
                                        r".*b\.csv's 'id,click,hour,site'"):
        preprocess_beam("avazu", str(parts / "*.csv"), str(tmp_path / "no"), LOCAL)
    assert not (tmp_path / "no").exists()


def test_bad_arguments_are_refused_as_on_one_machine(tmp_path):
    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 100, seed=1)
    with pytest.raises(DataError, match=r"dataset kind must be one of"):
        preprocess_beam("bogus", raw, str(tmp_path / "ds"), LOCAL)
    with pytest.raises(DataError, match=r"is a directory, expected a raw data file"):
        preprocess_beam("criteo", str(tmp_path), str(tmp_path / "ds"), LOCAL)
    with pytest.raises(DataError, match=r"input file not found"):
        preprocess_beam("criteo", str(tmp_path / "none_*.txt"), str(tmp_path / "ds"), LOCAL)


def test_bad_row_error_names_the_first_bad_line_and_writes_nothing(tmp_path):
    raw = _bad_criteo(tmp_path / "bad.txt")
    options = dataclasses.replace(LOCAL, on_bad_row="error")
    with pytest.raises(BadRowError, match=r"bad\.txt:4: bad row \(non_numeric\)"):
        preprocess_beam("criteo", raw, str(tmp_path / "out" / "ds"), options,
                        beam_options=BeamOptions(range_bytes=200))
    assert not (tmp_path / "out").exists()


def test_failure_mid_pipeline_leaves_no_directory(tmp_path):
    raw = write_demo_criteo(str(tmp_path / "raw.txt.gz"), 2_000, seed=1)
    data = open(raw, "rb").read()
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated\.gz: unreadable gzip input"):
        preprocess_beam("criteo", str(truncated), str(tmp_path / "out" / "ds"), LOCAL)
    assert not (tmp_path / "out").exists()


def test_failure_in_the_last_pass_leaves_no_directory(tmp_path, monkeypatch):
    """A worker fails after the vocabularies and some shards were written: nothing remains."""
    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 3_000, seed=1)
    from optfusion_tf.data.beam import stages

    real = stages.write_range

    def failing(start, *args, **kwargs):
        written = real(start, *args, **kwargs)
        if start.range.index == 2:
            raise DataError("raw.txt: disk full (injected)")
        return written

    monkeypatch.setattr(stages, "write_range", failing)
    with pytest.raises(DataError, match=r"disk full \(injected\)"):
        preprocess_beam("criteo", raw, str(tmp_path / "out" / "ds"), LOCAL,
                        beam_options=BeamOptions(range_bytes=100_000))
    assert not (tmp_path / "out").exists()


def test_other_pipeline_errors_are_one_line_with_the_traceback_in_the_log(tmp_path, monkeypatch):
    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 500, seed=1)
    from optfusion_tf.data.beam import stages

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(stages, "count_range_lines", broken)
    with pytest.raises(DataError, match=r"Beam's DirectRunner failed: RuntimeError: boom") as e:
        preprocess_beam("criteo", raw, str(tmp_path / "out" / "ds"), LOCAL)
    log = str(e.value).rsplit("the traceback is in ", 1)[1].rstrip(")")
    assert "Traceback" in open(log).read()
    os.remove(log)
    assert not (tmp_path / "out").exists()


def test_a_glob_of_gzip_and_plain_parts_is_one_input_in_path_order(tmp_path):
    raw = write_demo_criteo(str(tmp_path / "whole.txt"), 3_000, seed=2)
    lines = open(raw, "rb").read().splitlines(keepends=True)
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "day_0.txt.gz").write_bytes(gzip.compress(b"".join(lines[:1000])))
    (parts / "day_1.txt").write_bytes(b"".join(lines[1000:2200]))
    (parts / "day_2.txt.gz").write_bytes(gzip.compress(b"".join(lines[2200:])))
    preprocess("criteo", raw, str(tmp_path / "local"), LOCAL)
    stats = preprocess_beam("criteo", str(parts / "day_*"), str(tmp_path / "beam"), LOCAL,
                            beam_options=BeamOptions(range_bytes=50_000))
    assert stats.input_path == str(parts / "day_*")
    a, b = DatasetStats.load(str(tmp_path / "local")), stats
    assert (a.rows, a.feature_num, a.input_lines) == (b.rows, b.feature_num, b.input_lines)
    for name in split.SPLITS:
        np.testing.assert_array_equal(load_split(str(tmp_path / "local"), name)[0],
                                      load_split(str(tmp_path / "beam"), name)[0])


def test_export_of_a_model_on_beam_output_of_a_glob_has_raw_examples(tmp_path):
    """Training and export read Beam's output unchanged; the raw request examples (and the
    predict_raw check) come from the glob's first file."""
    sys.path.insert(0, os.path.dirname(__file__))
    from test_export_helpers import make_retrain_run

    from optfusion_tf.export.savedmodel import export_savedmodel

    raw = write_demo_criteo(str(tmp_path / "whole.txt"), 4_000, seed=8)
    lines = open(raw, "rb").read().splitlines(keepends=True)
    (tmp_path / "part_0.txt").write_bytes(b"".join(lines[:2500]))
    (tmp_path / "part_1.txt").write_bytes(b"".join(lines[2500:]))
    preprocess_beam("criteo", str(tmp_path / "part_*.txt"), str(tmp_path / "ds"), LOCAL)
    run = make_retrain_run(tmp_path / "run", tmp_path / "ds", "hard")
    result = export_savedmodel(run, str(tmp_path / "export"))
    assert result.raw_example and result.max_abs_diff <= 1e-5


def test_csv_with_header_and_quoted_cells(tmp_path):
    rng = random.Random(0)
    rows = ["clicked,user,ad,price"] + [
        f'{rng.randint(0, 1)},u{rng.randint(0, 40)},"a,{rng.randint(0, 9)}",{rng.random() * 9:.2f}'
        for _ in range(3_000)
    ]
    rows[7] = '1,"u\r1","a\rb",1.5'  # lone CRs inside quoted cells (kept keys: twice)
    rows[9] = '0,"u\r1","a\rb",2.5'
    raw = tmp_path / "clicks.csv"
    raw.write_text("\n".join(rows) + "\n")
    csv = CsvOptions(label_col="clicked", categorical_cols=("user", "ad"), numeric_cols=("price",))
    preprocess("csv", str(raw), str(tmp_path / "local"), LOCAL, csv)
    preprocess_beam("csv", str(raw), str(tmp_path / "beam"), LOCAL, csv,
                    BeamOptions(range_bytes=10_000))
    _same_dataset(str(tmp_path / "local"), str(tmp_path / "beam"))


class FakeRemoteFileSystem(LocalFileSystem):
    """A remote filesystem for the tests: fakeremote:///abs/path is the local /abs/path, reached
    only through Beam's FileSystems (as gs:// would be)."""

    PREFIX = "fakeremote://"

    @classmethod
    def scheme(cls):
        return "fakeremote"

    def _local(self, path):  # LocalFileSystem also calls these methods with local paths
        return path[len(self.PREFIX):] if path.startswith(self.PREFIX) else path

    def create(self, path, *args, **kwargs):
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def mkdirs(self, path):
        return super().mkdirs(self._local(path))

    def exists(self, path):
        return super().exists(self._local(path))

    def rename(self, sources, destinations):
        return super().rename([self._local(p) for p in sources],
                              [self._local(p) for p in destinations])

    def delete(self, paths):
        return super().delete([self._local(p) for p in paths])

    def match(self, patterns, limits=None):
        found = super().match([self._local(p) for p in patterns], limits)
        return [
            MatchResult(p, [FileMetadata(self.PREFIX + m.path, m.size_in_bytes)
                            for m in r.metadata_list]) if p.startswith(self.PREFIX) else r
            for p, r in zip(patterns, found)
        ]


def test_remote_input_and_output_directory(tmp_path):
    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 5_000, seed=6)
    preprocess("criteo", raw, str(tmp_path / "local"), LOCAL)
    (tmp_path / "bucket").mkdir()
    remote = f"fakeremote://{tmp_path}/bucket/ds"
    beam = BeamOptions(range_bytes=200_000)
    stats = preprocess_beam("criteo", "fakeremote://" + raw, remote, LOCAL, beam_options=beam)
    assert stats.input_path == "fakeremote://" + raw
    assert os.listdir(tmp_path / "bucket") == ["ds"]  # no temporary prefix left
    _same_dataset(str(tmp_path / "local"), str(tmp_path / "bucket" / "ds"), ignore=("input_path",))
    with pytest.raises(DataError, match=r"bucket/ds: output directory exists"):
        preprocess_beam("criteo", raw, remote, LOCAL, beam_options=beam)
    options = dataclasses.replace(LOCAL, threshold=5, overwrite=True)
    preprocess_beam("criteo", raw, remote, options, beam_options=beam)
    assert DatasetStats.load(str(tmp_path / "bucket" / "ds")).threshold == 5
    assert os.listdir(tmp_path / "bucket") == ["ds"]
    (tmp_path / "bucket" / "ds" / "NOTES.md").write_text("mine")  # not ours: never deleted
    with pytest.raises(DataError, match=r"--overwrite replaces only .* also holds 'NOTES.md'"):
        preprocess_beam("criteo", raw, remote, options, beam_options=beam)
    assert (tmp_path / "bucket" / "ds" / "NOTES.md").read_text() == "mine"
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(gzip.compress(open(raw, "rb").read())[:20_000])
    with pytest.raises(DataError, match=r"truncated\.gz: unreadable gzip input"):
        preprocess_beam("criteo", str(truncated), remote + "2", LOCAL, beam_options=beam)
    assert os.listdir(tmp_path / "bucket") == ["ds"]  # nothing of the failed run


@pytest.mark.parametrize("range_bytes", [1, 7, 64, 1000])
def test_ranges_own_every_line_once(tmp_path, range_bytes):
    rng = random.Random(range_bytes)
    lines = [("x" * rng.choice([0, 1, 5, 90])).encode() for _ in range(200)]
    path = tmp_path / "lines.txt"
    path.write_bytes(b"\n".join(lines))  # the last line has no newline
    cut = ranges.plan_ranges(ranges.list_inputs(str(path)), range_bytes)
    read = [line for r in cut for b in ranges.range_blocks(r, 1, 0, 64)
            for line in b.data.splitlines()]
    assert read == lines


def test_split_draws_can_start_mid_file():
    whole = split.SplitAssigner((0.6, 0.2, 0.2), 11).next(1000)
    part = split.SplitAssigner((0.6, 0.2, 0.2), 11, lines_before=637).next(100)
    np.testing.assert_array_equal(whole[637:737], part)


def test_missing_beam_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r'needs Apache Beam.*pip install "optfusion_tf\[beam\]"'):
        preprocess_beam("criteo", "x.txt", str(tmp_path / "ds"))


def test_cli_runs_beam_and_refuses_beam_flags_without_it(tmp_path):
    raw = write_demo_criteo(str(tmp_path / "raw.txt"), 500, seed=4)
    cli = [sys.executable, "-c",
           "from optfusion_tf.cli.preprocess_flags import criteo2tf; criteo2tf()"]
    run = subprocess.run(
        cli + [f"--dataset={raw}", f"--record={tmp_path / 'ds'}", "--runner=beam", "--workers=0"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "beam pass 3 of 3" in run.stderr and "apitools" not in run.stderr
    assert "INFO:apache_beam" not in run.stderr
    assert DatasetStats.load(str(tmp_path / "ds")).input_lines == 500
    refused = subprocess.run(
        cli + [f"--dataset={raw}", f"--record={tmp_path / 'ds2'}", "--beam_runner=FlinkRunner"],
        capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode == 1
    assert "--beam_runner: only used with --runner=beam" in refused.stderr
    assert not (tmp_path / "ds2").exists()
    a_glob = subprocess.run(
        cli + [f"--dataset={tmp_path}/*.txt", f"--record={tmp_path / 'ds3'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert a_glob.returncode == 1
    assert "*.txt: a glob of several files needs --runner=beam" in a_glob.stderr
