"""optfusion_tf.cli.quiet: TensorFlow's C++ start-up lines stay hidden in the processes a
script starts too, and come back when the user sets TF_CPP_MIN_LOG_LEVEL."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO_ROOT

SCRIPT = """
from optfusion_tf.cli.quiet import import_tensorflow_quietly
import_tensorflow_quietly()
import keras
from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
from optfusion_tf.demo.demo_data import write_demo_criteo

if __name__ == "__main__":  # the workers (forkserver: TensorFlow is imported) import this again
    raw = write_demo_criteo({raw!r}, 300, seed=1)
    preprocess("criteo", raw, {out!r}, PreprocessOptions(workers=2))
    print("DONE")
"""


def _start_up_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if "I0000" in line or "E0000" in line or "cudart_stub" in line]


def test_workers_of_a_script_that_imported_tensorflow_print_no_start_up_lines(tmp_path):
    # The variable that import_tensorflow_quietly sets was inherited by the workers, which then
    # read it as the user's and printed the lines (bench/peers.py preparing synthetic_500000).
    script = tmp_path / "prepare.py"
    script.write_text(SCRIPT.format(raw=str(tmp_path / "raw.txt"), out=str(tmp_path / "ds")))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env={**env, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-3000:]
    assert not _start_up_lines(done.stderr), done.stderr[-3000:]


def test_the_user_s_level_shows_the_lines():
    done = subprocess.run(
        [sys.executable, "-c", "from optfusion_tf.cli.quiet import import_tensorflow_quietly\n"
         "import_tensorflow_quietly()"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and _start_up_lines(done.stderr), done.stderr[-3000:]
