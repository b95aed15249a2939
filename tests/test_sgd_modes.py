"""Per-mode reduction of SGD (issue 4; ``sgd_noise.md`` §§4–8; checks.md D: S1–S7, S10, S11 and B: C4, C5).

What is shown here, each with its tolerance and why:

* closed forms (``dlnlab.theory.mode_sde``): S5 discriminant on a grid, C5 exact ``η/B`` scaling, the Itô drift of
  §5.3 against an exact Gauss–Hermite expectation of one per-layer step, a finite-difference Hessian, an
  antithetic Monte Carlo estimate and a simulation of the function-space SDE;
* the per-mode simulator (``dlnlab.engines.modes``): S1 (the exact recursion *is* online SGD of the scalar network,
  same draws), S2 (exact discrete balance identity, unbalanced), C4 (per-step noise of the recursion and of
  the SDE schemes), the drift-implicit scheme (solves its equation; stable where Euler–Maruyama blows up and
  close to the exact stationary law), S6 escape rates and S7 convergence without label noise;
* agreement of full-network SGD from an aligned balanced init with the per-mode SDE and the exact
  recursion (two-sample KS at 1 % on ≥ 5 times, means within 3 SE);
* the diffusion peak (§7): ``t_peak < t_learned`` for every mode and ``L ∈ {2, 3, 4}``, and
  ``|m(t_peak) − m*|/s < 0.05``, in per-mode SGD and in the full network's ``noise_power`` observable;
* without alignment or balance (E4, S10/S11).

Statistics follow checks.md §0: replicas are the independent unit; group SE with G = 20 groups; fixed seeds
(every test is deterministic).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import hermite_e
from scipy import integrate, stats

import dlnlab
from dlnlab.analysis.ensembles import peak_statistics
from dlnlab.engines import modes as M
from dlnlab.model.observables import OFFDIAG_MAX
from dlnlab.theory import mode_sde as TM

G = 20  # groups for the group SE (checks.md §0)


def group_se(x, axis=0):
    """Group standard error of the mean of ``x`` along ``axis`` (checks.md §0, G = 20 groups of replicas)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    n = (x.shape[0] // G) * G
    g = x[:n].reshape(G, n // G, *x.shape[1:]).mean(axis=1)
    return g.std(axis=0, ddof=1) / np.sqrt(G)


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
    z = (est.mean() - pred) / group_se(est)
    assert abs(z) < 5, (est.mean(), pred, z)
    # non-vacuous: the drift without the Itô term is rejected
    z_gf = (est.mean() - float(np.sum(TM.layer_products(a)[1] ** 2) * LAM_ * (S_ - m))) / group_se(est)
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
    se = np.hypot(group_se(layer), group_se(good))
    assert ks_good < crit, ks_good
    assert abs(layer.mean() - good.mean()) < 4 * se
    assert ks_bad > crit and abs(layer.mean() - bad.mean()) > 6 * se, (ks_bad, layer.mean() - bad.mean(), se)


# ---------------------------------------------------------------------------------------------------------
# The per-mode simulator: exact recursion


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_s1_recursion_equals_scalar_network_sgd(L):
    """checks.md S1 [A]: the exact per-mode recursion (``simulate_modes``, scheme ``sgd``) equals online SGD of the
    main engine on the scalar network (d_in = d_out = width = 1, diagonal by construction) from the same balanced
    start with the same seed — the same draws, replica by replica — at every record. Setting: s = 2, λ = 1.5,
    σ_ε = 0.3, B = 3, η = 0.02, m0 = 0.05, 400 steps (the whole escape and convergence), 4 replicas.
    Tolerance 1e-12 relative (checks.md S1); measured ≤ 2.2e-15 (L = 1..4): only the order of floating-point
    operations differs."""
    cfg = M.mode_config([2.0], depth=L, lr=0.02, batch_size=3, label_noise=0.3, input_variance=1.5, m0=0.05,
                        t_max=8.0, n_times=9, replicas=4, seed=7)
    per_mode = M.simulate_modes(cfg, progress=False)
    full = dlnlab.simulate(M.as_network(cfg), progress=False)
    a, b = per_mode.mode_strength.values, full.mode_strength.values
    assert b[:, -1, 0].min() > 1.5  # the mode was learned: the comparison covers the whole trajectory
    np.testing.assert_array_equal(per_mode.step.values, full.step.values)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def _own_recursion(a0, s, lam, sig, lr, B, seed, member, n_steps):
    """The recursion written out with the documented key scheme, one step at a time (reference for simulate_modes)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), member), 1)
    s, lam = jnp.asarray(s), jnp.asarray(lam)

    def body(k, carry):
        a, hist = carry
        z, e = M.mode_draws(jax.random.fold_in(jax.random.fold_in(key, 0), k), B, lam, sig)
        zeta = M.minibatch_mode_gradient(a, z, e, s)
        new = M.recursion_step(a, zeta, lr)
        return new, hist.at[k].set(jnp.concatenate([a.ravel(), new.ravel(), zeta]))

    n = a0.size
    hist = jnp.zeros((n_steps, 2 * n + a0.shape[1]))
    return jax.jit(lambda a: jax.lax.fori_loop(0, n_steps, body, (a, hist)))(jnp.asarray(a0))


@pytest.mark.parametrize("L", [3, 4])
def test_s2_balance_identity_unbalanced(L):
    """checks.md S2 [A]: for the unbalanced aligned recursion a_{l,k+1} = a_{l,k} − η π_{l,k} ζ̂_k,
    (a_l² − a_j²)_{k+1} = (a_l² − a_j²)_k (1 − η² ζ̂_k² Π_{i≠l,j} a_{i,k}²) for every pair (l, j) and step; two modes
    (s = 1, 0.5; λ = 1, 1.5), σ_ε = 0.3, B = 2, η = 0.05, 300 steps. Tolerance 1e-12 relative per step (checks.md
    S2; round-off of O(1) squares against imbalances ≥ 0.05; measured ≤ 4e-15). Also: ``simulate_modes`` with
    these ``layer_values`` reproduces this step-by-step recursion (same keys) to 1e-13 (measured 0: the same
    operations), and every step shrinks every imbalance (the factor is < 1 here)."""
    rows = {3: [[0.5, 1.2], [1.1, 0.6], [0.9, 0.8]], 4: [[0.5, 1.2], [1.1, 0.6], [0.9, 0.8], [1.3, 0.7]]}[L]
    a0 = np.array(rows)
    s, lam, sig, lr, B, n = [1.0, 0.5], [1.0, 1.5], 0.3, 0.05, 2, 300
    _, hist = _own_recursion(a0, s, lam, sig, lr, B, seed=3, member=0, n_steps=n)
    hist = np.asarray(hist)
    k = a0.shape[1]
    before, after, zeta = hist[:, : L * k].reshape(n, L, k), hist[:, L * k: 2 * L * k].reshape(n, L, k), hist[:, -k:]
    worst = 0.0
    for l in range(L):
        for j in range(l + 1, L):
            others = np.prod(np.delete(before, [l, j], axis=1) ** 2, axis=1)
            pred = (before[:, l] ** 2 - before[:, j] ** 2) * (1 - lr**2 * zeta**2 * others)
            got = after[:, l] ** 2 - after[:, j] ** 2
            assert np.abs(before[:, l] ** 2 - before[:, j] ** 2).min() > 0.05
            worst = max(worst, float(np.max(np.abs(got - pred) / np.abs(pred))))
            assert np.all(np.abs(got) < np.abs(before[:, l] ** 2 - before[:, j] ** 2))  # SGD removes imbalance
    assert worst < 1e-12, worst
    cfg = M.mode_config(s, depth=L, lr=lr, batch_size=B, label_noise=sig, input_variance=lam, layer_values=rows,
                        steps=n, n_times=4, replicas=1, seed=3)
    ds = M.simulate_modes(cfg, progress=False)
    assert "layer_sv" in ds  # recorded by default for an unbalanced start
    steps = ds.step.values
    np.testing.assert_allclose(ds.layer_sv.values[0, 1:], after[steps[1:] - 1], rtol=1e-13)


@pytest.mark.parametrize("lr,B", [(0.01, 1), (0.02, 1), (0.02, 4)])
def test_c4_per_mode_step_noise(lr, B):
    """checks.md C4 [V]: one per-mode SGD step from a = 0.6 (L = 2, λ = s = 1, σ_ε = 0.5), R = 2e5 replicas:
    Var(Δa + η a λ(m − s)) = η² a^{2L−2} D(m)/B and E Δa = −η a λ(m − s), each within 5 group-SE (C4 observed ratios
    0.9996–1.0075, group SE 0.6–0.9 %). The same step for the SDE schemes: ``em`` has mean Δt λ a(s − m) and variance
    Δt(η/B) a² D (Δt = η, exactly Gaussian); ``log`` has, in y = ln a, mean Δt[λ(s − m) − ½(η/B) D] and variance
    Δt(η/B) D (r = a^{L−2} = 1); within 5 group-SE."""
    R, a0, s, sig = 200_000, 0.6, 1.0, 0.5
    m = a0**2
    D = TM.mode_noise_var(m, s, 1.0, sig)
    for kind, scheme in [("sgd", "sgd"), ("sde", "em"), ("sde", "log")]:
        cfg = M.mode_config([s], depth=2, lr=lr, batch_size=B, label_noise=sig, layer_values=[[a0], [a0]], kind=kind,
                            scheme=None if kind == "sgd" else scheme, record_layers=True, steps=1, n_times=2,
                            replicas=R, seed=int(1e4 * lr) + B)
        a1 = M.simulate_modes(cfg, progress=False).layer_sv.values[:, -1, 0, 0]
        if scheme == "log":
            x, mean, var = np.log(a1) - np.log(a0), lr * (1.0 * (s - m) - 0.5 * lr / B * D), lr * lr / B * D
        else:
            x, mean = a1 - a0, -lr * a0 * (m - s)
            var = TM.sgd_step_variance(a0, s, 1.0, sig, lr, B, 2)
            assert var == pytest.approx(lr**2 * a0**2 * D / B)
        g = x.reshape(G, -1)
        z_mean = (x.mean() - mean) / group_se(x)
        z_var = (g.var(axis=1).mean() - var) / (g.var(axis=1).std(ddof=1) / np.sqrt(G))
        assert abs(z_mean) < 5 and abs(z_var) < 5, (scheme, z_mean, z_var, g.var(axis=1).mean() / var)


def test_noise_power_equals_main_engine_on_aligned_manifold():
    """The per-mode ``noise_power`` K²D(m) (K = Σ_l π_l²) equals the main engine's exact (Wick) ``noise_power``
    observable, Var⟨A_α, G⟩, on an aligned, *unbalanced* network with random teacher and hidden bases and
    non-whitened λ (L = 3, three modes, σ_ε = 0.4). Tolerance 1e-10 relative (an identity; round-off in
    O(L) products of 3 × 3 matrices)."""
    rows = [[0.5, 1.2, 0.3], [1.1, 0.6, 0.9], [0.9, 0.8, 1.4]]
    d = {"teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "input_variance": [1.5, 0.8, 1.2, 0.6],
                     "label_noise": 0.4, "basis": "random", "seed": 2},
         "network": {"depth": 3, "width": 5},
         "init": {"kind": "aligned", "layer_values": rows, "hidden_basis": "random"},
         "dynamics": {"kind": "sgd", "lr": 0.01, "steps": 1},
         "record": {"n_times": 2, "observables": ["mode_strength", "noise_power"]}}
    cfg = dlnlab.Config.from_dict(d)
    per_mode = M.simulate_modes(M.reduce_to_modes(cfg), progress=False)
    full = dlnlab.simulate(cfg, progress=False)
    np.testing.assert_allclose(per_mode.mode_strength.values[:, 0], full.mode_strength.values[:, 0], rtol=1e-12)
    np.testing.assert_allclose(per_mode.noise_power.values[:, 0], full.noise_power.values[:, 0], rtol=1e-10)
    a = np.array(rows)
    expect = TM.function_diffusion_layers(a, np.array([2.0, 1.0, 0.5]), np.array([1.5, 0.8, 1.2]), 0.4, 1.0, 1)
    np.testing.assert_allclose(per_mode.noise_power.values[0, 0], expect, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# The per-mode SDE schemes: the drift-implicit scheme, S6 escape rates, S3/S7 SGD checks


def test_implicit_step_solves_its_equation():
    """``implicit_log_step`` returns y' with y' − Δt μ(y') = y + ς(y) sqrt(Δt) ξ: an unbalanced L = 3 state (two modes)
    at Δt = 0.01, and a balanced state at Δt = 0.5 with kicks ξ = ±3 (far into the stiff region, so the damped Newton
    iteration has work to do). Tolerance 1e-12 absolute on y = ln a (Newton stops at |Δy| ≤ 1e-13; quadratic
    convergence). A solve that cannot converge — a small layer of a strongly unbalanced mode kicked towards 0, where
    the log-coordinate drift has no confining root — is returned as NaN, not as a wrong number. The Newton Jacobian
    (∂μ_l/∂y_j = b_l − 2A_lδ_lj) equals autodiff's to 1e-12."""
    s, lam, c = jnp.array([1.0, 0.5]), jnp.array([1.0, 1.5]), 0.2
    y = jnp.log(jnp.array([[0.5, 1.3], [0.9, 0.4], [1.2, 2.2]]))
    balanced = jnp.log(jnp.array([[1.1, 0.9]] * 3))
    for yy, xi, dt in [(y, (0.7, -1.2), 0.01), (balanced, (3.0, -3.0), 0.5)]:
        xi = jnp.array(xi)
        u = M.implicit_log_step(yy, xi, dt, s, lam, 0.5, c)
        _, r, _, D = M._log_coefficients(yy, s, lam, 0.5, c, "exact")
        mu_u, *_ = M._log_coefficients(u, s, lam, 0.5, c, "exact")
        resid = u - (yy + jnp.sqrt(dt * c) * r * jnp.sqrt(D) * xi) - dt * mu_u
        assert float(jnp.max(jnp.abs(resid))) < 1e-12, resid
    bad = M.implicit_log_step(y, jnp.array([3.0, -3.0]), 0.5, s, lam, 0.5, c)
    assert bool(jnp.all(jnp.isnan(bad[:, 1]))) and bool(jnp.all(jnp.isfinite(bad[:, 0])))
    # the Newton Jacobian parts: ∂μ_l/∂y_j = b_l − 2A_lδ_lj against autodiff, to 1e-12
    _, A, b = M._log_drift_jacobian_parts(y, s, lam, 0.5, c, "exact")
    J = jax.jacfwd(lambda yy: M._log_coefficients(yy, s, lam, 0.5, c, "exact")[0])(y)
    for a in range(2):
        np.testing.assert_allclose(J[:, a, :, a], b[:, a][:, None] - 2 * jnp.diag(A[:, a]), atol=1e-12)


def _l2_exact_law(s, lam, sig, lr, B):
    """CDF, mean and median of the exact L = 2 stationary law of m (sgd_noise.md §9.2 closed form, by quadrature)."""
    kappa = B * s / (lr * (2 * lam * s**2 + sig**2))
    logp = lambda m: ((kappa - 1.5) * np.log(m) - (1 + kappa / 2) * np.log(2 * lam * (m - s) ** 2 + sig**2)
                      - kappa * sig / (s * np.sqrt(2 * lam)) * np.arctan(np.sqrt(2 * lam) * (m - s) / sig))
    grid = np.concatenate([np.geomspace(1e-12, 0.05, 2000), np.linspace(0.05, 20, 40000)[1:], np.geomspace(20, 1e6, 4000)[1:]])
    dens = np.exp(logp(grid) - logp(s))
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
    # the tail beyond 1e6 (p ~ m^{-3.5}): ∫ = p(1e6)·1e6/2.5, negligible; the head below 1e-12 likewise (κ > 1/2)
    Z = cdf[-1]
    cdf /= Z
    mean = integrate.trapezoid(grid * dens, grid) / Z
    return grid, cdf, mean, float(np.interp(0.5, cdf, grid))


def test_implicit_scheme_is_stable_where_euler_maruyama_is_stiff():
    """The stiff case: L = 2, s = λ = 1, σ_ε = 1, η = 0.2, B = 1 (T = 0.1 < T_c = 1/3, so the exact law of §9.1 is
    normalisable, with power-law tail m^{−3.5}), from the balanced point a = 1, Δt = 0.02 (h = 0.04 per step),
    t ∈ [0, 80], R = 2000. Euler–Maruyama in a blows up on the excursions of the heavy tail (measured: about a
    quarter to a third of the replicas; check > 5 %); the drift-implicit log scheme keeps every replica finite and
    samples the exact law: samples at t = 40, 42, …, 80 (spacing ≫ relaxation time 1/(Lλs) = 0.5), n = 42 000;
    KS distance to the exact CDF ≤ 1.95/√n + 0.3h (checks.md §0 budget: α = 0.001 plus the O(h) discretisation
    bias, h = Δt·Lλs^{2−2/L} = 0.04), and the median within 0.01 of the exact median (SE ≈ 0.0025 plus O(h) bias).
    Measured: KS ≈ 0.006, median 0.806 against 0.806 (in the docstring's run)."""
    s, lam, sig, lr, B, dt, R = 1.0, 1.0, 1.0, 0.2, 1, 0.02, 2000
    cfg = M.mode_config([s], depth=2, lr=lr, batch_size=B, label_noise=sig, m0=1.0, kind="sde", dt=dt, t_max=80.0,
                        n_times=41, replicas=R, seed=12)
    em = M.simulate_modes(cfg.with_overrides(["dynamics.scheme=em"]), progress=False)
    imp = M.simulate_modes(cfg.with_overrides(["dynamics.scheme=implicit"]), progress=False)
    assert em.attrs["n_diverged"] > 0.05 * R, em.attrs["n_diverged"]
    assert imp.attrs["n_diverged"] == 0 and bool(imp.finite.all())
    x = imp.mode_strength.values[:, 20:, 0].ravel()
    grid, cdf, _mean, median = _l2_exact_law(s, lam, sig, lr, B)
    xs = np.sort(x)
    F = np.interp(xs, grid, cdf)
    n = len(xs)
    ks = max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n))
    assert ks <= 1.95 / np.sqrt(n) + 0.3 * dt * 2 * lam, ks
    assert abs(np.median(x) - median) < 0.01, (np.median(x), median)


def test_s6_escape_rates_l2_sde():
    """checks.md S6 [V]: L = 2 SDE, Euler–Maruyama in a (scheme ``em``), λ = s = 1, σ_ε = 0.5, η/B = 0.05
    (η = 0.05, B = 1), a0 = 1e-4, Δt = 1e-3, R = 2e4; slopes between t = 1 and 4 (still near the saddle):
    E ln m: 2λs − (η/B)D(0) = 1.8875 within 4 SE (SE from 20 groups; S6 quotes ≈ 0.0035); Var ln m: 4(η/B)D(0) = 0.45
    within 5 %; ln E m: 2λs + (η/B)D(0) = 2.1125 within 2 % (S6's tolerances)."""
    cfg = M.mode_config([1.0], depth=2, lr=0.05, batch_size=1, label_noise=0.5, m0=1e-8, kind="sde", dt=1e-3,
                        t_max=4.0, n_times=5, replicas=20_000, seed=4)
    ds = M.simulate_modes(cfg, progress=False)
    t, m = ds.t.values, ds.mode_strength.values[:, :, 0]
    i1, i4 = int(np.argmin(abs(t - 1))), int(np.argmin(abs(t - 4)))
    rates = TM.escape_rates(1.0, 1.0, 0.5, 0.05, 1)
    lm = np.log(m)
    slope = (lm[:, i4] - lm[:, i1]) / 3
    assert abs(slope.mean() - rates["median"]) < 4 * group_se(slope), (slope.mean(), group_se(slope))
    var_slope = (lm[:, i4].var() - lm[:, i1].var()) / 3
    assert var_slope == pytest.approx(rates["var"], rel=0.05)
    mean_slope = (np.log(m[:, i4].mean()) - np.log(m[:, i1].mean())) / 3
    assert mean_slope == pytest.approx(rates["mean"], rel=0.02)


@pytest.mark.parametrize("lr,bound", [(0.02, 0.05), (0.005, 0.02)])
def test_s3_sgd_mean_against_gradient_flow(lr, bound):
    """checks.md S3 [V] (E1): per-mode SGD (exact recursion), L = 2, λ = s = 1, m0 = 1e-3, B = 1, 4000 replicas: the
    sup over recorded t ∈ [0, 10] (every 0.1) of |ensemble mean of m − logistic| is < 0.05 at η = 0.02 and < 0.02 at
    η = 0.005 (S3's bounds; observed there 0.038 and 0.012; the gap is the O(η) spread of escape times)."""
    cfg = M.mode_config([1.0], depth=2, lr=lr, batch_size=1, m0=1e-3, t_max=10.0, n_times=101, replicas=4000, seed=8)
    ds = M.simulate_modes(cfg, progress=False)
    err = np.abs(ds.mode_strength.values[:, :, 0].mean(axis=0) - dlnlab.theory.mode_trajectory(ds.t.values, 1e-3, 1.0))
    assert err.max() < bound, err.max()


@pytest.mark.parametrize("L,t_max", [(2, 60.0), (3, 120.0)])
def test_s7_no_label_noise_converges_to_s(L, t_max):
    """checks.md S7 [V]: recursion without label noise, η = 0.01, m0 = 0.01, B = 1, λ = s = 1, 2000 replicas:
    max |m − s| ≤ 1e-6 at t = 60 (L = 2) and 120 (L = 3) (S7 observed 4e-16): the stationary law is δ(m − s)."""
    cfg = M.mode_config([1.0], depth=L, lr=0.01, batch_size=1, m0=0.01, t_max=t_max, n_times=2, replicas=2000, seed=9)
    m = M.simulate_modes(cfg, progress=False).mode_strength.values[:, -1, 0]
    assert np.max(np.abs(m - 1.0)) <= 1e-6


# ---------------------------------------------------------------------------------------------------------
# Full network from an aligned balanced init against the per-mode SDE and the exact recursion


def _agreement_ensembles(L, s, t_max, times, R, seed):
    """Full-network online SGD (``dlnlab.simulate``, random teacher and hidden bases, width = d = len(s)) from an aligned
    balanced init m_α(0) = 0.1, and the per-mode SDE (Euler–Maruyama in a, Δt = η) and exact recursion on the same
    teacher; σ_ε = 0.3, η = 0.002, B = 16 (η/B = 1.25e-4; h of the top mode ≤ 0.026). Independent seeds."""
    common = {"teacher": {"d_in": len(s), "d_out": len(s), "singular_values": list(s), "label_noise": 0.3,
                          "basis": "random", "seed": 11},
              "network": {"depth": L, "width": len(s)},
              "init": {"kind": "aligned", "scale": 0.1, "hidden_basis": "random"},
              "record": {"n_times": round(t_max / 0.1) + 1, "spacing": "linear", "observables": ["mode_strength"]}}

    def cfg(kind, sd):
        return dlnlab.Config.from_dict({**common, "dynamics": {"kind": kind, "lr": 0.002, "batch_size": 16, "t_max": t_max},
                                        "ensemble": {"replicas": R, "seed": sd}})

    full = dlnlab.simulate(cfg("sgd", seed), progress=False)
    idx = [int(np.argmin(np.abs(full.t.values - x))) for x in times]
    assert np.allclose(full.t.values[idx], times)
    out = {"full": full.mode_strength.values[:, idx],
           "sde": M.simulate_modes(M.reduce_to_modes(cfg("sde", seed + 1)).with_times([0.0, *times]),
                                   progress=False).mode_strength.values[:, 1:],
           "rec": M.simulate_modes(M.reduce_to_modes(cfg("sgd", seed + 2)).with_times([0.0, *times]),
                                   progress=False).mode_strength.values[:, 1:]}
    for v in out.values():
        assert np.all(np.isfinite(v))
    return out


def _check_agreement(ens, pair):
    """Two-sample KS at every (time, mode) — the family held at 1 % (Bonferroni: each p ≥ 0.01/n) — and the
    difference of means in group-SE. Returns (min p, number of individual 1 % rejections, max |z|, number of tests)."""
    a, b = ens[pair[0]], ens[pair[1]]
    n_t, k = a.shape[1], a.shape[2]
    ps = np.array([[stats.ks_2samp(a[:, i, j], b[:, i, j]).pvalue for j in range(k)] for i in range(n_t)])
    z = (a.mean(0) - b.mean(0)) / np.hypot(group_se(a), group_se(b))
    return ps.min(), int((ps < 0.01).sum()), float(np.abs(z).max()), ps.size


AGREE_FAST = {"L": 2, "s": (3.0, 2.0, 1.5), "t_max": 2.4, "times": (0.3, 0.6, 1.0, 1.5, 2.4), "R": 2000, "seed": 21}


@pytest.fixture(scope="module")
def agreement_fast():
    return _agreement_ensembles(**AGREE_FAST)


@pytest.mark.parametrize("pair", [("full", "sde"), ("full", "rec"), ("rec", "sde")])
def test_full_network_agrees_with_per_mode(agreement_fast, pair):
    """sgd_noise.md §5: from an aligned balanced init, full-network SGD and the per-mode SDE / exact recursion give the
    same law of every m_α, at 5 times spanning the plateau, the three transitions and the learned phase
    (t = 0.3, 0.6, 1.0, 1.5, 2.4; modes s = 3, 2, 1.5, L = 2), R = 2000 replicas each.

    Tolerances. KS: two-sample at 1 %; the 15 (time, mode) tests of a pair are one family, held at family-wise 1 %
    (each p ≥ 0.01/15; checks.md §0: a check that takes a maximum over many entries must be set for the maximum —
    testing 15 KS statistics each at 1 % would fail ≈ 14 % of seeds with identical laws); the number of individual
    1 % rejections is asserted ≤ 2 as well (P ≈ 0.04 % under agreement). Means: |Δ| ≤ 3 group-SE at every entry (as
    specified; ≈ 4 % chance over 15 entries under agreement).

    Why η/B = 1.25e-4: SGD noise pushes the full network off the aligned manifold (§6), which lags the transitions of
    the full network by O(η/B); measured at η = 0.002, σ_ε = 0.3: mean lag of mode 3 at t = 1.5 of 3.3e-3 at B = 1
    and 0.8e-3 at B = 4 (∝ 1/B), against sd ∝ sqrt(η/B): 0.09 sd at B = 1, 0.04 sd at B = 4, ≈ 0.02 sd here, below
    what 2000 replicas resolve (the SE of a difference of means is 0.03 sd). At B = 1, η = 0.001, m0 = 0.05 (L = 2 and 3,
    s = 3, 2, 1) the same comparison rejected (min KS p 3e-3 and 1e-4; |z| up to 4.9): the reduction is exact only
    on the aligned manifold, and the full network leaves it at rate η/B."""
    p_min, n_rej, z_max, n = _check_agreement(agreement_fast, pair)
    assert n == 15
    assert p_min >= 0.01 / n, (pair, p_min, n_rej, z_max)
    assert n_rej <= 2
    assert z_max <= 3.0, (pair, z_max)


@pytest.mark.slow
@pytest.mark.parametrize("L", [2, 3])
def test_full_network_agrees_with_per_mode_slow(L):
    """The same with R = 4000 replicas, s = (3, 2, 1), t ∈ {0.3, 0.6, 1.0, 1.5, 2.2, 4.0}, L = 2 and 3 (18 tests per
    pair, 108 in all). KS as above (family-wise 1 %, ≤ 2 individual 1 % rejections per pair).

    Means: the maximum of |z| over a pair's 18 entries ≤ 5 group-SE, the level checks.md §0 sets for a check that
    takes a maximum over many entries (the 3 SE of the issue is asserted per entry by the R = 2000 test above). With
    group SEs (G = 20) z is t-distributed with ≈ 38 d.o.f., P(|z| > 3) ≈ 0.5 % per entry, and the entries of one
    ensemble at successive times are strongly correlated, so "every entry ≤ 3 SE" over 108 entries fails a large
    fraction of seeds with identical laws. It did (this test, as first written): L = 2, seed 33, the SDE sample's
    mean of mode 3 was 4.0 and 3.3 SE above the full network's at t = 1.0 and 1.5 (2.4 and 1.3 above the exact
    recursion's, while full network and recursion agree to ≤ 1.6 SE at every entry); per-mode SGD and SDE at
    R = 40 000, η = 0.002–0.008 agree there to ≤ 1.1 SE (|Δ| ≤ 1.2e-4)."""
    ens = _agreement_ensembles(L=L, s=(3.0, 2.0, 1.0), t_max=4.0, times=(0.3, 0.6, 1.0, 1.5, 2.2, 4.0), R=4000,
                               seed=31 + L)
    for pair in [("full", "sde"), ("full", "rec"), ("rec", "sde")]:
        p_min, n_rej, z_max, n = _check_agreement(ens, pair)
        assert p_min >= 0.01 / n and n_rej <= 2 and z_max <= 5.0, (L, pair, p_min, n_rej, z_max)


# ---------------------------------------------------------------------------------------------------------
# The diffusion peak (§7)

PEAK_S = np.array([3.0, 2.0, 1.0])
PEAK_M0, PEAK_LR = 0.01, 0.002


def _peak_times(L):
    t_max = 1.3 * max(TM.learning_time(PEAK_M0, x, 1.0, L) for x in PEAK_S)
    n = int(np.ceil(t_max / PEAK_LR))
    return np.arange(0, n + 1, 2) * PEAK_LR  # every 2 steps


@pytest.fixture(scope="module")
def peak_runs():
    """Per-mode SGD (exact recursion, 200 replicas) and full-network SGD from an aligned balanced init with the
    ``noise_power`` observable (16 replicas, 3 × 3, random bases), L = 2, 3, 4, s = (3, 2, 1), λ = 1, σ_ε = 0,
    m0 = 0.01, η = 0.002, B = 1 (h ≤ 0.042), recorded every 2 steps to 1.3 × the slowest gradient-flow t_0.99."""
    out = {}
    for L in (2, 3, 4):
        times = _peak_times(L)
        cfg = M.mode_config(PEAK_S, depth=L, lr=PEAK_LR, m0=PEAK_M0, times=times, replicas=200, seed=40 + L)
        ds = M.simulate_modes(cfg, progress=False)
        full_cfg = dlnlab.Config.from_dict({
            "teacher": {"d_in": 3, "d_out": 3, "singular_values": list(PEAK_S), "basis": "random", "seed": 11},
            "network": {"depth": L, "width": 3}, "init": {"kind": "aligned", "scale": PEAK_M0},
            "dynamics": {"kind": "sgd", "lr": PEAK_LR, "batch_size": 1, "t_max": float(times[-1])},
            "record": {"n_times": len(times), "spacing": "linear", "observables": ["mode_strength", "noise_power"]},
            "ensemble": {"replicas": 16, "seed": 50 + L}})
        fds = dlnlab.simulate(full_cfg, progress=False)
        assert np.allclose(fds.t.values, ds.t.values)
        out[L] = (ds.t.values, ds.mode_strength.values, fds.mode_strength.values, fds.noise_power.values)
    return out


@pytest.mark.parametrize("L", [2, 3, 4])
def test_diffusion_peaks_before_learning(peak_runs, L):
    """§7.2, checks.md S4: for every mode, L ∈ {2, 3, 4} and both definitions of the diffusion (p = 2 − 2/L per layer,
    p = 4 − 4/L in function space — the latter also as the full network's exact ``noise_power`` observable):

    * the argmax over the run of the diffusion comes before the mode is learned (m ≥ 0.99 s) in **every** run;
    * the median over runs of |m(t_peak) − m*|/s < 0.05 (requirement), and < 0.02 for per-mode SGD (S4's ±0.02;
      the per-run sd of m(t_peak)/s is 0.001–0.009 and the 2-step record grid moves m/s by ≤ 0.015 near the peak);
    * the peaks come in saddle order (median t_peak decreasing in s) and each median t_peak is within 5 % of the
      gradient-flow t* (from m0 = 0.01 the noise-induced spread of escape times is a few %; measured ≤ 1.5 %).
    Measured worst |median − m*|/s: 6e-4 (per-mode), 2.6e-3 (full network)."""
    t, m, fm, fpow = peak_runs[L]
    cases = []
    for kind in ("parameter", "function"):
        power = m ** TM.peak_exponent(L, kind) * TM.mode_noise_var(m, PEAK_S, 1.0, 0.0)
        cases.append((kind, "per-mode", m, power, 0.02))
    cases.append(("function", "full", fm, fpow, 0.05))
    for kind, source, mm, power, tol in cases:
        st = peak_statistics(t, mm, power, PEAK_S)
        assert not np.any(np.isnan(st["t_learned"])), (kind, source)
        assert np.all(st["t_peak"] < st["t_learned"]), (kind, source)
        mstar = np.array([TM.peak_strength(x, L, kind) for x in PEAK_S])
        dev = np.abs(np.median(st["m_peak"], axis=0) - mstar) / PEAK_S
        assert np.all(dev < tol), (kind, source, dev)
        med_tp = np.median(st["t_peak"], axis=0)
        assert np.all(np.diff(med_tp) > 0)
        t_star = np.array([TM.peak_time(PEAK_M0, x, 1.0, L, kind) for x in PEAK_S])
        np.testing.assert_allclose(med_tp, t_star, rtol=0.05)


def test_l2_lag_between_peak_and_learning(peak_runs):
    """checks.md S4: for L = 2 the median lag t_0.99 − t_peak equals ln(2(1−ε)/(pε))/(2λs) within 5 % (p = 1 and 2,
    every mode; the record grid adds ≤ 0.004 to a lag ≥ 0.77). Measured within 1.3 %."""
    t, m, _, _ = peak_runs[2]
    for kind in ("parameter", "function"):
        power = m ** TM.peak_exponent(2, kind) * TM.mode_noise_var(m, PEAK_S, 1.0, 0.0)
        st = peak_statistics(t, m, power, PEAK_S)
        lag = np.median(st["t_learned"] - st["t_peak"], axis=0)
        theory = np.array([TM.peak_lag(x, 1.0, 2, kind) for x in PEAK_S])
        np.testing.assert_allclose(lag, theory, rtol=0.05)


# ---------------------------------------------------------------------------------------------------------
# Without alignment or balance (E4; checks.md S10, S11)


def _e4(steps, replicas, label_noises):
    """sgd_noise.md §10 E4: d0 = dL = 6, w = 30, L = 3, s = (3, 2, 1) with random U, V (teacher seed 0), whitened
    online inputs, B = 16, η = 0.005, init N(0, min(d_l, d_{l−1})^{−γ}) with γ = 3 (no alignment, no balance);
    ``noise_power`` (function-space noise along each teacher mode) recorded every 2 steps; label noises stacked."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 6, "d_out": 6, "singular_values": [3.0, 2.0, 1.0], "label_noise": list(label_noises),
                    "basis": "random", "seed": 0},
        "network": {"depth": 3, "width": 30},
        "init": {"kind": "gaussian", "gamma": 3.0, "scaling": "min_fan"},
        "dynamics": {"kind": "sgd", "lr": 0.005, "batch_size": 16, "steps": steps},
        "record": {"n_times": steps // 2 + 1, "spacing": "linear",
                   "observables": ["mode_strength", "noise_power", "balancedness"]},
        "ensemble": {"replicas": replicas, "seed": 1}})
    return dlnlab.simulate(cfg, observables=[OFFDIAG_MAX], progress=False)


def _check_e4(ds, sig):
    """checks.md S10/S11 on the runs with label noise ``sig`` (σ_ε ∈ {0, 0.3}: the §7.3 condition holds for every mode):
    in every run the peaks of the noise power of the three modes come in the order s = 3, 2, 1 and each precedes its
    own t_0.99; m(t_peak)/s within ±0.06 of m*/s (σ_ε = 0) or m_−/s (S10's tolerance; observed deviations there up to
    0.04; the 2-step record grid adds ≤ 0.01); the largest off-diagonal entry of UᵀWV at the end below 1e-3 (σ_ε = 0)
    or 0.05 (σ_ε = 0.3) (S11)."""
    sel = ds.label_noise.values == sig
    s = np.array([3.0, 2.0, 1.0])
    m, power = ds.mode_strength.values[sel][..., :3], ds.noise_power.values[sel][..., :3]
    st = peak_statistics(ds.t.values, m, power, s)
    assert np.all(np.diff(st["t_peak"], axis=1) > 0)
    assert np.all(st["t_peak"] < st["t_learned"])
    theory = np.array([TM.peak_strength(x, 3, "function", 1.0, sig) for x in s])
    dev = np.abs(st["m_peak"] - theory) / s
    assert dev.max() <= 0.06, dev
    off = ds.offdiag_max.values[sel][:, -1]
    assert off.max() < (1e-3 if sig == 0.0 else 0.05), off
    return dev.max(), off.max()


@pytest.fixture(scope="module")
def e4_runs():
    """E4 at 6000 steps (t = 30: every mode learned by t ≈ 6), 2 runs per label noise."""
    return _e4(6000, 2, [0.0, 0.3])


@pytest.mark.parametrize("sig", [0.0, 0.3])
def test_unaligned_noise_peaks_before_learning_in_saddle_order(e4_runs, sig):
    """§10 E4 / checks.md S10, S11 (see ``_check_e4``). Measured (seed 1): max |m(t_peak)/s − theory| 0.027 (σ_ε = 0)
    and 0.043 (0.3); largest off-diagonal entry 2e-5 and 0.02. Also, without label noise every mode converges to s
    (max |m − s| ≤ 1e-6 at t = 30, as S7 for the aligned case)."""
    _check_e4(e4_runs, sig)
    if sig == 0.0:
        m = e4_runs.mode_strength.values[e4_runs.label_noise.values == 0.0][:, -1, :3]
        assert np.max(np.abs(m - np.array([3.0, 2.0, 1.0]))) <= 1e-6


@pytest.mark.slow
def test_unaligned_e4_full_and_late_histograms():
    """The full E4 run (12 000 steps, 8 runs per label noise, σ_ε ∈ {0, 0.3}) with the same checks, and the late-time
    histograms of m_α (t ≥ 15, every 2 time units ≫ the relaxation time 1/h ≤ 67 steps = 0.33) against long per-mode
    SGD runs (2000 replicas, same η, B, σ_ε, from a = s^{1/L}, 4000 steps ≫ 10/h): two-sample KS per mode not
    rejected at family-wise 1 % (each p ≥ 0.01/3)."""
    ds = _e4(12000, 8, [0.0, 0.3])
    for sig in (0.0, 0.3):
        _check_e4(ds, sig)
    sel = ds.label_noise.values == 0.3
    t = ds.t.values
    late = np.nonzero(t >= 15.0)[0][::round(2.0 / (t[1] - t[0]))]
    full = ds.mode_strength.values[sel][:, late, :3].reshape(-1, 3)
    cfg = M.mode_config([3.0, 2.0, 1.0], depth=3, lr=0.005, batch_size=16, label_noise=0.3, strength=[3.0, 2.0, 1.0],
                        steps=4000, n_times=2, replicas=2000, seed=77)
    per_mode = M.simulate_modes(cfg, progress=False).mode_strength.values[:, -1]
    for j in range(3):
        assert stats.ks_2samp(full[:, j], per_mode[:, j]).pvalue >= 0.01 / 3
