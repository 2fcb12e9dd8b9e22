"""make_dataset on our output and on reference-schema TFRecords (train_0000.tfrecord, ...)."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from optfusion_tf.data import reader
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
from optfusion_tf.data.reader import load_split, make_dataset
from test_data_shuffle import sorted_dataset

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _reference_dir(tmp_path, n=100, fields=39, gzip=False):
    """Records written the reference's way: tf.train.Example per row via tf.io.TFRecordWriter."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 10**6, size=(n, fields))
    labels = rng.integers(0, 2, size=n).astype(np.float32)
    suffix, options = (".tfrecord.gz", "GZIP") if gzip else (".tfrecord", None)
    for split, rows in (
        ("train", slice(0, 60)),
        ("validation", slice(60, 80)),
        ("test", slice(80, n)),
    ):
        for part, chunk in enumerate(
            (slice(rows.start, rows.start + 10), slice(rows.start + 10, rows.stop))
        ):
            with tf.io.TFRecordWriter(
                str(tmp_path / f"{split}_{part:04d}{suffix}"), options=options
            ) as w:
                for i in range(chunk.start, chunk.stop):
                    w.write(
                        tf.train.Example(
                            features=tf.train.Features(
                                feature={
                                    "label": tf.train.Feature(
                                        float_list=tf.train.FloatList(value=[labels[i]])
                                    ),
                                    "feature": tf.train.Feature(
                                        int64_list=tf.train.Int64List(value=ids[i])
                                    ),
                                }
                            )
                        ).SerializeToString()
                    )
    return ids, labels


@pytest.mark.parametrize("gzip", [False, True])
def test_reads_reference_schema_records(tmp_path, gzip):
    ids, labels = _reference_dir(tmp_path, gzip=gzip)
    got_ids, got_labels = load_split(str(tmp_path), "test", num_fields=39)
    np.testing.assert_array_equal(got_ids, ids[80:])
    np.testing.assert_array_equal(got_labels, labels[80:])
    x, y = next(iter(make_dataset(str(tmp_path), "validation", 8, num_fields=39)))
    assert (
        x.dtype == tf.int64 and x.shape == (8, 39) and y.dtype == tf.float32 and y.shape == (8, 1)
    )
    train = np.concatenate(
        [x.numpy() for x, _ in make_dataset(str(tmp_path), "train", 7, num_fields=39, seed=1)]
    )
    assert sorted(map(tuple, train)) == sorted(map(tuple, ids[:60]))  # shuffled, complete
    with pytest.raises(DataError, match="pass num_fields"):
        make_dataset(str(tmp_path), "train", 8)


def test_reads_our_output_with_stats(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text((FIXTURES / "criteo_small.txt").read_text() * 20)
    out = tmp_path / "out"
    stats = preprocess(
        "criteo", str(raw), str(out), PreprocessOptions(workers=0, records_per_shard=37, seed=1)
    )
    assert len(stats.shards["train"]) > 2
    ordered, _ = load_split(str(out), "train")
    assert ordered.shape == (stats.rows["train"], 39) and ordered.max() < stats.feature_num

    def epoch(seed):
        return np.concatenate(
            [x.numpy() for x, _ in make_dataset(str(out), "train", 16, seed=seed)]
        )

    a, b, c = epoch(3), epoch(3), epoch(4)
    np.testing.assert_array_equal(a, b)  # same seed, same order
    assert not np.array_equal(a, ordered) and not np.array_equal(a, c)
    assert sorted(map(tuple, a)) == sorted(map(tuple, ordered))
    batches = [
        x.shape[0]
        for x, _ in make_dataset(str(out), "train", 16, drop_remainder=True, shuffle=False)
    ]
    assert set(batches) == {16} and len(batches) == stats.rows["train"] // 16
    repeated = make_dataset(str(out), "validation", 4, repeat=True).take(
        3 * stats.rows["validation"]
    )
    assert sum(x.shape[0] for x, _ in repeated) >= 2 * stats.rows["validation"]
    with pytest.raises(DataError, match="num_fields=38"):
        make_dataset(str(out), "train", 8, num_fields=38)
    with pytest.raises(ValueError, match="split"):
        make_dataset(str(out), "valid", 8)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_fixed_layout_path_equals_protobuf_parsing(tmp_path, compression):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        (FIXTURES / "criteo_small.txt").read_text() * 70
    )  # 700 rows: full chunks and rests
    out = tmp_path / "out"
    stats = preprocess(
        "criteo",
        str(raw),
        str(out),
        PreprocessOptions(workers=0, records_per_shard=300, compression=compression),
    )
    assert stats.record_bytes > 0 and stats.shard_rows["train"][0] == 300
    reference = tmp_path / "reference"  # the same shards without stats.json: the generic path
    reference.mkdir()
    for s, names in stats.shards.items():
        for name in names:
            (reference / name).write_bytes((out / name).read_bytes())
    for s in ("train", "validation", "test"):
        fast, generic = load_split(str(out), s), load_split(str(reference), s, num_fields=39)
        np.testing.assert_array_equal(fast[0], generic[0])
        np.testing.assert_array_equal(fast[1], generic[1])
        assert len(fast[0]) == stats.rows[s]


def test_missing_or_incomplete_directory(tmp_path):
    with pytest.raises(DataError, match="not found"):
        make_dataset(str(tmp_path / "nope"), "train", 8)
    with pytest.raises(DataError, match="no train shards"):
        make_dataset(str(tmp_path), "train", 8, num_fields=3)


@pytest.mark.parametrize("workers", [2, 3])  # 2 files per split: by file, then by record
def test_reference_directories_shard_by_file_or_by_record(tmp_path, workers):
    ids, _ = _reference_dir(tmp_path)
    parts = [
        np.concatenate([
            x.numpy()
            for x, _ in make_dataset(
                str(tmp_path), "train", 7, num_fields=39, shuffle=False, shard=(i, workers)
            )
        ])
        for i in range(workers)
    ]
    assert sorted(map(tuple, np.concatenate(parts))) == sorted(map(tuple, ids[:60]))
    if workers == 2:  # each worker reads one whole file
        np.testing.assert_array_equal(parts[0], ids[:10])
    else:  # every third record of the split
        np.testing.assert_array_equal(parts[1], ids[:60][1::3])


@pytest.mark.parametrize("rows, batches, expected", [
    (70, 4, [18, 18, 17, 17]), (64, 4, [16] * 4), (5, 5, [1] * 5), (8015, 6, [1336] * 5 + [1335]),
])
def test_even_batch_sizes(rows, batches, expected):
    assert reader.even_batch_sizes(rows, batches) == expected


def test_even_batch_sizes_refuses_empty_batches():
    with pytest.raises(DataError, match="cannot split 3 rows into 4 non-empty batches"):
        reader.even_batch_sizes(3, 4)


@pytest.mark.parametrize("shuffle_mode", ["examples", "chunks"])
def test_batches_per_pass_makes_every_pass_that_many_batches(tmp_path, shuffle_mode):
    """Issue 24, item 3: a strategy's pipeline splits each pass of its slice into exactly
    steps x replicas batches, so a pass is a whole number of steps on every worker."""
    dataset_dir, stats = sorted_dataset(tmp_path)
    rows = stats.rows["train"]
    shard = (0, 2)
    slice_rows = rows // 2
    per_pass = 2 * -(-rows // 64)  # 2 replicas in this pipeline, global batch 64
    it = iter(make_dataset(dataset_dir, "train", 32, seed=4, repeat=True, shard=shard,
                           shuffle_mode=shuffle_mode, batches_per_pass=per_pass))
    ordered, _ = load_split(dataset_dir, "train")
    for _ in range(2):
        batches = [next(it)[0].numpy() for _ in range(per_pass)]
        sizes = [len(b) for b in batches]
        assert sum(sizes) == slice_rows and max(sizes) - min(sizes) <= 1
        got = np.concatenate(batches)
        assert sorted(map(tuple, got)) == sorted(map(tuple, ordered[:slice_rows]))
    with pytest.raises(ValueError, match="batches_per_pass and drop_remainder exclude each other"):
        make_dataset(dataset_dir, "train", 32, batches_per_pass=4, drop_remainder=True)
    (tmp_path / "ref").mkdir()
    _reference_dir(tmp_path / "ref")
    with pytest.raises(DataError, match="batches_per_pass needs a dataset with stats.json"):
        make_dataset(str(tmp_path / "ref"), "train", 8, num_fields=39, batches_per_pass=2)
