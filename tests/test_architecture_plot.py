"""Pictures of an ArchitectureSpec: PNG files, RGBA arrays for tf.summary.image, the alpha matrix."""

import dataclasses
import random

import matplotlib.image
import numpy as np
import pytest

from optfusion_tf.architecture.spec import ArchitectureSpec
from optfusion_tf.architecture.presets import preset_arch
from optfusion_tf.architecture.validation import OPERATIONS
from optfusion_tf.analysis.architecture_plot import (
    architecture_image,
    connection_matrix,
    connection_matrix_image,
    draw_architecture,
    softmax,
)
from optfusion_tf.architecture.search_space import SearchSpace, edge_name

META = dict(shallow="crossnet", dataset="criteo", num_fields=39, feature_num=1000, emb_dim=16)


def _random_arch(n: int, seed: int) -> ArchitectureSpec:
    rng = random.Random(seed)
    space = SearchSpace(n)
    return ArchitectureSpec(
        n=n,
        alpha={edge_name(s, d): rng.uniform(-1.0, 1.0) for s, d in space.edges},
        beta={v: tuple(rng.gauss(0, 1) for _ in OPERATIONS) for v in space.fusing_nodes},
        **META,
    )


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("kind", ["parallel", "stacked", "random"])
def test_draw_architecture_writes_a_png(tmp_path, n, kind):
    arch = _random_arch(n, seed=n) if kind == "random" else preset_arch(kind, n=n, **META)
    path = tmp_path / "architecture.png"
    fig = draw_architecture(arch, path)
    image = matplotlib.image.imread(path)
    assert path.stat().st_size > 10_000
    assert image.shape[2] == 4
    # 1.25 inch per level, 100 dpi: width grows with n, height is fixed.
    assert image.shape[:2] == (670, round(125 * (n + 3.4)))
    assert fig.get_suptitle().startswith(arch.source)


def test_title_counts_nodes_without_input_and_x0_is_drawn(tmp_path):
    arch = _random_arch(2, seed=0)
    arch = dataclasses.replace(arch, alpha={k: (1.0 if k == "S1->O" else -1.0) for k in arch.alpha})
    fig = draw_architecture(arch, tmp_path / "a.png")
    assert "3 live nodes, 1 live edges, 1 with no connected input" in fig.get_suptitle()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "x0 only" in texts  # S1: no connected input, but not dead
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "x0 = E" in legend
    assert draw_architecture(arch, title="custom").get_suptitle() == "custom"


def test_images_are_uint8_rgba_batches():
    arch = _random_arch(3, seed=1)
    for image in (architecture_image(arch), connection_matrix_image(arch)):
        assert image.dtype == np.uint8 and image.ndim == 4
        assert image.shape[0] == 1 and image.shape[3] == 4
        assert 200 < image.shape[1] < 2000 and 200 < image.shape[2] < 2000
        assert image[..., :3].std() > 10  # not blank


def test_connection_matrix_rows_dst_cols_src_nan_where_not_allowed():
    arch = _random_arch(1, seed=2)
    matrix = connection_matrix(arch)
    nodes = SearchSpace(1).nodes  # E, S0, S1, D1, O
    assert matrix.shape == (5, 5)
    assert matrix[nodes.index("S1"), nodes.index("E")] == arch.alpha["E->S1"]
    assert matrix[nodes.index("O"), nodes.index("D1")] == arch.alpha["D1->O"]
    assert np.isnan(matrix[nodes.index("E"), nodes.index("S1")])  # upward: never allowed
    assert np.isnan(matrix[nodes.index("D1"), nodes.index("S1")])  # same level
    assert matrix[nodes.index("S0"), nodes.index("E")] == arch.alpha["E->S0"]
    assert np.count_nonzero(~np.isnan(matrix)) == len(SearchSpace(1).edges)


def test_softmax():
    probs = softmax((1000.0, 1000.0, -1000.0, 0.0))
    assert probs[:2] == pytest.approx((0.5, 0.5)) and sum(probs) == pytest.approx(1.0)
