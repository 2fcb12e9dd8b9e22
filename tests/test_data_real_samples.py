"""The real Criteo / Avazu / KDD12 samples in ../shared/data, checked against a recount.

Expected ids are rebuilt here with plain pandas and per-value Python (the reference's way:
value counts on the training rows, x > 2 -> floor(ln(x)^2), the hour via datetime), and
compared with what preprocessing wrote, for every row and field of every split.
"""

import datetime
import math
import os

import numpy as np
import pandas as pd

from optfusion_tf.data import split
from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
from optfusion_tf.data.reader import load_split
from optfusion_tf.data.vocabulary import read_vocab

SEED = 2022


def _bucket(value: str) -> str:
    if value == "":
        return ""
    x = float(value)
    return str(int(math.floor(math.log(x) ** 2)) if x > 2 else int(x))


def _criteo_keys(path) -> pd.DataFrame:
    raw = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    keys = raw.iloc[:, 1:].copy()
    keys.columns = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    for c in keys.columns[:13]:
        keys[c] = keys[c].map(_bucket)
    keys.insert(0, "label", raw[0].astype(float))
    return keys


def _avazu_keys(path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    dates = {
        h: datetime.date(2000 + int(h[:2]), int(h[2:4]), int(h[4:6])) for h in raw["hour"].unique()
    }
    keys = raw.drop(columns=["id", "click"])
    keys["hour"] = raw["hour"].map(lambda h: str(int(h[6:8])))
    keys["weekday"] = raw["hour"].map(lambda h: dates[h].strftime("%w"))
    keys["is_weekend"] = raw["hour"].map(lambda h: str(int(dates[h].strftime("%w") in ("0", "6"))))
    keys.insert(0, "label", raw["click"].astype(float))
    return keys


def _check_against_recount(keys: pd.DataFrame, out: str, stats, vocab_scope: str) -> None:
    splits = split.SplitAssigner(stats.ratio, stats.seed).next(len(keys))
    scope = splits == split.TRAIN if vocab_scope == "train" else np.ones(len(keys), bool)
    assert stats.field_names == list(keys.columns[1:])
    expected = {}
    for f in stats.fields:
        counts = keys.loc[scope, f.name].value_counts()
        kept = counts[counts >= f.min_count]
        vocab = read_vocab(os.path.join(out, f.vocab_file))
        # Every id'd value has count >= the field's min count in the scope, with that count.
        assert dict(zip(vocab["value"], vocab["count"])) == kept.to_dict(), f.name
        assert vocab["count"].is_monotonic_decreasing and vocab["id"].tolist() == list(
            range(f.offset, f.oov_id)
        )
        lookup = dict(zip(vocab["value"], vocab["id"]))
        expected[f.name] = keys[f.name].map(lambda v: lookup.get(v, f.oov_id)).to_numpy()
    matrix = np.stack([expected[n] for n in stats.field_names], axis=1)
    for s, name in enumerate(split.SPLITS):
        ids, labels = load_split(out, name)
        rows = splits == s
        assert stats.rows[name] == rows.sum()
        np.testing.assert_array_equal(ids, matrix[rows])
        np.testing.assert_array_equal(labels, keys["label"].to_numpy()[rows])
        assert ids.max(initial=0) < stats.feature_num


def test_criteo_sample_matches_recount(shared_data, tmp_path):
    path = str(shared_data / "criteo_sample.txt")
    out = str(tmp_path / "criteo")
    stats = preprocess("criteo", path, out, PreprocessOptions(seed=SEED))
    keys = _criteo_keys(path)
    assert stats.input_lines == len(keys) == 8000 and sum(stats.rows.values()) == 8000
    assert sum(stats.positives.values()) == 1728
    assert not any(v["count"] for v in stats.bad_rows.values())
    _check_against_recount(keys, out, stats, "train")
    assert any(
        int(v) < 0 for v in read_vocab(os.path.join(out, "vocab", "I2.tsv"))["value"] if v
    )  # I2 has negatives

    # A categorical value seen only in the test split (at least twice) has an id with
    # vocab_scope=all and maps to OOV with vocab_scope=train.
    splits = split.SplitAssigner(stats.ratio, SEED).next(len(keys))
    test_only = None
    for name in [f"C{i}" for i in range(1, 27)]:
        counts = keys.groupby(keys[name])[name].size()
        in_test = keys.loc[splits == split.TEST, name].value_counts()
        outside = keys.loc[splits != split.TEST, name]
        candidates = [
            v for v, c in in_test.items() if c >= 2 and v not in set(outside) and counts[v] == c
        ]
        if candidates:
            test_only = (name, candidates[0])
            break
    assert test_only is not None
    name, value = test_only
    field = stats.field(name)
    test_ids, _ = load_split(out, "test")
    rows = (keys.loc[splits == split.TEST, name] == value).to_numpy()
    assert (test_ids[rows, stats.field_names.index(name)] == field.oov_id).all()
    everything = preprocess(
        "criteo",
        path,
        str(tmp_path / "all"),
        PreprocessOptions(seed=SEED, vocab_scope="all", workers=0),
    )
    assert (
        value
        in read_vocab(str(tmp_path / "all" / everything.field(name).vocab_file))["value"].tolist()
    )
    _check_against_recount(keys, str(tmp_path / "all"), everything, "all")


def test_avazu_sample_matches_recount(shared_data, tmp_path):
    path = str(shared_data / "avazu_sample.csv")
    out = str(tmp_path / "avazu")
    stats = preprocess("avazu", path, out, PreprocessOptions(seed=SEED))
    keys = _avazu_keys(path)
    assert stats.num_fields == 24 and stats.input_lines == len(keys) == 8999
    _check_against_recount(keys, out, stats, "train")


def test_kdd12_sample(shared_data, tmp_path):
    path = str(shared_data / "kdd12_sample.txt")
    stats = preprocess(
        "kdd12",
        path,
        str(tmp_path / "kdd"),
        PreprocessOptions(seed=SEED, threshold=1, ratio=(1.0, 0.0, 0.0)),
    )
    raw = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    ids, labels = load_split(str(tmp_path / "kdd"), "train")
    assert stats.num_fields == 11 and ids.shape == (11, 11) and stats.rows["train"] == 11
    np.testing.assert_array_equal(labels, (raw[0].astype(int) > 0).astype(np.float32))
    user = stats.field("UserID")
    assert (ids[:, -1] == user.offset).all() and user.size == 2  # one UserID (490234), plus OOV


def test_same_seed_same_bytes_and_bad_rows_on_real_rows(shared_data, tmp_path):
    lines = (shared_data / "criteo_sample.txt").read_text().splitlines()
    lines[9] = lines[9].rsplit("\t", 1)[0]  # line 10: a column short
    cells = lines[19].split("\t")
    cells[3] = "x3"  # line 20: non-numeric I3
    lines[19] = "\t".join(cells)
    lines[29] = "7" + lines[29][1:]  # line 30: label 7
    raw = tmp_path / "raw.txt"
    raw.write_text("\n".join(lines) + "\n")
    a = preprocess(
        "criteo",
        str(raw),
        str(tmp_path / "a"),
        PreprocessOptions(seed=SEED, workers=2, block_bytes=200_000),
    )
    b = preprocess("criteo", str(raw), str(tmp_path / "b"), PreprocessOptions(seed=SEED, workers=0))
    assert {r: v["first_lines"] for r, v in a.bad_rows.items() if v["count"]} == {
        "wrong_column_count": [10],
        "non_numeric": [20],
        "bad_label": [30],
    }
    assert sum(a.rows.values()) == 7997 and a == b
    for name in os.listdir(tmp_path / "a"):
        if os.path.isfile(tmp_path / "a" / name):
            assert (tmp_path / "a" / name).read_bytes() == (
                tmp_path / "b" / name
            ).read_bytes(), name
    assert sorted(os.listdir(tmp_path / "a" / "vocab")) == sorted(
        os.listdir(tmp_path / "b" / "vocab")
    )
