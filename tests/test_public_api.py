"""The package's public API (issue 26, item 3): lazy exports and the README's quickstart."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, demo_dataset

import optfusion_tf


def _quickstart() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quickstart_runs(tmp_path):
    data = demo_dataset(tmp_path, 3000)
    code = _quickstart().replace('"demo_run/tfrecords/demo_criteo_2"', repr(data))
    code += (
        "\nimport keras, numpy as np\n"
        "loaded = keras.saving.load_model('parallel.keras')\n"
        "ids = next(iter(of.make_dataset(data, 'test', 64)))[0]\n"
        "np.testing.assert_allclose(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))\n"
        "assert os.path.isfile('runs/my_search/arch.json'), os.listdir('runs/my_search')\n"
        "print('VALID', metrics['valid_auc'])\n"
        "print('QUICKSTART OK')\n"
    )
    done = subprocess.run([sys.executable, "-c", "import os\n" + code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and "QUICKSTART OK" in done.stdout, done.stderr[-3000:]
    assert "'loss'" in done.stdout


def test_exports_load_on_first_use():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, optfusion_tf as of\n"
         "assert 'tensorflow' not in sys.modules\n"
         "print(sorted(of.__all__), of.PRESETS, 'tensorflow' in sys.modules)"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "('parallel', 'stacked') False" in done.stdout  # the architecture spec is plain Python
    assert set(optfusion_tf.__all__) <= set(dir(optfusion_tf))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        optfusion_tf.nope  # noqa: B018


def test_old_architecture_names_still_import():
    from optfusion_tf.architecture.spec import ArchSpec, ArchSpecError, ArchitectureSpec, ArchitectureSpecError

    assert optfusion_tf.ArchSpec is ArchSpec is ArchitectureSpec
    assert ArchSpecError is ArchitectureSpecError


def test_search_options_are_the_flags(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['learning_rate'\]"):
        optfusion_tf.search(str(tmp_path), str(tmp_path / "r"), learning_rate=0.1)
    assert not (tmp_path / "r").exists()
