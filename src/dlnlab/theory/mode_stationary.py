"""Stationary law of one aligned, balanced mode under the SGD SDE (``sgd_noise.md`` §§8–9).

Per-layer SDE of a balanced mode (§5.2), ``m = a^L``, ``T = η/(2B)``, ``T_ε = σ_ε² T``, ``q = 2 − 2/L``::

    da = λ a^{L−1}(s − a^L) dt + sqrt(2T) a^{L−1} sqrt(D(a^L)) dB,     D(m) = 2λ²(m − s)² + λσ_ε².

Its zero-flux (stationary Fokker–Planck) solution, written in ``m`` (§9.1; derived):

    p(m) ∝ m^{3/L − 3} D(m)^{−1} exp(Φ(m)),     Φ(m) = λ/(L T) ∫_s^m (s − u) / (u^q D(u)) du,   m > 0.

What is here
------------
* :func:`stationary_law` → :class:`StationaryLaw` (the exact law by quadrature: ``logpdf``, ``pdf``, ``cdf``,
  ``sf``, ``ppf``, ``mean``, ``var``, ``moment``, ``rvs``, ...) or :class:`PointMass` when the law collapses:
  no label noise → ``δ(m − s)`` (GF fixed point, §9.3); ``s = 0`` → ``δ(m)``; ``L = 2`` with ``T ≥ T_c`` →
  ``δ(m)`` (§8, §9.1).
* closed forms: :func:`log_density_l2` (§9.2), :func:`log_density_label_dominated` and :func:`gamma_law`
  (§9.4), :func:`boltzmann_law` and :func:`boltzmann_temperature` (§9.5), :func:`mean_shift` and
  :func:`asymptotic_moments` (§9.6, and its next order, derived here), :func:`critical_temperature` and
  :func:`is_normalisable` (§8, §9.1);
* :func:`ks_between` (sup-distance between two CDFs), :func:`boltzmann_error` and :func:`boltzmann_error_table`
  (how wrong the Boltzmann law is, as a function of temperature).

Numerics
--------
The law is computed in ``y = ln m`` (``L ≥ 2``; for ``L = 1`` the support is ℝ and ``y = asinh((m − s)/c)``).
In ``y`` the density is smooth, its power-law tails become exponential and the ``L = 2`` behaviour at ``0⁺``,
``p ~ m^{κ − 3/2}``, becomes ``e^{(κ − 1/2) y}``. ``y`` is cut into panels (finer than the bulk width, the
scale ``σ_ε/sqrt(2λ)`` of ``D`` near ``s``, and such that ``log p`` varies by at most a few units per panel).
On each panel ``dΦ/dy`` is interpolated on 32 Chebyshev points and integrated exactly (Φ to ~1e-15
relative), the density ``exp(log p)`` likewise (CDF and normalisation by the integral of the interpolant).
Panels where the density (times ``1 + m²``) is below ``e^{−120}`` of its maximum are dropped; what lies beyond
the first and last kept panel is added analytically as an exponential tail in ``y`` with the local slope
(exact to ``O(m_lo)`` for the ``L = 2`` power law at ``0⁺``, whose mass can be ``O(1)`` near ``T_c``).
Everything is evaluated in log space (no overflow for ``m`` from ``1e−300 s`` to ``1e100 s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as _cheb
from scipy import stats

__all__ = [
    "PointMass",
    "StationaryLaw",
    "asymptotic_moments",
    "boltzmann_error",
    "boltzmann_error_table",
    "boltzmann_law",
    "boltzmann_temperature",
    "critical_temperature",
    "gamma_law",
    "is_normalisable",
    "ks_between",
    "log_density_l2",
    "log_density_label_dominated",
    "log_density_unnormalised",
    "mean_shift",
    "stationary_law",
]

_NCHEB = 32  # Chebyshev points per panel
_MARGIN = 120.0  # panels whose weight is below e^-MARGIN of the maximum are dropped
_MAX_DLOG = 3.0  # largest variation of log p inside one panel
_W_MAX = 0.25  # largest panel width in y
_Y_LEFT, _Y_RIGHT = 690.0, 230.0  # search range below / above ln s (L >= 2); |y| <= 300 for L = 1


def _temperature(temperature, lr, batch_size):
    if temperature is not None:
        if lr is not None:
            raise ValueError("give either temperature or lr (with batch_size), not both")
        T = float(temperature)
    else:
        if lr is None:
            raise ValueError("give temperature T = η/(2B), or lr and batch_size")
        T = float(lr) / (2.0 * float(batch_size))
    if not T > 0:
        raise ValueError(f"temperature must be > 0, got {T}")
    return T


# ---------------------------------------------------------------------------------------------------------
# Closed forms and approximations


def critical_temperature(depth, s, input_var=1.0, label_noise=0.0):
    """``T_c`` above which the stationary law collapses to ``δ(m)`` (§8, §9.1).

    ``L = 2``: ``T_c = s / (2λs² + σ_ε²)`` (the exponent of ``p ~ m^{κ−3/2}`` at ``0⁺`` reaches −1). ``L ≥ 3``
    with label noise: ``inf`` (the law vanishes faster than any power at ``0⁺``; no sharp transition).
    ``L = 1``: ``inf`` (the support is ℝ; [Z] §6.1). Without label noise the law is ``δ(m − s)`` for every
    ``T`` below the GD stability limit, so the notion does not apply and ``nan`` is returned for ``L ≥ 3``;
    for ``L = 2`` the formula ``s/(2λs²)`` still gives the collapse threshold of the escape (§8)."""
    lam, se = float(input_var), float(label_noise)
    if depth == 2:
        return s / (2.0 * lam * s**2 + se**2)
    if depth >= 3 and se == 0:
        return math.nan
    return math.inf


def is_normalisable(depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """Whether the zero-flux density of §9.1 is a probability law on ``m > 0`` (``L ≥ 2``) or ℝ (``L = 1``).

    False without label noise (``p ~ |m − s|^{−2−κ₀}`` at ``s``, §9.3), for ``s = 0``, and for ``L = 2`` at
    ``T ≥ T_c``."""
    T = _temperature(temperature, lr, batch_size)
    if label_noise == 0 or s <= 0:
        return False
    if depth == 2:
        return T < critical_temperature(2, s, input_var, label_noise)
    return True


def kappa(s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1, noise="exact"):
    """``L = 2``: exponent at ``0⁺``, ``p ~ m^{κ − 3/2}``, ``κ = λ s / (2 T D(0))`` (§9.1)."""
    T = _temperature(temperature, lr, batch_size)
    lam, se = float(input_var), float(label_noise)
    D0 = lam * se**2 + (2 * lam**2 * s**2 if noise == "exact" else 0.0)
    return lam * s / (2.0 * T * D0)


def mean_shift(depth, s, label_noise, temperature=None, *, lr=None, batch_size=1):
    """Leading-order shift ``s − E[m] ≈ (L − 1) T_ε s^{1−2/L}`` of the stationary mean (§9.6; Itô correction
    minus the curvature of ``m^{2−2/L}``). Independent of λ."""
    T = _temperature(temperature, lr, batch_size)
    return (depth - 1) * label_noise**2 * T * s ** (1.0 - 2.0 / depth)


def boltzmann_temperature(depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """``T_eff = L λ s^{2−2/L} T_ε``: the law ``exp(−𝓛_α(m)/T_eff)``, ``𝓛_α = λ(m − s)²/2`` (§9.5)."""
    T = _temperature(temperature, lr, batch_size)
    return depth * input_var * s ** (2.0 - 2.0 / depth) * label_noise**2 * T


def boltzmann_law(depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
                  shifted=False):
    """The Boltzmann approximation ``N(s, L s^{2−2/L} T_ε)`` of §9.5 as a frozen ``scipy.stats.norm``;
    ``shifted=True`` centres it at ``s − (L−1) T_ε s^{1−2/L}`` (the §9.6 mean)."""
    T = _temperature(temperature, lr, batch_size)
    var = boltzmann_temperature(depth, s, input_var, label_noise, T) / input_var
    loc = s - (mean_shift(depth, s, label_noise, T) if shifted else 0.0)
    return stats.norm(loc=loc, scale=math.sqrt(var))


def asymptotic_moments(depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
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
    T = _temperature(temperature, lr, batch_size)
    L, lam, se = depth, float(input_var), float(label_noise)
    if se == 0:
        return float(s), 0.0
    q = 2.0 - 2.0 / L
    Te = se**2 * T
    V = L * s**q * Te
    mean1 = s - (L - 1) * Te * s ** (1.0 - 2.0 / L)
    if order == 1:
        return mean1, V
    if order != 2:
        raise ValueError("order must be 1 or 2")
    k2 = 2.0 * lam / se**2
    c = 3.0 / L - 3.0
    b1, a3 = c / s, q / (3 * s)
    b2, a4 = -(c / (2 * s**2) + k2), -(q * (q + 1) / (2 * s**2) - k2) / 4
    b3, a5 = c / (3 * s**3), -(k2 * q / s - q * (q + 1) * (q + 2) / (6 * s**3)) / 5
    K = (3 * b3 + 15 * a5 + 2 * b1 * b2 + 12 * b1 * a4 + 12 * a3 * b2 + 96 * a3 * a4 + 3 * b1**2 * a3
         + 36 * b1 * a3**2 + 135 * a3**3)
    return mean1 + V**2 * K, V + V**2 * (2 * b2 + 12 * a4 + 6 * b1 * a3 + 36 * a3**2)


def log_density_l2(m, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """Closed form of the ``L = 2`` law (§9.2), unnormalised, ``m > 0``:
    ``(κ − 3/2) ln m − (1 + κ/2) ln(2λ(m−s)² + σ²) − κσ/(s√(2λ)) atan(√(2λ)(m−s)/σ)``."""
    T = _temperature(temperature, lr, batch_size)
    lam, se = float(input_var), float(label_noise)
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
    T = _temperature(temperature, lr, batch_size)
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
    T = _temperature(temperature, lr, batch_size)
    Te = label_noise**2 * T
    shape = s / (2 * Te) - 0.5
    if not shape > 0:
        raise ValueError(f"the Gamma law needs T_ε < s (T_ε = {Te}, s = {s})")
    return stats.gamma(a=shape, scale=2 * Te)


# ---------------------------------------------------------------------------------------------------------
# The zero-flux density: pieces shared with the Fokker–Planck solver


@dataclass(frozen=True)
class ModeSDE:
    """One balanced mode: depth ``L``, ``s``, ``λ``, ``σ_ε``, ``T = η/(2B)``, and the noise model ``D``
    (``"exact"``: ``2λ²(m−s)² + λσ_ε²``; ``"label"``: ``λσ_ε²``)."""

    depth: int
    s: float
    input_var: float
    label_noise: float
    temperature: float
    noise: str = "exact"

    def __post_init__(self):
        if self.depth < 1 or int(self.depth) != self.depth:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth}")
        if self.noise not in ("exact", "label"):
            raise ValueError(f"noise must be 'exact' or 'label', got {self.noise!r}")
        if not (self.input_var > 0 and self.temperature > 0 and self.label_noise >= 0 and self.s >= 0):
            raise ValueError("need input_var > 0, temperature > 0, label_noise >= 0, s >= 0")

    @property
    def q(self):
        return 2.0 - 2.0 / self.depth

    @property
    def label_temperature(self):
        return self.label_noise**2 * self.temperature

    def log_D(self, m):
        """``ln D(m)`` without overflow."""
        lam, se = self.input_var, self.label_noise
        if self.noise == "label":
            return np.full(np.shape(m), math.log(lam * se**2) if se > 0 else -np.inf)
        x = np.asarray(m, np.float64) - self.s
        with np.errstate(divide="ignore"):
            return math.log(lam) + np.log(2 * lam * x * x + se**2)

    def dlog_D(self, m):
        """``D'(m)/D(m)``."""
        if self.noise == "label":
            return np.zeros(np.shape(m))
        lam, se = self.input_var, self.label_noise
        x = np.asarray(m, np.float64) - self.s
        return 4 * lam * x / (2 * lam * x * x + se**2)

    def s_minus_m_over_D(self, m):
        """``(s − m)/D(m)``, stable for large ``|m|``."""
        lam, se = self.input_var, self.label_noise
        x = np.asarray(m, np.float64) - self.s
        if self.noise == "label":
            return -x / (lam * se**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            big = np.abs(x) > 1.0
            xs = np.where(big, x, 1.0)
            out_big = -1.0 / (lam * (2 * lam * xs + se**2 / xs))
            out_small = -x / (lam * (2 * lam * x * x + se**2))
        return np.where(big, out_big, out_small)


class _Coord:
    """``y ↦ m``: ``m = e^y`` for ``L ≥ 2``; ``m = s + c·sinh(y)`` for ``L = 1``."""

    def __init__(self, sde: ModeSDE, c=1.0):
        self.log = sde.depth >= 2
        self.s, self.c = sde.s, c

    def m(self, y):
        return np.exp(y) if self.log else self.s + self.c * np.sinh(y)

    def y(self, m):
        m = np.asarray(m, np.float64)
        if self.log:
            with np.errstate(divide="ignore"):
                return np.log(m)
        return np.arcsinh((m - self.s) / self.c)

    def log_jac(self, y):
        """``ln dm/dy``."""
        if self.log:
            return np.asarray(y, np.float64)
        ay = np.abs(y)
        return math.log(self.c) + ay + np.log1p(np.exp(-2 * ay)) - math.log(2.0)


def _phi_y(sde: ModeSDE, coord: _Coord, y):
    """``dΦ/dy = λ/(LT) · (s − m)/(m^q D(m)) · dm/dy``."""
    L, lam, T = sde.depth, sde.input_var, sde.temperature
    m = coord.m(y)
    r = sde.s_minus_m_over_D(m)
    if coord.log:  # (s − m)/D · m^{1−q} = … · m^{2/L − 1}
        with np.errstate(over="ignore", invalid="ignore"):
            return lam / (L * T) * r * np.exp((2.0 / L - 1.0) * y)
    return lam / T * r * np.exp(coord.log_jac(y))


def _direct_log(sde: ModeSDE, coord: _Coord, y):
    """``(3/L − 3) ln m − ln D(m) + ln dm/dy`` (the part of ``log p_y`` that is not Φ)."""
    m = coord.m(y)
    out = -sde.log_D(m) + coord.log_jac(y)
    if coord.log:
        out = out + (3.0 / sde.depth - 3.0) * np.asarray(y, np.float64)
    return out


def _direct_dlog(sde: ModeSDE, coord: _Coord, y):
    """d/dy of :func:`_direct_log`."""
    m = coord.m(y)
    if coord.log:
        return 3.0 / sde.depth - 2.0 - sde.dlog_D(m) * m
    dm = coord.c * np.cosh(y)
    return -sde.dlog_D(m) * dm + np.tanh(y)


# Chebyshev machinery on [-1, 1]: nodes of the first kind, values -> coefficients, Fejér weights.
_TH = np.pi * (np.arange(_NCHEB) + 0.5) / _NCHEB
_TNODES = np.cos(_TH)
_V2C = (2.0 / _NCHEB) * np.cos(np.outer(np.arange(_NCHEB), _TH))
_V2C[0] /= 2.0
_FEJER = (2.0 / _NCHEB) * (1.0 - 2.0 * sum(np.cos(2 * k * _TH) / (4 * k * k - 1) for k in range(1, _NCHEB // 2 + 1)))


# node values -> values at the nodes of the antiderivative (vanishing at −1) of their interpolant, on [−1, 1]
_INT_AT_NODES = _cheb.chebval(_TNODES, _cheb.chebint(_V2C, m=1, lbnd=-1, axis=0))  # (n values, n nodes)


def _cheb_antideriv(values, half_width):
    """Values at the Chebyshev nodes of each panel (shape ``(P, n)``) → coefficients ``(n+1, P)`` of the
    antiderivative that vanishes at the panel's left end."""
    coef = _V2C @ values.T  # (n, P)
    return _cheb.chebint(coef, m=1, lbnd=-1, axis=0) * half_width[None, :]


def _cheb_eval(coefs, t):
    """Evaluate per-point coefficient columns ``coefs`` ``(k, N)`` at ``t`` ``(N,)`` (Clenshaw)."""
    return _cheb.chebval(t, coefs, tensor=False)


class _Panels:
    """Φ and the density on panels in y (see the module docstring)."""

    def __init__(self, sde: ModeSDE, coord: _Coord, edges, y_ref, phi_ref=0.0):
        self.sde, self.coord = sde, coord
        self.set_edges(np.asarray(edges, np.float64), y_ref, phi_ref)

    def set_edges(self, edges, y_ref, phi_ref):
        sde, coord = self.sde, self.coord
        self.edges = edges
        a, b = edges[:-1], edges[1:]
        self.mid, self.half = (a + b) / 2, (b - a) / 2
        self.nodes = self.mid[:, None] + self.half[:, None] * _TNODES[None, :]  # (P, n)
        phi = _phi_y(sde, coord, self.nodes)
        self._phi_nodes_rel = self.half[:, None] * (phi @ _INT_AT_NODES)  # Φ − Φ(a) at the nodes
        self.cphi = _cheb_antideriv(phi, self.half)  # Φ − Φ(a) on each panel
        incr = _cheb.chebval(1.0, self.cphi)  # panel integrals (P,)
        # Φ at the edges, anchored at the edge nearest y_ref, where Φ = phi_ref
        k = int(np.argmin(np.abs(edges - y_ref)))
        # accumulate outward from the anchor (never subtract two large partial sums)
        phi_e = np.empty(len(edges))
        phi_e[k] = 0.0
        with np.errstate(invalid="ignore", over="ignore"):
            phi_e[k + 1:] = np.cumsum(incr[k:])
            phi_e[:k] = -np.cumsum(incr[:k][::-1])[::-1]
            self.phi_edges = phi_ref + phi_e
            if abs(edges[k] - y_ref) > 0:  # correct the anchor when y_ref is not an edge
                self.phi_edges = self.phi_edges - self._phi_inside(np.array([y_ref]))[0] + phi_ref
        self.log_nodes = self._log_at_nodes()

    def _log_at_nodes(self):
        # Φ at the Chebyshev nodes of each panel: Φ(a) + antiderivative at t_j
        phin = self.phi_edges[:-1, None] + self._phi_nodes_rel
        with np.errstate(invalid="ignore"):
            return _direct_log(self.sde, self.coord, self.nodes) + phin

    def locate(self, y):
        i = np.clip(np.searchsorted(self.edges, y, side="right") - 1, 0, len(self.mid) - 1)
        t = (y - self.mid[i]) / self.half[i]
        return i, t

    def _phi_inside(self, y):
        i, t = self.locate(y)
        return self.phi_edges[i] + _cheb_eval(self.cphi[:, i], t)

    def log_unnorm(self, y):
        """``log p_y`` (unnormalised) at ``y`` inside the panels."""
        return _direct_log(self.sde, self.coord, y) + self._phi_inside(y)

    def dlog(self, y):
        return _direct_dlog(self.sde, self.coord, y) + _phi_y(self.sde, self.coord, y)


def _initial_edges(centre, w0, lo, hi, growth=1.1, w_max=_W_MAX):
    """Edges from ``lo`` to ``hi`` containing ``centre``, widths ``w0·growth^k`` (capped) away from it."""
    def side(length):
        out, pos, w = [], 0.0, w0
        while pos < length:
            pos = min(pos + w, length)
            out.append(pos)
            w = min(w * growth, w_max)
        return np.array(out)

    right = centre + side(hi - centre)
    left = centre - side(centre - lo)
    return np.concatenate([left[::-1], [centre], right])


# ---------------------------------------------------------------------------------------------------------
# The laws


class PointMass:
    """A degenerate stationary law ``δ(m − at)``, with ``reason`` saying why it collapsed."""

    def __init__(self, at, reason):
        self.at, self.reason = float(at), reason

    def __repr__(self):
        return f"PointMass(at={self.at}, reason={self.reason!r})"

    normalisable = False

    def mean(self):
        return self.at

    def var(self):
        return 0.0

    def std(self):
        return 0.0

    def median(self):
        return self.at

    def moment(self, k):
        return self.at**k

    def cdf(self, m):
        return (np.asarray(m, np.float64) >= self.at).astype(np.float64)

    def sf(self, m):
        return 1.0 - self.cdf(m)

    def ppf(self, u):
        return np.full(np.shape(u), self.at)

    def rvs(self, size, rng=None):
        return np.full(size, self.at)


class StationaryLaw:
    """The exact stationary law of one mode (§9.1), normalised, by quadrature (see the module docstring).

    Attributes: ``sde`` (the :class:`ModeSDE`), ``log_norm`` (log of the normaliser of
    :meth:`log_unnormalised`), ``tail_mass`` (mass added analytically beyond the panels, left and right).
    Methods take arrays of ``m``; ``cdf``/``sf`` are accurate to ~1e−14 absolute, ``logpdf`` to ~1e−13."""

    normalisable = True

    def __init__(self, sde: ModeSDE):
        self.sde = sde
        L, s, lam, se, T = sde.depth, sde.s, sde.input_var, sde.label_noise, sde.temperature
        if not (se > 0 and s > 0):
            raise ValueError("StationaryLaw needs s > 0 and label_noise > 0 (otherwise use stationary_law)")
        if L == 2 and sde.noise == "exact" and not T < critical_temperature(2, s, lam, se):
            raise ValueError(f"L = 2 at T = {T} >= T_c = {critical_temperature(2, s, lam, se)}: not normalisable")
        if L == 2 and sde.noise == "label" and not sde.label_temperature < s:
            raise ValueError("label-noise law at L = 2 needs T_ε < s")
        Te = sde.label_temperature
        if L >= 2:
            sd_y = math.sqrt(L * Te) * s ** (-1.0 / L)
            c = 1.0
            centre, lo, hi = math.log(s), math.log(s) - _Y_LEFT, math.log(s) + _Y_RIGHT
            feature = se / (math.sqrt(2 * lam) * s)
        else:
            c = math.sqrt(Te)
            sd_y = 1.0
            centre, lo, hi = 0.0, -300.0, 300.0
            feature = se / (math.sqrt(2 * lam) * c)
        self.coord = coord = _Coord(sde, c)
        w0 = min(0.05, sd_y / 4, feature / 4 if sde.noise == "exact" else np.inf)
        edges = _initial_edges(centre, w0, lo, hi)
        pan = _Panels(sde, coord, edges, centre)
        # keep the panels that matter, then refine where log p varies too fast
        for _ in range(12):
            ln = np.where(np.isfinite(pan.log_nodes), pan.log_nodes, -np.inf)
            weight = ln + (2.0 * np.maximum(pan.nodes - centre, 0.0) if coord.log else 2.0 * np.abs(pan.nodes))
            wmax = np.nanmax(weight)
            keep = np.nanmax(weight, axis=1) >= wmax - _MARGIN
            idx = np.flatnonzero(keep)
            i0, i1 = idx[0], idx[-1]
            sub = pan.edges[i0:i1 + 2]
            lk = ln[i0:i1 + 1]
            top = lk.max(axis=1)
            # variation of log p inside each kept panel, counted only down to MARGIN below the maximum
            span = top - np.maximum(lk.min(axis=1), wmax - 2 * _MARGIN)
            nsplit = np.clip(np.ceil(np.nan_to_num(span, posinf=1e3) / _MAX_DLOG), 1, 1000).astype(int)
            trimmed = i0 > 0 or i1 < len(pan.mid) - 1
            if not trimmed and np.all(nsplit == 1):
                break
            new = [sub[:1]]
            for j in range(len(nsplit)):
                a, b = sub[j], sub[j + 1]
                new.append(np.linspace(a, b, nsplit[j] + 1)[1:])
            new_edges = np.concatenate(new)
            # anchor Φ at an existing edge so that values stay consistent with Φ(ln s) = 0
            k = int(np.argmin(np.abs(pan.edges[i0:i1 + 2] - centre))) + i0
            pan = _Panels(sde, coord, new_edges, pan.edges[k], pan.phi_edges[k])
            if np.all(nsplit == 1):
                break
        self._pan = pan
        self._finish()

    # -- construction -------------------------------------------------------------------------------------

    def _finish(self):
        pan, coord = self._pan, self.coord
        ln = pan.log_nodes
        lmax = np.nanmax(ln)
        f = np.exp(ln - lmax)  # (P, n)
        f = np.where(np.isfinite(f), f, 0.0)
        self._cf = _cheb_antideriv(f, pan.half)  # ∫_a^y f
        masses = _cheb.chebval(1.0, self._cf)
        # exponential tails beyond the ends, with the local slope of log p
        yl, yr = pan.edges[0], pan.edges[-1]
        ll, lr = pan.log_unnorm(np.array([yl]))[0], pan.log_unnorm(np.array([yr]))[0]
        self._slope_l = float(pan.dlog(np.array([yl]))[0])
        self._slope_r = float(pan.dlog(np.array([yr]))[0])
        tl = math.exp(ll - lmax) / self._slope_l if self._slope_l > 0 and np.isfinite(ll) else 0.0
        tr = math.exp(lr - lmax) / -self._slope_r if self._slope_r < 0 and np.isfinite(lr) else 0.0
        Z = tl + masses.sum() + tr
        self.log_norm = lmax + math.log(Z)
        self._lmax, self._Z = lmax, Z
        self._ll, self._lr = ll, lr
        self._cdf_edges = (tl + np.concatenate([[0.0], np.cumsum(masses)])) / Z
        self._sf_edges = (tr + np.concatenate([np.cumsum(masses[::-1])[::-1], [0.0]])) / Z
        self.tail_mass = (tl / Z, tr / Z)
        self._masses = masses / Z
        # moments by Fejér quadrature on the panels (+ tails)
        self._w = (f / Z) * (pan.half[:, None] * _FEJER[None, :])  # probability weights of the nodes
        self._m_nodes = coord.m(pan.nodes)
        self._mean = self._moment_about(0.0, 1)
        self._var = self.moment(2, self._mean)  # inf for L = 1 at T ≥ 1/(2λ)

    def _moment_about(self, c, k):
        """``E[(m − c)^k]`` with analytic exponential tails."""
        pan, coord = self._pan, self.coord
        val = np.sum(self._w * (self._m_nodes - c) ** k)
        for end, lval, slope, sign in ((pan.edges[0], self._ll, self._slope_l, -1), (pan.edges[-1], self._lr,
                                                                                        self._slope_r, 1)):
            if not np.isfinite(lval):
                continue
            dens = math.exp(lval - self.log_norm)  # p_y at the end
            if dens == 0.0:
                continue
            if coord.log:
                if sign < 0:  # m → 0: (m − c)^k ≈ (−c)^k (relative error O(m_lo/c))
                    val += dens / slope * (-c) ** k if c != 0 else dens * math.exp(k * end) / (slope + k)
                else:
                    rate = -slope - k
                    if rate <= 0:
                        return math.inf
                    val += dens * math.exp(k * end) / rate  # (m − c)^k ≈ m^k
            else:
                rate = abs(slope) - k
                if rate <= 0:
                    return math.inf
                mend = coord.m(end) - c
                val += dens * abs(mend) ** k * (1 if (sign > 0 or k % 2 == 0) else -1) / rate
        return float(val)

    # -- evaluation ---------------------------------------------------------------------------------------

    @property
    def support(self):
        return (0.0, math.inf) if self.coord.log else (-math.inf, math.inf)

    def log_unnormalised(self, m):
        """``ln[m^{3/L−3} D(m)^{−1} e^{Φ(m)}]`` with ``Φ(s) = 0`` (the §9.1 formula, per unit ``m``)."""
        y = self.coord.y(m)
        return self._log_y(y) - self.coord.log_jac(y)

    def _log_y(self, y):
        y = np.asarray(y, np.float64)
        pan = self._pan
        out = np.empty_like(y)
        inside = (y >= pan.edges[0]) & (y <= pan.edges[-1])
        out[inside] = pan.log_unnorm(y[inside])
        below, above = y < pan.edges[0], y > pan.edges[-1]
        if below.any():  # the exact formula by direct quadrature outside the panels
            out[below] = [self._log_outside(v) for v in y[below]]
        if above.any():
            out[above] = [self._log_outside(v) for v in y[above]]
        return out

    def _log_outside(self, y):
        from scipy import integrate

        pan = self._pan
        end = pan.edges[0] if y < pan.edges[0] else pan.edges[-1]
        if not np.isfinite(y):
            return -np.inf
        val, _ = integrate.quad(lambda v: float(_phi_y(self.sde, self.coord, np.array(v))), end, y,
                                epsabs=0, epsrel=1e-13, limit=500)
        phi_end = pan._phi_inside(np.array([end]))[0]
        return float(_direct_log(self.sde, self.coord, np.array(y)) + phi_end + val)

    def logpdf(self, m):
        """Normalised log-density in ``m`` (``−inf`` outside the support)."""
        m = np.asarray(m, np.float64)
        out = np.full(m.shape, -np.inf)
        ok = m > 0 if self.coord.log else np.isfinite(m)
        if ok.any():
            out[ok] = self.log_unnormalised(m[ok]) - self.log_norm
        return out

    def pdf(self, m):
        return np.exp(self.logpdf(m))

    def _cdf_y(self, y):
        pan = self._pan
        y = np.asarray(y, np.float64)
        out = np.empty_like(y)
        inside = (y >= pan.edges[0]) & (y <= pan.edges[-1])
        i, t = pan.locate(y[inside])
        out[inside] = self._cdf_edges[i] + _cheb_eval(self._cf[:, i], t) / self._Z
        below = y < pan.edges[0]
        if below.any():
            with np.errstate(over="ignore"):
                out[below] = self.tail_mass[0] * np.exp(self._slope_l * (y[below] - pan.edges[0]))
        above = y > pan.edges[-1]
        if above.any():
            out[above] = 1.0 - self._sf_y(y[above])
        return np.clip(out, 0.0, 1.0)

    def _sf_y(self, y):
        pan = self._pan
        y = np.asarray(y, np.float64)
        out = np.empty_like(y)
        inside = (y >= pan.edges[0]) & (y <= pan.edges[-1])
        i, t = pan.locate(y[inside])
        out[inside] = self._sf_edges[i + 1] + (self._masses[i] - _cheb_eval(self._cf[:, i], t) / self._Z)
        above = y > pan.edges[-1]
        if above.any():
            out[above] = self.tail_mass[1] * np.exp(self._slope_r * (y[above] - pan.edges[-1]))
        below = y < pan.edges[0]
        if below.any():
            out[below] = 1.0 - self._cdf_y(y[below])
        return np.clip(out, 0.0, 1.0)

    def cdf(self, m):
        m = np.asarray(m, np.float64)
        if self.coord.log:
            out = np.zeros(m.shape)
            pos = m > 0
            out[pos] = self._cdf_y(np.log(m[pos]))
            return out
        return self._cdf_y(self.coord.y(m))

    def sf(self, m):
        m = np.asarray(m, np.float64)
        if self.coord.log:
            out = np.ones(m.shape)
            pos = m > 0
            out[pos] = self._sf_y(np.log(m[pos]))
            return out
        return self._sf_y(self.coord.y(m))

    def ppf(self, u):
        """Quantiles: bisection inside the panel that holds each level (55 halvings of the panel)."""
        u = np.asarray(u, np.float64)
        shape = u.shape
        u = u.ravel()
        pan = self._pan
        y = np.empty_like(u)
        tl, tr = self.tail_mass
        lo_tail, hi_tail = u < self._cdf_edges[0], u > self._cdf_edges[-1]
        with np.errstate(divide="ignore"):
            y[lo_tail] = pan.edges[0] + np.log(u[lo_tail] / tl) / self._slope_l if tl > 0 else pan.edges[0]
            y[hi_tail] = pan.edges[-1] + np.log((1 - u[hi_tail]) / tr) / self._slope_r if tr > 0 else pan.edges[-1]
        mid = ~(lo_tail | hi_tail)
        if mid.any():
            um = u[mid]
            i = np.clip(np.searchsorted(self._cdf_edges, um, side="right") - 1, 0, len(pan.mid) - 1)
            target = (um - self._cdf_edges[i]) * self._Z
            coefs = self._cf[:, i]
            lo, hi = -np.ones_like(um), np.ones_like(um)
            for _ in range(55):
                t = (lo + hi) / 2
                below = _cheb_eval(coefs, t) < target
                lo, hi = np.where(below, t, lo), np.where(below, hi, t)
            y[mid] = pan.mid[i] + pan.half[i] * (lo + hi) / 2
        out = self.coord.m(y)
        out = np.where(u <= 0, self.support[0], np.where(u >= 1, self.support[1], out))
        return out.reshape(shape)

    def isf(self, u):
        return self.ppf(1.0 - np.asarray(u, np.float64))

    def mean(self):
        return self._mean

    def var(self):
        return self._var

    def std(self):
        return math.sqrt(self._var)

    def median(self):
        return float(self.ppf(0.5))

    def __repr__(self):
        s = self.sde
        return (f"StationaryLaw(L={s.depth}, s={s.s:g}, λ={s.input_var:g}, σ_ε={s.label_noise:g}, T={s.temperature:g}, "
                f"noise={s.noise!r}; mean={self._mean:.6g}, var={self._var:.6g})")

    def moment(self, k, about=0.0):
        """``E[(m − about)^k]`` for an integer ``k ≥ 1``; ``inf`` when the power-law tail makes it diverge
        (exact noise: ``p ~ m^{3/L−5}``, so ``k ≥ 4 − 3/L`` for ``L ≥ 2``; ``L = 1``: ``p ~ |m|^{−2−1/(2λT)}``, so
        ``k ≥ 1 + 1/(2λT)``), however small the tail's amplitude."""
        if self.sde.noise == "exact":
            L = self.sde.depth
            bound = 4 - 3 / L if L >= 2 else 1 + 1 / (2 * self.sde.input_var * self.sde.temperature)
            if k >= bound:
                return math.inf
        return self._moment_about(about, k)

    def mode(self):
        """Most probable ``m`` (global maximum of ``p(m)``), by a bounded search around the largest node value.
        For ``L = 2`` with ``κ < 3/2`` the density diverges at ``0⁺`` and the result is the smallest grid point
        (any interior local maximum, [Z]'s regime IIb, is then not returned)."""
        from scipy import optimize

        m_nodes = self._m_nodes.ravel()
        lp = self.logpdf(m_nodes)
        j = int(np.nanargmax(lp))
        lo, hi = m_nodes[max(j - 2, 0)], m_nodes[min(j + 2, m_nodes.size - 1)]
        res = optimize.minimize_scalar(lambda x: -float(self.logpdf(np.array([x]))[0]), bounds=(min(lo, hi),
                                       max(lo, hi)), method="bounded", options={"xatol": 1e-13 * abs(m_nodes[j])})
        return float(res.x)

    def rvs(self, size, rng=None):
        """Exact samples by inversion."""
        rng = np.random.default_rng(rng)
        return self.ppf(rng.random(size))

    def interval(self, confidence):
        a = (1 - confidence) / 2
        return tuple(self.ppf(np.array([a, 1 - a])))

    def grid(self, n=400, lo=1e-4, hi=1 - 1e-4):
        """``n`` points spanning the ``[lo, hi]`` quantile range (for plots)."""
        a, b = self.ppf(np.array([lo, hi]))
        if self.coord.log:
            return np.geomspace(a, b, n) if b / a > 20 else np.linspace(a, b, n)
        return np.linspace(a, b, n)


def stationary_law(depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
                   noise="exact"):
    """The stationary law of one balanced mode: a :class:`StationaryLaw`, or a :class:`PointMass` when it
    collapses (``σ_ε = 0`` → ``δ(m − s)``, §9.3; ``s = 0`` → ``δ(m)``; ``L = 2``, ``T ≥ T_c`` → ``δ(m)``, §8).

    ``noise="label"`` replaces ``D`` by its label part ``λσ_ε²`` (the law of §9.4, computed by quadrature).
    Give ``temperature = η/(2B)`` or ``lr`` and ``batch_size``."""
    T = _temperature(temperature, lr, batch_size)
    sde = ModeSDE(int(depth), float(s), float(input_var), float(label_noise), T, noise)
    if s == 0:
        return PointMass(0.0, "s = 0: the density is not integrable at 0 (§9.3); SGD keeps the mode at 0")
    if label_noise == 0:
        return PointMass(s, "no label noise: SGD converges to the gradient-flow fixed point m = s (§9.3)")
    if depth == 2:
        Tc = critical_temperature(2, s, input_var, label_noise) if noise == "exact" else s / label_noise**2
        if T >= Tc:
            return PointMass(0.0, f"L = 2 and T = {T:.6g} >= T_c = {Tc:.6g}: stochastic collapse to 0 (§8)")
    return StationaryLaw(sde)


def log_density_unnormalised(m, depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None,
                             batch_size=1, noise="exact"):
    """The §9.1 log-density ``(3/L−3) ln m − ln D(m) + Φ(m)`` with ``Φ(s) = 0``, by the panel quadrature
    (no normalisation needed, so it also works where the law is not normalisable, away from ``s`` if
    ``σ_ε = 0``)."""
    T = _temperature(temperature, lr, batch_size)
    sde = ModeSDE(int(depth), float(s), float(input_var), float(label_noise), T, noise)
    m = np.atleast_1d(np.asarray(m, np.float64))
    coord = _Coord(sde, math.sqrt(sde.label_temperature) if depth == 1 and label_noise > 0 else 1.0)
    y = coord.y(m)
    centre = math.log(s) if coord.log else 0.0
    lo, hi = min(y.min(), centre) - 1e-3, max(y.max(), centre) + 1e-3
    pan = _Panels(sde, coord, _initial_edges(centre, 0.01, lo, hi, growth=1.05, w_max=0.05), centre)
    return pan.log_unnorm(y) - coord.log_jac(y)


# ---------------------------------------------------------------------------------------------------------
# Distances and the Boltzmann error


def ks_between(cdf_a, cdf_b, grid):
    """``sup |F_a − F_b|`` over a dense ``grid`` of points, refined by a bounded search around the maximum."""
    from scipy import optimize

    grid = np.sort(np.asarray(grid, np.float64))
    d = np.abs(cdf_a(grid) - cdf_b(grid))
    j = int(np.argmax(d))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    if hi > lo:
        res = optimize.minimize_scalar(lambda x: -abs(float(cdf_a(np.array([x]))[0] - cdf_b(np.array([x]))[0])),
                                       bounds=(lo, hi), method="bounded", options={"xatol": 1e-12 * max(abs(hi), 1)})
        return max(float(d[j]), -float(res.fun))
    return float(d[j])


def _law_grid(law, n=4000):
    qs = law.ppf(np.linspace(1e-7, 1 - 1e-7, n))
    return np.unique(qs)


def boltzmann_error(depth, s, input_var=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """How far the exact law is from its approximations, at one temperature. Returns a dict with ``T``,
    ``T_eps``, ``T_eff`` (§9.5), ``h`` (for ``lr``), the exact ``mean``/``var``, and

    * ``ks_gauss``: KS(exact, ``N(s, L s^q T_ε)``); ``ks_gauss_shifted``: the same centred at the §9.6 mean;
    * ``mean_err``: ``E[m] − s`` (Boltzmann puts the mean at ``s``); ``mean_err_shift``: ``E[m] − (s − shift)``;
    * ``var_rel_err``: ``Var[m]/(L s^q T_ε) − 1``; ``var_rel_err2``: against the order-2 expansion;
    * ``ks_gamma`` (``L = 2``): KS(exact, Gamma of §9.4); ``ks_label`` (``L ≥ 3``): KS(exact, §9.4 law)."""
    T = _temperature(temperature, lr, batch_size)
    law = stationary_law(depth, s, input_var, label_noise, T)
    if not law.normalisable:
        raise ValueError(f"no continuous stationary law here: {law}")
    grid = _law_grid(law)
    g = boltzmann_law(depth, s, input_var, label_noise, T)
    gs = boltzmann_law(depth, s, input_var, label_noise, T, shifted=True)
    mean, var = law.mean(), law.var()
    m2, v2 = asymptotic_moments(depth, s, input_var, label_noise, T, order=2)
    V = boltzmann_temperature(depth, s, input_var, label_noise, T) / input_var
    out = {
        "depth": depth, "s": s, "input_var": input_var, "label_noise": label_noise, "T": T,
        "T_eps": label_noise**2 * T, "T_eff": boltzmann_temperature(depth, s, input_var, label_noise, T),
        "h": 2 * T * batch_size * depth * input_var * s ** (2 - 2 / depth),  # η L λ s^q with η = 2BT
        "mean": mean, "var": var,
        "ks_gauss": ks_between(law.cdf, g.cdf, grid),
        "ks_gauss_shifted": ks_between(law.cdf, gs.cdf, grid),
        "mean_err": mean - s,
        "mean_err_shift": mean - (s - mean_shift(depth, s, label_noise, T)),
        "mean_err_order2": mean - m2,
        "var_rel_err": var / V - 1.0,
        "var_rel_err2": var / v2 - 1.0,
    }
    if depth == 2 and label_noise**2 * T < s:
        out["ks_gamma"] = ks_between(law.cdf, gamma_law(s, label_noise, T).cdf, grid)
    elif depth >= 3:
        lab = stationary_law(depth, s, input_var, label_noise, T, noise="label")
        out["ks_label"] = ks_between(law.cdf, lab.cdf, grid)
    return out


def boltzmann_error_table(depth, s, input_var=1.0, label_noise=0.5, temperatures=(1e-3, 3e-3, 1e-2, 3e-2)):
    """:func:`boltzmann_error` for each temperature ``T = η/(2B)`` (a list of dicts)."""
    return [boltzmann_error(depth, s, input_var, label_noise, T) for T in temperatures]
