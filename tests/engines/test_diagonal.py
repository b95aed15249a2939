"""The tamed schemes of the diagonal simulator against [Z]'s exact stationary law (issue 13 defect: the docstring
promised an O(Δt) bias). Setting of the module docstring of ``dlnlab.engines.diagonal``: L = 2, T = 0.16 (η = 0.32,
B = 1), walkers started from the exact law (inverse cdf), samples at t = 1, 2, …, 30, mean of v; uncertainty: group
SE over 40 groups of replicas (checks.md §0).

Also the engine's behaviour in [Z]'s settings (moved from ``tests/test_noise_balance.py``, issue 14): the per-step
symmetry identity along engine trajectories, the pathwise balance law and decay bound (Z2, Z3), SGD's drive to noise
balance, the SDE and SGD against the stationary laws (Z8, Z9; L = 3 tamed), sign selection and collapse (Z12, Z13,
§7), replica streams and the [Z] unit conversion. Tolerances follow checks.md §0."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import dlnlab
from dlnlab.analysis.ensembles import stationary_samples
from dlnlab.analysis.stats import group_estimate
from dlnlab.engines import diagonal_config, simulate_diagonal
from dlnlab.model.diagonal import DiagonalModel, balanced_factors, path_gradients, path_values, sgd_step
from dlnlab.theory.balance import (
    DataConstants,
    decay_bound_rate,
)
from dlnlab.theory.diagonal_stationary import DiagonalStationaryLaw

REF = DataConstants.reference()
MODEL2 = DiagonalModel(depth=2)
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
    while the log-coordinate tamed scheme at 1e-3 has no resolved bias (< 4 SE), so the reference is right (at
    1e-3 rather than 2.5e-4, where it is +0.0021 (0.0015): a quarter of the steps, for CI time).
    Measured (module docstring's seeds): +0.0112 (SE 0.0013), +0.0106 (0.0017); sde_log at 1e-3, seed 10: +0.0020 (0.0014)."""
    b1, se1 = _mean_bias("sde", 1e-3, 16_000, 10)
    b4, se4 = _mean_bias("sde", 2.5e-4, 16_000, 12)
    assert b1 > 3 * se1 and b4 > 3 * se4, (b1, se1, b4, se4)
    assert b4 - b1 / 4 > 3 * np.hypot(se4, se1 / 4), (b1, b4)
    b_log, se_log = _mean_bias("sde_log", 1e-3, 16_000, 10)
    assert abs(b_log) < 4 * se_log, (b_log, se_log)


def test_per_step_identity_engine():
    """The engine's SGD trajectory (recorded at every step) satisfies the symmetry identity step by step:
    with ``ĝ = (θ_k − θ_{k+1})/η`` reconstructed from the recorded weights, ``Δ(u² − w²) = η²(ĝ_u² − ĝ_w²)``
    holds iff ``u ĝ_u = w ĝ_w`` (the update is along a symmetric direction; a broken gradient would leave an
    O(η|u ĝ_u|) residual). Tolerance 1e-12·(u² + w²), the round-off of the stored weights (the relative error
    against η²ĝ² is unbounded when a B = 1 sample has x ≈ 0, so ξ̂ ≈ 0). Measured 2e-16."""
    lr = 0.05
    ds = simulate_diagonal(diagonal_config(MODEL2, kind="sgd", lr=lr, times=lr * np.arange(40),
                                           replicas=3), weights=[[1.2, 0.3]])
    w = ds.weights.values[:, :, 0, :]  # (R, t, 2)
    dw = w[:, 1:] - w[:, :-1]  # exact (Sterbenz)
    g = -dw / lr
    step = dw * (w[:, 1:] + w[:, :-1])
    pred = lr**2 * (g[..., 0] ** 2 - g[..., 1] ** 2)
    first_order = 2 * lr * np.abs(w[:, :-1, 0] * g[..., 0])
    assert np.median(first_order) > 1e3 * 1e-12  # the cancelling terms are far above the tolerance
    norm = np.sum(w[:, :-1] ** 2, axis=-1)
    assert np.max(np.abs(step[..., 0] - step[..., 1] - pred) / norm) < 1e-12


@pytest.fixture(scope="module")
def pathwise_runs():
    """Z2 setting: L = 2, d = 1, (u, w)₀ = (1.2, 0.3), T = 0.01, t ∈ [0, 3], R = 2000, Euler–Maruyama."""
    out = {}
    for dt in (4e-3, 1e-3):
        out[dt] = simulate_diagonal(diagonal_config(MODEL2, kind="sde", lr=0.02, dt=dt, times=np.linspace(0, 3.0, 31),
                                                    replicas=2000, seed=11), weights=[[1.2, 0.3]])
    return out


def _log_imbalance(ds):
    w = ds.weights.values[:, :, 0, :]
    return np.log(np.abs(w[..., 0] ** 2 - w[..., 1] ** 2))


def test_pathwise_balance_law_sde(pathwise_runs):
    """Z2 [V]: ``e = |Δ ln|u² − w²| + 2T∫g(v)ds|`` is the Euler–Maruyama martingale error, O(√Δt):
    median e ≤ 0.06√Δt at each Δt, and the ratio of medians between Δt and Δt/4 in [1.6, 2.4] (a test expecting
    O(Δt) would be wrong; checks.md). Measured 0.040√Δt and 0.039√Δt, ratio 2.05."""
    med = {}
    for dt, ds in pathwise_runs.items():
        li = _log_imbalance(ds)
        e = np.abs(li[:, -1] - li[:, 0] + 2 * 0.01 * ds.g_integral.values[:, -1])
        med[dt] = np.median(e)
        assert med[dt] <= 0.06 * np.sqrt(dt), (dt, med[dt])
        assert not ds.diverged.values.any()
    assert 1.6 <= med[4e-3] / med[1e-3] <= 2.4


def test_decay_bound(pathwise_runs):
    """Z3 [U]: along every SDE path and at every recorded time,
    ``ln|u² − w²|(t) − ln|u² − w²|(0) ≤ −2T(Δ/α₁)t + 5·0.06√Δt`` (slack: 5× the Z2 error scale).
    Measured: max excess −0.0076 (all paths strictly inside)."""
    for dt, ds in pathwise_runs.items():
        li = _log_imbalance(ds)
        bound = -decay_bound_rate(0.01, REF) * ds.t.values + 5 * 0.06 * np.sqrt(dt)
        assert np.all(li - li[:, :1] <= bound[None, :])


def test_sgd_balance_to_noise_balance():
    """Discrete SGD drives ``|u² − w²|`` to 0 (noise balance; [Z] Fig. 1) and GD does not: from
    (u, w) = (1.2, 0.3), η = 0.04 (T = 0.02), B = 1, 1000 replicas, t = 150 (3750 steps).

    * GD changes ``u² − w²`` only by the exact factors ``Π(1 − η²ξ̄²)``, which converge since ξ̄ → 0:
      it stays within 1% of its initial value (measured −0.48%), and ``u² ≠ w²``;
    * SGD: ``ln|u² − w²|`` decreases at the rate ``E[2Tg(v) + η ξ̄²]`` (noise_balance.md §4): its replica mean at
      t = 150 is within 5 group SE + 3% of ``−∫ (2Tg + η(β₁v − β₂)²) dt`` evaluated on the recorded
      trajectories (trapezoid on 61 records; 3% covers the O(η²) terms of ``ln(1 − η²ξ̂²)``); measured
      −6.92 against −6.89 (SE 0.011)."""
    lr, t_max = 0.04, 150.0
    gd = simulate_diagonal(diagonal_config(MODEL2, kind="gd", lr=lr, times=[0, t_max],
                                           replicas=1), weights=[[1.2, 0.3]])
    w = gd.weights.values[0, :, 0, :]
    imb_gd = w[:, 0] ** 2 - w[:, 1] ** 2
    assert abs(imb_gd[-1] / imb_gd[0] - 1) < 0.01 and abs(imb_gd[-1]) > 1.0
    ds = simulate_diagonal(diagonal_config(MODEL2, kind="sgd", lr=lr, times=np.linspace(0, t_max, 61), replicas=1000,
                                           seed=3), weights=[[1.2, 0.3]])
    li = _log_imbalance(ds)
    v = ds.output.values
    rate = 2 * (lr / 2) * REF.g(v) + lr * REF.mean_grad(v) ** 2
    pred = -integrate.trapezoid(rate, ds.t.values, axis=1)
    obs = li[:, -1] - li[:, 0]
    diff = obs - pred
    est = group_estimate(diff[:, None], np.mean)
    m, se = est.value, est.se
    assert abs(m) < 5 * se + 0.03 * abs(pred.mean()), (obs.mean(), pred.mean(), se)
    assert obs.mean() < -5  # |u² − w²| fell by a factor > e^5


@pytest.mark.slow
def test_fluctuation_inversion_simulated():
    """Fluctuation inversion seen by the SDE: 2000 walkers per T ∈ {0.2, 0.26, 0.3, 0.32}, started from the law (the
    approach to equilibrium near T_c takes t ~ 10³), tamed log SDE Δt = 2.5·10⁻⁴, samples t ∈ [10, 20]. Since
    E v⁴ = ∞ plain sample variances have no CLT (exact draws come out 10–40% low at n = 300), the spread is
    measured as Var(v | v ≤ 3) (every moment finite): it decreases strictly in T, and each is within 4 group SE + 3%
    (tamed-Δt bias) of the law's Var(v | v ≤ 3) by quadrature. Measured: 0.2763, 0.2328, 0.1431, 0.0738 (SE 0.0045,
    0.0047, 0.0052, 0.0038) against 0.2679, 0.2366, 0.1474, 0.0692 (|z| ≤ 1.9)."""
    Ts, R = np.array([0.2, 0.26, 0.3, 0.32]), 2000
    laws = [DiagonalStationaryLaw(2, T) for T in Ts]
    rng = np.random.default_rng(1)
    v0 = np.concatenate([law.ppf(rng.uniform(size=R)) for law in laws])[:, None]
    ds = simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=2 * Ts, dt=2.5e-4, times=np.linspace(0, 20, 11),
                                           replicas=R, common_random_numbers=False, seed=3),
                           weights=balanced_factors(np.maximum(v0, 1e-300), 2))
    x = ds.output.values[:, 5:].reshape(len(Ts), R, -1)
    stats = [group_estimate(xi, lambda z: np.var(z[z <= 3.0])) for xi in x]
    var = np.array([e.value for e in stats])
    assert np.all(np.diff(var) < 0), var
    for e, law in zip(stats, laws):
        v_sim, se = e.value, e.se
        th = law.truncated_var(3.0)
        assert abs(v_sim - th) < 4 * se + 0.03 * th, (v_sim, th, se)


@pytest.fixture(scope="module")
def sde_L2():
    """Z8 setting (shortened): L = 2, T = 0.05, Euler–Maruyama in ln v with Δt = 2·10⁻⁴ (validated), started at
    v = 1; 1000 walkers to t = 20 (relaxation time ≈ 1/(2β₁) = 0.5), samples every Δt_rec = 1 from t = 5."""
    return simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=0.1, dt=2e-4, times=np.arange(0, 20.5, 1.0),
                                             replicas=1000, v0=[1.0], seed=7, scheme="euler"))


def test_sde_stationary_L2(sde_L2):
    """Z8 [V]: mean 0.938 ± 0.01 and median 0.911 ± 0.01 (checks.md; with 4000 walkers × 240 t it observed
    0.936/0.910). Also within 5% of the density's (the issue) and within 5 group SE + 0.002 (Δt bias) of the
    exact 0.93763/0.91074; KS of one sample per walker (t = 20, n = 1000 independent) ≤ 1.949/√n (α = 0.001).
    Measured: mean 0.9315 (SE 0.0032), median 0.9075 (SE 0.0035), KS 0.031 (bound 0.062)."""
    law = DiagonalStationaryLaw(2, 0.05)
    x = stationary_samples(sde_L2, 5.0)
    e_mean, e_med = group_estimate(x, np.mean), group_estimate(x, np.median)
    (mean, se_m), (med, se_q) = (e_mean.value, e_mean.se), (e_med.value, e_med.se)
    assert abs(mean - 0.938) < 0.01 and abs(med - 0.911) < 0.01
    assert abs(mean / law.mean - 1) < 0.05 and abs(med / law.median - 1) < 0.05
    assert abs(mean - law.mean) < 5 * se_m + 0.002 and abs(med - law.median) < 5 * se_q + 0.002
    last = sde_L2.output.values[:, -1]
    assert law.ks_distance(last) < 1.949 / np.sqrt(last.size)


def test_sgd_stationary_L2():
    """Z9 [V]: ½-loss online SGD, balanced (u, w) from v = 1, B = 1, η = 0.04 (T = 0.02, h = 0.08), R = 2·10⁴,
    burn-in 30/h steps, 10 samples each thinned by 5/h steps (checks.md §0: effectively independent).
    Median within 1% of 0.9658 (observed 0.9615, 0.962), mean within 0.5% of 0.9783 (observed 0.9767, 0.9776);
    both well inside the issue's 5%. KS (all 2·10⁵ samples) ≤ 1.949/√n + 0.3h (checks.md S8 budget for the O(h)
    SGD bias). Measured: median 0.9611 (−0.49%), mean 0.9766 (−0.17%), KS 0.0199 (bound 0.0284)."""
    lr, h = 0.04, 0.08
    burn, thin = 30 / h * lr, 5 / h * lr
    ds = simulate_diagonal(diagonal_config(MODEL2, kind="sgd", lr=lr, times=burn + thin * np.arange(10),
                                           replicas=20_000, v0=[1.0], seed=9))
    assert not ds.diverged.values.any()
    law = DiagonalStationaryLaw(2, lr / 2)
    assert abs(law.median - 0.9658) < 1e-4 and abs(law.mean - 0.9783) < 1e-4
    x = stationary_samples(ds, burn)
    med, mean = np.median(x), np.mean(x)
    assert abs(med / law.median - 1) < 0.01 and abs(mean / law.mean - 1) < 0.005
    assert law.ks_distance(x) < 1.949 / np.sqrt(x.size) + 0.3 * h


@pytest.mark.slow
def test_sde_stationary_L2_full_setting():
    """Z8 [V] at the validated setting: 4000 walkers, t = 240, first third discarded; mean 0.938 ± 0.01,
    median 0.911 ± 0.01 (observed 0.936/0.910 in checks.md; measured 0.9360/0.9104)."""
    ds = simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=0.1, dt=2e-4, times=np.arange(0, 241, 2.0),
                                           replicas=4000, v0=[1.0], seed=17, scheme="euler"))
    x = stationary_samples(ds, 80.0)
    assert abs(np.mean(x) - 0.938) < 0.01 and abs(np.median(x) - 0.911) < 0.01


@pytest.mark.slow
def test_sde_stationary_L3_tamed():
    """Z8 [V], L = 3, d = 1, T = 0.3 (law: mean 0.29375, median 0.10829). With the tamed step of
    ``dlnlab.engines.diagonal`` (drift ÷ (1 + |μ|Δt), noise ÷ (1 + ς²Δt): an O(Δt) change), Δt = 2.5·10⁻⁴, 4000 walkers
    started from the law (inverse cdf), t = 100, samples from t = 20: mean and median within **5%** (the issue).
    checks.md's 15% was for the O(√Δt) noise taming of noise_balance.md §12 (``scheme="tamed_sqrt"``), which gave
    0.312/0.123 there and mean +11%, median +25% here at Δt = 10⁻³. Windowed medians with 2000 walkers fluctuate by
    ±4% (slow mixing of ln v), hence 4000; at Δt = 10⁻³ the tamed bias is ≈ +3% (measured mean +3.4%, median +4.8%,
    too close to 5%; at 5·10⁻⁴: +2.9%/+4.4% (seed 5), +1.4%/+2.2% (seed 6), group SE 0.6%/1.0%). Measured (this
    setting): mean +1.07% (SE 0.77%), median +1.41% (SE 1.04%)."""
    m3 = DiagonalModel(depth=3)
    law = DiagonalStationaryLaw(3, 0.3)
    v0 = law.ppf(np.random.default_rng(0).uniform(size=4000))[:, None]  # per replica: the start goes as weights=
    ds = simulate_diagonal(diagonal_config(m3, kind="sde_log", lr=0.6, dt=2.5e-4, times=np.linspace(0, 100, 21),
                                           replicas=4000, scheme="tamed", seed=5), weights=balanced_factors(v0, 3))
    x = stationary_samples(ds, 20.0)
    assert abs(np.mean(x) / law.mean - 1) < 0.05 and abs(np.median(x) / law.median - 1) < 0.05


def test_negative_paths_collapse():
    """Z12 [V] + §7: two L = 2 paths (u, w) = (0.8, 0.8) and (0.5, −0.5), T = 0.05, Euler–Maruyama Δt = 10⁻³,
    R = 2000, t = 3: ``ln(v₁|v₂|)`` changes by ``−4T∫g dt`` pathwise, mean abs error ≤ 0.03 (observed 0.019;
    the O(√Δt) EM error of Z2). Long run (balanced per-path log SDE, 500 walkers, t = 60): the negative path dies
    (|v₂| < 10⁻⁴ in every replica) while the positive one carries the law (median v₁ within 5% of the L = 2
    law's 0.9107; measured 0.910, max |v₂| 1.2e-6). Measured mean abs error 0.020."""
    m = DiagonalModel(depth=2, n_paths=2)
    ds = simulate_diagonal(diagonal_config(m, kind="sde", lr=0.1, dt=1e-3, times=[0, 3.0], replicas=2000,
                                           seed=12), weights=[[0.8, 0.8], [0.5, -0.5]])
    v = ds.v.values
    lhs = np.log(v[:, -1, 0] * np.abs(v[:, -1, 1])) - np.log(v[:, 0, 0] * np.abs(v[:, 0, 1]))
    assert np.mean(np.abs(lhs + 4 * 0.05 * ds.g_integral.values[:, -1])) <= 0.03
    long = simulate_diagonal(diagonal_config(m, kind="sde_log", lr=0.1, dt=1e-3, times=[0, 40, 60], replicas=500,
                                             v0=[0.64, -0.25], seed=13))
    vl = long.v.values[:, -1]
    assert np.all(np.abs(vl[:, 1]) < 1e-4) and np.all(vl[:, 1] <= 0)
    assert abs(np.median(long.v.values[:, 1:, 0]) / DiagonalStationaryLaw(2, 0.05).median - 1) < 0.05


def test_path_at_zero_stays_at_zero():
    """§7 [A]: a path with all factors 0 stays exactly 0 under SGD, the parameter-space SDE (its gradient and
    rank-one noise vanish) and the log SDE (y = −∞), while the other path learns."""
    m = DiagonalModel(depth=3, n_paths=2)
    zero_path = [[0.9, 0.9, 0.9], [0.0, 0.0, 0.0]]
    for kind, kw, weights in (("sgd", {}, zero_path), ("sde", {"dt": 1e-3}, zero_path),
                              ("sde_log", {"v0": [0.7, 0.0], "dt": 1e-3}, None)):
        ds = simulate_diagonal(diagonal_config(m, kind=kind, lr=0.05, times=[0, 2.0, 5.0], replicas=50, seed=1, **kw),
                               weights=weights)
        assert np.all(ds.v.values[:, :, 1] == 0.0) and np.all(ds.weights.values[:, :, 1, :] == 0.0)
        assert np.all(ds.v.values[:, -1, 0] != 0.7)


def test_balance_ratio_L2_and_path_merging_L3():
    """Z13: L = 2, same sign, balanced start: ``ln(v₁/v₂)`` is conserved by discrete SGD to 1e-12 (each step
    multiplies both paths by the same factor; measured 5e-15). L ≥ 3 (Theorem 4.1(b)): paths started at 0.9 and
    0.4 merge slowly — at T = 0.01, Δt = 5·10⁻⁴, R = 200, the median |v₁ − v₂| decreases from t = 5 to 20 to 60
    (checks.md [V1] observed 0.34, 0.27, 0.16; measured 0.319, 0.277, 0.164 with the default tamed step)."""
    m2 = DiagonalModel(depth=2, n_paths=2)
    ds = simulate_diagonal(diagonal_config(m2, kind="sgd", lr=0.04, times=[0, 5.0, 10.0], replicas=100, v0=[0.9, 0.4],
                                           seed=2))
    r = ds.log_abs_v.values[:, :, 0] - ds.log_abs_v.values[:, :, 1]
    assert np.max(np.abs(r - r[:, :1])) < 1e-12
    m3 = DiagonalModel(depth=3, n_paths=2)
    ds = simulate_diagonal(diagonal_config(m3, kind="sde_log", lr=0.02, dt=5e-4, times=[0, 5, 20, 60], replicas=200,
                                           v0=[0.9, 0.4], seed=4))
    med = np.median(np.abs(ds.v.values[:, :, 0] - ds.v.values[:, :, 1]), axis=0)[1:]
    assert med[0] > med[1] > med[2]


def test_collapse_above_Tc():
    """§7: above T_c the L = 2 law is δ(0). From v = 1 at T = 1 (3T_c), ln v drifts to −∞ at the rate of the log
    SDE at v → 0, ``2β₂ − 2Tα₃ = −4`` (its drift ``−2(β₁v − β₂) − 2Tg(v)`` tends to that as v → 0). 1000 walkers,
    Δt = 10⁻³: the replica-mean slope of ln v between t = 10 and 30 is within 5 group SE (SE ≈ 0.035 from the
    diffusion 8Tα₃ = 24 of ln v) + 1% (walkers not yet near 0 at t = 10, where the drift is weaker; < 2% of
    them) of −4, and ≥ 99% of walkers are below 10⁻⁵ at t = 30. Below T_c (T = 0.25) the median stays O(0.1)
    (law: 0.147). Measured slope −3.958 (SE 0.039); all walkers below 1e-5; median at T = 0.25: 0.160."""
    ds = simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=2.0, dt=1e-3, times=[0, 10, 30], replicas=1000,
                                           v0=[1.0], seed=21))
    y = ds.log_abs_v.values[:, :, 0]
    slope = (y[:, 2] - y[:, 1]) / 20
    est = group_estimate(slope[:, None], np.mean)
    m, se = est.value, est.se
    assert abs(m + 4.0) < 5 * se + 0.04, (m, se)
    assert np.mean(y[:, 2] < np.log(1e-5)) >= 0.99
    below = simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=0.5, dt=1e-3, times=[0, 60], replicas=200,
                                              v0=[1.0], seed=22))
    assert np.median(below.output.values[:, -1]) > 0.05


def test_linear_model_keeps_both_signs():
    """Sign selection is a depth effect: the L = 1 law puts positive mass on v < 0 (P = 0.0329 at T = 0.2) and the
    parameter-space SDE (Δt = 10⁻³, 2000 walkers from v = 1, samples t ∈ [5, 30]) reproduces it within 5 group SE
    (replicas are the unit); the L = 1 mean stays 1 = β₂/β₁ within 5 SE. Measured P(v<0) = 0.0335 (SE 0.0009),
    mean 1.0018 (SE 0.0035)."""
    law = DiagonalStationaryLaw(1, 0.2)
    assert abs(float(law.cdf(0.0)) - 0.0329) < 5e-4
    m1 = DiagonalModel(depth=1)
    ds = simulate_diagonal(diagonal_config(m1, kind="sde", lr=0.4, dt=1e-3, times=np.arange(0, 30.5, 1.0),
                                           replicas=2000, seed=6), weights=[[1.0]])
    x = stationary_samples(ds, 5.0)
    est = group_estimate(x, lambda z: np.mean(z < 0))
    p, se = est.value, est.se
    assert abs(p - float(law.cdf(0.0))) < 5 * se + 0.002, (p, se)
    est = group_estimate(x, np.mean)
    mean, se_m = est.value, est.se
    assert abs(mean - 1.0) < 5 * se_m


def test_replica_streams_independent_of_ensemble_size():
    """A replica's trajectory depends only on (seed, member) — not on how many replicas run beside it, nor on
    the record times (the block-noise addressing is by global step)."""
    a = simulate_diagonal(diagonal_config(MODEL2, kind="sgd", lr=0.05, times=[0, 3.0, 20.0], replicas=3, v0=[0.5],
                                          seed=4))
    b = simulate_diagonal(diagonal_config(MODEL2, kind="sgd", lr=0.05, times=np.linspace(0, 20.0, 17), replicas=7,
                                          v0=[0.5], seed=4))
    np.testing.assert_array_equal(a.weights.values[:, -1], b.weights.values[:3, -1])
    c = simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=0.1, dt=1e-3, times=[0, 13.0], replicas=2,
                                          v0=[0.5], seed=4))
    d = simulate_diagonal(diagonal_config(MODEL2, kind="sde_log", lr=0.1, dt=1e-3, times=np.linspace(0, 13.0, 9),
                                          replicas=5, v0=[0.5], seed=4))
    np.testing.assert_array_equal(c.log_abs_v.values[:, -1], d.log_abs_v.values[:2, -1])


def test_ziyin_conversion():
    """[Z] → library: depth D → L = D + 1; SGD on [Z]'s (vx − y)² with η_Z equals ½-loss SGD with η = 2η_Z
    (checks.md C2 [A], 1e-12 relative over 50 steps on identical samples)."""
    m = DiagonalModel.from_ziyin(D=2, d=3, k=1.5, sigma=0.5)
    assert (m.depth, m.n_paths, m.s, m.label_noise) == (3, 3, 1.5, 0.5)
    lr, eta_z, _ = (dlnlab.conventions.from_ziyin(0.01, 1, 2)[0], 0.01, None)
    rng = np.random.default_rng(3)
    th_ours = th_z = jnp.asarray(rng.normal(0, 0.7, (3, 3)))
    for _ in range(50):
        x = jnp.asarray(rng.normal(size=(2,)))
        y = 1.5 * x + 0.5 * jnp.asarray(rng.normal(size=(2,)))
        th_ours, _ = sgd_step(th_ours, x, y, lr)
        v = jnp.sum(path_values(th_z))
        grad_z = jnp.mean(2 * (v * x - y) * x) * path_gradients(th_z)  # ∂/∂θ of (vx − y)², batch mean
        th_z = th_z - eta_z * grad_z
    assert float(jnp.max(jnp.abs(th_ours - th_z) / jnp.abs(th_z))) < 1e-12

