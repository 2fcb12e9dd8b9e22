"""The synthetic Criteo-format demo data and the demo job's data step."""

import gzip

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from optfusion_tf.demo import demo
from optfusion_tf.demo.demo_data import CATEGORICAL_CARDINALITY, demo_chunks, write_demo_criteo


def test_planted_model_auc_ceiling_and_positive_rate():
    chunks = list(demo_chunks(60_000, seed=11, chunk_rows=25_000))
    labels = np.concatenate([c.labels for c in chunks])
    probability = np.concatenate([c.probability for c in chunks])
    assert len(labels) == 60_000 and len(chunks) == 3
    auc = roc_auc_score(labels, probability)
    assert 0.75 <= auc <= 0.88, auc  # Bayes-optimal AUC: well above 0.5, below 1
    assert 0.15 <= labels.mean() <= 0.30
    # Labels are Bernoulli(probability): calibrated in every decile of the planted probability.
    edges = np.quantile(probability, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, 9)
    for b in range(10):
        sel = bins == b
        assert abs(labels[sel].mean() - probability[sel].mean()) < 0.03


def test_raw_format_and_determinism(tmp_path):
    a = write_demo_criteo(str(tmp_path / "a.txt"), 20_000, seed=3)
    b = write_demo_criteo(str(tmp_path / "b.txt.gz"), 20_000, seed=3)
    c = write_demo_criteo(str(tmp_path / "c.txt"), 20_000, seed=4)
    assert open(a, "rb").read() == gzip.open(b).read() != open(c, "rb").read()
    raw = pd.read_csv(a, sep="\t", header=None, dtype=str, keep_default_na=False)
    assert raw.shape == (20_000, 40) and set(raw[0]) == {"0", "1"}
    ints = raw.iloc[:, 1:14]
    assert (ints == "").any().any()  # missing integers
    assert (pd.to_numeric(ints[2].replace("", np.nan)) < 0).any()  # negative I2 values
    cats = raw.iloc[:, 14:]
    assert cats[14].str.fullmatch(r"[0-9a-f]{8}|").all()
    distinct = cats.nunique()
    assert distinct.min() <= 5 and distinct.max() > 2000  # a handful ... many
    counts = cats[39][cats[39] != ""].value_counts()
    assert counts.iloc[0] > 20 * counts.median()  # Zipf-like head
    assert len(CATEGORICAL_CARDINALITY) == 26


def test_demo_prepare_data(tmp_path):
    stats, dataset_dir, ceiling = demo.prepare_data(str(tmp_path), rows=6000, seed=1)
    assert sum(stats.rows.values()) == 6000 and stats.num_fields == 39 and 0.7 < ceiling < 0.95
    text = demo.summary(stats, dataset_dir, ceiling)
    assert "feature_num" in text and "train" in text and "bad rows: none" in text
