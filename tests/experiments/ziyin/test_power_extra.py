"""Power of the [Z] experiments discrete_collapse, relu_balance and width_independence (issue 14 item 5): at each
declared perturbation of a theory input (the simulation unchanged) every measured row that holds at the true theory
and that the perturbation moves now fails, and every holding measured row is moved by one
(``tests/experiments/_power.py``). Each runs the smoke preset 2–3 times."""

from __future__ import annotations

import pytest

from experiments._power import assert_power


@pytest.mark.slow
@pytest.mark.parametrize("name", ["discrete_collapse", "relu_balance", "width_independence"])
def test_power(name, tmp_path, tmp_path_factory):
    assert_power(name, tmp_path, session=tmp_path_factory)
