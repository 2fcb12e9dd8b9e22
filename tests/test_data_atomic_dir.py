"""optfusion_tf.data.atomic_dir: --overwrite replaces a dataset with one atomic exchange, and
puts the old one back when the fallback's second rename fails (issue 24, item 6)."""

from __future__ import annotations

import os

import pytest

from optfusion_tf.data import atomic_dir
from optfusion_tf.data.atomic_dir import atomic_output_dir, exchange_paths


def _dataset(path, marker: str) -> None:
    path.mkdir()
    (path / "stats.json").write_text(marker)


def _skip_without_exchange(tmp_path) -> None:
    probe = tmp_path / "probe"
    (probe / "a").mkdir(parents=True)
    (probe / "b").mkdir()
    supported = exchange_paths(str(probe / "a"), str(probe / "b"))
    for name in ("a", "b"):
        (probe / name).rmdir()
    probe.rmdir()
    if not supported:
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported on this OS or filesystem")


def test_exchange_paths_swaps_two_directories(tmp_path):
    _skip_without_exchange(tmp_path)
    _dataset(tmp_path / "a", "A")
    _dataset(tmp_path / "b", "B")
    assert exchange_paths(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "a" / "stats.json").read_text() == "B"
    assert (tmp_path / "b" / "stats.json").read_text() == "A"
    with pytest.raises(FileNotFoundError):
        exchange_paths(str(tmp_path / "a"), str(tmp_path / "missing"))


def _overwrite(out) -> None:
    with atomic_output_dir(str(out), overwrite=True) as tmp:
        with open(os.path.join(tmp, "stats.json"), "w") as f:
            f.write("new")


def test_overwrite_never_leaves_the_path_without_a_dataset(tmp_path, monkeypatch):
    """With the exchange, no rename of the path happens at all: a failing (or killed) rename
    cannot leave the path empty, as the old two renames could."""
    _skip_without_exchange(tmp_path)
    out = tmp_path / "out"
    _dataset(out, "old")
    renames = []
    monkeypatch.setattr(atomic_dir.os, "rename", lambda *a: renames.append(a) or 1 / 0)
    _overwrite(out)
    assert (out / "stats.json").read_text() == "new" and renames == []
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_the_fallback_puts_the_old_dataset_back_when_the_second_rename_fails(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _dataset(out, "old")
    monkeypatch.setattr(atomic_dir, "exchange_paths", lambda a, b: False)
    real_rename = os.rename

    def second_fails(src, dst):
        if os.path.basename(src).startswith(".out.tmp-"):
            raise OSError("disk gone")
        real_rename(src, dst)

    monkeypatch.setattr(atomic_dir.os, "rename", second_fails)
    with pytest.raises(OSError, match="disk gone"):
        _overwrite(out)
    assert (out / "stats.json").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out"]
    monkeypatch.setattr(atomic_dir.os, "rename", real_rename)
    _overwrite(out)
    assert (out / "stats.json").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["out"]


def test_no_exchange_outside_linux(tmp_path, monkeypatch):
    """Elsewhere the two-rename fallback is used (ctypes.CDLL(None) raises TypeError on
    Windows, which the review found uncaught)."""
    monkeypatch.setattr(atomic_dir.sys, "platform", "win32")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert exchange_paths(str(tmp_path / "a"), str(tmp_path / "b")) is False
    out = tmp_path / "out"
    _dataset(out, "old")
    _overwrite(out)
    assert (out / "stats.json").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "out"]
