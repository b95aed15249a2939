"""The normalised stationary law of SGD in [Z]'s diagonal linear networks (``noise_balance.md`` §§6–12).

:class:`DiagonalStationaryLaw` normalises the densities of :mod:`dlnlab.theory.diagonal_stationary_forms` (the
``L = 1`` and ``L = 2`` closed forms, or the general-depth integral) by spectral (Chebyshev panel) quadrature in
``y = ln v`` down to ``v = e^{−690}`` (engine: :mod:`dlnlab.theory._quadrature`), adding the analytic piece below
(the density is ``∝ v^{e}`` there, ``e → −1`` as ``T → T_c``; §12), and gives pdf/cdf/ppf, mean, median,
variance, moments, mode and KS distances; :func:`stationary_table` tabulates it over temperatures.
"""

from __future__ import annotations

import itertools
import math
from numbers import Real

import numpy as np
from scipy import integrate, optimize

from ..config import Interval, Options
from ..errors import ConfigError
from ._quadrature import Panels, by_region, lobatto_rule, refined_edges
from .balance import DataConstants
from .diagonal_stationary_forms import (
    exponent_at_zero,
    general_integrand,
    is_normalisable,
    log_density_depth1,
    log_density_depth2,
    moment_exists,
    resolve_constants,
    tail_exponent,
)

_RULE = lobatto_rule(17)  # Chebyshev–Lobatto nodes per panel (the panel edges are nodes)
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
            raise ConfigError("depth", depth, "an integer >= 1")
        temperature = Interval(Real, 0, None, closed="neither").check("temperature", temperature)
        if n_paths < 1 or int(n_paths) != n_paths:
            raise ConfigError("n_paths", n_paths, "an integer >= 1")
        Options(1, -1).check("sign", sign)
        self.depth, self.temperature, self.n_paths = int(depth), float(temperature), int(n_paths)
        self.constants = resolve_constants(constants)
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
            I = self._panels.cumulative(general_integrand(z, L, cb, self.n_paths, self.weight_decay),
                                        anchor=self._panels.nearest_edge(0.0))
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
            self._panels = Panels(refined_edges(-_Z_MAX, _Z_MAX, width, zc, min(width, sdz / 4), 12 * sdz), _RULE)
        else:
            yc, sdy = math.log(vstar), sd / vstar
            self._panels = Panels(refined_edges(_Y_MIN, _Y_MAX, width, yc, min(width, sdy / 4), 12 * sdy), _RULE)
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

    def _probability_z(self, z, upper):
        """``P(Z ≤ z)``, or ``P(Z > z)`` if ``upper``: the panel interpolant inside the grid, the analytic pieces
        (``∝ e^{rate·(z − edge)}``) outside it."""
        pan = self._panels
        e0, e1 = pan.edges[0], pan.edges[-1]

        def below(x):  # no analytic piece below the grid without a low rate (L ≥ 3)
            low = self._low_mass * np.exp(self._low_rate * (x - e0)) if self._low_rate else np.zeros_like(x)
            return 1 - low if upper else low

        def above(x):
            high = self._high_mass * np.exp(-self._high_rate * (x - e1))
            return high if upper else 1 - high

        nodes = self._sf_nodes if upper else self._cdf_nodes
        return np.clip(by_region(z, e0, e1, lambda x: pan.interpolate(nodes, x), below, above), 0, 1)

    def _probability(self, v, upper):
        v = np.asarray(v, np.float64)
        if self.collapsed:
            return np.where(v >= 0, 0.0 if upper else 1.0, 1.0 if upper else 0.0)
        if self.depth == 1:
            return self._probability_z(np.arcsinh(v), upper)
        return self._probability_z(self._z_of(v), upper if self.sign > 0 else not upper)

    def cdf(self, v):
        """``P(V ≤ v)``."""
        return self._probability(v, upper=False)

    def sf(self, v):
        """``P(V > v)``, accurate in the far right tail."""
        return self._probability(v, upper=True)

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
        edges = self._panels.edges
        cdf_edges = np.concatenate([self._cdf_nodes[:, 0], [self._cdf_nodes[-1, -1]]])
        for i, ui in enumerate(u):
            if ui <= self._low_mass:
                out[i] = edges[0] + math.log(ui / self._low_mass) / self._low_rate if ui > 0 else -np.inf
            elif ui >= 1 - self._high_mass:
                out[i] = edges[-1] + math.log(self._high_mass / (1 - ui)) / self._high_rate if ui < 1 else np.inf
            else:
                p = int(np.clip(np.searchsorted(cdf_edges, ui, side="right") - 1, 0, len(edges) - 2))

                def f(zz, ui=ui):
                    return float(self._panels.interpolate(self._cdf_nodes, np.array([zz]))[0]) - ui

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
            raise ConfigError("depth" if self.depth < 2 else "sign", self.depth if self.depth < 2 else self.sign,
                              "a law of depth >= 2 on the positive branch (sign = +1): truncated_moment is "
                              "implemented only there")
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
        return float(self._probability_z(np.log(np.asarray([eps], np.float64)), upper=False)[0])

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
