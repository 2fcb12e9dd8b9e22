"""The quality benchmarks' pictures (PNG): validation AUC per epoch of several models on one
dataset (bench/peers.py), and test AUC per model, mean with a +-std bar and every seed as a dot
(bench/quality.py, bench/peers.py).

Figures are drawn with `matplotlib.figure.Figure` and the Agg canvas directly, as
optfusion_tf/analysis/architecture_plot.py does: no pyplot state, no display needed.
"""

from __future__ import annotations

import os
import textwrap
from typing import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Characters of a fontsize-10 title per inch of figure width (DejaVu Sans averages ~0.075 in a
# character at 10 pt): longer titles are wrapped, not clipped at the figure's edges.
_TITLE_CHARS_PER_INCH = 11

# Our models solid, DeepCTR's dashed; one colour per model.
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def plot_validation_curves(
    curves: Mapping[str, Sequence[Sequence[float]]], path: str, title: str
) -> str:
    """Writes validation AUC per epoch (one line per model and seed, the best epoch dotted).

    Args:
        curves: model name -> one curve per seed (validation AUC of epochs 1, 2, ...). A name
            starting with "DeepCTR" is drawn dashed.
        path: the PNG to write (its folder is created; written to a temporary file, then
            renamed, so a kill never leaves half a picture).
        title: the figure's title.

    Returns:
        `path`.
    """
    figure = Figure(figsize=(9, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for color, (model, runs) in zip(_COLORS * 3, curves.items()):
        style = "--" if model.startswith("DeepCTR") else "-"
        for k, curve in enumerate(runs):
            if not curve:
                continue
            epochs = range(1, len(curve) + 1)
            axes.plot(epochs, curve, style, color=color, linewidth=1.2, alpha=0.85,
                      label=model if k == 0 else None)
            best = max(range(len(curve)), key=curve.__getitem__)
            axes.plot([best + 1], [curve[best]], "o", color=color, markersize=4)
    values = sorted(v for runs in curves.values() for curve in runs for v in curve)
    if values:  # the interesting band: from the 5th percentile to the top
        low = values[len(values) // 20]
        axes.set_ylim(low, values[-1] + 0.1 * (values[-1] - low) + 1e-4)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation AUC (exact)")
    set_title(axes, title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def plot_test_auc(rows: Mapping[str, Mapping], path: str, title: str) -> str:
    """Writes test AUC per model: the mean over seeds with a +-std bar, every seed a dot; the
    best mean is marked by a vertical line.

    Args:
        rows: model name -> bench_data.summary() of its runs (test_auc_mean, test_auc_std,
            runs[i]["test_auc"]), in the order to draw top to bottom. A name starting with
            "DeepCTR" is drawn in grey.
        path: the PNG to write (atomically, as plot_validation_curves).
        title: the figure's title.

    Returns:
        `path`.
    """
    figure = Figure(figsize=(8, 0.9 + 0.42 * max(1, len(rows))), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    names = list(rows)
    for y, name in enumerate(names):
        row = rows[name]
        color = "tab:gray" if name.startswith("DeepCTR") else "tab:blue"
        axes.errorbar(row["test_auc_mean"], y, xerr=row["test_auc_std"], fmt="s", color=color,
                      capsize=4, markersize=6)
        seeds = [r["test_auc"] for r in row.get("runs", [])]
        axes.plot(seeds, [y] * len(seeds), "o", color=color, alpha=0.35, markersize=4)
        axes.annotate(f"{row['test_auc_mean']:.4f} ± {row['test_auc_std']:.4f}",
                      (row["test_auc_mean"], y), textcoords="offset points", xytext=(0, 7),
                      ha="center", fontsize=7)
    if names:
        axes.axvline(max(r["test_auc_mean"] for r in rows.values()), color="tab:red",
                     linewidth=0.8, alpha=0.6)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_ylim(len(names) - 0.5, -0.7)  # first model on top
    axes.set_xlabel("test AUC (exact): mean ± std over seeds, dots: each seed")
    set_title(axes, title)
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def set_title(axes, title: str) -> None:
    """Sets `title` at fontsize 10, wrapped to lines that fit the figure's width."""
    width = int(axes.figure.get_figwidth() * _TITLE_CHARS_PER_INCH)
    axes.set_title(textwrap.fill(title, width=width), fontsize=10)


def _save(figure: Figure, path: str) -> str:
    """Lays `figure` out and writes it to `path` through a temporary file (its folder made)."""
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path
