"""[Z] width independence of the L = 2 stationary law, and its width dependence at L = 3
(``dlnlab.experiments.ziyin.width_independence``; ``noise_balance.md`` §§6.2–6.3, ``checks.md`` Z14)."""

from dlnlab.experiments.ziyin.width_independence import width_runs


def test_width_independence_L2_not_L3():
    """Z14 [U]: online SGD η = 0.04, B = 1 (T = 0.02, the Z9 setting), 2000 replicas per run, samples of v at
    t = 100, 110, …, 150 (6 per replica; burn-in 100 ≫ the balancing time 1/(2Tg(v*)) = 25 and the dying time of
    negative paths 1/(4Tg) ≈ 12). L = 2: one path from v = 1 against d = 5 paths from i.i.d. N(0, 0.4²) factors
    per replica (unbalanced, mixed signs, half of them with v(0) < 0) — a two-sample KS test must not reject at
    α = 0.001; L = 3: one path against 5 equal balanced paths (law ∝ exp(−d^{1/3}·…): KS distance 0.100 between
    the exact laws) — it must reject.

    Effective sample size: samples of one replica are Δt = 10 apart, i.e. 250 steps = 20/h (h = ηL = 0.08 at
    L = 2), well past checks.md §0's 5/h (lag correlation ≤ 0.01); the measured lag-10 correlations are ≤ 0.011 in
    absolute value in all four runs, so n_eff ≈ n = 12000 per run and the critical value is
    1.949·√(2/12000) = 0.025. Measured: L = 2 statistic 0.0124, p = 0.31; L = 3 statistic 0.128, p = 8e-86 (above
    the laws' 0.100 by the d = 1 run's larger O(h) bias and its ≈ 0.2% of walkers that a large step flipped to the
    negative branch, where they collapse). A residual imbalance u_i² − w_i² = D_i changes v_i only at O(D_i²/v_i²)."""
    from scipy import stats

    runs = width_runs(0.04, 2000, t_burn=100.0, t_max=150.0, dt_sample=10.0, init_scale=0.4, seed=0, d=5)
    for L in (2, 3):
        (x1, lag1, div1), (x5, lag5, div5) = runs[(L, 1)], runs[(L, 5)]
        assert x1.shape == x5.shape == (2000, 6) and div1 == div5 == 0
        assert max(abs(lag1), abs(lag5)) < 0.03
        res = stats.ks_2samp(x1.ravel(), x5.ravel())
        if L == 2:
            assert res.pvalue >= 1e-3
        else:
            assert res.pvalue < 1e-3 and res.statistic > 0.05



def test_exponent_of_inverts_the_spread_ratio():
    """The measured-exponent map: a spread ratio computed from the exact laws at T/d^κ gives κ back (to the PCHIP
    interpolation error between the tabulated exponents, < 2e-3 here), and a ratio no exponent in the table explains
    gives NaN, not a clipped value."""
    import numpy as np

    from dlnlab.experiments.ziyin.width_independence import exponent_of
    from dlnlab.theory.diagonal_stationary import DiagonalStationaryLaw

    T, d, cut = 0.01, 5, 2.0
    kappa = exponent_of(3, T, d, cut)
    base = DiagonalStationaryLaw(3, T).truncated_var(cut)
    for k in (1 / 3, 0.42):
        ratio = DiagonalStationaryLaw(3, T * d ** (-k)).truncated_var(cut) / base
        assert abs(kappa(ratio) - k) < 2e-3
    assert np.isnan(kappa(5.0)) and np.isnan(kappa(1e-6))
