"""Datasets and tables shared by the quality benchmarks (quality.py, peers.py, recipe.py).

Dataset names:
    criteo_sample          ../shared/data/criteo_sample.txt (8,000 real rows), batch 256
    avazu_sample           ../shared/data/avazu_sample.csv (8,999 real rows), batch 256
    frappe                 ../shared/data/frappe.csv (86,582 real rows, 10 fields), batch
                           --batch_size (4096: about 17 steps an epoch); preprocessed as
                           csv2TF --label_col=label --categorical_cols=<the 10 fields>
                           --threshold=2 --seed=2022 (the default 0.8/0.1/0.1 split)
    synthetic_<N>          N rows of the planted-model demo data (optfusion_tf.demo.demo_data)
    synthetic_<N>_sorted   the same rows sorted by label in the raw file, so the training split
                           is stored as all negatives, then all positives (a correlated order)

Every dataset is preprocessed once into <workdir>/<name> with the default split (seed 2022),
so every model and seed sees the same train / validation / test rows. The real samples hold
6,400 training rows: batch 4096 would be two steps an epoch, so they use batch 256.

Other split seeds (--split_seeds of peers.py and recipe.py) preprocess the same raw rows into
<workdir>/<name>_split<seed>: the same vocabulary threshold, other random train / validation /
test rows. On the samples the test split is 765-943 rows, whose own sampling noise (an AUC std
of about 0.02) a single split's table cannot average out, whatever the number of training seeds.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import statistics
from typing import Iterable, Sequence

from absl import flags, logging

from optfusion_tf.data.preprocess import CsvOptions, PreprocessOptions, preprocess
from optfusion_tf.demo.demo_data import write_demo_criteo

SPLIT_SEED = 2022  # the split of every table unless --split_seeds says otherwise
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
SAMPLES = {
    "criteo_sample": ("criteo", "criteo_sample.txt"),
    "avazu_sample": ("avazu", "avazu_sample.csv"),
}
SAMPLE_BATCH_SIZE = 256
FRAPPE = CsvOptions(
    label_col="label",
    categorical_cols=("user", "item", "cnt", "daytime", "weekday", "isweekend", "homework",
                      "cost", "weather", "country"),
    name="frappe",
)


@dataclasses.dataclass(frozen=True)
class BenchDataset:
    """A preprocessed dataset directory and the batch size the benchmarks train it with."""

    name: str
    path: str
    batch_size: int
    split_seed: int = SPLIT_SEED


SYNTHETIC_NAME = re.compile(r"synthetic_[1-9][0-9]*(_sorted)?")
NAMES_HELP = "frappe, criteo_sample, avazu_sample, synthetic_<N> or synthetic_<N>_sorted"


def is_dataset_name(name: str) -> bool:
    """Whether `name` is one of the dataset names of the module docstring."""
    return name == "frappe" or name in SAMPLES or SYNTHETIC_NAME.fullmatch(name) is not None


def register_dataset_names_validator(flag_name: str) -> None:
    """Refuses at parse a --`flag_name` (a name or a list of names) that names no dataset."""

    def check(value: str | Sequence[str] | None) -> bool:
        unknown = [n for n in ([value] if isinstance(value, str) else value or [])
                   if not is_dataset_name(n)]
        if unknown:
            raise flags.ValidationError(
                f"--{flag_name}: unknown dataset {', '.join(map(repr, unknown))}; expected "
                f"{NAMES_HELP} (bench/bench_data.py)")
        return True

    flags.register_validator(flag_name, check)


def prepare(names: Sequence[str], workdir: str, batch_size: int,
            split_seeds: Sequence[int] = (SPLIT_SEED,)) -> list[BenchDataset]:
    """Preprocesses each named dataset (see the module docstring) with each split seed unless
    it is already there; the result is ordered by name, then split seed.

    `batch_size` is used for the synthetic sets; a real sample that is absent (no ../shared)
    is skipped with a warning.
    """
    out = []
    for name in names:
        if not is_dataset_name(name):
            raise ValueError(f"Unknown dataset name {name!r}; expected {NAMES_HELP}")
        csv_options = None
        if name == "frappe":
            kind, raw, csv_options = "csv", os.path.join(SHARED_DATA, "frappe.csv"), FRAPPE
            size = batch_size
            if not os.path.isfile(raw):
                logging.warning("%s not found: %s is skipped", raw, name)
                continue
        elif name in SAMPLES:
            kind, file = SAMPLES[name]
            raw = os.path.join(SHARED_DATA, file)
            if not os.path.isfile(raw):
                logging.warning("%s not found: %s is skipped", raw, name)
                continue
            size = SAMPLE_BATCH_SIZE
        else:  # synthetic_<N>[_sorted]
            rows, _, order = name[len("synthetic_"):].partition("_")
            kind, size = "criteo", batch_size
            raw = os.path.join(workdir, f"synthetic_{rows}.txt")
            if not os.path.isfile(raw):
                write_demo_criteo(raw, int(rows), seed=2022)
            if order == "sorted":
                raw = _sorted_by_label(raw, os.path.join(workdir, f"{name}.txt"))
        for split_seed in split_seeds:
            path = os.path.join(
                workdir, name if split_seed == SPLIT_SEED else f"{name}_split{split_seed}")
            if not os.path.isfile(os.path.join(path, "stats.json")):
                preprocess(kind, raw, path, PreprocessOptions(overwrite=True, seed=split_seed),
                           csv_options=csv_options)
            out.append(BenchDataset(name, path, size, split_seed))
    return out


def by_name(datasets: Sequence[BenchDataset]) -> list[tuple[str, list[BenchDataset]]]:
    """`prepare`'s result grouped by dataset name: (name, its splits in split-seed order)."""
    return [(name, list(group)) for name, group in itertools.groupby(datasets, lambda d: d.name)]


def runs_label(seeds: Sequence[str], splits: Sequence[BenchDataset]) -> str:
    """What a table pools: "3 seeds", or "3 seeds x 5 splits"."""
    return f"{len(seeds)} seeds" + (f" x {len(splits)} splits" if len(splits) > 1 else "")


def flag_split_seeds() -> list[int]:
    """--split_seeds as integers (its validator has checked them)."""
    return [int(s) for s in flags.FLAGS.split_seeds]


def define_split_seeds_flag() -> None:
    """Defines --split_seeds (peers.py, recipe.py): distinct non-negative integers."""
    flags.DEFINE_list(
        "split_seeds", [str(SPLIT_SEED)],
        "Split seeds: each named dataset is preprocessed once per seed (other train / "
        "validation / test rows of the same raw file) and every model trains every --seeds on "
        "each; the tables pool all of them (mean ± std over splits x seeds).")
    flags.register_validator(
        "split_seeds",
        lambda seeds: (all(s.isdigit() for s in seeds) and 0 < len(seeds) == len(set(seeds))),
        message="--split_seeds: expected distinct non-negative integers, e.g. 1,2,3,4,5",
    )


def _sorted_by_label(raw: str, path: str) -> str:
    """The lines of a Criteo-format file with all label-0 rows first (stable), at `path`."""
    if not os.path.isfile(path):
        with open(raw, encoding="utf-8") as f:
            lines = f.readlines()
        lines.sort(key=lambda line: line[:1])
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.replace(f"{path}.tmp", path)
    return path


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    values = list(values)
    return statistics.fmean(values), statistics.pstdev(values)


def summary(runs: Sequence[dict]) -> dict:
    """Mean / std of test AUC and log loss over runs (dicts with test_auc, test_logloss)."""
    auc, auc_std = mean_std(r["test_auc"] for r in runs)
    loss, loss_std = mean_std(r["test_logloss"] for r in runs)
    return {
        "test_auc_mean": auc, "test_auc_std": auc_std,
        "test_logloss_mean": loss, "test_logloss_std": loss_std,
        "best_epoch_mean": statistics.fmean(r["best_epoch"] for r in runs),
        "seconds_mean": statistics.fmean(r["seconds"] for r in runs),
        "runs": list(runs),
    }


def print_table(title: str, rows: dict[str, dict]) -> None:
    """One line per model: test AUC and log loss as mean ± std, mean best epoch and seconds."""
    width = max([34, *map(len, rows)])
    print(f"\n{title}")
    print(f"{'model':<{width}} {'test AUC':>17} {'test log loss':>17} {'epoch':>6} {'seconds':>8}")
    for model, r in rows.items():
        print(
            f"{model:<{width}} {r['test_auc_mean']:.4f} ± {r['test_auc_std']:.4f} "
            f"{r['test_logloss_mean']:.4f} ± {r['test_logloss_std']:.4f} "
            f"{r['best_epoch_mean']:6.1f} {r['seconds_mean']:8.1f}",
            flush=True,
        )
