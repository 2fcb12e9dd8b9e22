"""Raw-format rules without I/O: bucketing, Avazu hours, label rules, column specs, splits."""

import math

import numpy as np
import pytest

from optfusion_tf.data import bucketing, formats, split
from optfusion_tf.data.errors import DataError


def test_log_square_golden():
    x = np.array([np.nan, -3, -1.5, 0, 1, 1.9, 2, 2.5, 3, 10, 100, 1e6])
    got = bucketing.log_square(x)
    want = [np.nan, -3, -1, 0, 1, 1, 2, 0, 1, 5, 21, 190]  # e.g. floor(ln(100)^2) = floor(21.2)
    np.testing.assert_array_equal(got, want)
    for v in (3, 10, 100, 1e6):  # the reference's per-value rule
        assert got[x == v][0] == int(np.floor(np.log(v) ** 2))


def test_canonical_keys():
    assert [bucketing.canonical_key(v) for v in (math.nan, 12.0, -1.0, 0.0, 2.5)] == [
        "",
        "12",
        "-1",
        "0",
        "2.5",
    ]


def test_decompose_hour_golden():
    # 2014-10-21 Tue, 2014-10-25 Sat, 2014-10-26 Sun, 2014-10-30 Thu, 2000-02-29 Tue (leap day).
    v = np.array(
        [
            14102100,
            14102523,
            14102600,
            14103012,
            229_07,
            np.nan,
            14023100,
            14102124,
            14130100,
            -1,
            1410210.5,
        ]
    )
    parts = bucketing.decompose_hour(v)
    np.testing.assert_array_equal(parts.bad, [False] * 5 + [True] * 6)
    np.testing.assert_array_equal(parts.hour[:5], [0, 23, 0, 12, 7])
    np.testing.assert_array_equal(parts.weekday[:5], [2, 6, 0, 4, 2])
    np.testing.assert_array_equal(parts.is_weekend[:5], [0, 1, 1, 0, 0])


def test_label_rules():
    values = np.array([0, 1, 2, -1, np.nan, 0.5])
    labels, bad = formats.LabelRule("binary").apply(values)
    np.testing.assert_array_equal(bad, [False, False, True, True, True, True])
    np.testing.assert_array_equal(labels[:2], [0, 1])
    labels, bad = formats.LabelRule("count", ">0").apply(values)
    np.testing.assert_array_equal(bad, [False, False, False, True, True, True])
    np.testing.assert_array_equal(labels[:3], [0, 1, 1])
    labels, bad = formats.LabelRule("number", ">=4").apply(np.array([3.5, 4, 5, np.inf]))
    np.testing.assert_array_equal(labels[:3], [0, 1, 1])
    np.testing.assert_array_equal(bad, [False, False, False, True])
    with pytest.raises(ValueError, match="comparison"):
        formats.LabelRule("number", "positive")


def test_builtin_formats():
    criteo = formats.criteo_format()
    assert (
        len(criteo.fields) == 39
        and criteo.fields[0].rule == "log_square"
        and criteo.fields[0].min_count == 1
    )
    assert criteo.fields[13].kind == "categorical" and criteo.fields[13].min_count is None
    kdd = formats.kdd12_format()
    assert (
        kdd.field_names[0] == "Impression" and len(kdd.fields) == 11 and kdd.label_column == "Click"
    )
    header = (
        "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
        "app_category,device_id,device_ip,device_model,device_type,device_conn_type,"
        "C14,C15,C16,C17,C18,C19,C20,C21"
    )
    avazu = formats.avazu_format(header.split(","))
    assert len(avazu.fields) == 24
    assert avazu.field_names[:2] == ["hour", "C1"] and avazu.field_names[-2:] == [
        "weekday",
        "is_weekend",
    ]
    assert "id" not in avazu.field_names and "click" not in avazu.field_names
    with pytest.raises(DataError, match="'click'"):
        formats.avazu_format(["id", "hour", "C1"])


def test_csv_format_columns():
    columns = ["user", "item", "price", "rating"]
    fmt = formats.csv_format(
        "r", columns, label_col="3", categorical_cols=["item", "0"], numeric_cols=["price"]
    )
    assert fmt.label_column == "rating"
    assert fmt.field_names == ["user", "item", "price"]  # file column order
    assert fmt.fields[2].rule == "log_square" and fmt.fields[2].min_count == 1
    with pytest.raises(DataError, match="--categorical_cols: 'nope'"):
        formats.csv_format(
            "r", columns, label_col="rating", categorical_cols=["nope"], numeric_cols=[]
        )
    with pytest.raises(DataError, match="once"):
        formats.csv_format(
            "r", columns, label_col="rating", categorical_cols=["rating"], numeric_cols=[]
        )
    with pytest.raises(DataError, match="at least one"):
        formats.csv_format("r", columns, label_col="rating", categorical_cols=[], numeric_cols=[])


def test_split_is_independent_of_block_size():
    whole = split.SplitAssigner((0.8, 0.1, 0.1), seed=7).next(10_000)
    assigner = split.SplitAssigner((0.8, 0.1, 0.1), seed=7)
    pieces = np.concatenate([assigner.next(n) for n in (1, 999, 3000, 6000)])
    np.testing.assert_array_equal(whole, pieces)
    shares = np.bincount(whole, minlength=3) / len(whole)
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.02)
    assert not np.array_equal(whole, split.SplitAssigner((0.8, 0.1, 0.1), seed=8).next(10_000))
    assert (split.SplitAssigner((0.9, 0.1, 0.0), seed=1).next(1000) != split.TEST).all()


@pytest.mark.parametrize("ratio", [(0.8, 0.1), (0.5, 0.5, 0.5), (0.0, 0.5, 0.5), (1.1, -0.1, 0.0)])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="--ratio"):
        split.parse_ratio(ratio)
