"""The exported SavedModel: loadable without optfusion_tf, TF1-session loadable, both signatures,
raw == id scoring on real Criteo rows, OOV handling, the pruned hard graph, request_example.json.

Hard and soft re-train runs (tiny untrained models with spread-out outputs) are exported once
for the module from the shared Criteo sample (skips when ../shared/data is absent).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import SHARED_DATA

from optfusion_tf.data.formats import CRITEO_COLUMNS
from optfusion_tf.data.reader import load_split
from optfusion_tf.export.savedmodel import export_savedmodel
from optfusion_tf.models.model import OptFusionModel
from optfusion_tf.training.evaluation import predict_logits
from test_export_helpers import (
    make_retrain_run, preprocess_sample, probabilities, raw_split_rows,
)

FUSIONS = ("hard", "soft")

CLEAN_PROCESS_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
inputs = np.load(sys.argv[1])
with open(sys.argv[2]) as f:
    raw = json.load(f)
out = {}
for path in sys.argv[4:]:
    signatures = tf.saved_model.load(path).signatures
    out[path + ":ids"] = signatures["serving_default"](feature_ids=tf.constant(inputs))["probability"].numpy()
    out[path + ":raw"] = signatures["predict_raw"](**{k: tf.constant(v, tf.string) for k, v in raw.items()})["probability"].numpy()
assert not [m for m in sys.modules if m.startswith("optfusion_tf")]
np.savez(sys.argv[3], **out)
"""


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    """(stats, dataset_dir, test ids, raw test columns) of the preprocessed Criteo sample."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (they ship beside the repo, not in it)")
    dataset_dir = tmp_path_factory.mktemp("data") / "criteo"
    stats = preprocess_sample("criteo", SHARED_DATA / "criteo_sample.txt", dataset_dir)
    ids, _ = load_split(str(dataset_dir), "test")
    raw = raw_split_rows(stats, CRITEO_COLUMNS, "test")
    del raw["label"]
    return stats, dataset_dir, ids, raw


@pytest.fixture(scope="module")
def exports(criteo, tmp_path_factory):
    """fusion -> (export path, the run's Keras model)."""
    _, dataset_dir, _, _ = criteo
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for fusion in FUSIONS:
        run = make_retrain_run(root / f"run_{fusion}", dataset_dir, fusion)
        result = export_savedmodel(run, str(root / "export"), model_name=fusion)
        assert result.fusion == fusion and result.max_abs_diff <= 1e-5 and result.raw_example
        out[fusion] = (result.path, keras.saving.load_model(os.path.join(run, "model.keras")))
    return out


def test_bfloat16_deep_blocks_export_and_serve_the_evaluated_scores(criteo, tmp_path):
    # The SavedModel's graph, like the evaluation's compiled forward, fuses each deep block's
    # matmul, bias and ReLU, so bfloat16 blocks round elsewhere than in the eager Keras call
    # (0.02 apart here, with non-zero biases): the check compares graph with graph.
    stats, dataset_dir, ids, _ = criteo
    model = OptFusionModel.from_preset(
        "parallel", feature_num=stats.feature_num, num_fields=stats.num_fields, emb_dim=8,
        dataset=stats.dataset, seed=3, embedding_init_std=0.3, deep_dtype="mixed_bfloat16",
    )
    model.build((None, stats.num_fields))
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if variable.path.endswith("bias"):  # as after training
            variable.assign(rng.normal(0, 0.1, variable.shape).astype("float32"))
    model.output_layer.kernel.assign(model.output_layer.kernel * 60.0)
    run = make_retrain_run(tmp_path / "run", dataset_dir, "hard", model=model)
    result = export_savedmodel(run, str(tmp_path / "export"))
    assert result.max_abs_diff <= 1e-5
    served = tf.saved_model.load(result.path).signatures["serving_default"]
    probability = served(feature_ids=tf.constant(ids))["probability"].numpy().reshape(-1)
    labels, logits = predict_logits(model, tf.data.Dataset.from_tensor_slices(
        (ids, np.zeros((len(ids), 1), "float32"))).batch(4096))
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-logits)), atol=1e-5)


def test_layout_is_tf_serving_s(exports):
    path, _ = exports["hard"]
    model_dir = os.path.dirname(path)
    assert os.path.basename(path) == "1" and os.listdir(model_dir) == ["1"]  # no temporary left
    assert {"saved_model.pb", "variables", "assets", "request_example.json"} <= set(os.listdir(path))
    assert os.stat(path).st_mode & 0o755 == 0o755


@pytest.fixture(scope="module")
def external_processes(criteo, exports, tmp_path_factory):
    """Runs, side by side, the clean-process scorer (test a) on both exports and
    `saved_model_cli show --all` (test c) on the hard one; returns (scores, the CLI's stdout)."""
    _, _, ids, raw = criteo
    work = tmp_path_factory.mktemp("clean_process")
    np.save(work / "ids.npy", ids)
    (work / "raw.json").write_text(json.dumps(raw))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    scorer = subprocess.Popen(
        [sys.executable, "-c", CLEAN_PROCESS_SCRIPT, str(work / "ids.npy"), str(work / "raw.json"),
         str(work / "out.npz"), *(exports[f][0] for f in FUSIONS)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    cli = subprocess.Popen(
        ["saved_model_cli", "show", "--all", "--dir", exports["hard"][0]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    shown, cli_err = cli.communicate(timeout=300)
    _, scorer_err = scorer.communicate(timeout=300)
    assert scorer.returncode == 0, scorer_err[-3000:]
    assert cli.returncode == 0, cli_err[-3000:]
    return np.load(work / "out.npz"), shown


def test_a_clean_process_reproduces_the_keras_probabilities(criteo, exports, external_processes):
    _, _, ids, _ = criteo
    scores, _ = external_processes
    for fusion in FUSIONS:
        path, model = exports[fusion]
        expected = probabilities(model, ids)
        assert expected.std() > 0.05  # the models' outputs are spread out, so the check means something
        for signature in ("ids", "raw"):
            got = scores[f"{path}:{signature}"]
            assert got.shape == (len(ids),) and got.dtype == np.float32
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_b_tf1_session_loader_gives_the_same(criteo, exports):
    _, _, ids, raw = criteo
    path, model = exports["hard"]
    expected = probabilities(model, ids)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        ids_sig, raw_sig = meta_graph.signature_def["serving_default"], meta_graph.signature_def["predict_raw"]
        by_ids = session.run(ids_sig.outputs["probability"].name, {ids_sig.inputs["feature_ids"].name: ids})
        by_raw = session.run(raw_sig.outputs["probability"].name, {raw_sig.inputs[c].name: raw[c] for c in raw})
    np.testing.assert_allclose(by_ids, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(by_raw, expected, atol=1e-5, rtol=0)


def test_c_saved_model_cli_lists_both_signatures(external_processes):
    _, shown = external_processes
    blocks = {b.split("']", 1)[0]: b for b in shown.split("signature_def['")[1:]}
    assert {"serving_default", "predict_raw"} <= set(blocks)
    ids_block = blocks["serving_default"]
    assert "inputs['feature_ids'] tensor_info:\n        dtype: DT_INT64\n        shape: (-1, 39)" in ids_block
    raw_block = blocks["predict_raw"].split("Concrete Functions")[0]
    for column in CRITEO_COLUMNS[1:]:
        assert f"inputs['{column}'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)\n" in raw_block
    assert raw_block.count("inputs['") == 39
    for block in (ids_block, raw_block):
        assert "outputs['probability'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)\n" in block
        assert "Method name is: tensorflow/serving/predict" in block


def test_d_raw_rows_score_as_their_tfrecord_ids(criteo, exports):
    _, _, ids, raw = criteo
    for fusion in FUSIONS:
        signatures = tf.saved_model.load(exports[fusion][0]).signatures
        by_raw = signatures["predict_raw"](**{c: tf.constant(v) for c, v in raw.items()})["probability"].numpy()
        by_ids = signatures["serving_default"](feature_ids=tf.constant(ids))["probability"].numpy()
        np.testing.assert_array_equal(by_raw, by_ids)


def test_e_out_of_range_ids_and_unseen_values_score_as_oov(criteo, exports):
    stats, _, ids, raw = criteo
    oov = np.array([f.oov_id for f in stats.fields])
    signatures = tf.saved_model.load(exports["hard"][0]).signatures
    score_ids = lambda x: signatures["serving_default"](feature_ids=tf.constant(x, tf.int64))["probability"].numpy()  # noqa: E731
    rows = np.repeat(ids[:1], 6, axis=0)
    rows[0, 0] = -1  # negative
    rows[1, 5] = stats.feature_num  # past the table
    rows[2, 38] = 2**62
    rows[3, 13] = stats.field("C2").offset  # a valid id of another field
    rows[4, 20] = stats.field("C8").oov_id  # a field's own OOV id stays
    rows[5] = -(2**63)
    expected_rows = np.repeat(ids[:1], 6, axis=0)
    for r, c in ((0, 0), (1, 5), (2, 38), (3, 13), (4, 20)):
        expected_rows[r, c] = oov[c]
    expected_rows[5] = oov
    np.testing.assert_array_equal(score_ids(rows), score_ids(expected_rows))
    assert score_ids(np.zeros((0, 39))).shape == (0,)
    # Issue 12, item 8: anything but [batch, F] is refused, naming the expected shape.
    for bad in (np.repeat(ids[:3, :, None], 1, axis=2), ids[0], ids[0, 0], ids[:2, :38]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected shape \[\?,39\]"):
            score_ids(bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected shape"):
        signatures["predict_raw"](**{c: tf.constant([v[:1]]) for c, v in raw.items()})

    unseen = {c: v[:1] * 3 for c, v in raw.items()}
    unseen["C1"] = ["never-seen-value", "", "\u00e9\t\n"]
    unseen["I3"] = ["not a number", "1e999", "nan"]
    got = signatures["predict_raw"](**{c: tf.constant(v) for c, v in unseen.items()})["probability"].numpy()
    expected_rows = np.repeat(ids[:1], 3, axis=0)
    expected_rows[:, 13] = oov[13]  # C1 keeps no "" in this sample
    expected_rows[:, 2] = oov[2]
    np.testing.assert_array_equal(got, score_ids(expected_rows))


def test_hard_export_holds_only_the_pruned_graph(exports):
    for fusion in FUSIONS:
        path, model = exports[fusion]
        variables = tf.saved_model.load(path).variables
        assert sorted(v.name.split(":")[0] for v in variables) == sorted(w.path for w in model.weights)
        assert not [v for v in variables if "_D1/" in v.name]  # D1 is dead in the test architecture
    hard_params = sum(int(np.prod(v.shape)) for v in tf.saved_model.load(exports["hard"][0]).variables)
    assert hard_params == exports["hard"][1].count_params()
    assert hard_params < exports["soft"][1].count_params()


def test_request_example_scores_like_the_keras_model(criteo, exports):
    stats, _, ids, raw = criteo
    path, model = exports["hard"]
    with open(os.path.join(path, "request_example.json")) as f:
        example = json.load(f)
    assert set(example) == {"serving_default", "predict_raw"}
    for name, body in example.items():
        assert body["signature_name"] == name and len(body["instances"]) == 3
    id_rows = [instance["feature_ids"] for instance in example["serving_default"]["instances"]]
    np.testing.assert_array_equal(id_rows, ids[:3])  # the first rows of the test split
    raw_rows = example["predict_raw"]["instances"]
    assert [list(r) for r in raw_rows] == [list(CRITEO_COLUMNS[1:])] * 3
    assert raw_rows == [{c: raw[c][i] for c in raw} for i in range(3)]
    # Scored as TF Serving's row format does: one tensor per input, instances stacked.
    signatures = tf.saved_model.load(path).signatures
    by_raw = signatures["predict_raw"](**{c: tf.constant([r[c] for r in raw_rows]) for c in raw_rows[0]})["probability"]
    np.testing.assert_allclose(by_raw.numpy(), probabilities(model, np.array(id_rows)), atol=1e-5, rtol=0)
