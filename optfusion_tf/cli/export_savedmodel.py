"""export_savedmodel: a re-train run -> a TF Serving SavedModel with `serving_default` and `predict_raw`.

    python export_savedmodel.py --run_dir=runs/retrain_hard [--export_dir=export]
        [--model_name=optfusion] [--version=N]

Writes <export_dir>/<model_name>/<version>/ (version: the next integer by default), with
request_example.json inside. Exit status: 0 on success, 1 when the run, dataset or export
directory cannot be used (the message says which and why) and for bad flags (absl). See
docs/serving.md.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from optfusion_tf.cli.flag_help import show_flags_in_help
from optfusion_tf.cli.quiet import import_tensorflow_quietly, quiet_library_logs

import_tensorflow_quietly()

from absl import app, flags  # noqa: E402

from optfusion_tf.export.errors import ExportError  # noqa: E402
from optfusion_tf.export.request_example import REQUEST_EXAMPLE_FILE  # noqa: E402
from optfusion_tf.export.savedmodel import export_savedmodel  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "run_dir", None, "A complete retrain.py run directory (model.keras, flags.txt, metrics.json)."
)
flags.DEFINE_string(
    "export_dir", "export", "Export root; the model's base path is <export_dir>/<model_name>."
)
flags.DEFINE_string(
    "model_name", "optfusion", "Model name (TF Serving's --model_name and REST path)."
)
flags.DEFINE_integer(
    "version", None, "Version directory to write; default: 1 + the largest existing.", lower_bound=1
)
flags.mark_flag_as_required("run_dir")


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    quiet_library_logs(FLAGS.verbosity)
    try:
        result = export_savedmodel(FLAGS.run_dir, FLAGS.export_dir, FLAGS.model_name, FLAGS.version)
    except ExportError as e:
        print(f"{os.path.basename(sys.argv[0])}: error: {e}", file=sys.stderr)
        return 1
    base = os.path.abspath(os.path.dirname(result.path))
    print(f"exported {result.fusion} model, version {result.version}: {result.path}")
    print(
        f"  signatures: serving_default (feature_ids), predict_raw ({len(result.raw_inputs)} raw inputs)"
    )
    print(
        f"  checked on {result.checked_rows} rows: max |SavedModel - Keras| = {result.max_abs_diff:.2e}"
    )
    print(f"  request bodies: {os.path.join(result.path, REQUEST_EXAMPLE_FILE)}")
    print(
        f"  serve: tensorflow_model_server --rest_api_port=8501 --port=8500 "
        f"--model_name={FLAGS.model_name} --model_base_path={base}"
    )
    return 0


def run() -> None:
    """Console entry point."""
    show_flags_in_help(sys.modules[__name__])
    app.run(main)


if __name__ == "__main__":
    run()
