"""tools/serving_smoke.py against stand-ins for TF Serving's REST and gRPC APIs (the real binary
cannot be installed here): it passes on faithful answers, fails on wrong ones, and explains what
is missing or unreachable.

The stand-ins serve the exported SavedModel through TF Serving's request and response formats:
REST `:predict` in row format, and gRPC `PredictionService/Predict` from tensorflow-serving-api's
own protos and servicer base (the `serving` extra, also in `test`), so a malformed request or a
signature mismatch in our client fails here.
"""

import http.server
import importlib.util
import json
import os
import re
import sys
import threading
from concurrent import futures

import pytest
import tensorflow as tf

from conftest import demo_dataset
from optfusion_tf.export.savedmodel import export_savedmodel
from test_export_helpers import make_retrain_run

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool():
    spec = importlib.util.spec_from_file_location("serving_smoke", os.path.join(REPO_ROOT, "tools", "serving_smoke.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smoke = _load_tool()


class FakeServing(http.server.ThreadingHTTPServer):
    """TF Serving's REST model status and :predict (row format) over one SavedModel version."""

    def __init__(self, path, model_name, version):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.signatures = tf.saved_model.load(path).signatures
        self.model_name, self.version, self.offset = model_name, version, 0.0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        s = self.server
        if self.path == f"/v1/models/{s.model_name}/versions/{s.version}":
            return self._reply(200, {"model_version_status": [{"version": str(s.version), "state": "AVAILABLE"}]})
        self._reply(404, {"error": "Servable not found"})

    def do_POST(self):
        s = self.server
        match = re.fullmatch(rf"/v1/models/{s.model_name}/versions/{s.version}:predict", self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not match or body.get("signature_name") not in s.signatures:
            return self._reply(400, {"error": "bad request"})
        function = s.signatures[body["signature_name"]]
        specs = function.structured_input_signature[1]
        rows = body["instances"]
        inputs = {k: tf.constant([r[k] for r in rows], specs[k].dtype) for k in rows[0]}
        predictions = function(**inputs)["probability"].numpy() + s.offset
        self._reply(200, {"predictions": predictions.tolist()})


def _grpc_stand_in(signatures, model_name, version):
    """A grpc server with TF Serving's PredictionService/Predict over the loaded signatures, and
    a dict whose "offset" is added to every answer (to serve wrong ones)."""
    grpc = pytest.importorskip("grpc")
    apis = pytest.importorskip(
        "tensorflow_serving.apis.prediction_service_pb2_grpc",
        reason='needs tensorflow-serving-api: pip install -e ".[serving]" (it is in ".[test]" too)')
    from tensorflow_serving.apis import predict_pb2

    state = {"offset": 0.0}

    class Servicer(apis.PredictionServiceServicer):
        def Predict(self, request, context):
            spec = request.model_spec
            if spec.name != model_name or spec.version.value not in (0, version):
                context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")
            if spec.signature_name not in signatures:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no signature {spec.signature_name!r}")
            function = signatures[spec.signature_name]
            specs = function.structured_input_signature[1]
            if set(request.inputs) != set(specs):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"inputs {sorted(request.inputs)} != {sorted(specs)}")
            inputs = {}
            for key, proto in request.inputs.items():
                if tf.dtypes.as_dtype(proto.dtype) != specs[key].dtype:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{key}: {proto.dtype} != {specs[key].dtype}")
                inputs[key] = tf.constant(tf.make_ndarray(proto), specs[key].dtype)
            probability = function(**inputs)["probability"].numpy() + state["offset"]
            response = predict_pb2.PredictResponse()
            response.outputs["probability"].CopyFrom(tf.make_tensor_proto(probability))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    apis.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}", state


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    dataset = demo_dataset(root, 600)
    result = export_savedmodel(make_retrain_run(root / "run", dataset), str(root / "export"), "ctr")
    server = FakeServing(result.path, "ctr", result.version)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, str(root / "export")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def grpc_served(served):
    rest, export_dir = served
    server, target, state = _grpc_stand_in(rest.signatures, rest.model_name, rest.version)
    yield target, state, export_dir
    server.stop(grace=None)


def test_smoke_passes_against_faithful_answers(served, capsys):
    server, export_dir = served
    server.offset = 0.0
    assert smoke.run_smoke(server.url, None, export_dir, "ctr") == 0
    out = capsys.readouterr().out
    assert re.search(r"rest serving_default +\d+ rows  max \|server - local\| = 0\.00e\+00  OK", out)
    assert re.search(r"rest predict_raw +\d+ rows .* OK", out)


def test_smoke_fails_on_wrong_answers_and_missing_versions(served, capsys):
    server, export_dir = served
    server.offset = 1e-3
    try:
        assert smoke.run_smoke(server.url, None, export_dir, "ctr") == 1
    finally:
        server.offset = 0.0
    assert capsys.readouterr().out.count("MISMATCH") == 2
    assert smoke.run_smoke(server.url, None, export_dir, "ctr", version=9) == 1
    assert "ctr/9: no SavedModel there" in capsys.readouterr().err
    assert smoke.run_smoke("http://127.0.0.1:1", None, export_dir, "ctr") == 1
    assert "cannot reach TF Serving" in capsys.readouterr().err


def test_grpc_smoke_passes_against_faithful_answers(grpc_served, served, capsys):
    target, state, export_dir = grpc_served
    rest, _ = served
    assert smoke.run_smoke(rest.url, target, export_dir, "ctr") == 0
    out = capsys.readouterr().out
    assert re.search(r"grpc serving_default +\d+ rows  max \|server - local\| = 0\.00e\+00  OK", out)
    assert re.search(r"grpc predict_raw +\d+ rows .* OK", out) and out.count(" OK") == 4


def test_grpc_smoke_fails_on_wrong_answers_a_wrong_model_and_no_server(grpc_served, capsys):
    target, state, export_dir = grpc_served
    state["offset"] = 1e-3
    try:
        assert smoke.run_smoke(None, target, export_dir, "ctr") == 1
    finally:
        state["offset"] = 0.0
    assert capsys.readouterr().out.count("MISMATCH") == 2
    # The export is named "ctr"; a server that serves no "other" answers NOT_FOUND.
    other = os.path.join(os.path.dirname(export_dir), "export_other")
    os.makedirs(other, exist_ok=True)
    if not os.path.exists(os.path.join(other, "other")):
        os.symlink(os.path.join(export_dir, "ctr"), os.path.join(other, "other"))
    assert smoke.run_smoke(None, target, other, "other") == 1
    err = capsys.readouterr().err
    assert f"{target}: gRPC NOT_FOUND: the server does not serve model 'other'" in err, err
    assert smoke.run_smoke(None, "127.0.0.1:1", export_dir, "ctr", timeout=5) == 1
    assert "127.0.0.1:1: gRPC UNAVAILABLE: cannot reach TF Serving there" in capsys.readouterr().err


def test_grpc_without_the_client_package_says_what_to_install(served, capsys, monkeypatch):
    _, export_dir = served
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # import fails, installed or not
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    assert smoke.run_smoke(None, "127.0.0.1:1", export_dir, "ctr") == 1
    assert 'pip install -e ".[serving]"' in capsys.readouterr().err
