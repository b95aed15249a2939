"""Collapse threshold of discrete online SGD (``B = 1``) for [Z]'s two-layer diagonal path (``noise_balance.md`` §4, §7).

On the balanced manifold (``u = w``, ``v = uw``) one ½-loss SGD step on the sample ``(x, y)`` maps
``v → v(1 − ηξ)²`` with ``ξ = (vx − y)x``. Near ``v = 0`` this is the multiplicative map ``v → v(1 + ηxy)²``, so
the collapsed state ``v = 0`` attracts exactly when the per-step log growth rate

    ``Λ(η) = 2 E ln|1 + η xy|``  (per step; per unit time ``t = η·step`` it is ``Λ/η``)

is negative. Its small-η expansion ``Λ = 2ηβ₂ − η²(α₃ + β₂²) + O(η³)`` vanishes at ``T = η/2 = β₂/(α₃ + β₂²)``: the
paper's second-order ``T_c`` (the SDE's ``T_c = β₂/α₃`` with ``Var xy`` replaced by ``E(xy)²``). The exact rate,
not the expansion, decides: with Gaussian data ``xy`` is heavy-tailed, ``|1 + ηxy|`` is often ≫ 1 once
``η ≳ 1/sd(xy)``, and ``Λ`` can stay positive at every ``η`` (no collapse at all).

Data: ``x ~ N(0, λ)``, ``y = s x + ε``, ``ε ~ N(0, σ_ε²)`` (:class:`~dlnlab.model.diagonal.DiagonalModel`). Given ``x``,
``1 + ηxy`` is Gaussian with mean ``m = 1 + ηsx²`` and sd ``ς = ησ_ε|x|``; ``E ln|m + ςZ| = ln ς + E ln|m/ς + Z|``
with ``(μ + Z)² ~ χ²₁(μ²)``: ``E ln|μ + Z| = ½[ln 2 + Σ_j Pois(j; μ²/2) ψ(½ + j)]``. The outer integral over ``x`` is
adaptive quadrature.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize, special, stats


def mean_log_abs_normal(mu):
    """``E ln|μ + Z|``, ``Z ~ N(0, 1)`` (noncentral χ²₁ series; asymptotic series for ``|μ| > 30``)."""
    mu = abs(float(mu))
    if mu > 30:
        return np.log(mu) - 0.5 / mu**2 - 0.75 / mu**4 - 2.5 / mu**6
    lam = mu**2 / 2
    j = np.arange(int(lam + 12 * np.sqrt(lam) + 40))
    return 0.5 * (np.log(2) + np.sum(stats.poisson.pmf(j, lam) * special.digamma(0.5 + j)))


def log_growth_rate(lr, input_variance: float = 1.0, s: float = 1.0, label_noise: float = 1.0) -> float:
    """``Λ(η) = 2 E ln|1 + ηxy|``: the per-step growth rate of ``ln v`` of ½-loss SGD with ``B = 1`` at ``v → 0``
    (L = 2, balanced). Collapse to ``v = 0`` iff ``Λ < 0``."""
    lr = float(lr)

    def inner(X):  # x = √λ X
        x2 = input_variance * X * X
        m, sd = 1 + lr * s * x2, lr * label_noise * np.sqrt(x2)
        if sd == 0:
            return np.log(abs(m))
        return np.log(sd) + mean_log_abs_normal(m / sd)

    val = integrate.quad(lambda X: inner(X) * stats.norm.pdf(X), 0, np.inf, limit=400, epsabs=1e-13, epsrel=1e-11)[0]
    return 4 * val  # 2 (Λ = 2E) × 2 (X ↦ −X symmetry)


def discrete_critical_temperature(input_variance: float = 1.0, s: float = 1.0, label_noise: float = 1.0,
                                  t_max: float | None = None, n_grid: int = 200):
    """The smallest ``T = η/2`` at which ``Λ(2T)`` turns negative (collapse of discrete SGD with ``B = 1``), searched on
    ``(0, t_max]`` (default: twice the SDE's ``β₂/α₃``) and refined by Brent's method; ``None`` if ``Λ > 0`` on the
    whole grid (the collapsed state never attracts)."""
    beta2, alpha3 = input_variance * s, 2 * input_variance**2 * s**2 + input_variance * label_noise**2
    t_max = 2 * beta2 / alpha3 if t_max is None else t_max
    Ts = np.linspace(t_max / n_grid, t_max, n_grid)
    rates = np.array([log_growth_rate(2 * T, input_variance, s, label_noise) for T in Ts])
    neg = np.flatnonzero(rates < 0)
    if neg.size == 0 or neg[0] == 0:
        return None
    k = neg[0]
    return optimize.brentq(lambda T: log_growth_rate(2 * T, input_variance, s, label_noise), Ts[k - 1], Ts[k],
                           xtol=1e-12, rtol=1e-12)
