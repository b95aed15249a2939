"""Power of the issue 16 experiments (``tests/experiments/_power.py``): at each declared perturbation of a theory
input (the simulation unchanged) every measured row that holds at the true theory and that it moves now fails."""

from __future__ import annotations

import pytest

from experiments._power import assert_power


@pytest.mark.slow
@pytest.mark.parametrize("name", ["diagonal_saddles", "edge_of_stability", "lazy_rich"])
def test_power(name, tmp_path, tmp_path_factory):
    assert_power(name, tmp_path, session=tmp_path_factory)
