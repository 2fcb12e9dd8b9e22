"""Checks a live TF Serving against local predictions of the same export.

    python tools/serving_smoke.py --rest_url=http://localhost:8501 [--grpc_target=localhost:8500]
        [--export_dir=export] [--model_name=optfusion] [--version=N] [--tolerance=1e-5]

For the export version directory (<export_dir>/<model_name>/<version>, default the latest), it
sends the bodies of its request_example.json (both signatures) to the server, over REST
(`:predict`, row format) and, with --grpc_target, over gRPC (PredictionService/Predict; needs
`pip install tensorflow-serving-api`), and compares the returned probabilities with the same
SavedModel loaded here. It first checks that the server reports the version AVAILABLE.
Exit status 0 when every answer matches within --tolerance, 1 otherwise (each check is printed).

Needs only TensorFlow and absl, not optfusion_tf: it can run on the serving host.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

PROBABILITY = "probability"
GRPC_MISSING = (
    "--grpc_target needs the TF Serving client (tensorflow-serving-api): pip install -e "
    '".[serving]" in this repository, or pip install "tensorflow-serving-api==<your TensorFlow '
    'version>" on the serving host. Leave out --grpc_target to check REST only.'
)


class SmokeError(RuntimeError):
    """The check cannot run (no export, server unreachable or version not loaded)."""


def version_dir(export_dir: str, model_name: str, version: int | None) -> tuple[str, int]:
    """The export's version directory and number (the latest when `version` is None)."""
    base = os.path.join(export_dir, model_name)
    if version is None:
        versions = [int(n) for n in os.listdir(base) if re.fullmatch(r"[0-9]+", n)] if os.path.isdir(base) else []
        if not versions:
            raise SmokeError(f"{base}: no version directory (run export_savedmodel.py first)")
        version = max(versions)
    path = os.path.join(base, str(version))
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise SmokeError(f"{path}: no SavedModel there")
    return path, version


def load_bodies(path: str) -> dict[str, dict[str, Any]]:
    """signature name -> REST body, from <path>/request_example.json."""
    example = os.path.join(path, "request_example.json")
    if not os.path.isfile(example):
        raise SmokeError(f"{example}: not found (written by export_savedmodel.py)")
    with open(example, encoding="utf-8") as f:
        return json.load(f)


def input_columns(body: dict[str, Any]) -> dict[str, list[Any]]:
    """A row-format body's instances as input name -> one value per row."""
    rows = body["instances"]
    return {name: [row[name] for row in rows] for name in rows[0]}


def local_predictions(signatures: Any, name: str, body: dict[str, Any]) -> np.ndarray:
    """The loaded SavedModel's probabilities [N] for one body."""
    function = signatures[name]
    specs = function.structured_input_signature[1]
    inputs = {k: tf.constant(v, specs[k].dtype) for k, v in input_columns(body).items()}
    return function(**inputs)[PROBABILITY].numpy()


def rest_status(rest_url: str, model_name: str, version: int, timeout: float) -> str:
    """The version's state as TF Serving's REST model status API reports it."""
    url = f"{rest_url.rstrip('/')}/v1/models/{model_name}/versions/{version}"
    status = _http_json(url, None, timeout)
    states = [s.get("state") for s in status.get("model_version_status", []) if str(s.get("version")) == str(version)]
    return states[0] if states else "UNKNOWN"


def rest_predictions(rest_url: str, model_name: str, version: int, body: dict[str, Any], timeout: float) -> np.ndarray:
    """POSTs one body to `:predict`; returns the probabilities [N]."""
    url = f"{rest_url.rstrip('/')}/v1/models/{model_name}/versions/{version}:predict"
    return np.asarray(_http_json(url, body, timeout)["predictions"], np.float32).reshape(-1)


def grpc_predictions(target: str, model_name: str, version: int, name: str, body: dict[str, Any], timeout: float) -> np.ndarray:
    """One PredictionService/Predict call with the body's rows; returns the probabilities [N]."""
    try:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as e:
        raise SmokeError(f"{GRPC_MISSING} ({e})") from None
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.version.value = version
    request.model_spec.signature_name = name
    for key, values in input_columns(body).items():
        dtype = tf.int64 if key == "feature_ids" else tf.string
        request.inputs[key].CopyFrom(tf.make_tensor_proto(values, dtype=dtype))
    try:
        with grpc.insecure_channel(target) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    except grpc.RpcError as e:
        hint = {
            grpc.StatusCode.UNAVAILABLE: "cannot reach TF Serving there",
            grpc.StatusCode.DEADLINE_EXCEEDED: f"no answer within {timeout:g} s",
            grpc.StatusCode.NOT_FOUND: f"the server does not serve model {model_name!r} version {version}",
            grpc.StatusCode.INVALID_ARGUMENT: f"the server's {name!r} signature does not take this request",
        }.get(e.code(), "the server refused the request")
        raise SmokeError(f"{target}: gRPC {e.code().name}: {hint} ({e.details()})") from None
    if PROBABILITY not in response.outputs:
        raise SmokeError(f"{target}: the {name!r} answer has no {PROBABILITY!r} output (outputs: {sorted(response.outputs)})")
    return tf.make_ndarray(response.outputs[PROBABILITY]).reshape(-1)


def _http_json(url: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        raise SmokeError(f"{url}: HTTP {e.code}: {e.read().decode('utf-8', 'replace')[:500]}") from None
    except (urllib.error.URLError, OSError) as e:
        raise SmokeError(f"{url}: cannot reach TF Serving ({e})") from None


def define_flags() -> None:
    """The command line's flags (defined only when run as a script, so importing is side-effect free)."""
    flags.DEFINE_string("rest_url", None, "TF Serving's REST address, e.g. http://localhost:8501.")
    flags.DEFINE_string("grpc_target", None, "TF Serving's gRPC address, e.g. localhost:8500 (needs tensorflow-serving-api).")
    flags.DEFINE_string("export_dir", "export", "Export root, as given to export_savedmodel.py.")
    flags.DEFINE_string("model_name", "optfusion", "The model's name (TF Serving's --model_name).")
    flags.DEFINE_integer("version", None, "Version to check; default: the latest under <export_dir>/<model_name>.", lower_bound=1)
    flags.DEFINE_float("tolerance", 1e-5, "Largest accepted |server - local| probability.", lower_bound=0.0)
    flags.DEFINE_float("timeout", 30.0, "Seconds to wait for each server answer.", lower_bound=0.0)


def run_smoke(
    rest_url: str | None,
    grpc_target: str | None,
    export_dir: str = "export",
    model_name: str = "optfusion",
    version: int | None = None,
    tolerance: float = 1e-5,
    timeout: float = 30.0,
) -> int:
    """The check (flags of the same names); prints one line per transport and signature.

    Returns:
        0 when every answer matches within `tolerance`, else 1.
    """
    failures = 0
    try:
        path, version = version_dir(export_dir, model_name, version)
        bodies = load_bodies(path)
        signatures = tf.saved_model.load(path).signatures
        local = {name: local_predictions(signatures, name, body) for name, body in bodies.items()}
        transports = []
        if rest_url:
            state = rest_status(rest_url, model_name, version, timeout)
            if state != "AVAILABLE":
                raise SmokeError(f"{rest_url}: model {model_name!r} version {version} is {state}, not AVAILABLE")
            transports.append(("rest", lambda n, b: rest_predictions(rest_url, model_name, version, b, timeout)))
        if grpc_target:
            transports.append(("grpc", lambda n, b: grpc_predictions(grpc_target, model_name, version, n, b, timeout)))
        print(f"checking {model_name} version {version} ({path})")
        for transport, predict in transports:
            for name, body in bodies.items():
                served = predict(name, body)
                diff = float(np.max(np.abs(served - local[name]))) if served.shape == local[name].shape else float("inf")
                ok = diff <= tolerance
                failures += not ok
                print(f"{transport:4s} {name:15s} {len(local[name])} rows  max |server - local| = {diff:.2e}  {'OK' if ok else 'MISMATCH'}")
    except SmokeError as e:
        print(f"serving_smoke: error: {e}", file=sys.stderr)
        return 1
    return 1 if failures else 0


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if not FLAGS.rest_url and not FLAGS.grpc_target:
        raise app.UsageError("give --rest_url and/or --grpc_target")
    return run_smoke(
        FLAGS.rest_url, FLAGS.grpc_target, FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
        FLAGS.tolerance, FLAGS.timeout,
    )  # fmt: skip


if __name__ == "__main__":
    define_flags()
    app.run(main)
