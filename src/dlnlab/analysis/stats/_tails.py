"""The index of a power-law tail: the Hill estimator above a fixed threshold (batch means over replicas) and its
estimand for a known law."""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from scipy import integrate

from ...config import Interval
from ...errors import ConfigError
from ._estimate import Estimate


def hill_index(x, threshold: float, groups: int = 20) -> Estimate:
    """Hill estimate of the index ``α`` of a tail ``P(X > v) ∝ v^{−α}`` above a fixed threshold ``u``::

        α̂ = N_u / S_u,   N_u = #{X_i > u},   S_u = Σ_{X_i > u} ln(X_i/u)

    over independent replicas (``x``'s axis 0; trailing axes: a replica's own, possibly correlated, samples).
    ``α̂`` is a ratio of two totals, so its uncertainty is the ratio estimator's batch means: the replicas are cut into
    ``G`` consecutive groups (as :func:`group_estimate`; the last ``R mod G`` replicas unused) with totals
    ``n_g, s_g``, and ``SE = sd(n_g − α̂ s_g)/(√G s̄)`` (``s̄`` the mean ``s_g``), Student t with ``G − 1`` dof —
    without the small-group bias of per-group ratios. Its estimand is the law's ``α(u) = P(X > u)/E[ln(X/u)⁺]``
    (:func:`hill_index_of`): ``α`` itself for an exact Pareto tail above ``u``, only a limit ``u → ∞`` for a
    regularly varying tail, whose local exponent at a finite threshold may be far from the asymptote. Compare
    ``α̂`` with ``α(u)`` of the theory law, not with its asymptotic ``α``. The threshold is fixed in advance (not a
    sample quantile)."""
    x = np.asarray(x, np.float64)
    R = x.shape[0] if x.ndim else 0
    threshold = Interval(Real, 0, None, closed="neither").check("threshold", threshold)
    if not (isinstance(groups, int | np.integer) and 2 <= groups <= R):
        raise ConfigError("groups", groups, f"an integer 2 ≤ groups ≤ replicas = {R} (axis 0 of x)")
    m = R // groups
    blocks = x[: groups * m].reshape(groups, -1)
    logs = np.log(np.maximum(blocks / threshold, 1.0))
    n_g, s_g = np.sum(blocks > threshold, axis=1).astype(np.float64), np.sum(logs, axis=1)
    if n_g.sum() < 2:
        raise ConfigError("threshold", threshold, f"a threshold with ≥ 2 samples above it (here {int(n_g.sum())} "
                                                  "above the threshold): a lower threshold, or more samples")
    a = n_g.sum() / s_g.sum()
    se = float(np.std(n_g - a * s_g, ddof=1) / math.sqrt(groups) / s_g.mean())
    return Estimate.student(a, se, groups - 1, n=int(n_g.sum()))


def hill_index_of(sf, threshold: float, span: float = 80.0) -> float:
    """The estimand of :func:`hill_index` for a law with survival function ``sf`` (vectorised):
    ``α(u) = sf(u) / ∫_u^∞ sf(v) dv/v`` (``E[ln(X/u)⁺] = ∫_u^∞ P(X > v) dv/v``), the integral in ``ln v`` over
    ``span`` e-folds above ``u`` (adaptive quadrature; the neglected rest is ``≈ sf(u e^{span})/α``)."""
    lo = math.log(threshold)
    total, _ = integrate.quad(lambda y: float(np.asarray(sf(np.array([math.exp(y)])))[0]), lo, lo + span,
                              limit=200, epsabs=0.0, epsrel=1e-10)
    return float(np.asarray(sf(np.array([threshold])))[0]) / total
