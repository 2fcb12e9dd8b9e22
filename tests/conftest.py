"""Shared pytest fixtures: the real data samples in ../shared/data and quiet TensorFlow logs."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def start_up_lines(text: str) -> list[str]:
    """TensorFlow's C++ start-up lines in a program's output (absl C++ logging: I0000 / E0000
    prefixes, the CUDA stub's message)."""
    return [line for line in text.splitlines()
            if "I0000" in line or "E0000" in line or "cudart_stub" in line]


@pytest.fixture
def shared_data() -> pathlib.Path:
    """The folder of real Criteo/Avazu/KDD12 samples; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (they ship beside the repo, not in it)")
    return SHARED_DATA


def demo_dataset(root: pathlib.Path, rows: int, seed: int = 3) -> str:
    """A preprocessed dataset directory of `rows` synthetic Criteo-format rows under `root`."""
    from optfusion_tf.data.preprocess import PreprocessOptions, preprocess
    from optfusion_tf.demo.demo_data import write_demo_criteo

    raw = write_demo_criteo(str(root / "raw.txt"), rows, seed=seed)
    preprocess("criteo", raw, str(root / "ds"), PreprocessOptions(workers=0))
    return str(root / "ds")
