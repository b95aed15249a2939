"""The ``diffusion_peak`` experiment: the peak estimator on the exact curve, and the aligned-start rows at L = 4
(L = 2, 3 run in the smoke preset: power and verdict-regression tests)."""

from __future__ import annotations

import numpy as np
import pytest

from dlnlab.experiments import get
from dlnlab.experiments.corlouer import diffusion_peak as exp
from dlnlab.theory import gradient_flow as gf
from dlnlab.theory import mode_sde as tm


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("kind", ["parameter", "function"])
def test_peak_estimator_on_the_exact_curve(L, kind):
    """``peak_time`` on 𝒟_p(m(t)) along gradient flow (records every 0.016, the quick spacing) finds m* to 0.6 %
    (the cubic's bias on the asymmetric peak; measured ≤ 0.54 %), and with 12 % multiplicative noise per record
    (n = 1024 samples, σ_ε = 0) the median over 96 noisy copies is within 1.5 % (sd per copy 2–6 %)."""
    rng = np.random.default_rng(L)
    for s in (3.0, 1.0):
        t = np.arange(0.0, 1.3 * tm.learning_time(0.01, s, 1.0, L), 0.016)
        m = gf.mode_trajectory(t, 0.01, s, 1.0, L)
        D = tm.mode_diffusion(m, s, 1.0, 0.0, 1.0, 1, L, kind)
        mstar = tm.peak_strength(s, L, kind)
        est = lambda y, t=t, m=m, mstar=mstar: np.interp(exp.peak_time(t, y, 0.6, 7), t, m) / mstar - 1
        assert abs(est(D)) < 0.006
        noisy = [est(D * (1 + 0.12 * rng.standard_normal(t.size))) for _ in range(96)]
        assert abs(np.median(noisy)) < 0.015, np.median(noisy)


@pytest.mark.slow
def test_aligned_rows_at_depth_4():
    """L = 4 from the aligned balanced start (256 replicas, B = 4, η = 0.002, measured noise of 1024 fresh samples
    every 8 steps): m(t_peak) within 4 % of m* and t_peak within 3 % of the gradient-flow t*, for both projections
    and every mode (12 rows). At the quick preset's 96 replicas the mode-1 m(t_peak) rows cannot resolve their 4 %
    (smallest detectable difference 5.7 %; seed 1: 1.2677 against 1.2857, interval [1.2338, 1.3034], inconclusive
    by 0.0005), so the test takes 256 (detectable difference ≈ 3.5 %)."""
    p = get("diffusion_peak").params("quick", ["seed=1", "replicas=256"])
    rows = exp.peak_claims(exp.run(p, 4, "aligned"), p, 4, "aligned", 1.0)
    assert len(rows) == 12
    bad = [(c.id, c.verdict, c.value, c.theory, c.evidence) for c in rows if c.verdict != "holds"]
    assert not bad, bad
