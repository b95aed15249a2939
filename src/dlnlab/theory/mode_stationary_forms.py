"""Closed forms for the stationary law of one aligned, balanced mode (``sgd_noise.md`` §§8–9).

Per-layer SDE of a balanced mode (§5.2), ``m = a^L``, ``T = η/(2B)``, ``T_ε = σ_ε² T``, ``q = 2 − 2/L``::

    da = λ a^{L−1}(s − a^L) dt + sqrt(2T) a^{L−1} sqrt(D(a^L)) dB,     D(m) = 2λ²(m − s)² + λσ_ε².

Its zero-flux density (§9.1; derived) is ``p(m) ∝ m^{3/L − 3} D(m)^{−1} exp(Φ(m))`` with
``Φ(m) = λ/(L T) ∫_s^m (s − u)/(u^q D(u)) du`` on ``m > 0``. The exact law, by quadrature, is
:func:`dlnlab.theory.mode_stationary.stationary_law`; here are the facts and approximations in closed form:

* when the law exists: :func:`critical_temperature`, :func:`is_normalisable`, :func:`kappa` (§8, §9.1);
* the ``L = 2`` closed form :func:`log_density_l2` (§9.2);
* the label-noise-dominated law :func:`log_density_label_dominated` and its ``L = 2`` Gamma law :func:`gamma_law`
  (§9.4);
* the Boltzmann approximation :func:`boltzmann_law` with :func:`boltzmann_temperature` (§9.5), the mean shift
  :func:`mean_shift` and the small-``T`` expansion :func:`asymptotic_moments` (§9.6, and its next order).

Every function takes ``temperature = η/(2B)`` or ``lr`` and ``batch_size``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..config import Options
from ..conventions import step_ratio
from ..errors import ConfigError
from .mode_sde import collapse_temperature, resolve_temperature


def critical_temperature(depth, s, input_variance=1.0, label_noise=0.0):
    """``T_c`` above which the stationary law collapses to ``δ(m)`` (§8, §9.1).

    ``L = 2``: ``T_c = s / (2λs² + σ_ε²)`` (the exponent of ``p ~ m^{κ−3/2}`` at ``0⁺`` reaches −1;
    :func:`~dlnlab.theory.mode_sde.collapse_temperature`). ``L ≥ 3`` with label noise: ``inf`` (the law vanishes
    faster than any power at ``0⁺``; no sharp transition). ``L = 1``: ``inf`` (the support is ℝ; [Z] §6.1).
    Without label noise the law is ``δ(m − s)`` for every ``T`` below the GD stability limit, so the notion does
    not apply and ``nan`` is returned for ``L ≥ 3``; for ``L = 2`` the formula ``s/(2λs²)`` still gives the
    collapse threshold of the escape (§8)."""
    lam, se = float(input_variance), float(label_noise)
    if depth == 2:
        return collapse_temperature(s, lam, se)
    if depth >= 3 and se == 0:
        return math.nan
    return math.inf


def is_normalisable(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """Whether the zero-flux density of §9.1 is a probability law on ``m > 0`` (``L ≥ 2``) or ℝ (``L = 1``).

    False without label noise (``p ~ |m − s|^{−2−κ₀}`` at ``s``, §9.3), for ``s = 0``, and for ``L = 2`` at
    ``T ≥ T_c``."""
    T = resolve_temperature(temperature, lr, batch_size)
    if label_noise == 0 or s <= 0:
        return False
    if depth == 2:
        return T < critical_temperature(2, s, input_variance, label_noise)
    return True


def kappa(s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1, noise="exact"):
    """``L = 2``: exponent at ``0⁺``, ``p ~ m^{κ − 3/2}``, ``κ = λ s / (2 T D(0))`` (§9.1)."""
    T = resolve_temperature(temperature, lr, batch_size)
    lam, se = float(input_variance), float(label_noise)
    D0 = lam * se**2 + (2 * lam**2 * s**2 if noise == "exact" else 0.0)
    return lam * s / (2.0 * T * D0)


def mean_shift(depth, s, label_noise, temperature=None, *, lr=None, batch_size=1):
    """Leading-order shift ``s − E[m] ≈ (L − 1) T_ε s^{1−2/L}`` of the stationary mean (§9.6; Itô correction
    minus the curvature of ``m^{2−2/L}``). Independent of λ."""
    T = resolve_temperature(temperature, lr, batch_size)
    return (depth - 1) * label_noise**2 * T * s ** (1.0 - 2.0 / depth)


def boltzmann_temperature(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None,
                          batch_size=1):
    """``T_eff = L λ s^{2−2/L} T_ε``: the law ``exp(−𝓛_α(m)/T_eff)``, ``𝓛_α = λ(m − s)²/2`` (§9.5)."""
    T = resolve_temperature(temperature, lr, batch_size)
    return step_ratio(1.0, depth, input_variance, s) * label_noise**2 * T


def boltzmann_law(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
                  shifted=False):
    """The Boltzmann approximation ``N(s, L s^{2−2/L} T_ε)`` of §9.5 as a frozen ``scipy.stats.norm``;
    ``shifted=True`` centres it at ``s − (L−1) T_ε s^{1−2/L}`` (the §9.6 mean)."""
    T = resolve_temperature(temperature, lr, batch_size)
    var = boltzmann_temperature(depth, s, input_variance, label_noise, T) / input_variance
    loc = s - (mean_shift(depth, s, label_noise, T) if shifted else 0.0)
    return stats.norm(loc=loc, scale=math.sqrt(var))


def asymptotic_moments(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
                       order=1):
    """Small-``T`` expansion of the exact stationary mean and variance (derived here; §9.6 is ``order=1``).

    With ``x = m − s``, ``V = L s^q T_ε``, ``κ₂ = 2λ/σ_ε²``, ``c = 3/L − 3``, write the log-density as
    ``−x²/(2V) + δ(b₁z + a₃z³) + δ²(b₂z² + a₄z⁴) + δ³(b₃z³ + a₅z⁵) + O(δ⁴)`` with ``x = δz``, ``δ = √V`` and

        b₁ = c/s,  a₃ = q/(3s),  b₂ = −(c/(2s²) + κ₂),  a₄ = −(q(q+1)/(2s²) − κ₂)/4,
        b₃ = c/(3s³),  a₅ = −(κ₂ q/s − q(q+1)(q+2)/(6s³))/5.

    Gaussian moments then give (``T → 0`` at fixed ``σ_ε, λ, s``)

        E[m] = s + V(b₁ + 3a₃) + V² K + O(T³),   V(b₁ + 3a₃) = −(L−1) T_ε s^{1−2/L},
        K = 3b₃ + 15a₅ + 2b₁b₂ + 12b₁a₄ + 12a₃b₂ + 96a₃a₄ + 3b₁²a₃ + 36b₁a₃² + 135a₃³,
        Var[m] = V + V² (2b₂ + 12a₄ + 6b₁a₃ + 36a₃²) + O(T³).

    Returns ``(mean, var)`` to the requested order (1 or 2). The relative error of order 1 is ``O(T)``."""
    T = resolve_temperature(temperature, lr, batch_size)
    Options(1, 2).check("order", order)
    L, lam, se = depth, float(input_variance), float(label_noise)
    if se == 0:
        return float(s), 0.0
    q = 2.0 - 2.0 / L
    Te = se**2 * T
    V = L * s**q * Te
    mean1 = s - (L - 1) * Te * s ** (1.0 - 2.0 / L)
    if order == 1:
        return mean1, V
    k2 = 2.0 * lam / se**2
    c = 3.0 / L - 3.0
    b1, a3 = c / s, q / (3 * s)
    b2, a4 = -(c / (2 * s**2) + k2), -(q * (q + 1) / (2 * s**2) - k2) / 4
    b3, a5 = c / (3 * s**3), -(k2 * q / s - q * (q + 1) * (q + 2) / (6 * s**3)) / 5
    K = (3 * b3 + 15 * a5 + 2 * b1 * b2 + 12 * b1 * a4 + 12 * a3 * b2 + 96 * a3 * a4 + 3 * b1**2 * a3
         + 36 * b1 * a3**2 + 135 * a3**3)
    return mean1 + V**2 * K, V + V**2 * (2 * b2 + 12 * a4 + 6 * b1 * a3 + 36 * a3**2)


def log_density_l2(m, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """Closed form of the ``L = 2`` law (§9.2), unnormalised, ``m > 0``:
    ``(κ − 3/2) ln m − (1 + κ/2) ln(2λ(m−s)² + σ²) − κσ/(s√(2λ)) atan(√(2λ)(m−s)/σ)``."""
    T = resolve_temperature(temperature, lr, batch_size)
    lam, se = float(input_variance), float(label_noise)
    k = kappa(s, lam, se, T)
    m = np.asarray(m, np.float64)
    r = math.sqrt(2 * lam)
    return ((k - 1.5) * np.log(m) - (1 + k / 2) * np.log(2 * lam * (m - s) ** 2 + se**2)
            - k * se / (s * r) * np.arctan(r * (m - s) / se))


def log_density_label_dominated(m, depth, s, label_noise, temperature=None, *, lr=None, batch_size=1):
    """Label-noise-dominated law (``D ≈ λσ_ε²``; §9.4), unnormalised, ``m > 0``; λ cancels.

    ``L = 2``: ``(s/(2T_ε) − 3/2) ln m − m/(2T_ε)`` (a Gamma law, :func:`gamma_law`);
    ``L ≥ 3``: ``(3/L − 3) ln m − (m^{2/L}/2 + s m^{(2−L)/L}/(L−2)) / T_ε``;
    ``L = 1``: ``−(m − s)²/(2T_ε)`` (Gaussian, ``m ∈ ℝ``)."""
    T = resolve_temperature(temperature, lr, batch_size)
    Te = label_noise**2 * T
    m = np.asarray(m, np.float64)
    L = depth
    if L == 1:
        return -((m - s) ** 2) / (2 * Te)
    if L == 2:
        return (s / (2 * Te) - 1.5) * np.log(m) - m / (2 * Te)
    return (3.0 / L - 3.0) * np.log(m) - (0.5 * m ** (2.0 / L) + s * m ** ((2.0 - L) / L) / (L - 2)) / Te


def gamma_law(s, label_noise, temperature=None, *, lr=None, batch_size=1):
    """The ``L = 2`` label-dominated law (§9.4): Gamma with shape ``s/(2T_ε) − 1/2`` and scale ``2T_ε``
    (needs ``T_ε < s``)."""
    T = resolve_temperature(temperature, lr, batch_size)
    Te = label_noise**2 * T
    shape = s / (2 * Te) - 0.5
    if not shape > 0:
        raise ConfigError("temperature", T, f"< s / label_noise² = {s / label_noise**2!r} (the Gamma law needs "
                                            f"T_ε = σ_ε² T < s; here T_ε = {Te!r})")
    return stats.gamma(a=shape, scale=2 * Te)
