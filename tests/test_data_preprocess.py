"""The preprocessing pipeline on hand-written raw files: golden ids, bad rows, atomicity, seeds."""

import dataclasses
import gzip
import os
import pathlib

import numpy as np
import pandas as pd
import pytest

from optfusion_tf.data import preprocess as preprocess_module
from optfusion_tf.data import split
from optfusion_tf.data.errors import BadRowError, DataError
from optfusion_tf.data.preprocess import CsvOptions, PreprocessOptions, preprocess
from optfusion_tf.data.reader import load_split
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.data.vocabulary import FieldVocabulary, batch_coverage, read_vocab, write_vocab

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
ALL_TRAIN = dict(ratio=(1.0, 0.0, 0.0), vocab_scope="all", workers=0)


def _criteo_line(label="0", ints=None, cats=None):
    ints = ints if ints is not None else ["1"] * 13
    cats = cats if cats is not None else ["a1"] * 26
    return "\t".join([label] + ints + cats)


def _files(directory):
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(pathlib.Path(directory).rglob("*"))
        if p.is_file()
    }


def test_criteo_golden_ids_and_vocab(tmp_path):
    out = tmp_path / "criteo"
    stats = preprocess(
        "criteo", str(FIXTURES / "criteo_small.txt"), str(out), PreprocessOptions(**ALL_TRAIN)
    )
    assert stats.rows == {"train": 10, "validation": 0, "test": 0} and stats.positives["train"] == 3
    ids, labels = load_split(str(out), "train")
    np.testing.assert_array_equal(labels, [0, 1, 0, 0, 1, 0, 0, 1, 0, 0])
    # I1 raw 1,"",3,10,-1,0,2,1,"",100 -> buckets 1,"",1,5,-1,0,2,1,"",21;
    # ids by count, then first seen.
    i1 = stats.field("I1")
    assert (i1.offset, i1.size, i1.oov_id) == (0, 8, 7)
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 0, 2, 3, 4, 5, 0, 1, 6])
    # I2 raw -1,-2,-1,0,5,-3,-1,"",0,1 (negatives stay): -1 x3, 0 x2, then -2, 2, -3, "", 1.
    assert stats.field("I2").offset == 8
    np.testing.assert_array_equal(ids[:, 1] - 8, [0, 2, 0, 1, 3, 4, 0, 5, 1, 6])
    vocab = read_vocab(str(out / "vocab" / "I2.tsv"))
    assert vocab["value"].tolist() == ["-1", "0", "-2", "2", "-3", "", "1"]
    assert vocab["count"].tolist() == [3, 2, 1, 1, 1, 1, 1] and vocab["id"].tolist() == list(
        range(8, 15)
    )
    # C1, threshold 2: 68fd1e64 x4, 05db9164 x2, "" (missing) x2 keep ids; 2 singletons -> OOV.
    c1 = stats.field("C1")
    np.testing.assert_array_equal(ids[:, 13] - c1.offset, [0, 0, 1, 2, 0, 1, 3, 2, 0, 3])
    assert (c1.size, c1.oov_id, c1.distinct_values, c1.oov_count) == (4, c1.offset + 3, 5, 2)
    vocab = read_vocab(str(out / c1.vocab_file))
    assert vocab.values.tolist() == [
        ["68fd1e64", c1.offset, 4],
        ["05db9164", c1.offset + 1, 2],
        ["", c1.offset + 2, 2],
    ]
    assert stats.feature_num == sum(f.size for f in stats.fields) and ids.max() < stats.feature_num
    for f, col in zip(stats.fields, ids.T):
        assert ((col >= f.offset) & (col <= f.oov_id)).all()
    assert DatasetStats.load(str(out)) == stats


def test_batch_coverage_golden_and_limits(tmp_path):
    """The expected fraction of table rows a batch looks up (what `--embedding_optimizer=auto`
    reads): one row per field for a batch of 1, every row with a count for a huge batch, and
    the golden value of the fixture's first two fields at batch 2."""
    out = str(tmp_path / "criteo")
    stats = preprocess("criteo", str(FIXTURES / "criteo_small.txt"), out,
                       PreprocessOptions(**ALL_TRAIN))
    assert batch_coverage(out, stats, 1) == pytest.approx(stats.num_fields / stats.feature_num)
    drawn = sum(f.size - (f.oov_count == 0) for f in stats.fields)  # an OOV id nobody has
    assert batch_coverage(out, stats, 10**9) == pytest.approx(drawn / stats.feature_num)
    assert batch_coverage(out, stats, 2) < batch_coverage(out, stats, 3)
    # I1 counts 3, 2, 1 x 5 (of 10; OOV 0): 1 - 0.7^2, 1 - 0.8^2, 5 x (1 - 0.9^2) = 1.82 rows;
    # I2 the same counts (test_criteo_golden_ids_and_vocab).
    two = dataclasses.replace(stats, fields=stats.fields[:2], feature_num=16, num_fields=2,
                              field_names=["I1", "I2"])
    assert batch_coverage(out, two, 2) == pytest.approx(2 * 1.82 / 16)


def test_avazu_hour_fields_and_dropped_id(tmp_path):
    stats = preprocess(
        "avazu",
        str(FIXTURES / "avazu_small.csv"),
        str(tmp_path / "a"),
        PreprocessOptions(threshold=1, **ALL_TRAIN),
    )
    assert stats.num_fields == 24 and "id" not in stats.field_names
    ids, labels = load_split(str(tmp_path / "a"), "train")
    np.testing.assert_array_equal(labels, [0, 1, 0, 0, 1, 0, 1, 0])

    def raw_values(name):
        f = stats.field(name)
        vocab = read_vocab(str(tmp_path / "a" / f.vocab_file)).set_index("id")["value"]
        return [vocab[i] for i in ids[:, stats.field_names.index(name)]]

    # hours 14102100 14102123 14102523 14102600 14103012 14102100 14102523 14102909
    assert raw_values("hour") == ["0", "23", "23", "0", "12", "0", "23", "9"]
    assert raw_values("weekday") == ["2", "2", "6", "0", "4", "2", "6", "3"]
    assert raw_values("is_weekend") == ["0", "0", "1", "1", "0", "0", "1", "0"]
    assert raw_values("C20") == ["100084", "-1", "-1", "100084", "-1", "-1", "100084", "-1"]


def test_kdd12_click_counts_become_binary_labels(tmp_path):
    stats = preprocess(
        "kdd12",
        str(FIXTURES / "kdd12_small.txt"),
        str(tmp_path / "k"),
        PreprocessOptions(threshold=1, **ALL_TRAIN),
    )
    assert stats.num_fields == 11 and stats.field_names[0] == "Impression"
    _, labels = load_split(str(tmp_path / "k"), "train")
    np.testing.assert_array_equal(labels, [0, 1, 1, 0, 1, 0])  # Click 0 1 2 0 3 0
    assert stats.label == {"column": "Click", "rule": "count, positive if >0"}


@pytest.mark.parametrize("kind,fixture,csv_options", [
    ("avazu", "avazu_small.csv", None),
    ("criteo", "criteo_small.txt", None),
    ("csv", "ratings_small.csv", CsvOptions(label_col="rating", categorical_cols=("user",),
                                            label_positive_if=">=4")),
])
@pytest.mark.parametrize("compress", [False, True])
def test_a_utf8_byte_order_mark_is_ignored(tmp_path, kind, fixture, csv_options, compress):
    """Issue 12, item 5: a BOM does not rename Avazu's `id` (kept as a 25th field before), spoil
    a CSV header or make Criteo's first row bad; the dataset equals the one without it."""
    text = (FIXTURES / fixture).read_bytes()
    with_bom = tmp_path / (fixture + (".gz" if compress else ""))
    data = b"\xef\xbb\xbf" + text
    with_bom.write_bytes(gzip.compress(data) if compress else data)
    options = PreprocessOptions(threshold=1, **ALL_TRAIN)
    plain = preprocess(kind, str(FIXTURES / fixture), str(tmp_path / "plain"), options, csv_options)
    bom = preprocess(kind, str(with_bom), str(tmp_path / "bom"), options, csv_options)
    assert bom.field_names == plain.field_names and bom.bad_rows == plain.bad_rows
    for got, want in zip(load_split(str(tmp_path / "bom"), "train"),
                         load_split(str(tmp_path / "plain"), "train")):
        np.testing.assert_array_equal(got, want)


def test_csv_quotes_na_strings_and_label_rule(tmp_path):
    options = CsvOptions(
        label_col="rating",
        categorical_cols=("user", "2", "comment"),
        numeric_cols=("price",),
        numeric_rule="identity",
        label_positive_if=">=4",
    )
    stats = preprocess(
        "csv",
        str(FIXTURES / "ratings_small.csv"),
        str(tmp_path / "c"),
        PreprocessOptions(threshold=1, **ALL_TRAIN),
        options,
    )
    assert stats.dataset == "ratings_small" and stats.field_names == [
        "user",
        "category, main",
        "price",
        "comment",
    ]
    _, labels = load_split(str(tmp_path / "c"), "train")
    np.testing.assert_array_equal(labels, [1, 0, 1, 0, 1, 0])
    comments = read_vocab(str(tmp_path / "c" / stats.field("comment").vocab_file))["value"].tolist()
    assert comments == ["NA", "null", "", "nan", 'said "great"']  # NA-like strings stay strings
    prices = read_vocab(str(tmp_path / "c" / stats.field("price").vocab_file))["value"].tolist()
    assert prices == ["19.99", "7.5", ""]
    assert stats.field("category, main").vocab_file == "vocab/category__main.tsv"


def test_bad_rows_are_counted_with_first_lines(tmp_path):
    good = _criteo_line()
    lines = [
        good,
        _criteo_line(ints=["1"] * 12),  # 2: 39 columns
        good + "\textra",  # 3: 41 columns
        _criteo_line(ints=["1", "abc"] + ["1"] * 11),  # 4: non-numeric
        _criteo_line(label="2"),  # 5: bad label
        "",  # 6: blank, skipped
        _criteo_line(ints=["inf"] + ["1"] * 12),  # 7: not finite
        _criteo_line(label="", ints=["x"] + ["1"] * 12),  # 8: bad label first
        good,
    ]
    raw = tmp_path / "bad.txt"
    raw.write_text("\n".join(lines) + "\n")
    stats = preprocess("criteo", str(raw), str(tmp_path / "out"), PreprocessOptions(**ALL_TRAIN))
    assert stats.bad_rows["wrong_column_count"] == {"count": 2, "first_lines": [2, 3]}
    assert stats.bad_rows["non_numeric"] == {"count": 2, "first_lines": [4, 7]}
    assert stats.bad_rows["bad_label"] == {"count": 2, "first_lines": [5, 8]}
    assert stats.bad_rows["bad_hour"]["count"] == 0
    assert stats.rows["train"] == 2 and stats.blank_lines == 1 and stats.input_lines == 9

    def strict() -> None:
        preprocess("criteo", str(raw), str(tmp_path / "strict"),
                   PreprocessOptions(on_bad_row="error", **ALL_TRAIN))

    with pytest.raises(
        BadRowError, match=r"bad\.txt:2: bad row \(wrong_column_count\): expected 40 columns"
    ) as e:
        strict()
    assert (e.value.line, e.value.reason) == (2, "wrong_column_count")
    assert not (tmp_path / "strict").exists() and sorted(os.listdir(tmp_path)) == ["bad.txt", "out"]
    raw.write_text("\n".join([good, _criteo_line(ints=["1", "abc"] + ["1"] * 11)]) + "\n")
    with pytest.raises(
        BadRowError, match=r":2: bad row \(non_numeric\): column 'I2': 'abc' is not a finite number"
    ):
        strict()
    # Issue 12, item 9: the message describes the line it names, not the first bad cell of the
    # block (line 3's I3 used to be reported for line 2's I5).
    raw.write_text("\n".join([
        good,
        _criteo_line(ints=["1"] * 4 + ["abc"] + ["1"] * 8),
        _criteo_line(ints=["1", "1", "nan"] + ["1"] * 10),
    ]) + "\n")
    with pytest.raises(
        BadRowError, match=r":2: bad row \(non_numeric\): column 'I5': 'abc' is not a finite number"
    ):
        strict()


def test_avazu_bad_hours(tmp_path):
    text = (FIXTURES / "avazu_small.csv").read_text().splitlines()
    text[2] = text[2].replace(",14102123,", ",14103223,")  # October 32nd
    text[4] = text[4].replace(",14102600,", ",,")
    raw = tmp_path / "a.csv"
    raw.write_text("\n".join(text) + "\n")
    stats = preprocess(
        "avazu", str(raw), str(tmp_path / "o"), PreprocessOptions(threshold=1, **ALL_TRAIN)
    )
    assert (
        stats.bad_rows["bad_hour"] == {"count": 2, "first_lines": [3, 5]}
        and stats.rows["train"] == 6
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "input file not found"),
        (b"", "empty input"),
        (b"\x1f\x8b\x08\x00garbage-not-deflate", "unreadable gzip"),
        (gzip.compress(b"0\t1\n" * 1000)[:40], "unreadable gzip"),
        (b"0\t1\t2\n", "no valid rows"),
    ],
)
def test_unusable_input(tmp_path, content, message):
    raw = tmp_path / "input.txt"
    if content is not None:
        raw.write_bytes(content)
    with pytest.raises(DataError, match=message):
        preprocess("criteo", str(raw), str(tmp_path / "out"), PreprocessOptions(workers=0))
    assert (
        not (tmp_path / "out").exists()
        and [p for p in os.listdir(tmp_path) if p != "input.txt"] == []
    )


def test_output_is_atomic(tmp_path, monkeypatch):
    raw, out = str(FIXTURES / "criteo_small.txt"), tmp_path / "deep" / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(preprocess_module, "write_pass", interrupted)
    with pytest.raises(KeyboardInterrupt):
        preprocess("criteo", raw, str(out), PreprocessOptions(workers=0))
    assert os.listdir(tmp_path) == []  # no output, no temporary sibling, no created parent
    monkeypatch.undo()

    preprocess("criteo", raw, str(out), PreprocessOptions(workers=0))
    with pytest.raises(DataError, match="exists; pass --overwrite"):
        preprocess("criteo", raw, str(out), PreprocessOptions(workers=0))
    stats = preprocess(
        "criteo", raw, str(out), PreprocessOptions(workers=0, threshold=1, overwrite=True)
    )
    assert DatasetStats.load(str(out)).threshold == 1 == stats.threshold
    assert os.listdir(out.parent) == ["out"]


def test_overwrite_never_deletes_the_input_or_other_files(tmp_path, monkeypatch):
    """--overwrite replaces only a dataset directory of ours (issue 12, item 1)."""
    rawdir = tmp_path / "rawdir"
    rawdir.mkdir()
    raw = rawdir / "train.txt"
    raw.write_bytes((FIXTURES / "criteo_small.txt").read_bytes())
    options = PreprocessOptions(workers=0, overwrite=True)
    # The folder holding the input file, also as "." and when it looks like a dataset.
    with pytest.raises(DataError, match="holds the input file.*refusing to delete it"):
        preprocess("criteo", str(raw), str(rawdir), options)
    monkeypatch.chdir(rawdir)
    with pytest.raises(DataError, match="holds the input file"):
        preprocess("criteo", "train.txt", ".", options)
    (rawdir / "stats.json").write_text("{}")
    with pytest.raises(DataError, match="holds the input file"):
        preprocess("criteo", "train.txt", ".", options)
    assert sorted(os.listdir(rawdir)) == ["stats.json", "train.txt"]
    # A folder of other files, with or without a stats.json.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="has no stats.json"):
        preprocess("criteo", str(raw), str(other), options)
    (other / "stats.json").write_text("{}")
    with pytest.raises(DataError, match="also holds 'notes.txt'"):
        preprocess("criteo", str(raw), str(other), options)
    assert (other / "notes.txt").read_text() == "keep me"
    # A dataset of ours is replaced; one with a stray file in vocab/ is not.
    out = tmp_path / "out"
    preprocess("criteo", str(raw), str(out), PreprocessOptions(workers=0))
    (out / "vocab" / "mine.py").write_text("x = 1")
    with pytest.raises(DataError, match="vocab/ also holds 'mine.py'"):
        preprocess("criteo", str(raw), str(out), options)
    (out / "vocab" / "mine.py").unlink()
    assert preprocess("criteo", str(raw), str(out), options).rows


def test_missing_stats_means_incomplete(tmp_path):
    with pytest.raises(DataError, match="not found"):
        DatasetStats.load(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="incomplete"):
        DatasetStats.load(str(tmp_path))


def test_same_seed_same_output_whatever_blocks_workers_or_gzip(tmp_path):
    text = (FIXTURES / "criteo_small.txt").read_text() * 40
    raw = tmp_path / "raw.txt"
    raw.write_text(text)
    base = dict(seed=5, workers=0)
    preprocess("criteo", str(raw), str(tmp_path / "a"), PreprocessOptions(**base))
    preprocess("criteo", str(raw), str(tmp_path / "b"), PreprocessOptions(**base, block_bytes=3000))
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    gz = tmp_path / "raw.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    preprocess(
        "criteo",
        str(gz),
        str(tmp_path / "c"),
        PreprocessOptions(seed=5, workers=2, block_bytes=3000),
    )
    a, c = _files(tmp_path / "a"), _files(tmp_path / "c")
    assert a.keys() == c.keys() and all(a[k] == c[k] for k in a if k != "stats.json")
    preprocess("criteo", str(raw), str(tmp_path / "d"), PreprocessOptions(seed=6, workers=0))
    assert (
        _files(tmp_path / "a")["train-00000.tfrecord"]
        != _files(tmp_path / "d")["train-00000.tfrecord"]
    )


def test_vocab_scope_train_sends_test_only_values_to_oov(tmp_path):
    n = 400
    splits = split.SplitAssigner((0.8, 0.1, 0.1), seed=3).next(n)
    lines = [
        _criteo_line(cats=["feedbeef" if s == split.TEST else "c0ffee00"] + ["a1"] * 25)
        for s in splits
    ]
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(lines) + "\n")
    for scope in ("train", "all"):
        stats = preprocess(
            "criteo",
            str(raw),
            str(tmp_path / scope),
            PreprocessOptions(seed=3, vocab_scope=scope, workers=0),
        )
        assert stats.rows["test"] == int((splits == split.TEST).sum()) > 2
        test_ids, _ = load_split(str(tmp_path / scope), "test")
        c1 = stats.field("C1")
        values = read_vocab(str(tmp_path / scope / c1.vocab_file))["value"].tolist()
        if scope == "train":
            assert values == ["c0ffee00"] and (test_ids[:, 13] == c1.oov_id).all()
        else:
            assert "feedbeef" in values and (test_ids[:, 13] != c1.oov_id).all()


def test_gzip_output_and_shards(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text((FIXTURES / "criteo_small.txt").read_text() * 5)
    plain = preprocess(
        "criteo", str(raw), str(tmp_path / "p"), PreprocessOptions(workers=0, records_per_shard=7)
    )
    packed = preprocess(
        "criteo",
        str(raw),
        str(tmp_path / "z"),
        PreprocessOptions(workers=0, records_per_shard=7, compression="gzip"),
    )
    assert packed.shards["train"][0].endswith(".tfrecord.gz") and len(plain.shards["train"]) == -(
        -plain.rows["train"] // 7
    )
    for s in ("train", "validation", "test"):
        a, b = load_split(str(tmp_path / "p"), s), load_split(str(tmp_path / "z"), s)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert sum(plain.rows.values()) == 50


def test_vocab_tsv_reads_back_with_pandas(tmp_path):
    stats = preprocess(
        "csv",
        str(FIXTURES / "ratings_small.csv"),
        str(tmp_path / "c"),
        PreprocessOptions(threshold=1, **ALL_TRAIN),
        CsvOptions(label_col="rating", categorical_cols=("comment",), label_positive_if=">3"),
    )
    path = tmp_path / "c" / stats.field("comment").vocab_file
    assert path.read_text().splitlines()[0] == "value\tid\tcount"
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert frame["value"].tolist() == read_vocab(str(path))["value"].tolist()


def test_vocab_values_with_carriage_returns_read_back(tmp_path):
    """A quoted CSV cell may hold a lone CR, which csv's QUOTE_MINIMAL leaves unquoted and every
    CSV reader takes for a line end: the vocab file quotes it, so it reads back (the serving
    lookup and --runner=beam read the ids from these files)."""
    keys = ["a\rb", "\rx", "x\r", "\r\n", 'q"r', "\t", "", "n\nl", "plain"]
    vocab = FieldVocabulary(keys, np.arange(len(keys)), np.zeros(0, np.int64), len(keys), 0)
    write_vocab(str(tmp_path / "f.tsv"), vocab, 100)
    frame = read_vocab(str(tmp_path / "f.tsv"))
    assert frame["value"].tolist() == keys
    assert frame["id"].tolist() == list(range(100, 100 + len(keys)))


def test_a_byte_order_mark_at_a_line_start_mid_file_is_dropped_wherever_blocks_start(tmp_path):
    """Files once BOM-prefixed, then concatenated: the parsers dropped a BOM only at a block's
    start, so the line was a row or a bad row (label '\ufeff1') depending on the cuts."""
    lines = (FIXTURES / "criteo_small.txt").read_bytes().splitlines(keepends=True)
    raw = tmp_path / "cat.txt"
    raw.write_bytes(b"".join(lines[:4]) + b"\xef\xbb\xbf" + b"".join(lines[4:]))
    outputs = []
    for block_bytes in (1 << 20, len(b"".join(lines[:4]))):  # the BOM line mid-block, then first
        out = tmp_path / f"b{block_bytes}"
        stats = preprocess("criteo", str(raw), str(out),
                           PreprocessOptions(block_bytes=block_bytes, **ALL_TRAIN))
        assert stats.rows["train"] == 10 and stats.bad_rows["bad_label"]["count"] == 0
        outputs.append(_files(out))
    assert all(outputs[0][k] == outputs[1][k] for k in outputs[0] if k != "stats.json")


def test_a_lone_carriage_return_inside_a_cell_is_part_of_the_value(tmp_path):
    """A CR that does not end a line is an ordinary byte of its cell (it crashed the parser,
    which took it for a line end: IndexError)."""
    lines = (FIXTURES / "criteo_small.txt").read_text().splitlines()
    cells = lines[2].split("\t")
    cells[14] = "a\rb"  # C1
    lines[2] = "\t".join(cells)
    raw = tmp_path / "cr.txt"
    raw.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    stats = preprocess("criteo", str(raw), str(tmp_path / "out"),
                       PreprocessOptions(threshold=1, **ALL_TRAIN))
    assert stats.rows["train"] == 10 and stats.bad_rows["wrong_column_count"]["count"] == 0
    vocab = read_vocab(str(tmp_path / "out" / stats.field("C1").vocab_file))
    assert "a\rb" in vocab["value"].tolist()


def test_crlf_line_ends_and_missing_final_newline(tmp_path):
    text = (FIXTURES / "criteo_small.txt").read_text()
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    bare = tmp_path / "bare.txt"
    bare.write_bytes(text.rstrip("\n").encode())
    preprocess(
        "criteo",
        str(FIXTURES / "criteo_small.txt"),
        str(tmp_path / "a"),
        PreprocessOptions(**ALL_TRAIN),
    )
    for raw in (crlf, bare):
        stats = preprocess(
            "criteo", str(raw), str(tmp_path / raw.stem), PreprocessOptions(**ALL_TRAIN)
        )
        assert stats.rows["train"] == 10
        a, b = _files(tmp_path / "a"), _files(tmp_path / raw.stem)
        assert all(a[k] == b[k] for k in a if k != "stats.json")


def test_the_options_stats_json_records():
    options = PreprocessOptions(threshold=3, seed=7, ratio=(0.7, 0.2, 0.1), workers=0)
    assert options.recorded() == {"compression": "none", "threshold": 3, "seed": 7,
                                  "vocab_scope": "train", "ratio": [0.7, 0.2, 0.1]}
