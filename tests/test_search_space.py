"""The pure-Python search space: nodes, levels, allowed edges (paper Sec. 3.1, Eq. 5)."""

import pytest

from optfusion_tf.architecture.search_space import SearchSpace, edge_name, parse_edge_name


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_edge_violates_the_level_order(n):
    space = SearchSpace(n)
    assert space.edges, "the space has edges"
    for src, dst in space.edges:
        assert space.level(src) < space.level(dst), (src, dst)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_lower_level_node_is_a_candidate_except_for_s0(n):
    space = SearchSpace(n)
    for dst in space.nodes:
        expected = [src for src in space.nodes if space.level(src) < space.level(dst)]
        if dst == "S0":
            expected = ["E"]
        assert list(space.candidate_inputs(dst)) == expected
    # 2n^2 + 4n + 3 edges: the paper's 2n^2 + 2n + 1 plus the 2n + 2 edges of the auxiliary
    # block S0 (E -> S0 and S0 -> every later node), which the paper's count leaves out.
    assert len(space.edges) == 2 * n * n + 4 * n + 3


def test_nodes_levels_and_kinds_for_n3():
    space = SearchSpace(3)
    assert space.nodes == ("E", "S0", "S1", "D1", "S2", "D2", "S3", "D3", "O")
    assert [space.level(v) for v in space.nodes] == [0, 1, 2, 2, 3, 3, 4, 4, 5]
    assert [space.kind(v) for v in ("E", "S0", "S2", "D3", "O")] == [
        "embedding", "shallow", "shallow", "deep", "output"
    ]
    assert len(space.edges) == 33
    assert space.fusing_nodes == ("S1", "D1", "S2", "D2", "S3", "D3", "O")
    assert space.candidate_inputs("S2") == ("E", "S0", "S1", "D1")
    assert space.candidate_inputs("O") == ("E", "S0", "S1", "D1", "S2", "D2", "S3", "D3")


def test_edges_are_grouped_by_destination_in_candidate_order():
    space = SearchSpace(2)
    grouped = {}
    for src, dst in space.edges:
        grouped.setdefault(dst, []).append(src)
    assert list(grouped) == [v for v in space.nodes if v != "E"]
    for dst, srcs in grouped.items():
        assert tuple(srcs) == space.candidate_inputs(dst)


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "3"])
def test_invalid_n(n):
    with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
        SearchSpace(n)


def test_unknown_node():
    with pytest.raises(ValueError, match="Unknown node for n=1.*Received: 'S2'"):
        SearchSpace(1).level("S2")


def test_edge_names_round_trip():
    assert edge_name("S0", "D2") == "S0->D2"
    assert parse_edge_name("S0->D2") == ("S0", "D2")
    for bad in ("S0-D2", "->D2", "a->b->c"):
        with pytest.raises(ValueError, match="An edge name looks like"):
            parse_edge_name(bad)
