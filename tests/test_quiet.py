"""optfusion_tf.cli.quiet: TensorFlow's C++ start-up lines stay hidden in the bench scripts and
in the processes a script starts too, and come back when the user sets TF_CPP_MIN_LOG_LEVEL.

The bench scripts set `os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")` before `import keras`,
which has not hidden these lines since TF 2.17 (tensorflow/tensorflow#100442); they call
`import_tensorflow_quietly` first."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, start_up_lines

# Every bench script that imports TensorFlow in its own process (the DeepCTR workers run as
# children whose stderr the parent keeps for its error messages).
BENCH_SCRIPTS = ("distributed_bench", "peers", "quality", "recipe", "run_dir_size",
                 "scaling_probes", "serving_bench", "train_bench")
MODULE_IMPORT = re.compile(r"^(?:import|from) ([\w.]+)", re.M)

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


def _without_level() -> dict[str, str]:
    """This process' environment without TF_CPP_MIN_LOG_LEVEL (the user did not set it)."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_workers_of_a_script_that_imported_tensorflow_print_no_start_up_lines(tmp_path):
    # The variable that import_tensorflow_quietly sets was inherited by the workers, which then
    # read it as the user's and printed the lines (bench/peers.py preparing synthetic_500000).
    script = tmp_path / "prepare.py"
    script.write_text(SCRIPT.format(raw=str(tmp_path / "raw.txt"), out=str(tmp_path / "ds")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env={**_without_level(), "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-3000:]
    assert not start_up_lines(done.stderr), done.stderr[-3000:]


def test_the_user_s_level_shows_the_lines():
    done = subprocess.run(
        [sys.executable, "-c", "from optfusion_tf.cli.quiet import import_tensorflow_quietly\n"
         "import_tensorflow_quietly()"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and start_up_lines(done.stderr), done.stderr[-3000:]


@pytest.mark.parametrize("name", BENCH_SCRIPTS)
def test_every_bench_imports_tensorflow_quietly_first(name):
    """Its module-level `import_tensorflow_quietly()` comes before every module-level import
    but the standard library's and the quiet import's own (any other may import TensorFlow)."""
    source = (REPO_ROOT / "bench" / f"{name}.py").read_text(encoding="utf-8")
    call = re.search(r"^import_tensorflow_quietly\(\)", source, re.M)
    assert call, f"bench/{name}.py does not call import_tensorflow_quietly() at module level"
    early = [m.group(1) for m in MODULE_IMPORT.finditer(source[:call.start()])
             if m.group(1) != "optfusion_tf.cli.quiet"
             and m.group(1).split(".")[0] not in sys.stdlib_module_names | {"__future__"}]
    assert not early, f"bench/{name}.py imports {early} before import_tensorflow_quietly()"


def test_peers_help_prints_no_tensorflow_start_up_lines():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "peers.py"), "--help"],
                          env=_without_level(), capture_output=True, text=True, timeout=300)
    assert "--datasets" in done.stdout, done.stderr[-2000:]
    assert not start_up_lines(done.stderr), done.stderr[-2000:]
