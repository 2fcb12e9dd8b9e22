"""The bench scripts print no TensorFlow C++ start-up lines (the standard of issue 26, item 2):
`os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")` before `import keras` did not hide them
since TF 2.17 (tensorflow/tensorflow#100442); they call `import_tensorflow_quietly` first."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

# Every bench script that imports TensorFlow in its own process (the DeepCTR workers run as
# children whose stderr the parent keeps for its error messages).
SCRIPTS = ("distributed_bench", "peers", "quality", "recipe", "run_dir_size", "scaling_probes",
           "serving_bench", "train_bench")
MODULE_IMPORT = re.compile(r"^(?:import|from) ([\w.]+)", re.M)


@pytest.mark.parametrize("name", SCRIPTS)
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
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "peers.py"), "--help"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert "--datasets" in done.stdout, done.stderr[-2000:]
    chatter = [line for line in done.stderr.splitlines()
               if "I0000" in line or "E0000" in line or "cudart_stub" in line]
    assert not chatter, chatter
