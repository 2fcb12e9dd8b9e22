"""The package layout of docs/architecture.md: folders only, and imports that go one way."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "optfusion_tf"

# Which of our folders each folder may import (docs/architecture.md).
ALLOWED = {
    "architecture": set(),
    "layers": {"architecture"},
    "operations": {"architecture", "layers"},
    "optimizers": set(),
    "models": {"architecture", "layers", "operations", "optimizers"},
    "data": set(),
    "distribute": set(),
    "analysis": {"architecture", "models"},
    "export": {"data", "models"},
    "training": {"analysis", "architecture", "data", "distribute", "models", "optimizers"},
    "demo": {"cli", "data", "export", "training"},  # cli.quiet: the demo is a script too
    "cli": {"architecture", "data", "distribute", "export", "layers", "optimizers", "training"},
}
# Known edges against the direction, each to be cut by the next layout step (none today).
EXCEPTIONS: set[tuple[str, str]] = set()


def _imported_folders(path: pathlib.Path) -> set[str]:
    """The folders of optfusion_tf that the module at `path` imports."""
    folders = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "optfusion_tf":
                folders.add(parts[1] if len(parts) > 1 else "")
    return folders


def test_the_package_is_folders_only():
    modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert modules == []
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert folders == sorted(ALLOWED)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_imports_go_one_way(folder):
    wrong = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for imported in _imported_folders(path) - {folder}:
            if imported not in ALLOWED[folder] and (relative, imported) not in EXCEPTIONS:
                wrong.append(f"{relative} imports optfusion_tf.{imported or '(top level)'}")
    assert not wrong, "against docs/architecture.md:\n" + "\n".join(wrong)


def test_every_exception_is_still_needed():
    """An exception that no longer happens is deleted from EXCEPTIONS (and the docs)."""
    for relative, imported in EXCEPTIONS:
        assert imported in _imported_folders(PACKAGE / relative), (relative, imported)


def test_the_checker_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from optfusion_tf.training.experiment import run_search\nimport optfusion_tf.cli.search\n")
    assert _imported_folders(bad) == {"training", "cli"}
