"""The tamed schemes of the diagonal simulator against [Z]'s exact stationary law (issue 13 defect: the docstring
promised an O(Δt) bias). Setting of the module docstring of ``dlnlab.engines.diagonal``: L = 2, T = 0.16 (η = 0.32,
B = 1), walkers started from the exact law (inverse cdf), samples at t = 1, 2, …, 30, mean of v; uncertainty: group
SE over 40 groups of replicas (checks.md §0)."""

from __future__ import annotations

import numpy as np
import pytest

from dlnlab.engines import diagonal_config, simulate_diagonal
from dlnlab.model import DiagonalModel, balanced_factors
from dlnlab.theory.diagonal_stationary import DiagonalStationaryLaw

T, L = 0.16, 2


def _mean_bias(kind, dt, replicas, seed):
    law = DiagonalStationaryLaw(L, T)
    v0 = np.maximum(law.ppf(np.random.default_rng(seed).uniform(size=replicas)), 1e-300)
    cfg = diagonal_config(DiagonalModel(depth=L), kind=kind, scheme="tamed", lr=2 * T, dt=dt,
                          times=np.arange(1.0, 31.0), replicas=replicas, seed=seed)
    ds = simulate_diagonal(cfg, weights=balanced_factors(v0[:, None], L), progress=False)
    assert not ds.diverged.any()
    x = ds.output.values[:, 1:]
    groups = x.reshape(40, -1).mean(axis=1)
    return x.mean() - law.mean, groups.std(ddof=1) / np.sqrt(40)


@pytest.mark.slow
def test_tamed_parameter_space_bias_is_not_order_dt():
    """Parameter-space ``sde`` with taming: the mean's bias is positive at Δt = 1e-3 and at 2.5e-4 (each > 3 SE)
    and does not fall by the factor 4 an O(Δt) bias would over a factor 4 in Δt (b(2.5e-4) > b(1e-3)/4 by 3
    combined SE; the measured ratio b(2.5e-4)/b(1e-3) ≈ 1 ± 0.2 also disfavours √Δt, ratio 1/2, at ~2.5 SE),
    while the log-coordinate tamed scheme at 2.5e-4 has no resolved bias (< 4 SE), so the reference is right.
    Measured (module docstring's seeds): +0.0112 (SE 0.0013), +0.0106 (0.0017); sde_log +0.0021 (0.0015)."""
    b1, se1 = _mean_bias("sde", 1e-3, 16_000, 10)
    b4, se4 = _mean_bias("sde", 2.5e-4, 16_000, 12)
    assert b1 > 3 * se1 and b4 > 3 * se4, (b1, se1, b4, se4)
    assert b4 - b1 / 4 > 3 * np.hypot(se4, se1 / 4), (b1, b4)
    b_log, se_log = _mean_bias("sde_log", 2.5e-4, 16_000, 12)
    assert abs(b_log) < 4 * se_log, (b_log, se_log)
