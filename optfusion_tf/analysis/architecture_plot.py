"""Pictures of an `ArchitectureSpec`, in the spirit of the paper's Figure 3 (matplotlib, Agg, no display).

`draw_architecture` lays the DAG out by level (x) and kind (y: shallow row on top, deep row at the
bottom, E and O in the middle). It draws only connected edges (alpha > 0): dark when both ends are
live (reaching O: what a re-train builds), faint and dashed otherwise; non-live nodes are faded.
x0 = E, the input every shallow node receives whatever alpha says, is drawn as a dotted orange
line to each live shallow node, and a live node with no connected input is labelled ("x0 only"
for a shallow node, "constant" for a deep one), so that no reader takes it for dead. Every
fusing node carries its chosen operation (argmax beta, what OptFusion-Hard uses) with its
probability, and a small stacked bar of softmax(beta) over the four operations.

`draw_connection_matrix` shows alpha as a matrix (rows dst, cols src), with edges the search space
does not allow masked. Both have `*_image` variants returning uint8 RGBA [1, H, W, 4] for
`tf.summary.image`.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas directly, so pyplot's global
state and backend are never touched.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, Patch, Rectangle

from optfusion_tf.architecture.spec import ArchitectureSpec, softmax
from optfusion_tf.architecture.atomic_file import replace_atomically
from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.architecture.search_space import edge_name

_DPI = 100
_NODE_RADIUS = 0.3
_INCHES_PER_UNIT = 1.25
_ROW_Y = {"embedding": 0.0, "shallow": 1.0, "deep": -1.0, "output": 0.0}
_NODE_COLOURS = {
    "embedding": "#d9d9d9",
    "shallow": "#fdb863",
    "deep": "#80b1d3",
    "output": "#b3de69",
}
_OPERATION_COLOURS = dict(zip(OPERATIONS, ("#1b9e77", "#d95f02", "#7570b3", "#e7298a")))
_LIVE_EDGE = {"color": "#303030", "linewidth": 1.5, "alpha": 0.9, "linestyle": "-"}
_DEAD_EDGE = {"color": "#b0b0b0", "linewidth": 1.0, "alpha": 0.7, "linestyle": "--"}
_X0_EDGE = {"color": "#e08214", "linewidth": 1.0, "alpha": 0.8, "linestyle": ":"}
_UNFED_LABEL = {"shallow": "x0 only", "deep": "constant", "output": "constant"}


def connection_matrix(arch: ArchitectureSpec) -> np.ndarray:
    """alpha as a float64 [N, N] matrix over `arch.space.nodes`: rows dst, cols src.

    Entries for edges the search space does not allow are NaN.
    """
    nodes = arch.space.nodes
    index = {node: k for k, node in enumerate(nodes)}
    matrix = np.full((len(nodes), len(nodes)), np.nan)
    for src, dst in arch.space.edges:
        matrix[index[dst], index[src]] = arch.alpha[edge_name(src, dst)]
    return matrix


def draw_architecture(
    arch: ArchitectureSpec, path: str | os.PathLike | None = None, title: str | None = None
) -> Figure:
    """Draws the fusion DAG; writes a PNG to `path` (atomically) when given.

    Args:
        arch: the architecture.
        path: optional output file (PNG).
        title: optional title; default names the source, n, shallow type, dataset and what is
            live.

    Returns:
        The figure, 1.25 (n + 3.4) x 6.7 inches at 100 dpi (n = 3: 800 x 670 pixels).
    """
    space = arch.space
    live = set(arch.live_nodes)
    positions = {node: (space.level(node), _ROW_Y[space.kind(node)]) for node in space.nodes}

    # Data units: one level per unit in x; rows at y = 1, 0, -1 plus room for the labels.
    width, height = arch.n + 3.4, 4.4
    margin = 0.6  # inches for the title above and the legend below
    fig_height = _INCHES_PER_UNIT * height + 2 * margin
    fig = Figure(figsize=(_INCHES_PER_UNIT * width, fig_height), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, margin / fig_height, 1.0, _INCHES_PER_UNIT * height / fig_height))
    ax.set_xlim(-0.7, width - 0.7)
    ax.set_ylim(-height / 2, height / 2)
    ax.set_aspect("equal", adjustable="box")
    ax.axis("off")

    circles = {}
    for node in space.nodes:
        kind = space.kind(node)
        x, y = positions[node]
        fade = 1.0 if node in live else 0.35
        circles[node] = Circle(
            (x, y),
            _NODE_RADIUS,
            facecolor=_NODE_COLOURS[kind],
            edgecolor="#202020",
            linewidth=1.2 if node in live else 0.8,
            alpha=fade,
            zorder=3,
        )
        ax.add_patch(circles[node])
        ax.text(x, y, node, ha="center", va="center", fontsize=11, fontweight="bold",
                alpha=max(fade, 0.55), zorder=4)
        if node in arch.beta:
            _draw_operation(ax, x, y, arch.beta[node], above=kind == "shallow", fade=fade)

    live_edges = 0
    for dst, sources in arch.connections.items():
        for src in sources:
            is_live = src in live and dst in live
            live_edges += is_live
            _draw_edge(ax, circles[src], circles[dst], _LIVE_EDGE if is_live else _DEAD_EDGE)
    for dst, sources in arch.implicit_inputs.items():
        if dst in live:
            for src in sources:
                _draw_edge(ax, circles[src], circles[dst], _X0_EDGE, bend=-0.3)
    for node in arch.unfed_nodes:
        x, y = positions[node]
        below = space.kind(node) == "shallow"
        ax.text(x, y + (-1.0 if below else 1.0) * (_NODE_RADIUS + 0.14),
                _UNFED_LABEL[space.kind(node) if node != "O" else "output"], ha="center",
                va="center", fontsize=7, style="italic", color="#505050", zorder=4)

    ax.legend(
        handles=[Patch(facecolor=c, label=op.upper()) for op, c in _OPERATION_COLOURS.items()]
        + [
            Line2D([], [], label="live edge", **_LIVE_EDGE),
            Line2D([], [], label="connected, not live", **_DEAD_EDGE),
            Line2D([], [], label="x0 = E", **_X0_EDGE),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=7,
        fontsize=8,
        frameon=False,
        handlelength=1.2,
        columnspacing=1.0,
    )
    if title is None:
        unfed = len(arch.unfed_nodes)
        what = f"{len(live)} live nodes, {live_edges} live edges" + (
            f", {unfed} with no connected input" if unfed else ""
        )
        dataset = f" · {arch.dataset}" if arch.dataset else ""
        title = f"{arch.source} · n={arch.n} · {arch.shallow}{dataset}\n{what}"
    fig.suptitle(title, fontsize=11)
    if path is not None:
        _save_png(fig, path)
    return fig


def draw_connection_matrix(arch: ArchitectureSpec, title: str | None = None) -> Figure:
    """alpha as a heat map (rows dst, cols src), values printed, connected cells boxed.

    Disallowed edges are grey. Returns a figure of about (0.5 N + 2.2) x (0.5 N + 1.2) inches.
    """
    nodes = arch.space.nodes
    matrix = connection_matrix(arch)
    limit = max(float(np.nanmax(np.abs(matrix))), 1e-6)
    size = len(nodes)
    fig = Figure(figsize=(0.5 * size + 2.2, 0.5 * size + 1.2), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#e0e0e0")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="alpha (connected if > 0)")
    ax.set_xticks(range(size), nodes, fontsize=8)
    ax.set_yticks(range(size), nodes, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("destination")
    for row, col in zip(*np.nonzero(~np.isnan(matrix))):
        value = matrix[row, col]
        ax.text(col, row, f"{value:.2g}", ha="center", va="center", fontsize=7,
                color="white" if abs(value) > 0.6 * limit else "black")
        if value > 0:
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False,
                                   edgecolor="black", linewidth=1.2))
    ax.set_title(title or "alpha: rows dst, cols src (boxed = connected)", fontsize=9)
    return fig


def architecture_image(arch: ArchitectureSpec) -> np.ndarray:
    """`draw_architecture(arch)` as uint8 RGBA [1, H, W, 4], for `tf.summary.image`."""
    return figure_to_array(draw_architecture(arch))


def connection_matrix_image(arch: ArchitectureSpec) -> np.ndarray:
    """`draw_connection_matrix(arch)` as uint8 RGBA [1, H, W, 4], for `tf.summary.image`."""
    return figure_to_array(draw_connection_matrix(arch))


def figure_to_array(fig: Figure) -> np.ndarray:
    """Renders a figure made by this module to uint8 RGBA [1, H, W, 4]."""
    canvas = fig.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba(), dtype=np.uint8)[np.newaxis].copy()


def _draw_edge(ax, start: Circle, end: Circle, style: dict, bend: float | None = None) -> None:
    """An arrow between two node circles; skips along a row bend away from the nodes between.

    `bend` overrides the arc's curvature (arc3 `rad`)."""
    (x0, y0), (x1, y1) = start.center, end.center
    gap = x1 - x0
    if bend is not None:
        rad = bend
    elif y0 == y1 and gap > 1:
        # Same row: bend outwards (up for the shallow row, down for the deep row), more for
        # longer skips, so the arrow does not run through the nodes in between. arc3 bends to
        # the right of the direction of travel for rad > 0, so "up" is rad < 0.
        rad = -(0.22 + 0.04 * gap) * (1.0 if y0 >= 0 else -1.0)
    elif gap > 1:
        rad = 0.12 * (1.0 if y1 > y0 else -1.0)
    else:
        rad = 0.0
    ax.add_patch(
        FancyArrowPatch(
            start.center,
            end.center,
            connectionstyle=f"arc3,rad={rad:.3f}",
            arrowstyle="-|>",
            mutation_scale=12,
            patchA=start,
            patchB=end,
            shrinkA=1,
            shrinkB=1,
            zorder=2,
            **style,
        )
    )


def _draw_operation(
    ax, x: float, y: float, logits: tuple[float, ...], *, above: bool, fade: float
) -> None:
    """The chosen operation and a stacked bar of softmax(beta), above or below a node."""
    probs = softmax(tuple(logits))
    best = max(range(len(OPERATIONS)), key=lambda k: logits[k])
    sign = 1.0 if above else -1.0
    label_y = y + sign * (_NODE_RADIUS + 0.2)
    bar_y = y + sign * (_NODE_RADIUS + 0.5)
    bar_height, bar_width = 0.13, 0.9
    ax.text(
        x,
        label_y,
        f"{OPERATIONS[best].upper()} {probs[best]:.0%}",
        ha="center",
        va="center",
        fontsize=9,
        fontweight="bold",
        color=_OPERATION_COLOURS[OPERATIONS[best]],
        alpha=max(fade, 0.6),
        zorder=4,
    )
    left = x - bar_width / 2
    for op, p in zip(OPERATIONS, probs):
        ax.add_patch(
            Rectangle(
                (left, bar_y - bar_height / 2),
                bar_width * p,
                bar_height,
                facecolor=_OPERATION_COLOURS[op],
                edgecolor="none",
                alpha=fade,
                zorder=4,
            )
        )
        left += bar_width * p
    ax.add_patch(
        Rectangle(
            (x - bar_width / 2, bar_y - bar_height / 2),
            bar_width,
            bar_height,
            fill=False,
            edgecolor="#404040",
            linewidth=0.6,
            alpha=fade,
            zorder=5,
        )
    )


def _save_png(fig: Figure, path: str | os.PathLike) -> None:
    """Writes the figure as PNG through a temporary sibling, then renames."""
    replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))

