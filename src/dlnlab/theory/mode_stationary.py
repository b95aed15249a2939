"""The exact stationary law of one aligned, balanced mode under the SGD SDE, by quadrature (``sgd_noise.md`` §9).

The zero-flux (stationary Fokker–Planck) density of the balanced mode (§9.1; derived), ``q = 2 − 2/L``::

    p(m) ∝ m^{3/L − 3} D(m)^{−1} exp(Φ(m)),     Φ(m) = λ/(L T) ∫_s^m (s − u) / (u^q D(u)) du,   m > 0,

with ``D(m) = 2λ²(m − s)² + λσ_ε²`` and ``T = η/(2B)`` (the SDE: :class:`~dlnlab.theory.mode_sde.ModeSDE`).

What is here
------------
* :func:`stationary_law` → :class:`StationaryLaw` (the exact law by quadrature: ``logpdf``, ``pdf``, ``cdf``,
  ``sf``, ``ppf``, ``mean``, ``var``, ``moment``, ``rvs``, ...) or :class:`PointMass` when the law collapses:
  no label noise → ``δ(m − s)`` (GF fixed point, §9.3); ``s = 0`` → ``δ(m)``; ``L = 2`` with ``T ≥ T_c`` →
  ``δ(m)`` (§8, §9.1); :func:`log_density_unnormalised` (the density without normalising it);
* :func:`ks_between` (sup-distance between two CDFs), :func:`boltzmann_error` and :func:`boltzmann_error_table`
  (how wrong the closed-form approximations of :mod:`dlnlab.theory.mode_stationary_forms` are, as a function of
  temperature).

Numerics
--------
The law is computed in ``y = ln m`` (``L ≥ 2``; for ``L = 1`` the support is ℝ and ``y = asinh((m − s)/c)``;
:class:`~dlnlab.theory.mode_sde.ModeCoordinate`). In ``y`` the density is smooth, its power-law tails become
exponential and the ``L = 2`` behaviour at ``0⁺``, ``p ~ m^{κ − 3/2}``, becomes ``e^{(κ − 1/2) y}``. ``y`` is cut
into panels (finer than the bulk width, the scale ``σ_ε/sqrt(2λ)`` of ``D`` near ``s``, and such that ``log p``
varies by at most a few units per panel). On each panel ``dΦ/dy`` is interpolated on 32 Chebyshev points and
integrated exactly (Φ to ~1e-15 relative), the density ``exp(log p)`` likewise (CDF and normalisation by the
integral of the interpolant; the engine is :mod:`dlnlab.theory._quadrature`). Panels where the density (times
``1 + m²``) is below ``e^{−120}`` of its maximum are dropped; what lies beyond the first and last kept panel is
added analytically as an exponential tail in ``y`` with the local slope (exact to ``O(m_lo)`` for the ``L = 2``
power law at ``0⁺``, whose mass can be ``O(1)`` near ``T_c``). Everything is evaluated in log space (no overflow
for ``m`` from ``1e−300 s`` to ``1e100 s``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize

from ..conventions import step_ratio
from ..errors import ConfigError
from ._quadrature import Panels, anchored_sums, by_region, evaluate, first_kind_rule, graded_edges
from .mode_sde import ModeCoordinate, ModeSDE, potential_slope, resolve_temperature
from .mode_stationary_forms import (
    asymptotic_moments,
    boltzmann_law,
    boltzmann_temperature,
    critical_temperature,
    gamma_law,
    mean_shift,
)

_RULE = first_kind_rule(32)  # Chebyshev points per panel
_MARGIN = 120.0  # panels whose weight is below e^-MARGIN of the maximum are dropped
_MAX_DLOG = 3.0  # largest variation of log p inside one panel
_W_MAX = 0.25  # largest panel width in y
_Y_LEFT, _Y_RIGHT = 690.0, 230.0  # search range below / above ln s (L >= 2); |y| <= 300 for L = 1


# ---------------------------------------------------------------------------------------------------------
# The density on panels in y


def _direct_log(sde: ModeSDE, coord: ModeCoordinate, y):
    """``(3/L − 3) ln m − ln D(m) + ln dm/dy`` (the part of ``log p_y`` that is not Φ)."""
    m = coord.m(y)
    out = -sde.log_D(m) + coord.log_jac(y)
    if coord.log:
        out = out + (3.0 / sde.depth - 3.0) * np.asarray(y, np.float64)
    return out


def _direct_dlog(sde: ModeSDE, coord: ModeCoordinate, y):
    """d/dy of :func:`_direct_log`."""
    m = coord.m(y)
    if coord.log:
        return 3.0 / sde.depth - 2.0 - sde.dlog_D(m) * m
    dm = coord.c * np.cosh(y)
    return -sde.dlog_D(m) * dm + np.tanh(y)


class _PhiPanels(Panels):
    """Φ and the density on panels in ``y`` (see the module docstring), Φ anchored to ``phi_ref`` at ``y_ref``."""

    def __init__(self, sde: ModeSDE, coord: ModeCoordinate, edges, y_ref, phi_ref=0.0):
        super().__init__(edges, _RULE)
        self.sde, self.coord = sde, coord
        phi = potential_slope(sde, coord, self.nodes)
        self._phi_nodes_rel = self.antiderivative(phi)  # Φ − Φ(a) at the nodes
        self.cphi = self.antiderivative_coefs(phi)  # Φ − Φ(a) on each panel
        # Φ at the edges, accumulated outward from the edge nearest y_ref (never subtract two large partial sums)
        k = self.nearest_edge(y_ref)
        phi_e = anchored_sums(evaluate(self.cphi, 1.0), k)
        with np.errstate(invalid="ignore", over="ignore"):
            self.phi_edges = phi_ref + phi_e
            if abs(self.edges[k] - y_ref) > 0:  # correct the anchor when y_ref is not an edge
                self.phi_edges = self.phi_edges - self._phi_inside(np.array([y_ref]))[0] + phi_ref
        # Φ at the Chebyshev nodes of each panel: Φ(a) + antiderivative at t_j
        with np.errstate(invalid="ignore"):
            self.log_nodes = _direct_log(sde, coord, self.nodes) + (self.phi_edges[:-1, None] + self._phi_nodes_rel)

    def _phi_inside(self, y):
        i, t = self.locate(y)
        return self.phi_edges[i] + evaluate(self.cphi[:, i], t)

    def log_unnorm(self, y):
        """``log p_y`` (unnormalised) at ``y`` inside the panels."""
        return _direct_log(self.sde, self.coord, y) + self._phi_inside(y)

    def dlog(self, y):
        return _direct_dlog(self.sde, self.coord, y) + potential_slope(self.sde, self.coord, y)


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


def _refined_panels(sde: ModeSDE, coord: ModeCoordinate, edges, centre):
    """Panels on ``edges``, trimmed to those that carry weight and split where ``log p`` varies too fast
    (at most 12 rounds), with Φ anchored at ``centre`` (``Φ(ln s) = 0``)."""
    pan = _PhiPanels(sde, coord, edges, centre)
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
        pan = _PhiPanels(sde, coord, new_edges, pan.edges[k], pan.phi_edges[k])
        if np.all(nsplit == 1):
            break
    return pan


class StationaryLaw:
    """The exact stationary law of one mode (§9.1), normalised, by quadrature (see the module docstring).

    Attributes: ``sde`` (the :class:`~dlnlab.theory.mode_sde.ModeSDE`), ``log_norm`` (log of the normaliser of
    :meth:`log_unnormalised`), ``tail_mass`` (mass added analytically beyond the panels, left and right).
    Methods take arrays of ``m``; ``cdf``/``sf`` are accurate to ~1e−14 absolute, ``logpdf`` to ~1e−13."""

    normalisable = True

    def __init__(self, sde: ModeSDE):
        self.sde = sde
        L, s, lam, se, T = sde.depth, sde.s, sde.input_variance, sde.label_noise, sde.temperature
        for name, v in (("s", s), ("label_noise", se)):
            if not v > 0:
                raise ConfigError(name, v, "a number > 0 for StationaryLaw (stationary_law handles 0: a point mass)")
        if L == 2 and sde.noise == "exact" and not T < (Tc := critical_temperature(2, s, lam, se)):
            raise ConfigError("temperature", T, f"< T_c = {Tc!r} at L = 2 (at and above it the law is not "
                                                "normalisable: stationary_law gives the point mass)")
        if L == 2 and sde.noise == "label" and not sde.label_temperature < s:
            raise ConfigError("temperature", T, f"< s / label_noise² = {s / se**2!r} for the label-noise law at L = 2 "
                                                "(T_ε = σ_ε² T < s)")
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
        self.coord = coord = ModeCoordinate(sde, c)
        w0 = min(0.05, sd_y / 4, feature / 4 if sde.noise == "exact" else np.inf)
        self._pan = _refined_panels(sde, coord, graded_edges(centre, w0, lo, hi, w_max=_W_MAX), centre)
        self._finish()

    # -- construction -------------------------------------------------------------------------------------

    def _finish(self):
        pan, coord = self._pan, self.coord
        ln = pan.log_nodes
        lmax = np.nanmax(ln)
        f = np.exp(ln - lmax)  # (P, n)
        f = np.where(np.isfinite(f), f, 0.0)
        self._cf = pan.antiderivative_coefs(f)  # ∫_a^y f
        masses = evaluate(self._cf, 1.0)
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
        self._w = (f / Z) * (pan.half[:, None] * _RULE.weights[None, :])  # probability weights of the nodes
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
        """``log p_y``: the panels inside, the exact formula by direct quadrature outside them."""
        pan = self._pan

        def outside(v):
            return [self._log_outside(x) for x in v]

        return by_region(y, pan.edges[0], pan.edges[-1], pan.log_unnorm, outside, outside)

    def _log_outside(self, y):
        pan = self._pan
        end = pan.edges[0] if y < pan.edges[0] else pan.edges[-1]
        if not np.isfinite(y):
            return -np.inf
        val, _ = integrate.quad(lambda v: float(potential_slope(self.sde, self.coord, np.array(v))), end, y,
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

    def _tail_probability_y(self, y, upper):
        """``P(Y ≤ y)``, or ``P(Y > y)`` if ``upper``: the panels' CDF inside, exponential tails outside."""
        pan = self._pan
        e0, e1 = pan.edges[0], pan.edges[-1]

        def inside(v):
            i, t = pan.locate(v)
            part = evaluate(self._cf[:, i], t) / self._Z  # mass of panel i left of v
            return self._sf_edges[i + 1] + (self._masses[i] - part) if upper else self._cdf_edges[i] + part

        def left(v):
            with np.errstate(over="ignore"):
                return self.tail_mass[0] * np.exp(self._slope_l * (v - e0))

        def right(v):
            return self.tail_mass[1] * np.exp(self._slope_r * (v - e1))

        if upper:
            out = by_region(y, e0, e1, inside, lambda v: 1.0 - np.clip(left(v), 0.0, 1.0), right)
        else:
            out = by_region(y, e0, e1, inside, left, lambda v: 1.0 - np.clip(right(v), 0.0, 1.0))
        return np.clip(out, 0.0, 1.0)

    def _tail_probability(self, m, upper):
        m = np.asarray(m, np.float64)
        if not self.coord.log:
            return self._tail_probability_y(self.coord.y(m), upper)
        out = np.full(m.shape, 1.0 if upper else 0.0)
        pos = m > 0
        out[pos] = self._tail_probability_y(np.log(m[pos]), upper)
        return out

    def cdf(self, m):
        return self._tail_probability(m, upper=False)

    def sf(self, m):
        return self._tail_probability(m, upper=True)

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
                below = evaluate(coefs, t) < target
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
        return (f"StationaryLaw(L={s.depth}, s={s.s:g}, λ={s.input_variance:g}, σ_ε={s.label_noise:g}, "
                f"T={s.temperature:g}, noise={s.noise!r}; mean={self._mean:.6g}, var={self._var:.6g})")

    def moment(self, k, about=0.0):
        """``E[(m − about)^k]`` for an integer ``k ≥ 1``; ``inf`` when the power-law tail makes it diverge
        (exact noise: ``p ~ m^{3/L−5}``, so ``k ≥ 4 − 3/L`` for ``L ≥ 2``; ``L = 1``: ``p ~ |m|^{−2−1/(2λT)}``, so
        ``k ≥ 1 + 1/(2λT)``), however small the tail's amplitude."""
        if self.sde.noise == "exact":
            L = self.sde.depth
            bound = 4 - 3 / L if L >= 2 else 1 + 1 / (2 * self.sde.input_variance * self.sde.temperature)
            if k >= bound:
                return math.inf
        return self._moment_about(about, k)

    def mode(self):
        """Most probable ``m`` (global maximum of ``p(m)``), by a bounded search around the largest node value.
        For ``L = 2`` with ``κ < 3/2`` the density diverges at ``0⁺`` and the result is the smallest grid point
        (any interior local maximum, [Z]'s regime IIb, is then not returned)."""
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


def stationary_law(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
                   noise="exact"):
    """The stationary law of one balanced mode: a :class:`StationaryLaw`, or a :class:`PointMass` when it
    collapses (``σ_ε = 0`` → ``δ(m − s)``, §9.3; ``s = 0`` → ``δ(m)``; ``L = 2``, ``T ≥ T_c`` → ``δ(m)``, §8).

    ``noise="label"`` replaces ``D`` by its label part ``λσ_ε²`` (the law of §9.4, computed by quadrature).
    Give ``temperature = η/(2B)`` or ``lr`` and ``batch_size``."""
    T = resolve_temperature(temperature, lr, batch_size)
    sde = ModeSDE(int(depth), float(s), float(input_variance), float(label_noise), T, noise)
    if s == 0:
        return PointMass(0.0, "s = 0: the density is not integrable at 0 (§9.3); SGD keeps the mode at 0")
    if label_noise == 0:
        return PointMass(s, "no label noise: SGD converges to the gradient-flow fixed point m = s (§9.3)")
    if depth == 2:
        Tc = critical_temperature(2, s, input_variance, label_noise) if noise == "exact" else s / label_noise**2
        if T >= Tc:
            return PointMass(0.0, f"L = 2 and T = {T:.6g} >= T_c = {Tc:.6g}: stochastic collapse to 0 (§8)")
    return StationaryLaw(sde)


def log_density_unnormalised(m, depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None,
                             batch_size=1, noise="exact"):
    """The §9.1 log-density ``(3/L−3) ln m − ln D(m) + Φ(m)`` with ``Φ(s) = 0``, by the panel quadrature
    (no normalisation needed, so it also works where the law is not normalisable, away from ``s`` if
    ``σ_ε = 0``)."""
    T = resolve_temperature(temperature, lr, batch_size)
    sde = ModeSDE(int(depth), float(s), float(input_variance), float(label_noise), T, noise)
    m = np.atleast_1d(np.asarray(m, np.float64))
    coord = ModeCoordinate(sde, math.sqrt(sde.label_temperature) if depth == 1 and label_noise > 0 else 1.0)
    y = coord.y(m)
    centre = math.log(s) if coord.log else 0.0
    lo, hi = min(y.min(), centre) - 1e-3, max(y.max(), centre) + 1e-3
    pan = _PhiPanels(sde, coord, graded_edges(centre, 0.01, lo, hi, growth=1.05, w_max=0.05), centre)
    return pan.log_unnorm(y) - coord.log_jac(y)


# ---------------------------------------------------------------------------------------------------------
# Distances and the Boltzmann error


def ks_between(cdf_a, cdf_b, grid):
    """``sup |F_a − F_b|`` over a dense ``grid`` of points, refined by a bounded search around the maximum."""
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


def boltzmann_error(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1):
    """How far the exact law is from its approximations, at one temperature. Returns a dict with ``T``,
    ``T_eps``, ``T_eff`` (§9.5), ``h`` (for ``lr``), the exact ``mean``/``var``, and

    * ``ks_gauss``: KS(exact, ``N(s, L s^q T_ε)``); ``ks_gauss_shifted``: the same centred at the §9.6 mean;
    * ``mean_err``: ``E[m] − s`` (Boltzmann puts the mean at ``s``); ``mean_err_shift``: ``E[m] − (s − shift)``;
    * ``var_rel_err``: ``Var[m]/(L s^q T_ε) − 1``; ``var_rel_err2``: against the order-2 expansion;
    * ``ks_gamma`` (``L = 2``): KS(exact, Gamma of §9.4); ``ks_label`` (``L ≥ 3``): KS(exact, §9.4 law)."""
    T = resolve_temperature(temperature, lr, batch_size)
    law = stationary_law(depth, s, input_variance, label_noise, T)
    if not law.normalisable:
        raise ConfigError("temperature", T, f"parameters with a continuous stationary law (here: {law})")
    grid = _law_grid(law)
    g = boltzmann_law(depth, s, input_variance, label_noise, T)
    gs = boltzmann_law(depth, s, input_variance, label_noise, T, shifted=True)
    mean, var = law.mean(), law.var()
    m2, v2 = asymptotic_moments(depth, s, input_variance, label_noise, T, order=2)
    T_eff = boltzmann_temperature(depth, s, input_variance, label_noise, T)
    out = {
        "depth": depth, "s": s, "input_variance": input_variance, "label_noise": label_noise, "T": T,
        "T_eps": label_noise**2 * T, "T_eff": T_eff,
        "h": step_ratio(2 * T * batch_size, depth, input_variance, s),  # η = 2BT
        "mean": mean, "var": var,
        "ks_gauss": ks_between(law.cdf, g.cdf, grid),
        "ks_gauss_shifted": ks_between(law.cdf, gs.cdf, grid),
        "mean_err": mean - s,
        "mean_err_shift": mean - (s - mean_shift(depth, s, label_noise, T)),
        "mean_err_order2": mean - m2,
        "var_rel_err": var / (T_eff / input_variance) - 1.0,
        "var_rel_err2": var / v2 - 1.0,
    }
    if depth == 2 and label_noise**2 * T < s:
        out["ks_gamma"] = ks_between(law.cdf, gamma_law(s, label_noise, T).cdf, grid)
    elif depth >= 3:
        lab = stationary_law(depth, s, input_variance, label_noise, T, noise="label")
        out["ks_label"] = ks_between(law.cdf, lab.cdf, grid)
    return out


def boltzmann_error_table(depth, s, input_variance=1.0, label_noise=0.5, temperatures=(1e-3, 3e-3, 1e-2, 3e-2)):
    """:func:`boltzmann_error` for each temperature ``T = η/(2B)`` (a list of dicts)."""
    return [boltzmann_error(depth, s, input_variance, label_noise, T) for T in temperatures]
