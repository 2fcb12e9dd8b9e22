"""The orders make_dataset reads a training split in (data/shuffle.py): the "examples" shuffle
(windows of chunks, rows permuted), its GZIP fallback to "chunks", and seeded passes."""

import pathlib

import numpy as np
import pytest

from optfusion_tf.data import shuffle
from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
from optfusion_tf.data.reader import load_split, make_dataset
from optfusion_tf.data.stats import DatasetStats

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def sorted_dataset(tmp_path, compression="none"):
    """Our dataset whose training split is stored sorted by label (a correlated file order)."""
    lines = (FIXTURES / "criteo_small.txt").read_text().splitlines(keepends=True) * 150
    raw = tmp_path / "raw.txt"
    raw.write_text("".join(sorted(lines, key=lambda line: line[:1])))
    out = tmp_path / "out"
    stats = preprocess("criteo", str(raw), str(out), PreprocessOptions(
        workers=0, records_per_shard=400, compression=compression))
    return str(out), stats


def read_passes(dataset_dir, batch, count, **kwargs):
    """`count` passes of a repeated training split: a list of (ids [N, F], labels [N])."""
    it = iter(make_dataset(dataset_dir, "train", batch, repeat=True, **kwargs))
    rows = DatasetStats.load(dataset_dir).rows["train"]
    out = []
    for _ in range(count):
        xs, ys = zip(*(next(it) for _ in range(-(-rows // batch))))
        out.append((np.concatenate(xs), np.concatenate(ys)[:, 0]))
    return out


def test_examples_shuffle_permutes_every_row_once_per_pass_and_mixes_a_sorted_file(tmp_path):
    dataset_dir, stats = sorted_dataset(tmp_path)
    ordered, labels = load_split(dataset_dir, "train")
    assert (np.diff(labels) >= 0).all() and len(stats.shards["train"]) > 1  # sorted, several files
    (a, la), (b, _) = read_passes(dataset_dir, 100, 2, seed=3, shuffle_mode="examples")
    assert sorted(map(tuple, a)) == sorted(map(tuple, ordered)) and not np.array_equal(a, b)
    # Each pass is exactly one epoch of batches, and pass k depends only on (seed, k).
    (again, _), = read_passes(dataset_dir, 100, 1, seed=3, shuffle_mode="examples", first_pass=1)
    np.testing.assert_array_equal(again, b)
    # The first batches of a label-sorted file hold both labels in about the file's share
    # (chunks keep 256-row runs, so their first batch is all one label).
    share = labels.mean()
    assert abs(la[:300].mean() - share) < 0.1
    (_, lc), = read_passes(dataset_dir, 100, 1, seed=3, shuffle_mode="chunks")
    assert lc[:100].mean() in (0.0, 1.0)


def test_examples_shuffle_on_gzip_falls_back_to_chunks_and_slices_partition(tmp_path, caplog):
    dataset_dir, _ = sorted_dataset(tmp_path, compression="gzip")
    ordered, _ = load_split(dataset_dir, "train")
    with caplog.at_level("WARNING"):
        (rows, _), = read_passes(dataset_dir, 64, 1, seed=1, shuffle_mode="examples")
    assert sorted(map(tuple, rows)) == sorted(map(tuple, ordered))
    # The fallback is taken (the chunk order of the same seed) and said (issue 24, item 5).
    (chunked, _), = read_passes(dataset_dir, 64, 1, seed=1, shuffle_mode="chunks")
    np.testing.assert_array_equal(rows, chunked)
    assert "GZIP shards cannot be read at random offsets" in caplog.text
    assert "shuffled by chunks (runs of 256 consecutive rows)" in caplog.text
    (tmp_path / "plain").mkdir()
    plain_dir, _ = sorted_dataset(tmp_path / "plain")
    ordered, _ = load_split(plain_dir, "train")
    parts = [np.concatenate([x.numpy() for x, _ in make_dataset(
        plain_dir, "train", 50, seed=2, shard=(i, 3), shuffle_mode="examples")]) for i in range(3)]
    assert sorted(map(tuple, np.concatenate(parts))) == sorted(map(tuple, ordered))
    with pytest.raises(ValueError, match="shuffle_mode must be one of"):
        make_dataset(plain_dir, "train", 8, shuffle_mode="rows")


def test_examples_shuffle_is_thread_safe_with_many_windows_and_shards(tmp_path, monkeypatch):
    """tf.data maps the window function on several threads: with one chunk per window and many
    shards, every row still comes exactly once per pass (repeated or not), the order changes
    per pass and is the same for the same seed. (A shared, lazily filled file list and order
    cache returned a wrong multiset of rows, or raised IndexError, in about 1 of 4 tries.)"""
    monkeypatch.setattr(shuffle, "WINDOW_CHUNKS", 1)
    lines = (FIXTURES / "criteo_small.txt").read_text().splitlines(keepends=True) * 75
    raw = tmp_path / "raw.txt"
    raw.write_text("".join(lines))
    out = str(tmp_path / "out")
    stats = preprocess("criteo", str(raw), out, PreprocessOptions(workers=0, records_per_shard=100))
    assert len(stats.shards["train"]) >= 6  # 6+ chunks, so 6+ windows of one chunk
    expected = sorted(map(tuple, load_split(out, "train")[0]))
    orders = []
    for seed in range(12):
        rows = np.concatenate([x.numpy() for x, _ in make_dataset(out, "train", 64, seed=seed)])
        assert sorted(map(tuple, rows)) == expected, f"seed {seed}: wrong rows"
        orders.append(rows)
    assert not np.array_equal(orders[0], orders[1])
    np.testing.assert_array_equal(
        np.concatenate([x.numpy() for x, _ in make_dataset(out, "train", 64, seed=5)]), orders[5]
    )
    passes = read_passes(out, 64, 3, seed=7, shuffle_mode="examples")
    for rows, _ in passes:
        assert sorted(map(tuple, rows)) == expected
    assert not np.array_equal(passes[0][0], passes[1][0])
    np.testing.assert_array_equal(read_passes(out, 64, 3, seed=7)[2][0], passes[2][0])
