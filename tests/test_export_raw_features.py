"""The in-graph raw -> id mapping of predict_raw: the same ids as preprocessing, bad values -> OOV."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from optfusion_tf.data import bucketing
from optfusion_tf.data.formats import CRITEO_COLUMNS, KDD12_COLUMNS
from optfusion_tf.data.preprocess import CsvOptions
from optfusion_tf.data.reader import load_split
from optfusion_tf.data.vocabulary import read_vocab
from optfusion_tf.export import graph_rules
from optfusion_tf.export.raw_features import RawFeatureMapper, signature_input_names
from test_export_helpers import preprocess_sample, raw_split_rows


def _map(mapper, columns):
    """Runs the mapper on raw column -> list of str."""
    return mapper({mapper.columns[c]: tf.constant(v, tf.string) for c, v in columns.items() if c in mapper.columns}).numpy()


def _log_square_graph(values, max_bucket):
    thresholds = graph_rules.padded_thresholds([max_bucket])
    return graph_rules.bucket_numbers(tf.constant(values[:, None]), tf.constant([True]), tf.constant(thresholds))[:, 0].numpy()


def test_log_square_in_graph_equals_numpy_rule():
    max_bucket = 500
    thresholds = graph_rules.log_square_thresholds(max_bucket)
    rng = np.random.default_rng(0)
    values = np.concatenate([
        np.arange(-50, 5000, dtype=np.float64), rng.integers(-100, 10**9, 20000).astype(np.float64),
        rng.uniform(-5, 50, 20000), np.exp(rng.uniform(0, 20, 20000)), [2.0, np.nextafter(2.0, 3), 2.5, -0.0, -1.5],
        thresholds[np.isfinite(thresholds)], np.nextafter(thresholds[np.isfinite(thresholds)], 0),
    ])  # fmt: skip
    expected = bucketing.log_square(values.copy())
    expected = np.minimum(expected, max_bucket + 1)  # buckets above the largest kept one are OOV anyway
    np.testing.assert_array_equal(_log_square_graph(values, max_bucket), expected)
    # Threshold k - 1 is the first float64 of bucket >= k: its predecessor is below k.
    finite = thresholds[np.isfinite(thresholds)]
    ks = np.arange(1, len(finite) + 1)
    assert (bucketing.log_square(finite.copy()) >= ks).all() and (bucketing.log_square(np.nextafter(finite, 0)) < ks).all()


def test_hour_decomposition_in_graph_equals_numpy_rule():
    yy, mm, dd, hh = np.meshgrid(np.arange(100), np.arange(15), np.arange(34), [0, 7, 23, 24, 99], indexing="ij")
    hours = (yy * 1_000_000 + mm * 10_000 + dd * 100 + hh).ravel().astype(np.float64)
    hours = np.concatenate([hours, [-1.0, 1e8, 14102100.5, 99123123.0]])
    expected = bucketing.decompose_hour(hours)
    weekday, weekend = (tf.constant(t) for t in graph_rules.date_tables())
    hour, wd, we, ok = graph_rules.decompose_hour(tf.constant(hours), tf.ones(len(hours), tf.bool), weekday, weekend)
    np.testing.assert_array_equal(ok.numpy(), ~expected.bad)
    good = ~expected.bad
    for got, want in ((hour, expected.hour), (wd, expected.weekday), (we, expected.is_weekend)):
        np.testing.assert_array_equal(got.numpy()[good], want[good])


def test_parse_numbers_accepts_what_pandas_reads_as_finite():
    cells = ["5", " 5", "5 ", "-0", "+5", ".5", "5.", "1e3", "", " ", "nan", "inf", "1e999", "abc", "0x10", "1,5"]
    values, missing, valid = (t.numpy() for t in graph_rules.parse_numbers(tf.constant(cells)))
    assert valid.tolist() == [True] * 8 + [False] * 8
    assert missing.tolist() == [False] * 8 + [True] + [False] * 7
    np.testing.assert_array_equal(values[:8], [5, 5, 5, 0, 5, 0.5, 5, 1000])


def test_criteo_sample_raw_rows_map_to_the_tfrecord_ids(shared_data, tmp_path):
    stats = preprocess_sample("criteo", shared_data / "criteo_sample.txt", tmp_path / "criteo")
    mapper = RawFeatureMapper(stats, str(tmp_path / "criteo"), str(tmp_path))
    assert mapper.input_names == CRITEO_COLUMNS[1:]
    for split in ("train", "test"):
        ids, _ = load_split(str(tmp_path / "criteo"), split)
        np.testing.assert_array_equal(_map(mapper, raw_split_rows(stats, CRITEO_COLUMNS, split)), ids)


def test_avazu_sample_raw_rows_map_to_the_tfrecord_ids(shared_data, tmp_path):
    stats = preprocess_sample("avazu", shared_data / "avazu_sample.csv", tmp_path / "avazu")
    mapper = RawFeatureMapper(stats, str(tmp_path / "avazu"), str(tmp_path))
    # Users send Avazu's raw columns: hour as YYMMDDHH, no id, no click; weekday/is_weekend are derived.
    assert mapper.input_names[0] == "hour" and "id" not in mapper.input_names and "weekday" not in mapper.input_names
    assert len(mapper.input_names) == 22 and stats.num_fields == 24
    for split in ("train", "test"):
        ids, _ = load_split(str(tmp_path / "avazu"), split)
        np.testing.assert_array_equal(_map(mapper, raw_split_rows(stats, None, split, ",", header=True)), ids)


def test_kdd12_sample_raw_rows_map_to_the_tfrecord_ids(shared_data, tmp_path):
    stats = preprocess_sample("kdd12", shared_data / "kdd12_sample.txt", tmp_path / "kdd", ratio=(1.0, 0.0, 0.0), threshold=1)
    mapper = RawFeatureMapper(stats, str(tmp_path / "kdd"), str(tmp_path))
    assert mapper.input_names == KDD12_COLUMNS[1:]
    ids, _ = load_split(str(tmp_path / "kdd"), "train")
    np.testing.assert_array_equal(_map(mapper, raw_split_rows(stats, KDD12_COLUMNS, "train")), ids)


def test_csv_odd_values_and_column_names(tmp_path):
    # Quoted values holding the delimiter, tabs, quotes; "" kept as a value; an identity numeric
    # column with decimals and -0; column names that are not TensorFlow names.
    raw = tmp_path / "odd.csv"
    raw.write_text(
        'label,user id,price,_city\n'
        '1,"a,b",2.5,"x\ty"\n'
        '0,"say ""hi""",-0,\n'
        '1,"a,b",1e3,\n'
        '0,plain,,"x\ty"\n'
        '1,plain,2.5,z\n',
        encoding="utf-8",
    )
    options = CsvOptions(label_col="label", categorical_cols=("user id", "_city"), numeric_cols=("price",), numeric_rule="identity")
    stats = preprocess_sample("csv", raw, tmp_path / "odd", csv_options=options, ratio=(1.0, 0.0, 0.0), threshold=1)
    assert signature_input_names(stats) == {"user id": "user_id", "price": "price", "_city": "f_city"}
    mapper = RawFeatureMapper(stats, str(tmp_path / "odd"), str(tmp_path))
    columns = {"user id": ["a,b", 'say "hi"', "a,b", "plain", "plain"], "price": ["2.5", "-0", "1e3", "", "2.5"], "_city": ["x\ty", "", "", "x\ty", "z"]}
    ids, _ = load_split(str(tmp_path / "odd"), "train")
    np.testing.assert_array_equal(_map(mapper, columns), ids)


def _vocab_id(dataset_dir, field, key):
    """The id preprocessing gives vocabulary key `key` of `field` (None = unparsable -> OOV)."""
    vocab = read_vocab(str(dataset_dir / field.vocab_file))
    ids = dict(zip(vocab["value"], vocab["id"]))
    return field.oov_id if key is None else ids.get(key, field.oov_id)


def test_unseen_and_unparsable_values_map_to_oov(shared_data, tmp_path):
    stats = preprocess_sample("criteo", shared_data / "criteo_sample.txt", tmp_path / "criteo")
    mapper = RawFeatureMapper(stats, str(tmp_path / "criteo"), str(tmp_path))
    good = {c: v[:1] * 8 for c, v in raw_split_rows(stats, CRITEO_COLUMNS, "test").items()}
    cells = {
        # raw cell -> the vocabulary key preprocessing's rule gives it (None: it would drop the row)
        "I1": {"abc": None, "nan": None, "inf": None, "1e999": None, " ": None, "0x10": None, "5": "2", "1" + "0" * 22: "2566"},
        "I5": {"1e300": "477170", "-5e300": "-5e+300", "1.5": "1", "2": "2", "3": "1", "1e18": "1717", "-7": "-7", "10": "5"},
        "C3": {"never-seen": "never-seen", "\x00": "\x00", "\u00e9": "\u00e9", "d032c263 ": "d032c263 ",
               "": "", "x" * 1000: "x" * 1000, "d032c263": "d032c263", "\n": "\n"},
    }  # fmt: skip
    ids = _map(mapper, {**good, **{c: list(v) for c, v in cells.items()}})
    for name, cell_keys in cells.items():
        j = stats.field_names.index(name)
        expected = [_vocab_id(tmp_path / "criteo", stats.field(name), key) for key in cell_keys.values()]
        assert ids[:, j].tolist() == expected, name
    assert ids[0, 0] == stats.field("I1").oov_id and ids[6, 0] != stats.field("I1").oov_id
    assert ids[6, 15] != stats.field("C3").oov_id and ids[0, 15] == stats.field("C3").oov_id
    untouched = [j for j, name in enumerate(stats.field_names) if name not in cells]
    np.testing.assert_array_equal(ids[:, untouched], _map(mapper, good)[:, untouched])


def test_empty_batch_maps_to_no_rows(shared_data, tmp_path):
    stats = preprocess_sample("kdd12", shared_data / "kdd12_sample.txt", tmp_path / "kdd", ratio=(1.0, 0.0, 0.0))
    mapper = RawFeatureMapper(stats, str(tmp_path / "kdd"), str(tmp_path))
    assert _map(mapper, {c: [] for c in KDD12_COLUMNS[1:]}).shape == (0, stats.num_fields)


def test_signed_zeros_and_subnormals_map_as_in_preprocessing_inside_a_graph(tmp_path):
    """Issue 12, item 6: in a tf.function (as exported), x + 0.0 is optimised away, so -0 buckets
    got the key of -0.0, not the "0" that preprocessing gives them; a subnormal (1e-320) under the
    identity rule differed too. Both rules, edge values, the graph against preprocessing."""
    cells = ["-0", "-0.0", "-0.4", "0", "0.4", "1e-320", "-1e-320", "2", "3", "-3"]
    raw = tmp_path / "edges.csv"
    raw.write_text("label,sq,idn\n" + "".join(f"{i % 2},{c},{c}\n" for i, c in enumerate(cells)))
    options = CsvOptions(label_col="label", numeric_cols=("sq",), numeric_rule="log_square")
    stats = preprocess_sample("csv", raw, tmp_path / "sq", csv_options=options, ratio=(1.0, 0.0, 0.0), threshold=1)
    identity = CsvOptions(label_col="label", numeric_cols=("idn",), numeric_rule="identity")
    stats_identity = preprocess_sample("csv", raw, tmp_path / "idn", csv_options=identity, ratio=(1.0, 0.0, 0.0), threshold=1)
    for st, name, column in ((stats, "sq", "sq"), (stats_identity, "idn", "idn")):
        (tmp_path / f"assets_{name}").mkdir()
        mapper = RawFeatureMapper(st, str(tmp_path / name), str(tmp_path / f"assets_{name}"))
        graph = tf.function(mapper.__call__, input_signature=[mapper.input_signature()])
        ids, _ = load_split(str(tmp_path / name), "train")
        got = graph({mapper.columns[column]: tf.constant(cells)}).numpy()
        np.testing.assert_array_equal(got, ids, err_msg=name)
        zeros = [0, 1, 3, 5, 6] + ([2] if name == "sq" else [])  # -0, -0.0, 0, +-1e-320 (, trunc(-0.4))
        assert len(set(ids[zeros, 0])) == 1, (name, ids[:, 0])


def test_bucketing_in_a_graph_writes_nothing_to_stderr():
    """Issue 26, item 2: searchsorted's int32 output was transposed, and on this project's CPUs
    oneDNN wrote "oneDNN supports DT_INT32 only on platforms with AVX-512" at every call of the
    raw signature (the demo's last stderr line). Machines whose oneDNN takes int32 pass anyway."""
    code = (
        "import numpy as np, tensorflow as tf\n"
        "from optfusion_tf.export import graph_rules\n"
        "th = tf.constant(graph_rules.padded_thresholds([20, 5]))\n"
        "f = tf.function(lambda v: graph_rules.bucket_numbers(v, tf.constant([True, False]), th))\n"
        "print(f(tf.constant(np.array([[3.0, 1.0], [900.0, 2.0]]))).numpy().tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "oneDNN supports DT_INT" not in done.stderr, done.stderr[-2000:]
