"""OptFusion (WSDM '25, "Fusion Matters: Learning Fusion in Deep CTR Prediction Models") for
TensorFlow / Keras 3.

The public API, imported on first use (so that `import optfusion_tf` does not load TensorFlow
before a script has set its logging up):

- `OptFusionModel`: the Keras model (search, hard / soft / fixed re-train, presets);
  `ArchitectureSpec` (also under its old name `ArchSpec`), `PRESETS`: architectures (arch.json)
  and the preset names.
- `make_dataset`, `load_split`, `DatasetStats`: read a preprocessed dataset directory.
- `search`, `retrain`: search.py and retrain.py as functions; `TrainingConfig` their options.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "OptFusionModel": "optfusion_tf.models.model",
    "ArchitectureSpec": "optfusion_tf.architecture.spec",
    "ArchSpec": "optfusion_tf.architecture.spec",
    "PRESETS": "optfusion_tf.architecture.presets",
    "make_dataset": "optfusion_tf.data.reader",
    "load_split": "optfusion_tf.data.reader",
    "DatasetStats": "optfusion_tf.data.stats",
    "TrainingConfig": "optfusion_tf.training.config",
    "search": "optfusion_tf.training.api",
    "retrain": "optfusion_tf.training.api",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'optfusion_tf' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
