"""The warm start of a re-train from a search (its equivalence to the supernet is tested in
test_model.py, every re-train mode)."""

import pytest

from test_model import make_arch, make_model


def test_load_search_weights_refuses_a_model_without_these_nodes():
    narrow = make_model("search_operations", arch=make_arch(2, [("E", "O")]))
    with pytest.raises(ValueError, match=r"cannot come from it: \['S0', 'S1'"):
        make_model("hard").load_search_weights(narrow)
