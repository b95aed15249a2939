"""Power of the issue 16 experiments (``tests/experiments/_power.py``): at each declared perturbation of a theory
input (the simulation unchanged) every measured row that holds at the true theory and that it moves now fails."""

from __future__ import annotations

import pytest

from experiments._power import assert_power
from experiments._smoke import finished_smoke, run_cache


@pytest.mark.slow
@pytest.mark.parametrize("name", ["diagonal_saddles", "edge_of_stability", "lazy_rich"])
def test_power(name, tmp_path, tmp_path_factory):
    assert_power(name, tmp_path, true=finished_smoke(tmp_path_factory, name), cache=run_cache(tmp_path_factory))
