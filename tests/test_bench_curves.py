"""bench/curves.py: the quality benchmarks' pictures keep their titles inside the figure."""

from __future__ import annotations

import sys

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
try:
    import curves
finally:
    sys.path.remove(str(REPO_ROOT / "bench"))

# As bench/peers.py titles Frappe's curves (the README's picture was clipped at both edges).
LONG = ("frappe: validation AUC per epoch, seed 1 (split 2022), emb_dim 10, batch 4096, the same "
        "stopping rule (dot: best epoch)")


def test_a_long_title_is_wrapped_inside_the_figure(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    curves.set_title(axes, LONG)
    figure.tight_layout()
    renderer = figure.canvas.get_renderer()
    box = axes.title.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= figure.bbox.x1 and box.y1 <= figure.bbox.y1
    assert axes.title.get_text().replace("\n", " ") == LONG
    path = curves.plot_validation_curves({"a": [[0.5, 0.6]]}, str(tmp_path / "v.png"), LONG)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
