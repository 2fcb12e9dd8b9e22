"""What a search or re-train run is asked to do, and the checks of that request against its inputs.

`TrainingConfig` holds the flags of search.py / retrain.py; `load_dataset_stats` and
`retrain_arch` check the dataset directory and the architecture before anything is written (a
problem raises `ExperimentError`, and no run directory is left behind); `config_flag_lines` and
`arch_flag_lines` are the flags.txt lines that repeat the run.
"""

from __future__ import annotations

import dataclasses
import os

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import ArchitectureSpecError
from optfusion_tf.data.errors import DataError
from optfusion_tf.data.stats import DatasetStats
from optfusion_tf.distribute.choices import DEFAULT_CLUSTER_WAIT_S
from optfusion_tf.optimizers.choices import rates_conflict
from optfusion_tf.training.run_dir import RunDir

# The best epoch's model in a run directory (for export_savedmodel.py and --init_from_search).
MODEL_FILE = "model.keras"


class ExperimentError(RuntimeError):
    """A run cannot start or did not finish; the message says why."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The flags of search.py / retrain.py (optfusion_tf/cli/training_flags.py)."""

    dataset_dir: str
    run_dir: str
    emb_dim: int = 16
    n: int = 3
    shallow: str = "crossnet"
    dropout: float = 0.0
    batch_norm: bool = False
    batch_size: int = 4096
    epochs: int = 100
    patience: int = 2
    patience_steps: int = 128
    plateau_lr_factor: float = 1.0
    min_lr: float = 1e-6
    lr_emb: float = 1e-3
    lr_nn: float = 1e-3
    # The network's rate: lr_nn for 3 epochs, lr_nn / 2 for 3, then lr_nn / 3 (round 6 of
    # docs/training-recipe.md: Frappe's validation AUC moves on noise at a constant 1e-3).
    lr_nn_decay_epochs: int = 3
    lr_nn_decay_limit: int = 3
    l2_emb: float = 1e-5
    l2_nn: float = 1e-5
    embedding_optimizer: str = "auto"
    embedding_init_std: float = 1e-4
    kernel_init: str = "glorot_normal"
    concat_head: str = "projected"
    deep_dtype: str = "float32"
    clip_global_norm: float = 10.0
    shuffle: str = "examples"
    operation_norm: str = "none"
    seed: int = 2024
    overwrite: bool = False
    strategy: str = "none"
    cluster_wait_s: float = DEFAULT_CLUSTER_WAIT_S
    # search only
    arch_lr: float = 0.1
    init_constant: float = 0.5
    selection: str = "one_shot"
    # retrain only
    arch: str | None = None
    fusion: str = "hard"
    preset: str | None = None
    init_from_search: bool = False


SEARCH_ONLY = ("arch_lr", "init_constant", "selection")
RETRAIN_ONLY = ("arch", "fusion", "preset", "init_from_search")
# The flags whose values an --arch re-train takes from arch.json (retrain_arch, arch_flag_lines).
ARCH_FLAGS = ("n", "shallow", "emb_dim", "operation_norm")


def refuse_conflicting_rates(config: TrainingConfig) -> None:
    """ExperimentError for a decay of the network's rate together with a plateau step
    (`rates_conflict`; the CLIs refuse it at parse)."""
    if rates_conflict(config.plateau_lr_factor, config.lr_nn_decay_epochs):
        raise ExperimentError(
            f"plateau_lr_factor={config.plateau_lr_factor} and lr_nn_decay_epochs="
            f"{config.lr_nn_decay_epochs} both lower the network's learning rate; give "
            "lr_nn_decay_epochs=0 with a plateau step (or plateau_lr_factor=1)"
        )


def config_flag_lines(config: TrainingConfig, stage: str) -> list[str]:
    """flags.txt lines of a run started from Python (the CLIs write the parsed flags instead):
    every flag of `stage` ("search" | "retrain") that is set, so that
    `python <stage>.py --flagfile=<run>/flags.txt` repeats the run."""
    skipped = {"overwrite", "cluster_wait_s", *(RETRAIN_ONLY if stage == "search" else SEARCH_ONLY)}
    lines = []
    for field in sorted(dataclasses.fields(config), key=lambda f: f.name):
        value = getattr(config, field.name)
        if field.name in skipped or value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{field.name}" if value else f"--no{field.name}")
        else:
            lines.append(f"--{field.name}={value}")
    return lines


def load_dataset_stats(dataset_dir: str) -> DatasetStats:
    """stats.json of a complete dataset directory, or ExperimentError saying what is wrong."""
    if not dataset_dir:
        raise ExperimentError("--dataset_dir is required (a directory written by dataprocess/*2TF.py).")
    try:
        stats = DatasetStats.load(dataset_dir)
        for split in ("train", "validation", "test"):
            if stats.rows.get(split, 0) < 1:
                raise DataError(f"{dataset_dir}: the {split} split is empty; nothing to train or evaluate on")
        one_class = stats.one_class_splits()
        if one_class:
            split, label = next(iter(one_class.items()))
            raise DataError(
                f"{dataset_dir}: every one of the {stats.rows[split]:,} {split} rows has label "
                f"{label}; AUC needs both classes (another --seed or --ratio in preprocessing, "
                "or more data)"
            )
        problems = stats.shard_problems(dataset_dir)
        if problems:
            raise DataError(
                f"{dataset_dir}: the shards do not match stats.json: {'; '.join(problems[:5])}"
                " (copy the dataset again or re-run preprocessing)"
            )
    except DataError as err:
        raise ExperimentError(f"--dataset_dir: {err}") from None
    return stats


def retrain_arch(config: TrainingConfig, stats: DatasetStats, given: set[str]) -> ArchitectureSpec:
    """The architecture to re-train: --arch's arch.json or --preset, checked against the run.

    `given` names the flags the user set explicitly; --n/--shallow/--emb_dim must then agree
    with the arch (otherwise they are taken from it).
    """
    if (config.arch is None) == (config.preset is None):
        raise ExperimentError("retrain.py needs exactly one of --arch=<search run>/arch.json and --preset.")
    if config.preset is not None:
        if config.init_from_search:
            raise ExperimentError("--init_from_search needs --arch (a preset has no search run).")
        return preset_arch(
            config.preset, n=config.n, shallow=config.shallow, dataset=stats.dataset,
            num_fields=stats.num_fields, feature_num=stats.feature_num, emb_dim=config.emb_dim,
            operation_norm=config.operation_norm,
        )
    try:
        arch = ArchitectureSpec.load(config.arch)
        arch.check_compatible(
            dataset=stats.dataset, num_fields=stats.num_fields, feature_num=stats.feature_num
        )
        for key in ARCH_FLAGS:
            if key in given and getattr(config, key) != getattr(arch, key):
                raise ArchitectureSpecError(
                    f"--{key}={getattr(config, key)!r} does not match the arch, which was searched "
                    f"with {key}={getattr(arch, key)!r}; drop --{key} or search again."
                )
        arch.check_trainable(config.fusion)
    except ArchitectureSpecError as err:
        raise ExperimentError(f"--arch: {err}") from None
    if config.init_from_search:
        search = RunDir(os.path.dirname(os.path.abspath(config.arch)))
        for path in (search_model_path(config.arch), search.metrics_path):  # metrics.json: complete
            if not os.path.isfile(path):
                raise ExperimentError(
                    f"--init_from_search: {path} not found (the search run that wrote --arch "
                    "did not finish)."
                )
    return arch


def search_model_path(arch_path: str) -> str:
    """The model.keras of the search run that wrote `arch_path` (--init_from_search)."""
    return os.path.join(os.path.dirname(os.path.abspath(arch_path)), MODEL_FILE)


def arch_flag_lines(flag_lines: list[str], arch: ArchitectureSpec) -> list[str]:
    """`flag_lines` of a `--arch` re-train with the values --arch decides (ARCH_FLAGS) taken
    from the arch, so that `retrain.py --flagfile=<run>/flags.txt` agrees with it."""
    def from_arch(line: str) -> str:
        name = line.split("=", 1)[0][2:]
        return f"--{name}={getattr(arch, name)}" if name in ARCH_FLAGS else line

    return [from_arch(line) for line in flag_lines]
