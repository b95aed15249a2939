"""Power of ``staircase``, ``sparsity`` and ``phase_transition`` ([J]; issue 14 item 5): at each declared
perturbation of a theory input (the simulation unchanged) every measured row that holds at the true theory and that
the perturbation moves fails, and every holding measured row is moved by one (``tests/experiments/_power.py``). Each
runs the smoke preset three or four times."""

from __future__ import annotations

import pytest

from experiments._power import assert_power


@pytest.mark.slow
@pytest.mark.parametrize("name", ["staircase", "sparsity", "phase_transition"])
def test_power(name, tmp_path, tmp_path_factory):
    assert_power(name, tmp_path, session=tmp_path_factory)
