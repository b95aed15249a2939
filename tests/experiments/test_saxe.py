"""Saxe et al. (``experiments/saxe.py``): its estimators on the closed form, and its rows computed claims."""

from __future__ import annotations

import numpy as np

from dlnlab.experiments.claims import Claim
from dlnlab.experiments.saxe import _half_times, _rise_times
from dlnlab.theory import mode_flow_fn
from dlnlab.theory import saddle_sequence as th


def test_half_times_on_the_closed_form():
    """The half-time estimator (degree-7 interpolation of ln(m/s) on a linear record grid) recovers the exact §3
    plateau times of the closed form to 1e-9 relative at L = 2 and 3 (it errs by its interpolation error only)."""
    s = np.array([3.0, 2.0, 1.0, 0.5])
    for L, m0, t_max in ((2, 1e-4, 20.0), (3, 1e-3, 25.0)):
        t = np.linspace(0.0, t_max, 1000)
        m = mode_flow_fn([m0] * len(s), s, 1.0, L)(t)
        est = _half_times(t, m, s)[th.learning_order(s)]
        np.testing.assert_allclose(est, th.plateau_times(s, m0, L), rtol=1e-9)


def test_rise_times_of_the_sigmoid():
    """L = 2: the 10 → 90 % rise time of the closed-form sigmoid is ln81/(2λs) whatever m₀ (linear interpolation on
    a fine grid: to 1e-4 relative)."""
    s = np.array([3.0, 1.0])
    t = np.linspace(0.0, 30.0, 30001)
    m = np.stack([mode_flow_fn([m0] * 2, s, 1.0, 2)(t) for m0 in (1e-3, 1e-6)])
    rise, t10 = _rise_times(t, m, s)
    np.testing.assert_allclose(rise, np.broadcast_to(np.log(81.0) / (2 * s), rise.shape), rtol=1e-4)
    assert np.all(t10[1] > t10[0])  # a smaller m₀ starts later


def test_saxe_rows_are_computed_claims(tmp_path):
    """A reduced run: every row is a computed claim; the measured rows (closed forms, half-times, c_L, rise times)
    hold and carry an uncertainty > 0; the learning-order row is ``beyond``."""
    from dlnlab.experiments import get

    over = ["replicas=4", "n_times=400", "deep_n_times=800"]
    res = get("saxe").run("quick", tmp_path, over)
    assert all(isinstance(c, Claim) for c in res.claims)
    measured = [c for c in res.claims if c.kind == "measured"]
    keys = {c.key for c in measured}
    assert keys == {"closed_form", "half_time", "c_L", "rise_time"}
    bad = [(c.id, c.verdict, c.value, c.theory) for c in measured if c.verdict != "holds"]
    assert not bad, bad
    assert all(c.uncertainty > 0 for c in measured)
    assert [c.kind for c in res.claims if c.key == "order"] == ["beyond"]
