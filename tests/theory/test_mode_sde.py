"""Closed forms of the per-mode SDE (``dlnlab.theory.mode_sde``; ``sgd_noise.md`` §§5.3, 7; checks.md S5, C5).

S5 discriminant on a grid, the §7.2–7.3 peak tables and lags, C5's exact ``η/B`` scaling, and the Itô drift of §5.3
against an exact Gauss–Hermite expectation of one per-layer step, a finite-difference Hessian, an antithetic Monte
Carlo estimate and a simulation of the function-space SDE (against the per-layer SDE of ``simulate_modes``).
Statistics follow checks.md §0 (group SE with G = 20 groups; fixed seeds).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.polynomial import hermite_e
from scipy import stats

from dlnlab.analysis.stats import group_estimate
from dlnlab.engines import modes as M
from dlnlab.theory import mode_sde as TM

G = 20  # groups for the group SE (checks.md §0)



# ---------------------------------------------------------------------------------------------------------
# Closed forms


@pytest.mark.parametrize("kind", ["parameter", "function"])
@pytest.mark.parametrize("L", [2, 3, 4, 5, 6])
def test_s5_discriminant(L, kind):
    """checks.md S5 [A]: at σ_ε² = 0.99 × 2λs²/(p(p+2)) the diffusion 𝒟_p ∝ m^p D(m) has exactly one interior local
    maximum on (0, s), at m_− to grid resolution (grid step 1e-6 s; so |argmax − m_−| ≤ 1e-6 s); at 1.01 × the
    threshold it is strictly increasing on (0, s). Also: σ_ε = 0 gives m* = ps/(p + 2) (§7.2 table) and the
    discriminant changes sign at the threshold. Exact on the grid (no statistical tolerance)."""
    p = TM.peak_exponent(L, kind)
    assert p == pytest.approx(2 - 2 / L if kind == "parameter" else 4 - 4 / L, abs=0)
    for lam, s in [(1.0, 1.0), (0.7, 2.0)]:
        var_max = 2 * lam * s**2 / (p * (p + 2))
        assert TM.peak_label_noise_max(s, lam, p) ** 2 == pytest.approx(var_max, rel=1e-14)
        assert TM.peak_strength(s, L, kind, lam, 0.0) == pytest.approx(p * s / (p + 2), rel=1e-15)
        dm = 1e-6 * s
        m = np.arange(1, 1_000_000) * dm  # the interior of (0, s)
        for factor, has_peak in [(0.99, True), (1.01, False)]:
            sig = np.sqrt(factor * var_max)
            f = TM.mode_diffusion(m, s, lam, sig, 0.01, 1, L, kind)
            d = np.diff(f)
            local_max = np.nonzero((d[:-1] > 0) & (d[1:] <= 0))[0] + 1
            assert (TM.peak_discriminant(s, lam, sig, p) > 0) == has_peak
            if has_peak:
                m_minus, m_plus = TM.peak_roots(s, lam, sig, p)
                assert 0 < m_minus < (p + 1) * s / (p + 2) < m_plus <= s
                assert len(local_max) == 1, local_max
                assert abs(m[local_max[0]] - m_minus) <= dm
                assert TM.peak_strength(s, L, kind, lam, sig) == m_minus
            else:
                assert np.all(d > 0)
                assert np.isnan(TM.peak_strength(s, L, kind, lam, sig))


def test_peak_tables_and_lags():
    """§7.2 table (m*/s for p = 2−2/L and 4−4/L, L = 2..10, three decimals), §7.3 thresholds σ²_max/(λs²)
    (L = 2..6), the L = 2 lag t_ε − t* = ln(2(1−ε)/(pε))/(2λs) (2.644 and 2.298 at ε = 0.01) and E4's m_−/s
    (0.578, 0.587, 0.644 for s = 3, 2, 1, L = 3, σ_ε = 0.3). Exact arithmetic (tolerance: the quoted digits)."""
    table = {2: (0.333, 0.500), 3: (0.400, 0.571), 4: (0.429, 0.600), 5: (0.444, 0.615), 6: (0.455, 0.625),
             10: (0.474, 0.643)}
    for L, (par, fun) in table.items():
        assert round(TM.peak_strength(1.0, L, "parameter"), 3) == par
        assert round(TM.peak_strength(1.0, L, "function"), 3) == fun
    thresholds = {"parameter": [0.667, 0.450, 0.381, 0.347, 0.327], "function": [0.250, 0.161, 0.133, 0.120, 0.1125]}
    for kind, vals in thresholds.items():
        got = [TM.peak_label_noise_max(1.0, 1.0, TM.peak_exponent(L, kind)) ** 2 for L in range(2, 7)]
        np.testing.assert_allclose(got, vals, atol=5e-4)  # quoted to three decimals
    assert TM.peak_lag(1.0, 1.0, 2, "parameter") == pytest.approx(np.log(2 * 0.99 / (1 * 0.01)) / 2, rel=1e-12)
    assert round(TM.peak_lag(1.0, 1.0, 2, "parameter"), 3) == 2.644
    assert round(TM.peak_lag(1.0, 1.0, 2, "function"), 3) == 2.298
    # the lag does not depend on m0: t_ε(m0) − t*(m0)
    for L in (2, 3, 4):
        for m0 in (1e-3, 1e-2):
            lag = TM.learning_time(m0, 1.5, 0.8, L) - TM.peak_time(m0, 1.5, 0.8, L)
            assert lag == pytest.approx(TM.peak_lag(1.5, 0.8, L), rel=1e-9)
    got = [TM.peak_strength(s, 3, "function", 1.0, 0.3) / s for s in (3.0, 2.0, 1.0)]
    np.testing.assert_allclose(got, [0.578, 0.587, 0.644], atol=5e-4)


def test_c5_diffusion_scales_exactly_with_lr_over_batch():
    """checks.md C5 [A]: ``mode_diffusion`` (both kinds), the per-layer and function-space diffusions scale
    exactly as η/B and the drifts' gradient-flow parts do not depend on η. Tolerance 1e-12 relative (round-off)."""
    m = np.linspace(0.05, 2.5, 50)
    for L in (1, 2, 3, 4):
        base = None
        for lr, B in [(0.01, 1), (0.02, 1), (0.02, 4), (0.3, 7)]:
            vals = np.stack([TM.mode_diffusion(m, 1.3, 0.8, 0.4, lr, B, L, k) / (lr / B) for k in ("par", "fun")]
                            + [TM.function_diffusion(m, 1.3, 0.8, 0.4, lr, B, L) / (lr / B),
                               TM.ito_drift(m, 1.3, 0.8, 0.4, lr, B, L) / (lr / B)])
            base = vals if base is None else base
            np.testing.assert_allclose(vals, base, rtol=1e-12, atol=0)
    # definitions: c_p = 1 (per-layer) and L² (function space); the function-space one equals §5.3's box
    np.testing.assert_allclose(TM.mode_diffusion(m, 1.3, 0.8, 0.4, 0.01, 2, 3, "function"),
                               TM.function_diffusion(m, 1.3, 0.8, 0.4, 0.01, 2, 3), rtol=1e-14)
    a = m ** (1 / 3)
    np.testing.assert_allclose(TM.mode_diffusion(m, 1.3, 0.8, 0.4, 0.01, 2, 3, "parameter"),
                               TM.balanced_layer_diffusion(a, 1.3, 0.8, 0.4, 0.01, 2, 3), rtol=1e-13)


# ---------------------------------------------------------------------------------------------------------
# The Itô drift of §5.3


STATES = {  # per-layer values a (layer axis first) of one mode: unbalanced L = 3, balanced L = 2, 3, 4
    "unbalanced3": np.array([0.7, 1.1, 0.9]),
    "balanced2": np.full(2, 0.8),
    "balanced3": np.full(3, 0.75),
    "balanced4": np.full(4, 0.9),
}
S_, LAM_, SIG_, LR_, B_ = 1.2, 0.9, 0.5, 0.2, 2  # η/B = 0.1: the Itô term is a sizeable part of the drift


def _exact_step_mean(a, dt, n_nodes=12):
    """E[m(a + Δa)] for one Euler–Maruyama step of the per-layer SDE §5.1, Δa = b dt + c sqrt(dt) ξ with one ξ ~ N(0, 1)
    per mode: m(a + Δa) is a polynomial of degree L in ξ, so Gauss–Hermite with 12 nodes (exact to degree 23) is exact."""
    b = TM.layer_drift(a, S_, LAM_)
    c = TM.layer_noise_amplitude(a, S_, LAM_, SIG_, LR_, B_)
    x, w = hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    vals = np.prod(a[:, None] + b[:, None] * dt + c[:, None] * np.sqrt(dt) * x[None, :], axis=0)
    return float(vals @ w)


@pytest.mark.parametrize("name", list(STATES))
def test_ito_drift_exact_expectation_of_one_step(name):
    """§5.3: the function-space drift is lim_{dt→0} E[m(a + Δa) − m(a)]/dt for the per-layer SDE of §5.1. The
    expectation of one Euler–Maruyama step is computed exactly (Gauss–Hermite) and is a polynomial of degree L − 1
    in dt (odd powers of ξ vanish); a polynomial fit through L + 2 values of dt ∈ [1e-3, 6e-3] extrapolated to 0
    gives the drift. Tolerance 1e-8 relative: the fit is exact up to round-off of E[Δm] (≈ 1e-16·m/dt ≈ 1e-13)
    amplified by the extrapolation weights (≲ 1e3). Non-vacuous: dropping the Itô term misses by ≥ 5 %."""
    a = STATES[name]
    m = float(np.prod(a))
    dts = 1e-3 * np.arange(1, len(a) + 3)
    rates = [(_exact_step_mean(a, dt) - m) / dt for dt in dts]
    drift = np.polyval(np.polyfit(dts, rates, len(a) - 1), 0.0)
    pred = float(TM.function_drift_layers(a, S_, LAM_, SIG_, LR_, B_))
    assert drift == pytest.approx(pred, rel=1e-8)
    ito = float(TM.ito_drift_layers(a, S_, LAM_, SIG_, LR_, B_))
    assert abs(ito) > 0.05 * abs(pred)
    if name.startswith("balanced"):  # the boxed balanced form equals the general one
        L = len(a)
        assert float(TM.function_drift(m, S_, LAM_, SIG_, LR_, B_, L)) == pytest.approx(pred, rel=1e-13)
        assert float(TM.ito_drift(m, S_, LAM_, SIG_, LR_, B_, L)) == pytest.approx(ito, rel=1e-13)
        # and the function-space diffusion K²D(η/B) is §5.3's (η/B) L² m^{4−4/L} D
        assert float(TM.function_diffusion_layers(a, S_, LAM_, SIG_, LR_, B_)) == pytest.approx(
            float(TM.function_diffusion(m, S_, LAM_, SIG_, LR_, B_, L)), rel=1e-13)


@pytest.mark.parametrize("name", list(STATES))
def test_ito_term_hessian_by_finite_differences(name):
    """The Itô term is T D πᵀ∇²m π; ∇²m by central differences (step 1e-4) of m(a) = Π a_l. Tolerance 1e-6
    relative: the O(h²) truncation vanishes here (m is multilinear, so the mixed central difference is exact) and
    round-off is ~1e-16/h² ≈ 1e-8."""
    a = STATES[name]
    L, h = len(a), 1e-4
    H = np.zeros((L, L))
    for i in range(L):
        for j in range(L):
            def f(di, dj, i=i, j=j):
                x = a.copy()
                x[i] += di
                x[j] += dj
                return np.prod(x)
            H[i, j] = (f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
    _, pi = TM.layer_products(a)
    T = LR_ / (2 * B_)
    D = TM.mode_noise_var(np.prod(a), S_, LAM_, SIG_)
    assert T * D * pi @ H @ pi == pytest.approx(float(TM.ito_drift_layers(a, S_, LAM_, SIG_, LR_, B_)), rel=1e-6)


def test_ito_drift_antithetic_monte_carlo():
    """Monte Carlo with antithetic pairs (ξ, −ξ), R = 1e5 pairs, one per-layer step of size dt = 1e-3 from the
    unbalanced L = 3 state: the mean of [m(a + Δa(ξ)) + m(a + Δa(−ξ)) − 2m]/(2 dt) estimates the function-space
    drift (odd orders cancel pathwise; the O(dt) bias is ≈ 1e-3 relative, below the SE). Tolerance 5 group-SE
    (checks.md §0); measured |z| in the docstring of the result below."""
    a = STATES["unbalanced3"]
    m, dt, R = float(np.prod(a)), 1e-3, 100_000
    b = TM.layer_drift(a, S_, LAM_)
    c = TM.layer_noise_amplitude(a, S_, LAM_, SIG_, LR_, B_)
    xi = np.random.default_rng(41).standard_normal(R)
    step = lambda sgn: np.prod(a[:, None] + b[:, None] * dt + c[:, None] * np.sqrt(dt) * sgn * xi[None, :], axis=0)
    est = (step(1.0) + step(-1.0) - 2 * m) / (2 * dt)
    pred = float(TM.function_drift_layers(a, S_, LAM_, SIG_, LR_, B_))
    se = group_estimate(est, groups=G).se
    z = (est.mean() - pred) / se
    assert abs(z) < 5, (est.mean(), pred, z)
    # non-vacuous: the drift without the Itô term is rejected
    z_gf = (est.mean() - float(np.sum(TM.layer_products(a)[1] ** 2) * LAM_ * (S_ - m))) / se
    assert abs(z_gf) > 20, z_gf


def test_function_space_sde_reproduces_per_layer_sde():
    """§5.3's boxed SDE for m = a^L, simulated directly in m by Euler–Maruyama (NumPy), against the per-layer
    SDE (§5.2) simulated by ``simulate_modes`` (scheme ``em``): L = 3, s = 1, λ = 1, σ_ε = 0.5, η/B = 0.05
    (η = 0.05, B = 1), m0 = 0.5, dt = 1e-3, t = 1, R = 20 000 each. Check: two-sample KS not rejected at 1 %
    (statistic below 1.628·sqrt(2/R) = 0.0163) and means within 4 SE. Non-vacuous: without the Itô term the
    mean is off by the integrated Itô drift ≈ 0.01 (≈ 9 SE of the difference) and KS rejects."""
    L, s, lam, sig, lr, B, m0, dt, R = 3, 1.0, 1.0, 0.5, 0.05, 1, 0.5, 1e-3, 20_000
    cfg = M.mode_config([s], depth=L, lr=lr, batch_size=B, label_noise=sig, m0=m0, kind="sde", dt=dt, t_max=1.0,
                        n_times=2, replicas=R, seed=5)
    layer = M.simulate_modes(cfg, progress=False).mode_strength.values[:, -1, 0]
    rng = np.random.default_rng(6)

    def run(with_ito):
        m = np.full(R, m0)
        for _ in range(1000):
            mu = TM.function_drift(m, s, lam, sig, lr, B, L) if with_ito else TM.gf_drift(m, s, lam, L)
            m = m + mu * dt + np.sqrt(dt * TM.function_diffusion(m, s, lam, sig, lr, B, L)) * rng.standard_normal(R)
        return m

    crit = 1.628 * np.sqrt(2 / R)
    good, bad = run(True), run(False)
    ks_good, ks_bad = stats.ks_2samp(layer, good).statistic, stats.ks_2samp(layer, bad).statistic
    se = np.hypot(group_estimate(layer, groups=G).se, group_estimate(good, groups=G).se)
    assert ks_good < crit, ks_good
    assert abs(layer.mean() - good.mean()) < 4 * se
    assert ks_bad > crit and abs(layer.mean() - bad.mean()) > 6 * se, (ks_bad, layer.mean() - bad.mean(), se)
