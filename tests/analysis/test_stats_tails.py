"""dlnlab.analysis.stats.hill_index / hill_index_of: the Hill tail index above a fixed threshold."""

import numpy as np
import pytest
from scipy import stats as sps

from dlnlab.analysis import stats
from dlnlab.errors import ConfigError


def test_hill_index_of_a_pareto_and_a_student_law():
    """[A] An exact Pareto tail above u has α(u) = α at every u ≥ its scale (1e-8); a Student t with ν dof has
    α(u) → ν as u → ∞ (1e-3 at u = 1e4) but is far from ν at moderate u (2.32 at u = 2: the local exponent is not
    the asymptote)."""
    for a in (0.7, 2.5, 4.0):
        for u in (1.0, 3.0, 40.0):
            assert stats.hill_index_of(lambda v, a=a: np.minimum(1.0, v**-a), u) == pytest.approx(a, rel=1e-8)
    t3 = sps.t(3)
    assert stats.hill_index_of(t3.sf, 1e4) == pytest.approx(3.0, rel=1e-3)
    assert stats.hill_index_of(t3.sf, 2.0) == pytest.approx(2.3176, abs=1e-3)


def test_hill_index_coverage_on_correlated_replicas():
    """[V] Coverage of the t-interval of hill_index at G = 20 groups: 400 replicas × 10 samples each, the samples of
    a replica correlated (an AR(1) Gaussian copula, lag correlation 0.8) with Pareto(α = 2.5) marginals above
    u = 1.5 (scale 1): over 2000 Monte Carlo trials the 90 % interval covers α = 2.5 with frequency within
    ±1.5 % of nominal (binomial sd of the frequency: 0.7 %)."""
    rng = np.random.default_rng(0)
    trials, R, m, a, rho = 2000, 400, 10, 2.5, 0.8
    cover = 0
    for _ in range(trials):
        z = np.empty((R, m))
        z[:, 0] = rng.standard_normal(R)
        for j in range(1, m):
            z[:, j] = rho * z[:, j - 1] + np.sqrt(1 - rho**2) * rng.standard_normal(R)
        x = sps.norm.sf(z) ** (-1 / a)  # Pareto(a) marginals, P(X > v) = v^{-a}
        lo, hi = stats.hill_index(x, 1.5).interval(0.90)
        cover += lo <= a <= hi
    assert abs(cover / trials - 0.90) < 0.015, cover / trials


def test_hill_index_errors():
    x = np.ones((40, 3))
    cases = [(0.0, 20, "threshold", "> 0"), (2.0, 20, "threshold", "above the threshold"),
             (0.5, 41, "groups", "groups ≤ replicas = 40")]
    for threshold, groups, field, allowed in cases:
        with pytest.raises(ConfigError, match=allowed) as err:  # a ConfigError is also a ValueError
            stats.hill_index(x, threshold, groups=groups)
        assert err.value.field == field
