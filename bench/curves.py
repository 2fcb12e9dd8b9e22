"""Validation AUC per epoch of several models on one dataset, as a PNG (bench/peers.py).

Figures are drawn with `matplotlib.figure.Figure` and the Agg canvas directly, as
optfusion_tf/analysis/architecture_plot.py does: no pyplot state, no display needed.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.png"
    figure.savefig(tmp)
    os.replace(tmp, path)
    return path
