"""Diagonal linear networks for sparse regression: the α → 0 saddle-to-saddle oracle and the implicit biases.

Setting: data ``X ∈ ℝ^{n×d}`` (rows are samples, typically ``n < d``), labels ``y``, training loss
``L(β) = ‖Xβ − y‖²/(2n)`` (dlnlab's ½-mean convention), gradient flow in time ``t`` on the factors of

* ``kind="product"`` (depth 2; Pesme & Flammarion 2023): ``β = u ⊙ v``, ``u(0) = √2 α 1``, ``v(0) = 0``;
* ``kind="power"`` (depth ``D ≥ 2``; Woodworth et al. 2020): ``β = u^D − v^D``, ``u(0) = v(0) = α 1``.

**Mirror form** (paper: Woodworth et al. 2020; Pesme & Flammarion 2023; rederived in these conventions). Each
coordinate evolves as a function of its dual variable ``s_i(t) = −∫₀ᵗ ∇_iL(β(τ)) dτ`` only
(:func:`primal_from_dual`): product ``β = α² sinh(2s)`` (``u² − v² = 2α²`` is conserved); power ``D = 2``
``β = 2α² sinh(4s)``; power ``D ≥ 3`` ``β = (a − cs)^{−p} − (a + cs)^{−p}`` with ``a = α^{2−D}``, ``c = D(D − 2)``,
``p = D/(D − 2)``. So ``β(t) = ∇φ*(s(t))`` with ``s(t) ∈ range(Xᵀ)``: a mirror flow, whose limit is the
**implicit-bias solution** ``argmin φ_α(β)`` subject to ``Xβ = y`` at *every* α (:func:`implicit_bias_solution`,
solved through its ``n``-dimensional convex dual; ``φ_α`` is Woodworth's ``Q_α`` — for power ``D = 2``,
``φ = (α²/4) Σ q(β_i/α²)`` with ``q(z) = 2 − √(4 + z²) + z arcsinh(z/2)`` (paper, as recalled; rederived), see :func:`implicit_regulariser`).
Its limits (paper: Woodworth et al. 2020): α → ∞ the minimum-ℓ₂ interpolator (:func:`min_l2_interpolator`,
pseudo-inverse; deviation ``O(α^{−4})`` at depth 2, derived); α → 0 the minimum-ℓ₁ interpolator
(:func:`min_l1_interpolator`, LP by HiGHS). The α → 0 approach is slow: off the ℓ₁ support
``|β_i| ~ α^{2(1 − |ŝ_i|)}`` (product kind; derived), ``ŝ`` the ℓ₁ dual certificate.

**Saddle to saddle** (paper: Pesme & Flammarion 2023, for the product kind: the limit, its LARS-like recursion,
the jump to the minimum-ℓ₁ solution; their Algorithm 1's text was not available here, so the steps below are derived
from the mirror form and checked against the flow — derived). In the rescaled time ``t̃ = t / κ(α)`` (:func:`time_scale`: ``κ = ln(1/α)`` for the
product, ``½ ln(1/α)`` for power ``D = 2``, ``α^{2−D}/(D(D − 2))`` for ``D ≥ 3``, so that ``β_i = O(1)`` needs
``|s_i| ≈ κ``), the rescaled dual ``s̃ = s/κ`` is confined to ``[−1, 1]^d`` and β is piecewise constant as α → 0:
starting from ``β = 0``, ``s̃ = 0``, repeat

1. while β sits at a saddle, ``s̃`` moves linearly, ``s̃(t̃) = s̃_k − (t̃ − t̃_k)∇L(β_k)``;
2. the next jump is the first time an inactive coordinate (``|s̃_i| < 1``) reaches ``|s̃_i| = 1``;
3. the new saddle is ``β_{k+1} = argmin L(β)`` over ``{β_i ≥ 0 if s̃_i = 1, β_i ≤ 0 if s̃_i = −1, β_i = 0
   otherwise}`` (a non-negative least squares after the sign flip);

until ``∇L(β) = 0`` off the boundary (interpolation when ``n < d``, generic data). Coordinates may also leave the
support (non-monotone supports, as in the LARS-Lasso path). The last iterate is the minimum-ℓ₁ interpolator. For
``D ≥ 3`` the same inclusion (``s̃ ∈ [−1, 1]^d``, β pinned at constrained minimisers) holds in its own time scale
(derived). Finite-α corrections to the jump times are ``O(1/κ)`` relative: ``O(1/ln(1/α))`` at depth 2.

Caveats: the oracle assumes the constrained minimisers are unique (``X`` restricted to the boundary set has full
column rank — true for data in general position); ties between hitting coordinates are resolved by taking
every coordinate within ``1e−12`` of the first hit.
"""

from __future__ import annotations

from numbers import Real
from typing import NamedTuple

import numpy as np
from scipy import optimize

from ..config import Interval, Options
from ..errors import ConfigError

KINDS = ("product", "power")
_KIND = Options(*KINDS)
_POSITIVE = Interval(Real, 0, None, closed="neither")


def _check_kind(kind, depth):
    _KIND.check("kind", kind)
    if kind == "product" and depth != 2:
        raise ConfigError("depth", depth, "2 for kind = 'product' (β = u ⊙ v); kind = 'power' for other depths")
    if int(depth) != depth or depth < 2:
        raise ConfigError("depth", depth, "an integer >= 2")


def _check_data(X, y):
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise ConfigError("X", f"an array of shape {X.shape}" + ("" if np.all(np.isfinite(X)) else ", not finite"),
                          "a finite matrix of shape (n, d)")
    if y.shape != (X.shape[0],) or not np.all(np.isfinite(y)):
        raise ConfigError("y", f"an array of shape {y.shape}" + ("" if np.all(np.isfinite(y)) else ", not finite"),
                          f"a finite vector of shape (n,) = {(X.shape[0],)} (one label per row of X)")
    return X, y


def time_scale(alpha, depth: int = 2, kind: str = "product"):
    """``κ(α)``: physical time = ``κ · t̃`` (rescaled time of :func:`saddle_to_saddle`). Product: ``ln(1/α)``;
    power ``D = 2``: ``½ ln(1/α)``; power ``D ≥ 3``: ``α^{2−D}/(D(D − 2))``. Needs ``0 < α < 1``."""
    _check_kind(kind, depth)
    alpha = np.asarray(alpha, np.float64)
    if np.any(alpha <= 0) or np.any(alpha >= 1):
        raise ConfigError("alpha", alpha, "a scale 0 < alpha < 1 (or an array of these)")
    if depth == 2:
        return np.log(1 / alpha) * (1.0 if kind == "product" else 0.5)
    return alpha ** (2.0 - depth) / (depth * (depth - 2))


def primal_from_dual(s, alpha: float, depth: int = 2, kind: str = "product"):
    """``β(s)`` of the flow (coordinate-wise): ``α² sinh(2s)`` (product), ``2α² sinh(4s)`` (power ``D = 2``),
    ``(a − cs)^{−p} − (a + cs)^{−p}`` (power ``D ≥ 3``, finite for ``|s| < a/c``); see the module docstring."""
    _check_kind(kind, depth)
    s = np.asarray(s, np.float64)
    if kind == "product":
        return alpha**2 * np.sinh(2 * s)
    if depth == 2:
        return 2 * alpha**2 * np.sinh(4 * s)
    a, c, p = alpha ** (2.0 - depth), depth * (depth - 2.0), depth / (depth - 2.0)
    return (a - c * s) ** (-p) - (a + c * s) ** (-p)


def _dual_potential(s, alpha, depth, kind):
    """``(Φ*(s), ∇Φ* = β(s), ∇²Φ* diagonal)`` with ``Φ*(s) = Σ_i ∫₀^{s_i} β``; ``Φ* = +∞`` off the domain."""
    if kind == "product" or depth == 2:
        k, amp = (2.0, alpha**2) if kind == "product" else (4.0, 2 * alpha**2)
        return (2 * amp * np.sum(np.sinh(k * s / 2) ** 2) / k, amp * np.sinh(k * s), amp * k * np.cosh(k * s))
    a, c, p = alpha ** (2.0 - depth), depth * (depth - 2.0), depth / (depth - 2.0)
    lo, hi = a - c * s, a + c * s
    if np.any(lo <= 0) or np.any(hi <= 0):
        return np.inf, None, None
    val = np.sum(lo ** (1 - p) + hi ** (1 - p) - 2 * a ** (1 - p)) / (c * (p - 1))
    return val, lo ** (-p) - hi ** (-p), c * p * (lo ** (-p - 1) + hi ** (-p - 1))


def implicit_bias_solution(X, y, alpha: float, depth: int = 2, kind: str = "product", tol: float = 1e-13):
    """The limit ``t → ∞`` of the flow from scale α: ``argmin φ_α(β)`` s.t. ``Xβ = y`` (Woodworth et al. 2020).

    Solved by damped Newton on the dual ``min_ν Φ*(Xᵀν) − yᵀν`` (``β = ∇Φ*(Xᵀν)``), each step capped so the dual
    ``s = Xᵀν`` moves by at most one e-fold of β (small α needs ~ln(1/α) steps), to ``‖Xβ − y‖ ≤ tol·‖y‖``.
    Needs ``y ∈ range(X)`` (e.g. ``n ≤ d`` and ``X`` of full row rank)."""
    X, y = _check_data(X, y)
    _check_kind(kind, depth)
    alpha = _POSITIVE.check("alpha", alpha)
    nu = np.zeros(X.shape[0])
    reach = 0.5 if kind == "product" or depth == 2 else 0.5 * alpha ** (2.0 - depth) / (depth * (depth - 2.0))

    def merit(v):
        """(dual objective, residual norm); (inf, inf) off the domain or on overflow."""
        with np.errstate(over="ignore", invalid="ignore"):
            val, b, _ = _dual_potential(X.T @ v, alpha, depth, kind)
            r = np.inf if b is None else np.linalg.norm(X @ b - y)
        return (val - y @ v, r) if np.isfinite(val) and np.isfinite(r) else (np.inf, np.inf)

    for _ in range(2000):
        _, beta, curv = _dual_potential(X.T @ nu, alpha, depth, kind)
        resid = X @ beta - y
        if np.linalg.norm(resid) <= tol * max(np.linalg.norm(y), 1e-300):
            return beta
        step = np.linalg.lstsq((X * curv) @ X.T, -resid, rcond=None)[0]
        step *= min(1.0, reach / max(np.abs(X.T @ step).max(), 1e-300))  # |Δs| ≤ reach: e-fold per step at most
        (f0, r0), slope, lr = merit(nu), resid @ step, 1.0
        while lr > 1e-12:  # Armijo on the objective, or a residual decrease once the objective is flat to round-off
            f1, r1 = merit(nu + lr * step)
            if f1 <= f0 + 1e-4 * lr * slope or r1 <= (1 - 1e-4 * lr) * r0:
                break
            lr *= 0.5
        nu = nu + lr * step
    raise RuntimeError(f"implicit_bias_solution: no convergence (residual {np.linalg.norm(resid):.2e}); is y in "
                       "range(X)?")


def implicit_regulariser(beta, alpha: float, kind: str = "product"):
    """Woodworth's ``φ_α = Q_α`` at depth 2 (closed form): product ``½Σ[β asinh(β/α²) − √(β² + α⁴) + α²]``,
    power ``(α²/4) Σ q(β/α²)``, ``q(z) = 2 − √(4 + z²) + z asinh(z/2)``. ``∇φ_α`` inverts :func:`primal_from_dual`."""
    _check_kind(kind, 2)
    b = np.asarray(beta, np.float64)
    if kind == "product":
        return 0.5 * np.sum(b * np.arcsinh(b / alpha**2) - np.sqrt(b**2 + alpha**4) + alpha**2)
    z = b / alpha**2
    return 0.25 * alpha**2 * np.sum(2 - np.sqrt(4 + z**2) + z * np.arcsinh(z / 2))


def min_l2_interpolator(X, y):
    """``X⁺y``: the minimum-ℓ₂ interpolator (the large-α limit)."""
    X, y = _check_data(X, y)
    return np.linalg.pinv(X) @ y


def min_l1_interpolator(X, y):
    """``argmin ‖β‖₁`` s.t. ``Xβ = y`` (the α → 0 limit): LP ``β = β⁺ − β⁻ ≥ 0`` by HiGHS, then polished by least
    squares on the LP's support (exact to round-off when the vertex is non-degenerate)."""
    X, y = _check_data(X, y)
    n, d = X.shape
    res = optimize.linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    if res.status == 2:  # infeasible: no β with Xβ = y
        raise ConfigError("y", "a vector outside range(X)", f"y in the range of X, so that Xβ = y has a solution "
                                                            f"(the LP: {res.message})")
    if res.status != 0:
        raise ValueError(f"min_l1_interpolator: the LP failed ({res.message})")
    beta = res.x[:d] - res.x[d:]
    supp = np.flatnonzero(np.abs(beta) > 1e-9 * max(np.abs(beta).max(), 1e-300))
    if len(supp) <= n and np.linalg.matrix_rank(X[:, supp]) == len(supp):
        polished = np.zeros(d)
        polished[supp] = np.linalg.lstsq(X[:, supp], y, rcond=None)[0]
        if np.all(np.sign(polished[supp]) == np.sign(beta[supp])):
            return polished
    return beta


class SaddleSequence(NamedTuple):
    """The α → 0 limit of :func:`saddle_to_saddle`: on ``[times[k], times[k+1])`` (rescaled time ``t̃``) the flow
    sits at ``iterates[k]``; ``duals[k]`` is ``s̃`` at ``times[k]``; ``losses[k] = L(iterates[k])``. ``iterates[0] = 0``
    and ``times[0] = 0``; ``iterates[-1]`` is the final (global) minimiser, reached at ``times[-1]``."""

    times: np.ndarray  # (K + 1,)
    iterates: np.ndarray  # (K + 1, d)
    duals: np.ndarray  # (K + 1, d)
    losses: np.ndarray  # (K + 1,)

    @property
    def supports(self) -> list:
        """Indices of the non-zero coordinates of each iterate."""
        return [np.flatnonzero(b) for b in self.iterates]


def _constrained_minimiser(X, y, signs):
    """``argmin ‖Xβ − y‖²`` over ``sign(β_i) ∈ {0, signs_i}`` (``signs`` ∈ {−1, 0, 1}; 0: β_i = 0), by NNLS and a
    least-squares polish on the NNLS support."""
    beta = np.zeros(X.shape[1])
    idx = np.flatnonzero(signs)
    if len(idx) == 0:
        return beta
    Xs = X[:, idx] * signs[idx]
    z = optimize.nnls(Xs, y, maxiter=50 * len(idx))[0]
    pos = z > 1e-12 * max(z.max(), 1e-300)
    zp = np.linalg.lstsq(Xs[:, pos], y, rcond=None)[0]
    if np.all(zp > 0):
        z = np.zeros_like(z)
        z[pos] = zp
    beta[idx] = signs[idx] * z
    return beta


def saddle_to_saddle(X, y, max_jumps: int | None = None, gtol: float = 1e-11) -> SaddleSequence:
    """Pesme & Flammarion's incremental algorithm: the saddles visited and the jump times (rescaled, ``t̃ = t/κ``,
    :func:`time_scale`) of gradient flow on a diagonal network from ``α → 0`` (see the module docstring).

    Stops when ``|∇L| ≤ gtol · ‖Xᵀy‖_∞/n`` on every coordinate off the boundary; ``max_jumps`` (default ``4d + 10``)
    guards against cycling on degenerate data."""
    X, y = _check_data(X, y)
    n, d = X.shape
    gscale = max(np.abs(X.T @ y).max() / n, 1e-300)
    beta, s, boundary, t = np.zeros(d), np.zeros(d), np.zeros(d, bool), 0.0
    out = [(t, beta, s)]
    for _ in range(4 * d + 10 if max_jumps is None else max_jumps):
        g = X.T @ (X @ beta - y) / n
        moving = ~boundary & (np.abs(g) > gtol * gscale)
        if not moving.any():
            return _sequence(out, X, y)
        reach = np.full(d, np.inf)
        reach[moving] = (1 + np.sign(g[moving]) * s[moving]) / np.abs(g[moving])
        delta = reach.min()
        hit = reach <= delta + 1e-12 * max(delta, 1e-300)
        t, s = t + delta, np.clip(s - delta * g, -1, 1)
        stay = boundary & ((beta != 0) | (np.abs(g) <= gtol * gscale))  # pinned: active, or degenerate (g = 0)
        s[hit] = -np.sign(g[hit])
        boundary = hit | stay
        s[boundary & (beta != 0)] = np.sign(beta[boundary & (beta != 0)])
        beta = _constrained_minimiser(X, y, np.where(boundary, np.sign(s), 0.0))
        out.append((t, beta, s.copy()))
    raise RuntimeError(f"saddle_to_saddle: no convergence after {len(out) - 1} jumps (degenerate data?)")


def _sequence(out, X, y):
    times, iterates, duals = (np.array(x) for x in zip(*out))
    losses = np.sum((iterates @ X.T - y) ** 2, axis=1) / (2 * X.shape[0])
    return SaddleSequence(times, iterates, duals, losses)
