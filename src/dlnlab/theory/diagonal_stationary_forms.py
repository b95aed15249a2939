"""Closed forms for [Z]'s stationary laws of diagonal linear networks (``noise_balance.md`` §§6–10), library units.

Model: ``d`` paths ``v_i = Π_{j=1}^{L} u_i^{(j)}`` (``L = D + 1`` factors; [Z]'s "depth D" is ``L − 1``),
output ``v = Σ_i v_i``, ½-loss ``ℓ = ½(vx − y)² + (ρ/2)‖θ‖²``, temperature ``T = η/(2B)`` (= [Z]'s T),
data constants :class:`~dlnlab.theory.balance.DataConstants`. All densities are of the output ``v``
(surviving paths equal, factors balanced), and are written with the corrected forms of §13:

* ``L = 1`` (linear regression, [Z] depth 0; §6.1): support ℝ, normalisable at every T,
  ``p ∝ g^{−1−β₁'/(2Tα₁)} exp[−(α₂β₁' − α₁β₂)/(Tα₁√Δ) · arctan((α₁v − α₂)/√Δ)]``, ``β₁' = β₁ + ρ``
  — :func:`log_density_depth1`;
* ``L = 2`` ([Z] depth 1; §6.2): the closed form :func:`log_density_depth2`; normalisable iff
  ``T < T_c = (β₂ − ρ)/α₃``; otherwise (and always on the wrong-sign branch) the law is ``δ(0)``;
* general ``L`` (Theorem 4.2, corrected; §6.3):
  ``p ∝ v^{3/L−3} g^{−1} exp(−(1/(LT)) ∫^v [d^{1−2/L}(β₁u − β₂)u^{2/L−2} + ρ d^{2−4/L} u^{4/L−3}]/g(u) du)``
  (the ρ term is our extension from the reduced SDE with weight decay, ``dv ∋ −Lρv dt``; it reduces to
  ``β₂ → β₂ − ρ`` at L = 2) — :func:`log_density_general` (its integrand: :func:`general_integrand`); for
  ``L ≥ 3`` normalisable at every T > 0 (no sharp T_c) when ``β₂ > 0`` on the branch and ``ρ = 0``; any ``ρ > 0``
  makes it non-normalisable at ``0⁺`` for ``L ≥ 3`` (collapse to δ(0); the formula then describes the
  metastable bulk);
* ``L → ∞`` with ``d/L`` fixed (§10) — :func:`log_density_infinite_depth`.

Exponents and thresholds: :func:`critical_temperature`, :func:`exponent_at_zero`, :func:`is_normalisable`,
:func:`tail_exponent`, :func:`moment_exists`, :func:`mode_depth2` (corrected root, §9) with
:func:`mode_discriminant`, :func:`t_star` (the threshold of a non-trivial maximum), :func:`regime` (I, IIa, IIb,
III of Fig. 4). The normalised law is :class:`dlnlab.theory.diagonal_stationary.DiagonalStationaryLaw`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate

from ..errors import ConfigError
from .balance import DataConstants


def resolve_constants(constants):
    """``constants``, or the reference data of ``checks.md`` §E when ``None``."""
    return DataConstants.reference() if constants is None else constants


def critical_temperature(depth: int = 2, constants: DataConstants | None = None, weight_decay: float = 0.0):
    """``T_c`` of the positive branch: ``(β₂ − ρ)/α₃`` at ``L = 2``; ``inf`` for ``L = 1`` (no transition) and
    for ``L ≥ 3`` (no sharp transition, only a crossover; §6.3) when ``β₂ > 0``."""
    c = resolve_constants(constants)
    if depth == 2:
        return c.T_crit(weight_decay)
    return math.inf if depth == 1 or c.beta2 > 0 else 0.0


def exponent_at_zero(temperature, constants: DataConstants | None = None, weight_decay: float = 0.0, sign: int = 1):
    """Exponent ``e`` of ``p ∝ |v|^e`` at ``0`` for ``L = 2`` on the branch ``sgn v = sign``:
    ``e = β₂'/(2α₃T) − 3/2`` with ``β₂' = sign·β₂ − ρ`` (integrable at 0 iff ``e > −1``)."""
    cb = resolve_constants(constants).branch(sign, weight_decay)
    return cb.beta2 / (2 * cb.alpha3 * np.asarray(temperature, np.float64)) - 1.5


def is_normalisable(depth: int, temperature, constants: DataConstants | None = None, weight_decay: float = 0.0,
                    sign: int = 1) -> bool:
    """Whether the branch ``sgn v = sign`` carries a normalisable law (otherwise it collapses to ``δ(0)``).

    ``L = 1``: always (support ℝ). ``L = 2``: ``e(T) > −1``, i.e. ``T < (sign·β₂ − ρ)/α₃``. ``L ≥ 3``: the
    density vanishes faster than any power at ``0⁺`` iff ``sign·β₂ > 0`` (§6.3), so normalisable at every T —
    but only without weight decay: for ``ρ > 0`` the ρ-term of the integral (``∝ u^{4/L−3}``) dominates the
    signal term (``∝ u^{2/L−2}``) at ``0⁺`` and the density blows up like ``exp(C v^{−(2−4/L)})``, so the only
    stationary law is ``δ(0)`` (the bulk around ``β₂/β₁`` is then metastable; derived, not in [Z])."""
    c = resolve_constants(constants)
    if not temperature > 0:
        raise ConfigError("temperature", temperature, "a number > 0")
    if depth == 1:
        return True
    if depth == 2:
        return bool(exponent_at_zero(temperature, c, weight_decay, sign) > -1)
    return bool(sign * c.beta2 > 0 and weight_decay == 0)


def tail_exponent(depth: int, temperature=None, constants: DataConstants | None = None, weight_decay: float = 0.0):
    """Exponent of ``p(v) ∝ |v|^{k}`` as ``|v| → ∞``: ``−2 − β₁'/(Tα₁)`` for ``L = 1`` (depends on η/B),
    ``3/L − 5`` for ``L ≥ 2`` (independent of data, η and B; §8)."""
    if depth == 1:
        c = resolve_constants(constants)
        return -2 - (c.beta1 + weight_decay) / (temperature * c.alpha1)
    return 3.0 / depth - 5.0


def moment_exists(k: float, depth: int, temperature=None, constants: DataConstants | None = None,
                  weight_decay: float = 0.0) -> bool:
    """``E|v|^k < ∞`` iff ``k < −1 − tail exponent`` (``k < 4 − 3/L`` for ``L ≥ 2``: E v⁴ = ∞ always)."""
    return bool(k < -1 - tail_exponent(depth, temperature, constants, weight_decay))


def log_density_depth1(v, temperature, constants: DataConstants | None = None, weight_decay: float = 0.0):
    """Unnormalised ``ln p(v)`` of the linear model ``L = 1`` ([Z] depth 0, §6.1), ``v ∈ ℝ``."""
    c = resolve_constants(constants)
    T, b1 = temperature, c.beta1 + weight_decay
    sd = math.sqrt(c.det)
    v = np.asarray(v, np.float64)
    with np.errstate(over="ignore"):
        at = np.arctan((c.alpha1 * v - c.alpha2) / sd)
    return (-1 - b1 / (2 * T * c.alpha1)) * c.log_g(v) - (c.alpha2 * b1 - c.alpha1 * c.beta2) / (T * c.alpha1 * sd) * at


def log_density_depth2(v, temperature, constants: DataConstants | None = None, weight_decay: float = 0.0,
                       sign: int = 1):
    """Unnormalised ``ln p_±(|v|)`` of the two-layer model ([Z] depth 1; §6.2, closed form) for ``v > 0``
    (the magnitude on the branch ``sign``; the negative branch is ``β₂ → −β₂, α₂ → −α₂``; weight decay
    ``β₂ → β₂ − ρ``)::

        p ∝ v^{β₂/(2α₃T) − 3/2} g(v)^{−1 − β₂/(4α₃T)} exp(−(α₃β₁ − α₂β₂)/(2Tα₃√Δ) arctan((α₁v − α₂)/√Δ))
    """
    c = resolve_constants(constants).branch(sign, weight_decay)
    T, sd = temperature, math.sqrt(c.det)
    v = np.asarray(v, np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        lv, at = np.log(v), np.arctan((c.alpha1 * v - c.alpha2) / sd)
    return ((c.beta2 / (2 * c.alpha3 * T) - 1.5) * lv - (1 + c.beta2 / (4 * c.alpha3 * T)) * c.log_g(v)
            - (c.alpha3 * c.beta1 - c.alpha2 * c.beta2) / (2 * T * c.alpha3 * sd) * at)


def general_integrand(y, depth, c: DataConstants, n_paths, weight_decay):
    """``F(y) = u·[d^{1−2/L}(β₁u − β₂)u^{2/L−2} + ρ d^{2−4/L}u^{4/L−3}]/g(u)`` at ``u = e^y`` (∫F dy = ∫…du)."""
    L, d = depth, float(n_paths)
    y = np.asarray(y, np.float64)
    lg = c.log_g(np.exp(y))
    with np.errstate(over="ignore", invalid="ignore"):
        a = d ** (1 - 2 / L) * (c.beta1 * np.exp((2 / L) * y - lg) - c.beta2 * np.exp((2 / L - 1) * y - lg))
        if weight_decay:
            a = a + weight_decay * d ** (2 - 4 / L) * np.exp((4 / L - 2) * y - lg)
    return a


def log_density_general(v, depth: int, temperature, constants: DataConstants | None = None, n_paths: int = 1,
                        weight_decay: float = 0.0, sign: int = 1, v_ref: float = 1.0):
    """Unnormalised ``ln p(|v|)`` of [Z]'s general-depth law (Theorem 4.2, corrected; §6.3) by adaptive
    quadrature of the indefinite integral from ``v_ref`` (a reference implementation, one ``quad`` per point;
    :class:`DiagonalStationaryLaw` uses a spectral method)::

        p ∝ v^{3/L−3} g^{−1} exp(−(1/(LT)) ∫_{v_ref}^{v} [d^{1−2/L}(β₁u − β₂)u^{2/L−2} + ρd^{2−4/L}u^{4/L−3}]/g du)
    """
    if depth < 2:
        raise ConfigError("depth", depth, "an integer >= 2 for the general-depth law (log_density_depth1 for L = 1)")
    c = resolve_constants(constants).branch(sign)
    v = np.atleast_1d(np.asarray(v, np.float64))
    y_ref = math.log(v_ref)
    out = np.empty_like(v)
    for i, vi in enumerate(v):
        yi = math.log(vi)
        I, _ = integrate.quad(lambda y: float(general_integrand(y, depth, c, n_paths, weight_decay)), y_ref, yi,
                              epsabs=0, epsrel=1e-13, limit=500)
        out[i] = (3 / depth - 3) * yi - float(c.log_g(vi)) - I / (depth * temperature)
    return out


def log_density_infinite_depth(v, temperature, constants: DataConstants | None = None, width_over_depth: float = 1.0):
    """The ``L → ∞`` law with ``d/L = r`` fixed (§10; [Z] writes ``d/D``)::

        p ∝ v^{−3−k₁} g^{−1+k₁/2} exp[−(r/T)(β₂/(α₃v) + K arctan((α₁v − α₂)/√Δ))],
        k₁ = r(α₃β₁ − 2α₂β₂)/(Tα₃²),  K = (α₂α₃β₁ − 2α₂²β₂ + α₁α₃β₂)/(α₃²√Δ).

    Only ``r/T`` enters: ``(d/L)·(B/η)`` fixed keeps the law fixed."""
    c = resolve_constants(constants)
    r, T, sd = width_over_depth, temperature, math.sqrt(c.det)
    k1 = r * (c.alpha3 * c.beta1 - 2 * c.alpha2 * c.beta2) / (T * c.alpha3**2)
    K = (c.alpha2 * c.alpha3 * c.beta1 - 2 * c.alpha2**2 * c.beta2 + c.alpha1 * c.alpha3 * c.beta2) / (c.alpha3**2 * sd)
    v = np.asarray(v, np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        return ((-3 - k1) * np.log(v) + (-1 + k1 / 2) * c.log_g(v)
                - (r / T) * (c.beta2 / (c.alpha3 * v) + K * np.arctan((c.alpha1 * v - c.alpha2) / sd)))


def mode_depth2(temperature, constants: DataConstants | None = None):
    """Most probable ``v`` of the ``L = 2`` law (ρ = 0; §9, corrected root):
    ``v* = [−(β₁ − 10α₂T) + √A]/(14α₁T)``, ``A = (β₁ − 10α₂T)² + 28α₁T(β₂ − 3α₃T)``; ``nan`` if ``A < 0``.
    For ``T_c/3 < T`` this is a local maximum only where :func:`regime` says ``IIb``."""
    c = resolve_constants(constants)
    T = np.asarray(temperature, np.float64)
    b = c.beta1 - 10 * c.alpha2 * T
    A = b**2 + 28 * c.alpha1 * T * (c.beta2 - 3 * c.alpha3 * T)
    with np.errstate(invalid="ignore"):
        return np.where(A >= 0, (-b + np.sqrt(np.maximum(A, 0))) / (14 * c.alpha1 * T), np.nan)


def mode_discriminant(temperature, constants: DataConstants | None = None):
    """``A(T) = (β₁ − 10α₂T)² + 28α₁T(β₂ − 3α₃T)`` of :func:`mode_depth2`."""
    c = resolve_constants(constants)
    T = np.asarray(temperature, np.float64)
    return (c.beta1 - 10 * c.alpha2 * T) ** 2 + 28 * c.alpha1 * T * (c.beta2 - 3 * c.alpha3 * T)


def t_star(constants: DataConstants | None = None):
    """Root of ``A(T) = 0`` (§9): ``T* = [7α₁β₂ − 5α₂β₁ + √(7(7α₁²β₂² − 10α₁α₂β₁β₂ + 3α₁α₃β₁²))]/(2(21α₁α₃ − 25α₂²))``,
    defined when ``21α₁α₃ > 25α₂²`` (``nan`` otherwise: then ``A > 0`` for all T > 0).

    The ``L = 2`` law has a non-trivial local maximum for ``T_c/3 < T < min(T*, T_c)`` and none for
    ``T* < T < T_c``. Regime IIa (no maximum) therefore exists only if ``T* < T_c`` — for λ = s = 1 that is
    ``σ_ε² > 0.67879`` (root of ``A(T_c) = 0``), not ``σ_ε² > 8/21``: for ``σ_ε² ≤ 8/21`` (no T*) and for
    ``8/21 < σ_ε² < 0.679`` (``T* ≥ T_c``) a maximum exists on all of ``(T_c/3, T_c)`` (derived; verified
    against the numerical argmax). :func:`regime` decides from the roots directly."""
    c = resolve_constants(constants)
    den = 21 * c.alpha1 * c.alpha3 - 25 * c.alpha2**2
    if den <= 0:
        return math.nan
    a1, a2, a3, b1, b2 = c.alpha1, c.alpha2, c.alpha3, c.beta1, c.beta2
    return (7 * a1 * b2 - 5 * a2 * b1 + math.sqrt(7 * (7 * a1**2 * b2**2 - 10 * a1 * a2 * b1 * b2 + 3 * a1 * a3 * b1**2))) / (2 * den)


def regime(temperature, constants: DataConstants | None = None) -> str:
    """Region of [Z]'s Fig. 4 for the ``L = 2`` law (ρ = 0): ``"III"`` (``T < T_c/3``: zero density at 0),
    ``"IIb"`` (``T_c/3 < T < T_c`` with a non-trivial local maximum), ``"IIa"`` (same range, the sparse
    solution is the only maximum), ``"I"`` (``T ≥ T_c``: ``δ(0)``)."""
    c = resolve_constants(constants)
    T, Tc = float(temperature), c.T_crit()
    if T >= Tc:
        return "I"
    if T < Tc / 3:
        return "III"
    # quadratic 7α₁T v² + (β₁ − 10α₂T)v − (β₂ − 3α₃T) = 0: both roots positive and real ⇔ local max exists
    b = c.beta1 - 10 * c.alpha2 * T
    return "IIb" if (b < 0 and mode_discriminant(T, c) >= 0) else "IIa"
