"""Kolmogorov–Smirnov tests with exact p-values, and the KS distance as an estimate with confidence bounds."""

from __future__ import annotations

from numbers import Real
from typing import NamedTuple

import numpy as np
from scipy import stats

from ...config import Interval
from ...errors import ConfigError
from ._estimate import Estimate, KSLaw, from_law, kstwo_isf

EXACT_MAX_N = 10_000  # two-sample exact p-values up to this sample size (scipy's own "auto" limit); asymptotic above


class KSTest(NamedTuple):
    """A KS test: ``distance`` (an :class:`Estimate` of ``sup|F_true − F|``, law ``KSLaw``), the p-value of
    ``F_true = F`` and whether that p-value is exact."""

    distance: Estimate
    pvalue: float
    exact: bool


def ks_critical(n: int, alpha: float) -> float:
    """Exact critical value of the one-sample KS statistic: ``P(D_n > c) = α`` under the null, ``c =
    kstwo.isf(α, n)`` (Kolmogorov's law at finite ``n``; → ``c_α/√n`` with ``c_0.05 = 1.358``, ``c_0.01 = 1.628``,
    ``c_0.001 = 1.949`` as ``n → ∞``)."""
    if not int(n) == n >= 1:
        raise ConfigError("n", n, "an integer ≥ 1 (the sample size)")
    alpha = Interval(Real, 0, 1, closed="neither").check("alpha", alpha)
    return kstwo_isf(float(alpha), int(n))


def ks_1samp(x, cdf) -> KSTest:
    """One-sample KS test of independent samples ``x`` against a continuous ``cdf``: ``D = sup|F_n − F|`` with the
    exact p-value ``kstwo.sf(D, n)``; ``distance`` bounds ``sup|F_true − F|`` by ``D ∓ kstwo.isf(α, n)``. Samples
    on a lattice (e.g. record times) make the test conservative."""
    x = np.asarray(x, np.float64).ravel()
    if x.size < 1 or not np.all(np.isfinite(x)):
        raise ConfigError("x", f"{x.size} samples, {int(np.sum(~np.isfinite(x)))} not finite", "≥ 1 samples, all "
                                                                                               "finite")
    r = stats.ks_1samp(x, cdf, method="exact")
    return KSTest(from_law(float(r.statistic), KSLaw(x.size), x.size), float(r.pvalue), True)


def ks_2samp(x, y) -> KSTest:
    """Two-sample KS test: ``D = sup|F_n − G_m|``, p-value of ``F = G`` exact (``method="exact"``) when both sizes
    are ≤ ``EXACT_MAX_N``, asymptotic above; ``distance`` bounds ``sup|F − G|`` by ``D ∓ (q_{α/2}(n) +
    q_{α/2}(m))``, a union bound over the two samples' own KS deviations (valid at every ``F ≠ G``)."""
    x, y = (np.asarray(v, np.float64).ravel() for v in (x, y))
    for name, v in (("x", x), ("y", y)):
        if v.size < 1 or not np.all(np.isfinite(v)):
            raise ConfigError(name, f"{v.size} samples, {int(np.sum(~np.isfinite(v)))} not finite",
                              "≥ 1 samples, all finite")
    exact = max(x.size, y.size) <= EXACT_MAX_N
    r = stats.ks_2samp(x, y, method="exact" if exact else "asymp")
    law = KSLaw(x.size, y.size)
    return KSTest(from_law(float(r.statistic), law, min(x.size, y.size)), float(r.pvalue), exact)
