"""dlnlab.analysis.stats: coverage of every interval by Monte Carlo, exact KS critical values against an
independent algorithm, the equivalence rule's error rates, first-hit times.

**How the coverage checks are sized.** A check passes when the Monte Carlo coverage ĉ over N trials lies within
±1.5 % (absolute) of the nominal level c. If the method's expected coverage is c + b, ĉ has standard deviation
σ = √(c(1 − c)/N), and a correct implementation fails with probability ≈ 2Φ(−(0.015 − |b|)/σ). With N = 8000,
σ = 0.34 % at c = 0.90, 0.24 % at 0.95 and 0.16 % at 0.98.

* t intervals: exact for normal group means (b = 0): 8e-6 per check at c = 0.90, < 1e-9 at 0.95 and 0.98.
* bootstrap (n = 1000, 2000 replicates, a fresh bootstrap seed per trial): b = −0.14 % at 0.90 and −0.08 % at
  0.98 (the exact binomial coverage of its order-statistic bounds, averaged over 400 seeds): 5e-5 per check.
* Wilson averaged over p ~ U(0.05, 0.95) at n = 64: b = +0.12 % at 0.90, +0.11 % at 0.95 (exact binomial sums):
  4e-5 per check.

Over the 15 coverage checks and the other Monte Carlo rates below (each at ≥ 4 sd), a correct implementation
fails this file with probability < 1e-3. Measured over 8 seed offsets while developing: every check passed, the
largest deviation from nominal was 0.65 % (censored median at 0.90).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as ss

from dlnlab.analysis import stats
from dlnlab.errors import ConfigError

N_TRIALS = 8000
TOL = 0.015


def _assert_near(cov, nominal, what):
    assert abs(cov - nominal) <= TOL, f"{what}: Monte Carlo coverage {cov:.4f}, nominal {nominal} (± {TOL})"


def _coverage(estimates, truth, level):
    lo, hi = np.array([e.interval(level) for e in estimates]).T
    return float(np.mean((lo <= truth) & (truth <= hi)))


# ---------------------------------------------------------------------------------------------------------
# batch means: Student t with G − 1 dof


def _replicas(rng, n_trials, replicas, samples=8, rho=0.8):
    """Gaussian AR(1) trajectories of ``samples`` correlated steps per replica (mean 0): group means are exactly
    normal whatever the correlation inside a replica."""
    eps = rng.normal(size=(n_trials, replicas, samples))
    x = np.empty_like(eps)
    x[..., 0] = eps[..., 0]
    for i in range(1, samples):
        x[..., i] = rho * x[..., i - 1] + math.sqrt(1 - rho**2) * eps[..., i]
    return x


@pytest.mark.parametrize("groups", [5, 20])
def test_t_interval_coverage_is_nominal(groups):
    rng = np.random.default_rng(11 + groups)
    x = _replicas(rng, N_TRIALS, 3 * groups)
    est = [stats.group_estimate(xi, groups=groups) for xi in x]
    assert est[0].dof == groups - 1 and est[0].n == 3 * groups
    for level in (0.90, 0.98):
        _assert_near(_coverage(est, 0.0, level), level, f"t interval, G={groups}, level {level}")
    lo, hi = np.array([e.bounds(0.05) for e in est]).T  # each one-sided bound at 1 − α = 0.95
    _assert_near(np.mean(lo <= 0), 0.95, f"t lower bound, G={groups}")
    _assert_near(np.mean(hi >= 0), 0.95, f"t upper bound, G={groups}")
    if groups == 5:  # the check has power: Gaussian multiples of the same SE cover 0.825 at a nominal 0.90
        z_cov = np.mean([abs(e.value) <= 1.6449 * e.se for e in est])
        assert abs(z_cov - 0.90) > 3 * TOL, z_cov


def test_group_estimate_of_a_nonlinear_statistic():
    # the variance of N(0, 4) samples (a replica = 10 samples): value is stat(all rows), SE from 20 groups
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 2.0, size=(2000, 10))
    e = stats.group_estimate(x, np.var)
    assert e.value == pytest.approx(np.var(x))
    assert e.se == pytest.approx(4.0 * math.sqrt(2 / x.size), rel=0.5)  # Var s² = 2σ⁴/n
    lo, hi = e.interval(0.99)
    assert lo < 4.0 < hi


def test_ols_slope_is_the_regression_t_interval():
    """``ols_slope``: scipy's ``linregress`` slope and SE, ``n − 2`` dof, and nominal coverage of its interval over
    ``N_TRIALS`` Gaussian data sets of 6 points (the width–slope fits have 4–24 points)."""
    rng = np.random.default_rng(5)
    x = np.log([4, 4, 16, 16, 128, 128])
    ys = 0.5 - 1.0 * x + 0.3 * rng.normal(size=(N_TRIALS, x.size))
    ref = ss.linregress(x, ys[0])
    est = [stats.ols_slope(x, y) for y in ys]
    assert est[0].value == pytest.approx(ref.slope, rel=1e-12) and est[0].se == pytest.approx(ref.stderr, rel=1e-12)
    assert est[0].dof == x.size - 2 and est[0].n == x.size
    for level in (0.90, 0.98):
        _assert_near(_coverage(est, -1.0, level), level, f"OLS slope interval, level {level}")
    with pytest.raises(ConfigError, match="length ≥ 3"):
        stats.ols_slope([1.0, 2.0], [1.0, 2.0])


def test_group_estimate_rejects_bad_groups():
    with pytest.raises(ConfigError, match="groups = 20; allowed: .* replicas = 7") as err:  # also a ValueError
        stats.group_estimate(np.ones(7))
    assert err.value.field == "groups"
    with pytest.raises(ConfigError, match="a number") as err:
        stats.group_estimate(np.ones((40, 3)), lambda g: g.mean(axis=0))
    assert err.value.field == "stat"


# ---------------------------------------------------------------------------------------------------------
# bootstrap quantiles (percentile), with and without censoring


@pytest.mark.parametrize("q", [0.5, 0.25])
def test_bootstrap_quantile_coverage_is_nominal(q):
    rng = np.random.default_rng(21)
    n = 1000
    x = rng.lognormal(0.0, 1.0, size=(N_TRIALS, n))  # skewed, like first-passage times
    truth = math.exp(ss.norm.ppf(q))
    est = [stats.bootstrap_quantile(xi, q, n_boot=2000, seed=i) for i, xi in enumerate(x)]
    for level in (0.90, 0.98):
        _assert_near(_coverage(est, truth, level), level, f"bootstrap q={q}, level {level}")


def test_censored_median_coverage_and_never_hit_convention():
    # exponential first-hit times (median ln 2) recorded up to a horizon that censors 40 %: NaN = never hit
    rng = np.random.default_rng(5)
    horizon = -math.log(0.4)
    tau = rng.exponential(size=(N_TRIALS, 1000))
    tau[tau > horizon] = np.nan
    est = [stats.bootstrap_quantile(ti, censored=True, n_boot=2000, seed=i) for i, ti in enumerate(tau)]
    _assert_near(_coverage(est, math.log(2), 0.90), 0.90, "censored median")
    # dropping the never-hit times instead biases the median low: the truth is nearly never covered
    dropped = [stats.bootstrap_quantile(ti[np.isfinite(ti)], n_boot=2000, seed=i) for i, ti in enumerate(tau[:500])]
    assert _coverage(dropped, math.log(2), 0.90) < 0.01


def test_censored_median_beyond_the_horizon_is_infinite():
    x = np.array([1.0, 2.0, np.nan, np.nan, np.nan])
    e = stats.bootstrap_quantile(x, censored=True)
    assert e.value == math.inf and e.bounds(0.05)[1] == math.inf and e.bounds(0.05)[0] >= 1.0
    with pytest.raises(ConfigError, match="censored=True") as err:
        stats.bootstrap_quantile(x)
    assert err.value.field == "x"
    for kwargs, field in [({"q": 1.0}, "q"), ({"n_boot": 10}, "n_boot")]:
        with pytest.raises(ConfigError) as err:
            stats.bootstrap_quantile(x, censored=True, **kwargs)
        assert err.value.field == field


def test_bootstrap_is_seeded_and_matches_resampling():
    rng = np.random.default_rng(8)
    x = rng.normal(size=101)
    a, b = stats.bootstrap_quantile(x, seed=4), stats.bootstrap_quantile(x, seed=4)
    assert a.bounds(0.01) == b.bounds(0.01) and a.value == np.sort(x)[50]
    # the Beta shortcut has the law of the resampled median: compare with explicit resampling
    reps = np.median(x[rng.integers(0, x.size, size=(20000, x.size))], axis=1)
    for alpha in (0.025, 0.16, 0.5):
        assert np.quantile(a.law.replicates, alpha) == pytest.approx(np.quantile(reps, alpha), abs=0.02)


# ---------------------------------------------------------------------------------------------------------
# Wilson


def test_wilson_coverage_is_nominal_on_average_over_p():
    # at a fixed p Wilson's coverage oscillates with (n, p) by a few % (e.g. 0.870 at nominal 0.90 for n = 100,
    # p = 0.1); averaged over p it is nominal (0.9511 at 0.95 for n = 64, p ~ U(0.05, 0.95), exact binomial sum)
    rng = np.random.default_rng(31)
    n = 64
    p = rng.uniform(0.05, 0.95, size=N_TRIALS)
    k = rng.binomial(n, p)
    est = [stats.wilson(int(ki), n) for ki in k]
    for level in (0.90, 0.95):
        lo, hi = np.array([e.interval(level) for e in est]).T
        _assert_near(np.mean((lo <= p) & (p <= hi)), level, f"Wilson, level {level}")


def test_wilson_never_has_zero_width():
    for k in (0, 64):
        e = stats.wilson(k, 64)
        lo, hi = e.bounds(0.01)
        assert hi - lo > 0.05 and e.se > 0 and 0.0 <= lo <= hi <= 1.0
    assert stats.wilson(0, 64).se == pytest.approx(math.sqrt(1 / (4 * 64**2)) / (1 + 1 / 64))
    with pytest.raises(ConfigError, match="0 ≤ k ≤ n") as err:
        stats.wilson(65, 64)
    assert (err.value.field, err.value.value) == ("k", 65)


# ---------------------------------------------------------------------------------------------------------
# Kolmogorov–Smirnov


def _kolmogorov_cdf(n, d):
    """P(D_n < d) by Marsaglia, Tsang & Wang (2003), an algorithm independent of scipy's kstwo."""
    k = int(n * d) + 1
    m = 2 * k - 1
    h = k - n * d
    H = np.array([[1.0 if i - j + 1 >= 0 else 0.0 for j in range(m)] for i in range(m)])
    for i in range(m):
        H[i, 0] -= h ** (i + 1)
        H[m - 1, i] -= h ** (m - i)
    H[m - 1, 0] += (2 * h - 1) ** m if 2 * h - 1 > 0 else 0.0
    for i, j in itertools.product(range(m), range(m)):
        if i - j + 1 > 0:
            H[i, j] /= math.factorial(i - j + 1)
    P = np.linalg.matrix_power(H, n)[k - 1, k - 1]
    return P * math.factorial(n) / n**n


@pytest.mark.parametrize("n", [1, 2, 5, 13, 40])
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.001])
def test_ks_critical_values_are_exact(n, alpha):
    c = stats.ks_critical(n, alpha)
    assert 1.0 - _kolmogorov_cdf(n, c) == pytest.approx(alpha, rel=1e-6)
    if n == 1:  # D_1 = max(U, 1 − U): P(D_1 > c) = 2(1 − c)
        assert c == pytest.approx(1 - alpha / 2)


def test_ks_critical_values_approach_the_asymptotic_ones():
    for alpha, c_inf in ((0.05, 1.3581), (0.01, 1.6276), (0.001, 1.9495)):
        assert stats.ks_critical(100_000, alpha) * math.sqrt(100_000) == pytest.approx(c_inf, rel=1e-3)


def test_ks_size_and_distance_bounds():
    rng = np.random.default_rng(41)
    u = np.sort(rng.uniform(size=(8000, 30)), axis=1)
    i = np.arange(1, 31)
    D = np.maximum(np.max(i / 30 - u, axis=1), np.max(u - (i - 1) / 30, axis=1))  # one-sample KS vs U(0, 1)
    assert abs(np.mean(D > stats.ks_critical(30, 0.05)) - 0.05) < 0.01  # 4 sd of a binomial rate at n = 8000
    r = stats.ks_1samp(u[0], ss.uniform.cdf)
    assert r.exact and r.distance.value == pytest.approx(D[0]) and r.pvalue == pytest.approx(ss.kstwo.sf(D[0], 30))
    # shifted law: d = sup|Φ(x − μ) − Φ(x)| = 2Φ(μ/2) − 1; the bounds cover it (conservatively, ≥ 1 − α;
    # 1000 trials: sd 0.007, so 0.95 − 0.028 is 4 sd)
    mu = 0.5
    d = 2 * ss.norm.cdf(mu / 2) - 1
    ks = [stats.ks_1samp(xi, ss.norm.cdf).distance for xi in rng.normal(mu, 1.0, size=(1000, 200))]
    lo, hi = np.array([e.bounds(0.05) for e in ks]).T
    assert np.mean(lo <= d) >= 0.95 - 0.028 and np.mean(hi >= d) >= 0.95 - 0.028


def test_ks_2samp_exact_pvalue_against_enumeration():
    x, y = np.array([0.1, 0.5, 0.9, 1.7]), np.array([0.3, 1.1, 1.3, 2.0, 2.4])
    r = stats.ks_2samp(x, y)
    pooled = np.concatenate([x, y])

    def dist(a, b):
        grid = np.sort(pooled)
        return np.max(np.abs(np.searchsorted(np.sort(a), grid, "right") / a.size
                             - np.searchsorted(np.sort(b), grid, "right") / b.size))
    splits = [np.isin(np.arange(9), s) for s in itertools.combinations(range(9), 4)]
    ds = np.array([dist(pooled[m], pooled[~m]) for m in splits])
    assert r.exact and r.distance.value == pytest.approx(dist(x, y))
    assert r.pvalue == pytest.approx(np.mean(ds >= dist(x, y) - 1e-12))


# ---------------------------------------------------------------------------------------------------------
# equivalence: the verdict rule


def _t(value, se=1.0, dof=19):
    return stats.Estimate.student(value, se, dof)


def test_smallest_detectable_difference_is_the_t_sum():
    a = 0.01
    _, ev = stats.equivalence(_t(0.0), 0.0, (-10.0, 10.0), a)
    assert ev.sdd_upper == pytest.approx(ss.t.isf(a, 19) + ss.t.isf(a / 2, 19))
    _, ev = stats.equivalence(_t(0.0), 0.0, (-math.inf, 10.0), a)
    assert math.isnan(ev.sdd_lower) and ev.sdd_upper == pytest.approx(2 * ss.t.isf(a, 19))
    ks = stats.ks_1samp(np.linspace(0.005, 0.995, 100), ss.uniform.cdf).distance
    _, ev = stats.equivalence(ks, 0.0, (-math.inf, 0.5), a)
    assert ev.sdd_upper == pytest.approx(2 * stats.ks_critical(100, a))


@pytest.mark.parametrize(("value", "se", "band", "verdict"), [
    (0.0, 1.0, (-10.0, 10.0), "holds"),        # interval inside the band
    (8.5, 1.0, (-10.0, 10.0), "fails"),        # straddles an edge, but the run resolves its tolerance (sdd 5.4)
    (30.0, 4.0, (-10.0, 10.0), "fails"),       # unresolved (sdd 21.5 > 10) but wholly outside the band
    (0.0, 4.0, (-10.0, 10.0), "inconclusive"),  # unresolved: too noisy to hold, no evidence of a violation
    (0.0, 1.0, (0.0, 0.0), "inconclusive"),    # a zero-width tolerance never holds
    (3.0, 1.0, (0.0, 0.0), "fails"),           # … but can fail
    (math.nan, 1.0, (-1.0, 1.0), "not applicable"),
    (0.0, 1.0, (math.nan, math.nan), "not applicable"),
])
def test_equivalence_verdicts(value, se, band, verdict):
    assert stats.equivalence(_t(value, se), 0.0, band, 0.01)[0] == verdict


def test_threshold_claim_without_theory():
    # "the statistic exceeds 0": holds above, fails when shown below, else inconclusive (no theory value)
    for value, verdict in ((5.0, "holds"), (-5.0, "fails"), (0.5, "inconclusive")):
        assert stats.equivalence(_t(value), math.nan, (0.0, math.inf), 0.01)[0] == verdict


def test_equivalence_error_rates():
    # An estimand equal to the theory value fails with probability α when the tolerance equals the smallest
    # detectable difference (exactly α for a t-law); one at the band's edge holds with probability α (TOST).
    # Rates over 20000 draws: sd 0.0015 at α = 0.05, so ±0.006 is 4 sd (a correct rule fails each with chance 6e-5;
    # the rates are exact here, so a wrong rule is off by far more).
    rng = np.random.default_rng(51)
    a, n = 0.05, 20000
    err = ss.t.rvs(19, size=n, random_state=rng)
    sdd = (ss.t.isf(a, 19) + ss.t.isf(a / 2, 19)) * (1 + 1e-12)  # just resolved (the edge case is roundoff)
    fails = np.mean([stats.equivalence(_t(e), 0.0, (-sdd, sdd), a)[0] == "fails" for e in err])
    holds = np.mean([stats.equivalence(_t(sdd + e), sdd, (0.0, 2 * sdd), a)[0] == "holds" for e in err])
    edge = np.mean([stats.equivalence(_t(sdd + e), 0.0, (-sdd, sdd), a)[0] == "holds" for e in err])
    assert abs(fails - a) < 0.006 and abs(holds - (1 - a)) < 0.006 and abs(edge - a) < 0.006, (fails, holds, edge)


def test_equivalence_rejects_bad_bands():
    with pytest.raises(ConfigError, match="band") as err:
        stats.equivalence(_t(0.0), 0.0, (1.0, -1.0), 0.01)
    assert err.value.field == "band"
    with pytest.raises(ConfigError, match="alpha") as err:
        stats.equivalence(_t(0.0), 0.0, (-1.0, 1.0), 0.5)
    assert err.value.field == "alpha"


# ---------------------------------------------------------------------------------------------------------
# first-hit times


def test_first_hit_time_convention():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    x = np.array([[[0.0, 0.0], [0.5, 0.1], [1.0, 0.2], [1.5, 0.3]],
                  [[0.0, 0.0], [0.0, 0.9], [0.0, 0.9], [0.0, 0.9]]])  # (replica, t, mode)
    fh = stats.first_hit_time(t, x, [1.0, 0.25])
    np.testing.assert_array_equal(fh.time, [[2.0, 3.0], [np.nan, 1.0]])
    np.testing.assert_array_equal(fh.n_never, [1, 0])
    assert fh.horizon == 3.0
    down = stats.first_hit_time(t, x[:, :, 0].T, 0.0, axis=0, above=False)  # time on axis 0, level ≤
    np.testing.assert_array_equal(down.time, [0.0, 0.0])
    with pytest.raises(ConfigError, match="len\\(t\\)") as err:
        stats.first_hit_time(t[:3], x, 1.0)
    assert err.value.field == "t"
    with pytest.raises(ConfigError, match="broadcastable") as err:
        stats.first_hit_time(t, x, [1.0, 2.0, 3.0])
    assert err.value.field == "level"


def test_one_sigma_scale_of_the_laws():
    # se of a non-t estimate is half its one-sigma interval: Wilson's is the half-width at z = 1
    e = stats.wilson(20, 64)
    lo, hi = stats.wilson_bounds(20, 64, special.ndtr(-1.0))
    assert e.se == pytest.approx((hi - lo) / 2)
