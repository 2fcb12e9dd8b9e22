"""configs/*.flags: the paper's per-dataset settings parse for search.py and retrain.py."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.flags"))
PARSE = """
import sys
from absl import flags
from optfusion_tf.cli import training_flags
training_flags.define_common_flags()
getattr(training_flags, "define_{stage}_flags")()
for path in sys.argv[1:]:
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--flagfile=" + path])
    print(path, flags.FLAGS.emb_dim, flags.FLAGS.lr_emb, flags.FLAGS.batch_size)
"""


def test_every_dataset_has_a_config():
    assert [p.stem for p in CONFIGS] == ["avazu", "criteo", "kdd12"]


@pytest.mark.parametrize("stage", ["search", "retrain"])
def test_configs_parse(stage):
    proc = subprocess.run(
        [sys.executable, "-c", PARSE.replace("{stage}", stage), *map(str, CONFIGS)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines[str(REPO_ROOT / "configs" / "criteo.flags")] == "40 0.0003 4096"
    assert lines[str(REPO_ROOT / "configs" / "kdd12.flags")] == "16 0.003 4096"
