"""tools/serving_smoke.py against a stand-in for TF Serving's REST API (the real binary cannot be
installed here): it passes on faithful answers, fails on wrong ones, and explains what is missing."""

import http.server
import importlib.util
import json
import os
import re
import threading

import pytest
import tensorflow as tf

from optfusion_tf.export.savedmodel import export_savedmodel
from test_export_helpers import make_retrain_run, preprocess_sample

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


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (they ship beside the repo, not in it)")
    root = tmp_path_factory.mktemp("smoke")
    preprocess_sample("kdd12", SHARED_DATA / "kdd12_sample.txt", root / "kdd", ratio=(0.6, 0.2, 0.2), threshold=1)
    result = export_savedmodel(make_retrain_run(root / "run", root / "kdd"), str(root / "export"), "ctr")
    server = FakeServing(result.path, "ctr", result.version)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, str(root / "export")
    server.shutdown()
    server.server_close()


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


def test_grpc_without_the_client_package_says_what_to_install(served, capsys):
    server, export_dir = served
    try:
        import tensorflow_serving.apis  # noqa: F401

        pytest.skip("tensorflow-serving-api is installed; this checks the message when it is not")
    except ImportError:
        pass
    assert smoke.run_smoke(None, "127.0.0.1:1", export_dir, "ctr") == 1
    assert "pip install tensorflow-serving-api" in capsys.readouterr().err
