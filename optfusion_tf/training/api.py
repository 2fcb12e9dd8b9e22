"""search.py and retrain.py as Python functions (the package's public `search` / `retrain`).

    import optfusion_tf as of
    metrics = of.search("tfrecords/criteo_2", "runs/search", emb_dim=16, epochs=1)
    metrics = of.retrain("tfrecords/criteo_2", "runs/hard", arch="runs/search/arch.json")

Every option is a field of `TrainingConfig`, named as the scripts' flag (`--lr_emb` ->
`lr_emb=`), with the same default. The run directory follows the scripts' rules (resume,
refusal, `overwrite=True`); its flags.txt holds the options' `--name=value` lines.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from optfusion_tf.training.config import TrainingConfig
from optfusion_tf.training.experiment import run_retrain, run_search
from optfusion_tf.training.run_dir import NON_RESULT_FLAGS


def _config(dataset_dir: str, run_dir: str, options: dict[str, Any]) -> TrainingConfig:
    fields = {f.name for f in dataclasses.fields(TrainingConfig)} - {"dataset_dir", "run_dir"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown}; the options are the flags of search.py "
                         f"and retrain.py: {sorted(fields)}")
    return TrainingConfig(dataset_dir=dataset_dir, run_dir=run_dir, **options)


def _flag_lines(config: TrainingConfig) -> list[str]:
    """flags.txt lines of `config`, as the scripts write theirs (sorted, None left out)."""
    return sorted(
        f"--{name}={value}" for name, value in dataclasses.asdict(config).items()
        if value is not None and name not in NON_RESULT_FLAGS
    )


def search(dataset_dir: str, run_dir: str, **options: Any) -> dict[str, Any]:
    """Stage 1, as `search.py`: returns the run's metrics.json (arch.json is in `run_dir`)."""
    config = _config(dataset_dir, run_dir, options)
    return run_search(config, _flag_lines(config))


def retrain(dataset_dir: str, run_dir: str, **options: Any) -> dict[str, Any]:
    """Stage 2, as `retrain.py` (`arch=` a search's arch.json, or `preset=`): returns the run's
    metrics.json."""
    config = _config(dataset_dir, run_dir, options)
    return run_retrain(config, _flag_lines(config), given=set(options))
