"""CI runs the README's own set-up commands (.ci/readme_commands.py, issue 26 item 1)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / ".ci" / "readme_commands.py"


def _run(path):
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True,
                          timeout=60)


def test_ci_reads_the_two_commands_of_the_readme():
    done = _run(REPO_ROOT / "README.md")
    assert done.returncode == 0, done.stderr
    install, tests = done.stdout.splitlines()
    assert install.startswith('pip install -e ".[test]"') and "python -m optfusion_tf.demo" in install
    assert tests == "python -m pytest -q tests"
    assert "python .ci/readme_commands.py README.md" in (REPO_ROOT / ".ci" / "run").read_text()


def test_a_readme_without_two_commands_is_refused_naming_it(tmp_path):
    three = tmp_path / "README.md"
    three.write_text("# x\n\n```bash\npip install .\npython -m demo\npytest\n```\n")
    done = _run(three)
    assert done.returncode == 1 and f"{three}: the first ```bash block holds 3 commands" in done.stderr
    none = tmp_path / "NONE.md"
    none.write_text("# x\n")
    done = _run(none)
    assert done.returncode == 1 and f"{none}: no ```bash block" in done.stderr
