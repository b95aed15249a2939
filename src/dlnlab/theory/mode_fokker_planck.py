"""Time-dependent Fokker–Planck equation of one aligned, balanced mode, and the time a mode takes to be learned.

The per-layer SDE of a balanced mode (``sgd_noise.md`` §5.2; ``T = η/(2B)``, ``D(m) = 2λ²(m−s)² + λσ_ε²``) in the
coordinate ``y = ln m = L ln a`` is, by Itô's lemma,

    dy = μ(y) dt + sqrt(b(y)) dB,   μ = Lλ m^{1−2/L}(s − m) − T L m^{2−4/L} D(m),   b = 2T L² m^{2−4/L} D(m),

and its density ``ρ(y, t)`` obeys ``∂_t ρ = −∂_y J``, ``J = μρ − ½∂_y(bρ)``. (The density of ``m`` is ``ρ/m``.)

Discretisation (finite volumes; beyond the paper)
-------------------------------------------------
* Cells in ``y`` (uniform by default, any edges accepted); the unknowns are the cell *probabilities* ``P_i``.
* Flux between neighbouring cells by **exponential fitting** (Scharfetter–Gummel): writing
  ``J = −½ ψ ∂_y(bρ/ψ)`` with ``ψ = exp ∫ 2μ/b``, and taking ``ln ψ`` linear between centres,

      J_{i+½} = [B(−X) b_i ρ_i − B(X) b_{i+1} ρ_{i+1}] / (2 d),   X = ∫_{y_i}^{y_{i+1}} 2μ/b dy,  B(x) = x/(eˣ − 1),

  with ``X`` by 16-point Gauss–Legendre (``2μ/b = dΦ/dy − 1/L``, the integrand of the stationary law).
  The discrete zero-flux state is *exactly* the stationary law sampled at the centres; the scheme is upwind
  where the drift dominates, second order where diffusion does, and positive (an M-matrix).
* ``dP/dt = A P`` with a tridiagonal generator whose columns sum to 0, so probability is conserved to
  round-off. Zero-flux boundaries; optionally an **absorbing** right boundary at ``m = m_target`` whose outflux
  goes into an extra "absorbed" state (still tridiagonal, still conservative): survival = 1 − absorbed.
* Time stepping: TR-BDF2 (L-stable, second order), started by 4 backward-Euler sub-steps (damps the initial
  point mass); every stage is a tridiagonal solve (LAPACK ``gttrf``/``gttrs``, factorised once per step size)
  with column sums 1, so ``Σ P`` is conserved stage by stage.

Limits: ``L ≥ 2`` (``m > 0``). With ``σ_ε = 0`` the diffusion vanishes at ``m = s``: keep the domain below
``ln s`` (the process started below ``s`` never crosses it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..errors import ConfigError
from .mode_sde import ModeCoordinate, ModeSDE, potential_slope, resolve_temperature

_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)


def _bernoulli(x):
    """``B(x) = x/(eˣ − 1)`` without cancellation or overflow."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    small = np.abs(x) < 1e-6
    out[small] = 1.0 - x[small] / 2 + x[small] ** 2 / 12
    big = ~small
    with np.errstate(over="ignore"):
        out[big] = x[big] / np.expm1(x[big])
    out[big & (x > 700)] = 0.0
    out[big & (x < -700)] = -x[big & (x < -700)]
    return out


def diffusion_y(sde: ModeSDE, y):
    """Diffusion coefficient of ``y = ln m``: ``b(y) = 2T L² m^{2−4/L} D(m)``."""
    L = sde.depth
    return 2 * sde.temperature * L**2 * np.exp((2 - 4 / L) * np.asarray(y, np.float64) + sde.log_D(np.exp(y)))


def drift_y(sde: ModeSDE, y):
    """Itô drift of ``y = ln m``: ``μ(y) = Lλ m^{1−2/L}(s − m) − T L m^{2−4/L} D(m)``."""
    L = sde.depth
    y = np.asarray(y, np.float64)
    m = np.exp(y)
    return (L * sde.input_variance * np.exp((1 - 2 / L) * y) * (sde.s - m)
            - sde.temperature * L * np.exp((2 - 4 / L) * y + sde.log_D(m)))


@dataclass
class FokkerPlanckSolution:
    """Cell probabilities ``P[k, i]`` at ``times[k]`` on cells with ``edges`` in ``y = ln m``.

    ``absorbed[k]`` is the probability absorbed at the right boundary by ``times[k]`` (0 without one) and
    ``outflux[k]`` the absorption rate ``−dS/dt`` (the first-passage density) at ``times[k]``."""

    times: np.ndarray
    edges: np.ndarray
    P: np.ndarray
    absorbed: np.ndarray
    outflux: np.ndarray

    @property
    def centres(self):
        return (self.edges[:-1] + self.edges[1:]) / 2

    @property
    def m_centres(self):
        return np.exp(self.centres)

    def total_mass(self):
        """``Σ_i P_i + absorbed`` at each time (1 to round-off)."""
        return self.P.sum(axis=1) + self.absorbed

    def survival(self):
        """Mass not yet absorbed, ``S(t) = Σ_i P_i``."""
        return self.P.sum(axis=1)

    def density_y(self, k):
        """Density of ``y = ln m`` in each cell at ``times[k]``."""
        return self.P[k] / np.diff(self.edges)

    def density_m(self, k):
        """``(m_centres, density of m)`` at ``times[k]`` (``ρ_y / m``)."""
        return self.m_centres, self.density_y(k) / self.m_centres

    def cdf(self, m, k):
        """``P(m(t_k) ≤ m)`` among all paths (absorbed mass counts as above the boundary), piecewise linear in
        ``y`` inside cells."""
        y = np.log(np.asarray(m, np.float64))
        F = np.concatenate([[0.0], np.cumsum(self.P[k])])
        return np.interp(y, self.edges, F, left=0.0, right=F[-1])

    def mean(self, k, fn=lambda m: m):
        """``E[fn(m)]`` over the surviving mass at ``times[k]`` (cell-centre rule)."""
        P = self.P[k]
        return float(np.sum(P * fn(self.m_centres)) / P.sum())

    def quantile(self, u, k):
        F = np.concatenate([[0.0], np.cumsum(self.P[k])])
        return np.exp(np.interp(np.asarray(u, np.float64) * F[-1], F, self.edges))


class ModeFokkerPlanck:
    """Fokker–Planck solver for one mode (see the module docstring).

    Parameters: ``depth`` (``L ≥ 2``), ``s``, ``input_variance``, ``label_noise``, and ``temperature = η/(2B)`` (or
    ``lr`` and ``batch_size``); the domain ``m_min < m < m_max`` with ``n_cells`` uniform cells in ``ln m`` (or
    explicit ``edges`` in ``ln m``); ``absorb_at`` (an ``m``) makes the right boundary absorbing there (then it
    replaces ``m_max``); ``noise`` as in :class:`~dlnlab.theory.mode_sde.ModeSDE`."""

    def __init__(self, depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1,
                 m_min=None, m_max=None, n_cells=2000, edges=None, absorb_at=None, noise="exact"):
        T = resolve_temperature(temperature, lr, batch_size)
        if depth < 2:
            raise ConfigError("depth", depth, "an integer >= 2 (the Fokker–Planck solver works in ln m)")
        self.sde = sde = ModeSDE(int(depth), float(s), float(input_variance), float(label_noise), T, noise)
        self.coord = ModeCoordinate(sde)
        upper = "edges" if edges is not None else "absorb_at" if absorb_at is not None else "m_max"
        if edges is None:
            hi = math.log(absorb_at) if absorb_at is not None else math.log(m_max)
            edges = np.linspace(math.log(m_min), hi, int(n_cells) + 1)
        self.edges = edges = np.asarray(edges, np.float64)
        if absorb_at is not None and not math.isclose(edges[-1], math.log(absorb_at), rel_tol=0, abs_tol=1e-12):
            raise ConfigError("edges", edges[-1], f"a last edge ln(absorb_at) = {math.log(absorb_at)!r} (with absorb_at)")
        if label_noise == 0 and edges[-1] > math.log(s) + 1e-12:
            raise ConfigError(upper, math.exp(edges[-1]), f"at most s = {s} without label noise (the diffusion "
                                                             "vanishes at m = s), or label_noise > 0")
        self.absorbing = absorb_at is not None
        self.y = (edges[:-1] + edges[1:]) / 2
        self.h = np.diff(edges)
        self.b = self._b(self.y)
        self._build()

    # -- coefficients ---------------------------------------------------------------------------------------

    def _b(self, y):
        return diffusion_y(self.sde, y)

    def drift(self, y):
        return drift_y(self.sde, y)

    def _X(self, a, b):
        """``∫_a^b 2μ/b dy = ∫ (dΦ/dy − 1/L) dy`` by Gauss–Legendre, elementwise."""
        mid, half = (a + b) / 2, (b - a) / 2
        nodes = mid[:, None] + half[:, None] * _GL_X[None, :]
        f = potential_slope(self.sde, self.coord, nodes) - 1.0 / self.sde.depth
        return half * (f @ _GL_W)

    def _build(self):
        """Rates of the generator: ``J_{i+½} = up[i] P_i − down[i] P_{i+1}``."""
        y, h, b = self.y, self.h, self.b
        d = np.diff(y)
        X = self._X(y[:-1], y[1:])
        self.up = _bernoulli(-X) * b[:-1] / (2 * d * h[:-1])
        self.down = _bernoulli(X) * b[1:] / (2 * d * h[1:])
        if self.absorbing:  # ρ = 0 at the last edge: J = B(−X) b_N ρ_N / (2 d), d = centre-to-edge distance
            dN = self.edges[-1] - y[-1]
            XN = self._X(y[-1:], self.edges[-1:])
            self.out_rate = float(_bernoulli(-XN)[0] * b[-1] / (2 * dN * h[-1]))
        else:
            self.out_rate = 0.0

    def generator_bands(self):
        """The generator ``A`` (``dP/dt = A P``) in banded form ``(3, n)``: super-, main and sub-diagonal.
        With an absorbing boundary the last unknown is the absorbed probability."""
        up, down = self.up, self.down
        n = len(self.y) + (1 if self.absorbing else 0)
        ab = np.zeros((3, n))
        main = np.zeros(n)
        N = len(self.y)
        main[:N - 1] -= up
        main[1:N] -= down
        ab[0, 1:N] = down  # A[i, i+1] = down[i] (flux from i+1 into i), stored at ab[0, i+1]
        ab[2, :N - 1] = up  # A[i+1, i] = up[i], stored at ab[2, i]
        if self.absorbing:
            main[N - 1] -= self.out_rate
            ab[2, N - 1] = self.out_rate  # A[N, N−1]: into the absorbed state, which never leaves
        ab[1] = main
        return ab

    def stationary_cells(self):
        """The discrete zero-flux state (normalised over the domain): ``P_i ∝ h_i ψ_i / b_i``."""
        X = self._X(self.y[:-1], self.y[1:])
        lpsi = np.concatenate([[0.0], np.cumsum(X)])
        lp = lpsi - np.log(self.b) + np.log(self.h)
        p = np.exp(lp - lp.max())
        return p / p.sum()

    # -- time stepping --------------------------------------------------------------------------------------

    def initial_point_mass(self, m0):
        """All mass at ``y0 = ln m0``, split between the two nearest centres so that ``E[y]`` is exact."""
        y0 = math.log(m0)
        if not self.edges[0] < y0 < self.edges[-1]:
            raise ConfigError("m0", m0, f"a value inside the domain ({math.exp(self.edges[0]):g}, "
                                        f"{math.exp(self.edges[-1]):g})")
        P = np.zeros(len(self.y))
        j = int(np.clip(np.searchsorted(self.y, y0) - 1, 0, len(self.y) - 2))
        w = (y0 - self.y[j]) / (self.y[j + 1] - self.y[j])
        w = min(max(w, 0.0), 1.0)
        P[j], P[j + 1] = 1 - w, w
        return P

    def solve(self, m0, times, dt, P0=None):
        """Evolve from a point mass at ``m0`` (or the cell probabilities ``P0``) and record at ``times``.

        ``dt`` is the largest time step (steps are shortened to land on every record time)."""
        times = np.asarray(times, np.float64)
        if np.any(np.diff(times) < 0) or times[0] < 0:
            raise ConfigError("times", times, "record times >= 0, non-decreasing")
        A = self.generator_bands()
        N = len(self.y)
        P = np.zeros(A.shape[1])
        P[:N] = self.initial_point_mass(m0) if P0 is None else np.asarray(P0, np.float64)
        g = 2 - math.sqrt(2)
        t, started = 0.0, False
        Ps, absorbed, outflux = [], [], []
        cache = {}

        def solver(c):  # LU factors of the tridiagonal I − c A (LAPACK gttrf), reused while the step is fixed
            if c not in cache:
                if len(cache) > 8:
                    cache.clear()
                dl, d, du = -c * A[2, :-1], 1.0 - c * A[1], -c * A[0, 1:]
                factors = lapack.dgttrf(dl, d, du)
                if factors[-1] != 0:
                    raise np.linalg.LinAlgError("singular Fokker–Planck step matrix")
                cache[c] = factors[:-1]
            return cache[c]

        def solve_with(c, rhs):
            x, _info = lapack.dgttrs(*solver(c), rhs)
            return x

        def apply_A(x):
            y = A[1] * x
            y[:-1] += A[0, 1:] * x[1:]
            y[1:] += A[2, :-1] * x[:-1]
            return y

        def be(x, step):
            return solve_with(step, x)

        def trbdf2(x, step):
            xs = solve_with(g * step / 2, x + (g * step / 2) * apply_A(x))
            return solve_with((1 - g) / (2 - g) * step, (xs - (1 - g) ** 2 * x) / (g * (2 - g)))

        for tk in times:
            while t < tk - 1e-14 * max(1.0, tk):
                step = min(dt, tk - t)
                if not started:  # four backward-Euler quarter steps damp the point mass
                    for _ in range(4):
                        P = be(P, step / 4)
                    started = True
                else:
                    P = trbdf2(P, step)
                t += step
            Ps.append(P[:N].copy())
            absorbed.append(P[N] if self.absorbing else 0.0)
            outflux.append(self.out_rate * P[N - 1])
        return FokkerPlanckSolution(times, self.edges.copy(), np.array(Ps), np.array(absorbed), np.array(outflux))


def broadie_glasserman_shift(depth, s, input_variance, label_noise, temperature, m_target, monitor_dt, noise="exact"):
    """Barrier shift in ``y = ln m`` for a *discretely* monitored crossing: a process observed every
    ``monitor_dt`` first exceeds ``y*`` about when the continuous one first exceeds ``y* + β sqrt(b(y*) Δt)``,
    ``β = −ζ(1/2)/sqrt(2π) ≈ 0.5826`` (Broadie, Glasserman & Kou 1997, for Brownian motion with drift; to
    ``o(sqrt Δt)`` for a diffusion with the local ``b``). Returns the shift in ``y``."""
    beta = 0.5825971579390106
    sde = ModeSDE(int(depth), float(s), float(input_variance), float(label_noise), float(temperature), noise)
    return beta * math.sqrt(float(diffusion_y(sde, math.log(m_target))) * monitor_dt)


def first_passage_law(depth, s, input_variance=1.0, label_noise=0.0, temperature=None, *, lr=None, batch_size=1, m0,
                  target, times, m_min=None, n_cells=3000, dt=None, monitor_dt=None, noise="exact"):
    """Distribution of the learning time ``τ = inf{t : m(t) ≥ target}`` from ``m(0) = m0`` (absorbing FP).

    Returns a dict with ``times``, ``cdf`` (``P(τ ≤ t)`` = absorbed mass), ``density`` (``−dS/dt``, the
    outflux), ``survival``, ``mass_error`` (max |Σ P + absorbed − 1|), ``mean`` and ``median`` (from the CDF on
    ``times``, with the mass beyond the last time reported as ``unfinished``). ``monitor_dt`` applies the
    :func:`broadie_glasserman_shift` for comparing with paths observed every ``monitor_dt``."""
    T = resolve_temperature(temperature, lr, batch_size)
    y_t = math.log(target)
    if monitor_dt:
        y_t += broadie_glasserman_shift(depth, s, input_variance, label_noise, T, target, monitor_dt, noise)
    if m_min is None:
        m_min = m0 * math.exp(-12.0)
    times = np.asarray(times, np.float64)
    if dt is None:
        dt = min(2e-3, times[-1] / 2000)
    fp = ModeFokkerPlanck(depth, s, input_variance, label_noise, T, m_min=m_min, absorb_at=math.exp(y_t),
                          n_cells=n_cells, noise=noise)
    sol = fp.solve(m0, times, dt)
    cdf = sol.absorbed
    # mean over the resolved part: ∫ t dF with the trapezoid rule on the record grid
    tm = times
    dF = np.diff(cdf)
    mean = float(np.sum((tm[1:] + tm[:-1]) / 2 * dF) / max(cdf[-1] - cdf[0], 1e-300))
    median = float(np.interp(0.5, cdf, tm)) if cdf[-1] >= 0.5 else math.nan
    return {
        "times": times, "cdf": cdf, "density": sol.outflux, "survival": sol.survival(),
        "mass_error": float(np.max(np.abs(sol.total_mass() - 1.0))), "mean": mean, "median": median,
        "unfinished": float(1 - cdf[-1]), "target_y": y_t, "solution": sol,
    }
