"""Estimators over independent replicas: batch means (Student t), percentile bootstrap of quantiles, Wilson, and the
least-squares slope of independent points (Student t)."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from ...config import Interval
from ...errors import ConfigError
from ._estimate import BootstrapLaw, Estimate, WilsonLaw, from_law


def group_estimate(x, stat=np.mean, groups: int = 20) -> Estimate:
    """Batch-means estimate of ``stat`` over independent replicas, with a Student-t law of ``G − 1`` dof.

    ``x``: array whose axis 0 indexes independent replicas (trailing axes: a replica's own samples, possibly
    correlated). The first ``G·m`` rows, ``m = ⌊R/G⌋``, are cut into ``G`` consecutive groups of ``m`` rows (the last
    ``R mod G`` rows are not used: choose ``G`` dividing ``R``); ``stat`` maps a group's block ``(m, …)`` to a number.
    With ``S_g`` the group statistics::

        value = stat(all G·m rows),  SE = sd(S_1…S_G; ddof=1)/√G,  dof = G − 1,
        bounds at α:  value ∓ t_{1−α, G−1}·SE.

    For the mean, ``value`` is the mean of the ``S_g``, and ``(value − μ)/SE ~ t_{G−1}`` exactly when the ``S_g``
    are i.i.d. normal — true as ``m`` grows by the CLT within groups, whatever the replicas' law and whatever the
    correlation inside a replica. For a smooth non-linear ``stat`` (variance, a median, a ratio of means),
    ``stat(all)`` avoids the ``O(1/m)`` bias of the small-group statistics, while ``SE`` still estimates its
    spread (``Var stat(all) ≈ Var S_g / G``). Quote multiples of ``SE`` only through ``t_{G−1}`` quantiles: at
    ``G = 20``, ±4 SE leaves a two-sided tail of 7.7e-4, not the Gaussian 6e-5."""
    x = np.asarray(x)
    R = x.shape[0] if x.ndim else 0
    if not (isinstance(groups, int | np.integer) and 2 <= groups <= R):
        raise ConfigError("groups", groups, f"an integer 2 ≤ groups ≤ replicas = {R} (axis 0 of x)")
    m = R // groups
    kept = x[: groups * m]
    per = np.array([stat(kept[g * m:(g + 1) * m]) for g in range(groups)], np.float64)
    if per.ndim != 1:
        raise ConfigError("stat", f"a function returning shape {per.shape[1:]} per group",
                          "a function returning a number per group")
    se = float(np.std(per, ddof=1) / math.sqrt(groups))
    return Estimate.student(float(stat(kept)), se, groups - 1, n=groups * m)


def bootstrap_quantile(x, q: float = 0.5, *, n_boot: int = 4000, seed: int = 0, censored: bool = False) -> Estimate:
    """The ``q``-quantile of independent samples ``x`` with a percentile-bootstrap law (``n_boot`` replicates).

    The quantile is the inverted-CDF one, the order statistic ``x_(j)`` with ``j = ⌈q n⌉`` (1-based), so that it is
    defined for right-censored data. A bootstrap resample is ``n`` draws from the empirical law, i.e. the sorted
    ``x`` indexed by ``⌊n U_i⌋`` with ``U_i`` i.i.d. uniform; the index map is monotone, so the resample's
    ``j``-th order statistic is ``x_(⌊n U_(j)⌋ + 1)`` with ``U_(j) ~ Beta(j, n + 1 − j)``: each replicate costs one
    Beta draw instead of a resample of size ``n`` (exactly the bootstrap law; vectorised, seeded by ``seed``).
    Bounds at ``α`` are the ``α`` and ``1 − α`` quantiles of the replicates.

    ``censored=True``: ``NaN`` marks a right-censored sample, one known only to exceed every observed value —
    :func:`first_hit_time`'s "never hit within the record" (all replicas share the record horizon). Censored
    samples sort as ``+∞``; with a common horizon this *is* the Kaplan–Meier quantile (the KM survival curve is
    the empirical one up to the horizon). The value, and the upper bound, are ``inf`` when fewer than a fraction
    ``q`` of the samples (of a resample) are observed. ``censored=False``: ``NaN`` is an error (drop them
    explicitly if they are to be ignored)."""
    x = np.asarray(x, np.float64).ravel()
    n = x.size
    q = Interval(Real, 0, 1, closed="neither").check("q", q)
    if n < 2:
        raise ConfigError("x", f"{n} samples", "≥ 2 samples")
    if not n_boot >= 100:
        raise ConfigError("n_boot", n_boot, "an integer ≥ 100 (bootstrap replicates)")
    nan = np.isnan(x)
    if nan.any() and not censored:
        raise ConfigError("x", f"{int(nan.sum())} of {n} samples NaN", "no NaN, or censored=True when NaN marks a "
                                                                       "censored time (first_hit_time's never-hit)")
    xs = np.sort(np.where(nan, np.inf, x))
    j = max(1, math.ceil(q * n - 1e-9 * n))
    u = np.random.default_rng(seed).beta(j, n + 1 - j, size=n_boot)
    reps = np.sort(xs[np.minimum((u * n).astype(np.int64), n - 1)])
    return from_law(xs[j - 1], BootstrapLaw(reps), n)


def wilson(k: int, n: int) -> Estimate:
    """The fraction ``k/n`` of ``n`` independent trials with Wilson score bounds (``stats.WilsonLaw``). Its ``se``
    is the Wilson half-width at ``z = 1``, ``√(p(1 − p)/n + 1/(4n²)) / (1 + 1/n)``: never 0, even at ``k = 0`` or
    ``k = n`` (where the binomial ``√(p(1 − p)/n)`` would claim certainty). Like every binomial interval its
    coverage at a fixed ``p`` oscillates with ``n`` and ``p`` by a few % (Brown, Cai & DasGupta 2001; e.g. 0.870 at
    nominal 0.90 for ``n = 100``, ``p = 0.1``); averaged over ``p`` it is nominal (0.951 at 0.95 for ``n = 64``)."""
    if not int(n) == n >= 1:
        raise ConfigError("n", n, "an integer ≥ 1 (the trials)")
    if not (int(k) == k and 0 <= k <= n):
        raise ConfigError("k", k, f"an integer 0 ≤ k ≤ n = {n} (the successes)")
    return from_law(k / n, WilsonLaw(int(k), int(n)), int(n))


def ols_slope(x, y) -> Estimate:
    """The least-squares slope of ``y`` on ``x`` (with intercept) over independent points, its standard error from
    the residuals, as a Student-t estimate with ``n − 2`` degrees of freedom (the classical regression interval,
    exact for Gaussian residuals)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape or x.size < 3:
        raise ConfigError("x, y", (x.shape, y.shape), "two arrays of the same length ≥ 3 (a slope and its SE)")
    A = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    res = y - A @ coef
    dof = x.size - 2
    se = float(np.sqrt(res @ res / dof * np.linalg.inv(A.T @ A)[0, 0]))
    return Estimate.student(float(coef[0]), se, dof, x.size)
