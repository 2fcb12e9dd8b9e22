"""Calibration of predicted click probabilities: expected calibration error and a reliability
diagram (issue 26, item 5).

AUC says how well a model ranks; a CTR model's probabilities are also used as probabilities
(bids, expected clicks), so a run reports how far they are from the observed click rates:

- `mean_predicted` against `observed_rate`: the mean predicted probability and the split's click
  rate (equal for a model calibrated on average);
- `ece`: the expected calibration error over `bins` bins of equal mass (quantiles of the
  predictions, as scikit-learn's `calibration_curve(strategy="quantile")`; CTR predictions
  crowd near 0, where equal-width bins would leave most bins empty): the bins' example-weighted
  mean |mean predicted - observed rate|.

scikit-learn has the reliability curve but no ECE, so the bins are computed here (numpy); the
diagram is a matplotlib Figure on the Agg canvas, as `architecture_plot`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DEFAULT_BINS = 10


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Calibration of `probabilities` [N] against 0/1 `labels` [N].

    Returns:
        {"ece", "mean_predicted", "observed_rate", "bins": [{"mean_predicted", "observed_rate",
        "examples"}, ...]} with at most `bins` bins of (nearly) equal size, in increasing order of
        prediction; ties never split across bins, so there are fewer bins when predictions repeat.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if labels.shape != probabilities.shape or labels.size == 0:
        raise ValueError(f"Expected as many probabilities as labels, at least one. Received "
                         f"{probabilities.size} probabilities and {labels.size} labels.")
    if bins < 1:
        raise ValueError(f"bins must be >= 1. Received: {bins}")
    edges = np.unique(np.quantile(probabilities, np.linspace(0.0, 1.0, bins + 1)))
    # Bin k holds edges[k] <= p < edges[k + 1], the last bin also p == edges[-1].
    index = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, max(len(edges) - 2, 0))
    table = []
    ece = 0.0
    for k in np.unique(index):
        inside = index == k
        predicted, observed = probabilities[inside].mean(), labels[inside].mean()
        table.append({"mean_predicted": float(predicted), "observed_rate": float(observed),
                      "examples": int(inside.sum())})
        ece += inside.sum() / labels.size * abs(predicted - observed)
    return {
        "ece": float(ece),
        "mean_predicted": float(probabilities.mean()),
        "observed_rate": float(labels.mean()),
        "bins": table,
    }


def draw_reliability_diagram(result: dict[str, Any], title: str) -> Figure:
    """Observed click rate against mean predicted probability per bin (`calibration`'s), with
    the diagonal of perfect calibration; a marker's area follows its bin's examples."""
    fig = Figure(figsize=(4.2, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    predicted = [b["mean_predicted"] for b in result["bins"]]
    observed = [b["observed_rate"] for b in result["bins"]]
    top = max(max(predicted), max(observed)) * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="calibrated")
    ax.plot(predicted, observed, marker="o", color="tab:blue", label="model (bins of equal mass)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed click rate")
    ax.set_title(f"{title}\nECE {result['ece']:.4f}; mean predicted {result['mean_predicted']:.4f}, "
                 f"observed {result['observed_rate']:.4f}", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
