"""Power of the [Z] experiments (issue 14 item 5): at each declared perturbation of a theory input (the simulation
unchanged) every measured row that holds at the true theory and that the perturbation moves now fails, and every
holding measured row is moved by one (``tests/experiments/_power.py``). Each runs the smoke preset 2–3 times.
``discrete_collapse``, ``relu_balance`` and ``width_independence`` are in ``test_power_extra.py``."""

from __future__ import annotations

import pytest

from experiments._power import assert_power


@pytest.mark.slow
@pytest.mark.parametrize("name", ["law_of_balance", "noise_balance_dln", "diagonal_stationary", "phase_diagram",
                                  "sign_selection", "fluctuation_inversion", "power_law_tails", "infinite_depth"])
def test_power(name, tmp_path, tmp_path_factory):
    assert_power(name, tmp_path, session=tmp_path_factory)
