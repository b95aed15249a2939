"""Stationary laws of SGD in [Z]'s diagonal linear networks (``noise_balance.md`` §§6–10), library units.

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
  ``β₂ → β₂ − ρ`` at L = 2) — :func:`log_density_general`; for ``L ≥ 3`` normalisable at every T > 0
  (no sharp T_c) when ``β₂ > 0`` on the branch and ``ρ = 0``; any ``ρ > 0`` makes it non-normalisable at
  ``0⁺`` for ``L ≥ 3`` (collapse to δ(0); the formula then describes the metastable bulk);
* ``L → ∞`` with ``d/L`` fixed (§10) — :func:`log_density_infinite_depth`.

:class:`DiagonalStationaryLaw` normalises any of these by spectral (Chebyshev panel) quadrature in
``y = ln v`` down to ``v = e^{−690}``, adding the analytic piece below (the density is ``∝ v^{e}`` there,
``e → −1`` as ``T → T_c``; §12), and gives pdf/cdf/ppf, mean, median, variance, moments, mode and KS
distances. Closed-form helpers: :func:`critical_temperature`, :func:`exponent_at_zero`,
:func:`is_normalisable`, :func:`tail_exponent`, :func:`moment_exists`, :func:`mode_depth2` (corrected root,
§9), :func:`t_star` (the threshold of a non-trivial maximum), :func:`regime` (I, IIa, IIb, III of Fig. 4).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.polynomial import chebyshev as C
from scipy import integrate, optimize

from .balance import DataConstants

# ---------------------------------------------------------------------------------------------------------
# Closed forms and exponents


def _constants(constants):
    return DataConstants.reference() if constants is None else constants


def critical_temperature(depth: int = 2, constants: DataConstants | None = None, weight_decay: float = 0.0):
    """``T_c`` of the positive branch: ``(β₂ − ρ)/α₃`` at ``L = 2``; ``inf`` for ``L = 1`` (no transition) and
    for ``L ≥ 3`` (no sharp transition, only a crossover; §6.3) when ``β₂ > 0``."""
    c = _constants(constants)
    if depth == 2:
        return c.T_crit(weight_decay)
    return math.inf if depth == 1 or c.beta2 > 0 else 0.0


def exponent_at_zero(temperature, constants: DataConstants | None = None, weight_decay: float = 0.0, sign: int = 1):
    """Exponent ``e`` of ``p ∝ |v|^e`` at ``0`` for ``L = 2`` on the branch ``sgn v = sign``:
    ``e = β₂'/(2α₃T) − 3/2`` with ``β₂' = sign·β₂ − ρ`` (integrable at 0 iff ``e > −1``)."""
    cb = _constants(constants).branch(sign, weight_decay)
    return cb.beta2 / (2 * cb.alpha3 * np.asarray(temperature, np.float64)) - 1.5


def is_normalisable(depth: int, temperature, constants: DataConstants | None = None, weight_decay: float = 0.0,
                    sign: int = 1) -> bool:
    """Whether the branch ``sgn v = sign`` carries a normalisable law (otherwise it collapses to ``δ(0)``).

    ``L = 1``: always (support ℝ). ``L = 2``: ``e(T) > −1``, i.e. ``T < (sign·β₂ − ρ)/α₃``. ``L ≥ 3``: the
    density vanishes faster than any power at ``0⁺`` iff ``sign·β₂ > 0`` (§6.3), so normalisable at every T —
    but only without weight decay: for ``ρ > 0`` the ρ-term of the integral (``∝ u^{4/L−3}``) dominates the
    signal term (``∝ u^{2/L−2}``) at ``0⁺`` and the density blows up like ``exp(C v^{−(2−4/L)})``, so the only
    stationary law is ``δ(0)`` (the bulk around ``β₂/β₁`` is then metastable; derived, not in [Z])."""
    c = _constants(constants)
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if depth == 1:
        return True
    if depth == 2:
        return bool(exponent_at_zero(temperature, c, weight_decay, sign) > -1)
    return bool(sign * c.beta2 > 0 and weight_decay == 0)


def tail_exponent(depth: int, temperature=None, constants: DataConstants | None = None, weight_decay: float = 0.0):
    """Exponent of ``p(v) ∝ |v|^{k}`` as ``|v| → ∞``: ``−2 − β₁'/(Tα₁)`` for ``L = 1`` (depends on η/B),
    ``3/L − 5`` for ``L ≥ 2`` (independent of data, η and B; §8)."""
    if depth == 1:
        c = _constants(constants)
        return -2 - (c.beta1 + weight_decay) / (temperature * c.alpha1)
    return 3.0 / depth - 5.0


def moment_exists(k: float, depth: int, temperature=None, constants: DataConstants | None = None,
                  weight_decay: float = 0.0) -> bool:
    """``E|v|^k < ∞`` iff ``k < −1 − tail exponent`` (``k < 4 − 3/L`` for ``L ≥ 2``: E v⁴ = ∞ always)."""
    return bool(k < -1 - tail_exponent(depth, temperature, constants, weight_decay))


def log_density_depth1(v, temperature, constants: DataConstants | None = None, weight_decay: float = 0.0):
    """Unnormalised ``ln p(v)`` of the linear model ``L = 1`` ([Z] depth 0, §6.1), ``v ∈ ℝ``."""
    c = _constants(constants)
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
    c = _constants(constants).branch(sign, weight_decay)
    T, sd = temperature, math.sqrt(c.det)
    v = np.asarray(v, np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        lv, at = np.log(v), np.arctan((c.alpha1 * v - c.alpha2) / sd)
    return ((c.beta2 / (2 * c.alpha3 * T) - 1.5) * lv - (1 + c.beta2 / (4 * c.alpha3 * T)) * c.log_g(v)
            - (c.alpha3 * c.beta1 - c.alpha2 * c.beta2) / (2 * T * c.alpha3 * sd) * at)


def _integrand_y(y, depth, c: DataConstants, n_paths, weight_decay):
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
        raise ValueError("the general-depth law needs L >= 2 (use log_density_depth1 for L = 1)")
    c = _constants(constants).branch(sign)
    v = np.atleast_1d(np.asarray(v, np.float64))
    y_ref = math.log(v_ref)
    out = np.empty_like(v)
    for i, vi in enumerate(v):
        yi = math.log(vi)
        I, _ = integrate.quad(lambda y: float(_integrand_y(y, depth, c, n_paths, weight_decay)), y_ref, yi,
                              epsabs=0, epsrel=1e-13, limit=500)
        out[i] = (3 / depth - 3) * yi - float(c.log_g(vi)) - I / (depth * temperature)
    return out


def log_density_infinite_depth(v, temperature, constants: DataConstants | None = None, width_over_depth: float = 1.0):
    """The ``L → ∞`` law with ``d/L = r`` fixed (§10; [Z] writes ``d/D``)::

        p ∝ v^{−3−k₁} g^{−1+k₁/2} exp[−(r/T)(β₂/(α₃v) + K arctan((α₁v − α₂)/√Δ))],
        k₁ = r(α₃β₁ − 2α₂β₂)/(Tα₃²),  K = (α₂α₃β₁ − 2α₂²β₂ + α₁α₃β₂)/(α₃²√Δ).

    Only ``r/T`` enters: ``(d/L)·(B/η)`` fixed keeps the law fixed."""
    c = _constants(constants)
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
    c = _constants(constants)
    T = np.asarray(temperature, np.float64)
    b = c.beta1 - 10 * c.alpha2 * T
    A = b**2 + 28 * c.alpha1 * T * (c.beta2 - 3 * c.alpha3 * T)
    with np.errstate(invalid="ignore"):
        return np.where(A >= 0, (-b + np.sqrt(np.maximum(A, 0))) / (14 * c.alpha1 * T), np.nan)


def mode_discriminant(temperature, constants: DataConstants | None = None):
    """``A(T) = (β₁ − 10α₂T)² + 28α₁T(β₂ − 3α₃T)`` of :func:`mode_depth2`."""
    c = _constants(constants)
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
    c = _constants(constants)
    den = 21 * c.alpha1 * c.alpha3 - 25 * c.alpha2**2
    if den <= 0:
        return math.nan
    a1, a2, a3, b1, b2 = c.alpha1, c.alpha2, c.alpha3, c.beta1, c.beta2
    return (7 * a1 * b2 - 5 * a2 * b1 + math.sqrt(7 * (7 * a1**2 * b2**2 - 10 * a1 * a2 * b1 * b2 + 3 * a1 * a3 * b1**2))) / (2 * den)


def regime(temperature, constants: DataConstants | None = None) -> str:
    """Region of [Z]'s Fig. 4 for the ``L = 2`` law (ρ = 0): ``"III"`` (``T < T_c/3``: zero density at 0),
    ``"IIb"`` (``T_c/3 < T < T_c`` with a non-trivial local maximum), ``"IIa"`` (same range, the sparse
    solution is the only maximum), ``"I"`` (``T ≥ T_c``: ``δ(0)``)."""
    c = _constants(constants)
    T, Tc = float(temperature), c.T_crit()
    if T >= Tc:
        return "I"
    if T < Tc / 3:
        return "III"
    # quadratic 7α₁T v² + (β₁ − 10α₂T)v − (β₂ − 3α₃T) = 0: both roots positive and real ⇔ local max exists
    b = c.beta1 - 10 * c.alpha2 * T
    return "IIb" if (b < 0 and mode_discriminant(T, c) >= 0) else "IIa"


# ---------------------------------------------------------------------------------------------------------
# Spectral panel quadrature


_N = 17  # Chebyshev–Lobatto nodes per panel
_X = np.cos(np.pi * np.arange(_N)[::-1] / (_N - 1))  # ascending in [−1, 1]
_VINV = np.linalg.inv(C.chebvander(_X, _N - 1))


def _integration_matrix():
    """``S`` with ``(S f)_j = ∫_{−1}^{x_j} (interpolant of f)``."""
    S = np.empty((_N, _N))
    for k in range(_N):
        coef = _VINV[:, k]
        S[:, k] = C.chebval(_X, C.chebint(coef, lbnd=-1))
    return S


_S = _integration_matrix()


def _cheb_eval(values, panel_idx, t):
    """Evaluate the degree-(N−1) interpolants of ``values[panel_idx]`` at local points ``t ∈ [−1, 1]``."""
    coefs = values[panel_idx] @ _VINV.T  # (m, N)
    b1 = np.zeros(len(t))
    b2 = np.zeros(len(t))
    for k in range(_N - 1, 0, -1):
        b1, b2 = coefs[:, k] + 2 * t * b1 - b2, b1
    return coefs[:, 0] + t * b1 - b2


class _Panels:
    """Panels ``[e_p, e_{p+1}]`` with Chebyshev–Lobatto nodes, cumulative spectral integration."""

    def __init__(self, edges):
        self.edges = np.asarray(edges, np.float64)
        self.h = np.diff(self.edges)
        self.nodes = 0.5 * (self.edges[:-1, None] + self.edges[1:, None]) + 0.5 * self.h[:, None] * _X[None, :]

    def cumulative(self, f, ref=None):
        """Antiderivative at every node (panels × N), zero at the first edge, or at the edge nearest ``ref``.

        With ``ref``, panels left of it are accumulated leftwards: an integrand that grows exponentially
        away from ``ref`` keeps full relative precision (no cancellation of huge partial sums)."""
        local = 0.5 * self.h[:, None] * (f @ _S.T)
        tot = local[:, -1]
        if ref is None:
            start = np.concatenate([[0.0], np.cumsum(tot)[:-1]])
        else:
            r = int(np.argmin(np.abs(self.edges - ref)))
            start = np.empty_like(tot)
            start[r:] = np.concatenate([[0.0], np.cumsum(tot[r:])[:-1]])
            start[:r] = -np.cumsum(tot[:r][::-1])[::-1]
        return local + start[:, None]

    def locate(self, z):
        z = np.asarray(z, np.float64)
        p = np.clip(np.searchsorted(self.edges, z, side="right") - 1, 0, len(self.h) - 1)
        t = np.clip(2 * (z - self.edges[p]) / self.h[p] - 1, -1, 1)
        return p, t

    def interpolate(self, values, z):
        p, t = self.locate(z)
        return _cheb_eval(values, p, t)


def _edges(lo, hi, width, centre=None, fine=None, span=None):
    """Uniform panels of ``width`` on ``[lo, hi]``, refined to ``fine`` on ``centre ± span``."""
    e = np.linspace(lo, hi, max(2, math.ceil((hi - lo) / width) + 1))
    if fine is not None and fine < width:
        a, b = max(lo, centre - span), min(hi, centre + span)
        if b > a:
            f = np.linspace(a, b, math.ceil((b - a) / fine) + 1)
            e = np.union1d(e[(e < a) | (e > b)], f)
    return e


_Y_MIN, _Y_MAX = -690.0, 345.0  # L ≥ 2: y = ln|v|, |v| ∈ [1e-300, 1e150]
_Z_MAX = 300.0  # L = 1: v = sinh(z), |v| up to 1e130


class DiagonalStationaryLaw:
    """The stationary law of the output ``v`` of [Z]'s diagonal network (surviving paths equal, balanced).

    Parameters: ``depth`` L (factors per path; [Z]'s D = L − 1), ``temperature`` T = η/(2B),
    ``constants`` (default: reference data), ``n_paths`` d (surviving paths), ``weight_decay`` ρ,
    ``sign`` of the branch (``+1``: ``v > 0``), ``closed_form`` (use the closed form at L = 2; with
    ``False`` the L = 2 law is computed from the general-depth integral — for cross-checks).

    If the branch is not normalisable (``L = 2, T ≥ T_c``, or the wrong-sign branch for ``L ≥ 2``) the law is
    ``δ(0)`` (``collapsed = True``). ``L = 1`` has support ℝ and ignores ``sign``.

    Numerics: the density ``q`` in ``z = ln|v|`` (``asinh v`` for L = 1) is integrated on Chebyshev panels
    (17 nodes, width 0.1, refined near the bulk) over ``|v| ∈ [1e-300, 1e150]``; the pieces outside are added
    analytically from the local power laws (``v^e`` at ``0⁺`` for L = 2, ``|v|^{tail}`` at infinity).
    """

    def __init__(self, depth: int, temperature: float, constants: DataConstants | None = None, *, n_paths: int = 1,
                 weight_decay: float = 0.0, sign: int = 1, closed_form: bool = True, panel_width: float = 0.1):
        if depth < 1 or int(depth) != depth:
            raise ValueError("depth L must be an integer >= 1")
        if not temperature > 0:
            raise ValueError("temperature must be > 0")
        if n_paths < 1:
            raise ValueError("n_paths must be >= 1")
        if sign not in (1, -1):
            raise ValueError("sign must be +1 or -1")
        self.depth, self.temperature, self.n_paths = int(depth), float(temperature), int(n_paths)
        self.constants = _constants(constants)
        self.weight_decay, self.sign, self.closed_form = float(weight_decay), int(sign), closed_form
        self.collapsed = not is_normalisable(self.depth, self.temperature, self.constants, self.weight_decay, self.sign)
        self.tail = tail_exponent(self.depth, self.temperature, self.constants, self.weight_decay)
        self._moment_cache = {}
        if not self.collapsed:
            self._build(panel_width)

    # -- construction ---------------------------------------------------------------------------------------

    def _scale_guess(self):
        """Gaussian (Boltzmann) guess of the bulk's centre and width in v, to refine the panels there."""
        L, T, d = self.depth, self.temperature, self.n_paths
        c = self.constants.branch(self.sign if L > 1 else 1)
        vstar = c.beta2 / c.beta1 if c.beta2 > 0 else 1.0
        if L == 1:
            var = T * c.g(vstar) / (c.beta1 + self.weight_decay)
        else:
            var = T * L * d ** (2 / L - 1) * vstar ** (2 - 2 / L) * c.g(vstar) / c.beta1
        return vstar, math.sqrt(max(float(var), 1e-300))

    def _log_p_unnorm(self, z, at_nodes=False):
        """Unnormalised ``ln p(v)`` as a function of the integration variable ``z``."""
        L, T, c = self.depth, self.temperature, self.constants
        if L == 1:
            return log_density_depth1(np.sinh(z), T, c, self.weight_decay)
        if L == 2 and self.closed_form:
            return log_density_depth2(np.exp(z), T, c, self.weight_decay, self.sign)
        cb = c.branch(self.sign)
        if at_nodes:
            I = self._panels.cumulative(_integrand_y(z, L, cb, self.n_paths, self.weight_decay), ref=0.0)
            self._I = I
        else:
            I = self._panels.interpolate(self._I, np.clip(z, _Y_MIN, _Y_MAX))
        return (3 / L - 3) * z - cb.log_g(np.exp(z)) - I / (L * T)

    def _build(self, width):
        L = self.depth
        vstar, sd = self._scale_guess()
        if L == 1:
            zc = math.asinh(vstar)
            sdz = sd / math.cosh(zc)
            self._panels = _Panels(_edges(-_Z_MAX, _Z_MAX, width, zc, min(width, sdz / 4), 12 * sdz))
        else:
            yc, sdy = math.log(vstar), sd / vstar
            self._panels = _Panels(_edges(_Y_MIN, _Y_MAX, width, yc, min(width, sdy / 4), 12 * sdy))
        z = self._panels.nodes
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            lq = self._log_p_unnorm(z, at_nodes=True) + self._log_jac(z)
        lq = np.where(np.isnan(lq), -np.inf, lq)
        self._shift = float(np.max(lq))
        q = np.exp(lq - self._shift)
        self._q = q
        # analytic pieces outside the grid: q ∝ e^{rate·(z − edge)} there
        self._low_rate = None
        if L == 2:
            self._low_rate = float(exponent_at_zero(self.temperature, self.constants, self.weight_decay, self.sign)) + 1
        elif L == 1:
            self._low_rate = -1 - self.tail
        self._high_rate = -1 - self.tail
        cum = self._panels.cumulative(q)
        low = q[0, 0] / self._low_rate if self._low_rate else 0.0
        high = q[-1, -1] / self._high_rate
        grid_mass = cum[-1, -1]
        self._Z = low + grid_mass + high
        self._low_mass, self._high_mass = low / self._Z, high / self._Z
        self._cdf_nodes = (low + cum) / self._Z
        self._sf_nodes = (grid_mass - cum + high) / self._Z

    def _log_jac(self, z):
        """``ln|dv/dz|``."""
        return np.log(np.cosh(z)) if self.depth == 1 else z

    # -- densities ---------------------------------------------------------------------------------------------

    @property
    def support(self):
        if self.depth == 1:
            return (-np.inf, np.inf)
        return (0.0, np.inf) if self.sign > 0 else (-np.inf, 0.0)

    def _z_of(self, v):
        """Integration variable of ``v`` (``−inf`` off the support for L ≥ 2)."""
        v = np.asarray(v, np.float64)
        if self.depth == 1:
            return np.arcsinh(v)
        a = self.sign * v
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), -np.inf)

    def logpdf(self, v):
        """Normalised ``ln p(v)`` (``−inf`` off the support; ``nan`` for a collapsed law, which is δ(0))."""
        v = np.asarray(v, np.float64)
        if self.collapsed:
            return np.full(v.shape, np.nan)
        z = self._z_of(v)
        out = np.full(z.shape, -np.inf)
        ok = np.isfinite(z)
        with np.errstate(over="ignore", under="ignore"):
            out[ok] = self._log_p_unnorm(z[ok])
        return out - self._shift - math.log(self._Z)

    def pdf(self, v):
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(self.logpdf(v))

    def _tail_interp(self, nodes_values, z, below, above):
        e0, e1 = self._panels.edges[0], self._panels.edges[-1]
        out = np.empty(z.shape)
        inside = (z >= e0) & (z <= e1)
        out[inside] = self._panels.interpolate(nodes_values, z[inside])
        lo, hi = z < e0, z > e1
        out[lo] = below(z[lo] - e0)
        out[hi] = above(z[hi] - e1)
        return out

    def _cdf_z(self, z):
        low = (lambda dz: self._low_mass * np.exp(self._low_rate * dz)) if self._low_rate else (lambda dz: 0 * dz)
        return np.clip(self._tail_interp(self._cdf_nodes, z, low,
                                         lambda dz: 1 - self._high_mass * np.exp(-self._high_rate * dz)), 0, 1)

    def _sf_z(self, z):
        low = (lambda dz: 1 - self._low_mass * np.exp(self._low_rate * dz)) if self._low_rate else (lambda dz: 1 + 0 * dz)
        return np.clip(self._tail_interp(self._sf_nodes, z, low,
                                         lambda dz: self._high_mass * np.exp(-self._high_rate * dz)), 0, 1)

    def cdf(self, v):
        """``P(V ≤ v)``."""
        v = np.asarray(v, np.float64)
        if self.collapsed:
            return np.where(v >= 0, 1.0, 0.0)
        if self.depth == 1:
            return self._cdf_z(np.arcsinh(v))
        z = self._z_of(v)
        return self._cdf_z(z) if self.sign > 0 else self._sf_z(z)

    def sf(self, v):
        """``P(V > v)``, accurate in the far right tail."""
        v = np.asarray(v, np.float64)
        if self.collapsed:
            return np.where(v >= 0, 0.0, 1.0)
        if self.depth == 1:
            return self._sf_z(np.arcsinh(v))
        z = self._z_of(v)
        return self._sf_z(z) if self.sign > 0 else self._cdf_z(z)

    def ppf(self, u):
        """Quantile function (``0`` for a collapsed law)."""
        u = np.atleast_1d(np.asarray(u, np.float64))
        if self.collapsed:
            return np.zeros(u.shape)
        if self.depth > 1 and self.sign < 0:
            return -self._v_of(self._zq(1 - u))
        return self._v_of(self._zq(u))

    def _v_of(self, z):
        if self.depth == 1:
            return np.sinh(z)
        with np.errstate(over="ignore"):
            return np.exp(z)

    def _zq(self, u):
        """``z`` with ``P(Z ≤ z) = u`` (monotone cdf in z)."""
        out = np.empty(u.shape)
        edges, h = self._panels.edges, self._panels.h
        cdf_edges = np.concatenate([self._cdf_nodes[:, 0], [self._cdf_nodes[-1, -1]]])
        for i, ui in enumerate(u):
            if ui <= self._low_mass:
                out[i] = edges[0] + math.log(ui / self._low_mass) / self._low_rate if ui > 0 else -np.inf
            elif ui >= 1 - self._high_mass:
                out[i] = edges[-1] + math.log(self._high_mass / (1 - ui)) / self._high_rate if ui < 1 else np.inf
            else:
                p = int(np.clip(np.searchsorted(cdf_edges, ui, side="right") - 1, 0, len(h) - 1))

                def f(zz, p=p, ui=ui):
                    return float(_cheb_eval(self._cdf_nodes, np.array([p]), np.array([2 * (zz - edges[p]) / h[p] - 1]))[0]) - ui

                a, b = edges[p], edges[p + 1]
                fa, fb = f(a), f(b)
                out[i] = optimize.brentq(f, a, b, xtol=1e-15, rtol=1e-15) if fa * fb < 0 else (a if abs(fa) <= abs(fb) else b)
        return out

    # -- summaries -------------------------------------------------------------------------------------------

    def moment(self, k: int, about: float = 0.0):
        """``E[(V − about)^k]`` (``inf`` when ``E|V|^k`` diverges; ``(−about)^k`` for a collapsed law)."""
        if self.collapsed:
            return float((-about) ** k)
        if not moment_exists(k, self.depth, self.temperature, self.constants, self.weight_decay):
            return math.inf
        key = (k, float(about))
        if key not in self._moment_cache:
            v = self._v_of(self._panels.nodes) * (self.sign if self.depth > 1 else 1)
            dv = v - about
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                # (v − a)^k q in logs: |v| reaches 1e150 (L ≥ 2) or 1e130 (L = 1) on the grid
                f = np.sign(dv) ** k * np.exp(k * np.log(np.abs(dv)) + np.log(self._q))
            f = np.where(np.isfinite(f), f, 0.0)
            total = self._panels.cumulative(f)[-1, -1] / self._Z
            if self.depth == 2:  # the analytic piece at 0⁺ has v ≈ 0
                total += self._low_mass * (-about) ** k
            self._moment_cache[key] = float(total)
        return self._moment_cache[key]

    def truncated_moment(self, k: int, upper: float):
        """``E[V^k ; V ≤ upper]`` (adaptive quadrature in ``ln v``; L ≥ 2, positive branch). With ``upper`` a few
        times the bulk every moment of the truncated law is finite — the robust comparison for sample moments
        (E v⁴ = ∞ for L ≥ 2, so plain sample variances have no CLT)."""
        if self.collapsed:
            return 0.0
        if self.depth < 2 or self.sign < 0:
            raise ValueError("truncated_moment is implemented for the positive branch of L >= 2")
        f = lambda y: float(np.exp((k + 1) * y + self.logpdf(np.array([np.exp(y)]))[0]))
        edges = [-700.0, -100.0, -20.0, -5.0, -1.0, 0.0, math.log(upper)]
        edges = sorted(e for e in edges if e < math.log(upper)) + [math.log(upper)]
        total = sum(integrate.quad(f, a, b, limit=400, epsabs=0, epsrel=1e-11)[0] for a, b in itertools.pairwise(edges))
        if k == 0 and self.depth == 2:
            total += self._low_mass
        return float(total)

    def truncated_var(self, upper: float):
        """``Var(V | V ≤ upper)``."""
        if self.collapsed:
            return 0.0
        m0, m1, m2 = (self.truncated_moment(k, upper) for k in (0, 1, 2))
        return m2 / m0 - (m1 / m0) ** 2

    @property
    def mean(self):
        return self.moment(1)

    @property
    def var(self):
        return 0.0 if self.collapsed else self.moment(2, about=self.mean)

    @property
    def std(self):
        return math.sqrt(self.var)

    @property
    def median(self):
        return float(self.ppf(0.5)[0])

    def mass_below(self, eps):
        """``P(|V| ≤ eps)``: the mass at the sparse solution (1 for a collapsed law)."""
        if self.collapsed:
            return 1.0
        if self.depth == 1:
            return float(self.cdf(eps) - self.cdf(-eps))
        return float(self._cdf_z(np.log(np.asarray([eps], np.float64)))[0])

    def local_maximum(self):
        """The highest interior local maximum of ``p(v)`` (``nan`` if there is none)."""
        if self.collapsed:
            return math.nan
        z = np.unique(self._panels.nodes.ravel())
        v = self._v_of(z) * (self.sign if self.depth > 1 else 1)
        sel = (np.abs(v) > 1e-12) & (np.abs(v) < 1e6)
        v = v[sel]
        lp = self.logpdf(v)
        i = np.arange(1, len(v) - 1)
        is_max = (lp[i] > lp[i - 1]) & (lp[i] >= lp[i + 1]) & np.isfinite(lp[i])
        if not is_max.any():
            return math.nan
        i = i[is_max][np.argmax(lp[i[is_max]])]
        lo, hi = sorted((v[i - 1], v[i + 1]))
        res = optimize.minimize_scalar(lambda x: -float(self.logpdf(np.array([x]))[0]), bounds=(lo, hi),
                                       method="bounded", options={"xatol": 1e-13 * max(1.0, abs(v[i]))})
        return float(res.x)

    def mode(self):
        """Most probable value: ``0`` when the density diverges at ``0⁺`` (L = 2, ``T > T_c/3``) or the law is
        collapsed; otherwise the highest local maximum."""
        if self.collapsed:
            return 0.0
        if self.depth == 2 and exponent_at_zero(self.temperature, self.constants, self.weight_decay, self.sign) < 0:
            return 0.0
        return self.local_maximum()

    def ks_distance(self, samples):
        """Kolmogorov–Smirnov distance ``sup |F_n − F|`` between ``samples`` and the law."""
        x = np.sort(np.asarray(samples, np.float64).ravel())
        n = x.size
        F = self.cdf(x)
        return float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))

    def grid(self, n: int = 400, lo: float = 1e-3, hi: float = 1 - 1e-3):
        """``n`` points between the ``lo`` and ``hi`` quantiles (log-spaced in |v| for L ≥ 2)."""
        a, b = self.ppf([lo, hi])
        if self.depth == 1:
            return np.linspace(a, b, n)
        return self.sign * np.geomspace(min(abs(a), abs(b)), max(abs(a), abs(b)), n)

    def summary(self) -> dict:
        if self.collapsed:
            return {"collapsed": True, "mean": 0.0, "median": 0.0, "var": 0.0, "mode": 0.0}
        return {"collapsed": False, "mean": self.mean, "median": self.median, "var": self.var, "mode": self.mode()}

    def __repr__(self):
        return (f"DiagonalStationaryLaw(L={self.depth}, T={self.temperature:g}, d={self.n_paths}, "
                f"rho={self.weight_decay:g}, sign={self.sign:+d}{', collapsed' if self.collapsed else ''})")


def stationary_table(temperatures, depth: int = 2, constants: DataConstants | None = None, **kw):
    """Mean, median and variance of the law at each temperature (zeros where collapsed) as a dict of arrays
    (e.g. the fluctuation-inversion table of §7)."""
    rows = [DiagonalStationaryLaw(depth, T, constants, **kw).summary() for T in temperatures]
    return {k: np.array([r[k] for r in rows]) for k in ("mean", "median", "var")} | {
        "temperature": np.asarray(temperatures, np.float64), "collapsed": np.array([r["collapsed"] for r in rows])}
