"""Exact gradient flow of a two-layer linear network from a λ-balanced initialisation, and its lazy and rich limits.

Setting (dlnlab's conventions): whitened inputs ``Σx = I``, ``W₁ ∈ ℝ^{w×d_in}``, ``W₂ ∈ ℝ^{d_out×w}``, loss
``𝓛 = ½‖W₂W₁ − M‖²_F``, time ``t`` of ``θ̇ = −∇𝓛``, i.e. ``Ẇ₁ = W₂ᵀ(M − W)``, ``Ẇ₂ = (M − W)W₁ᵀ``, ``W = W₂W₁``.

**λ-balance** (paper: Dominé et al. 2025, "From lazy to rich"; possibly with the opposite sign, see below). The
imbalance ``C = W₁W₁ᵀ − W₂ᵀW₂`` is conserved by the flow. The initialisation is λ-balanced when
``C = λI_w``. Since ``W₁W₁ᵀ`` has rank ``≤ d_in``, ``C = λI_w`` needs ``w ≤ d_in`` for ``λ > 0`` and ``w ≤ d_out``
for ``λ < 0``; for wider layers (and for ``λ = 0`` whenever ``w > min(d_in, d_out)``) the condition used here is
``C = λΠ`` with ``Π`` the projector onto the *active* hidden subspace ``range([W₁, W₂ᵀ])``; hidden directions
outside it carry no weight and stay so under the flow (derived). :func:`balance_constant` checks it and returns λ.

**The matrix Riccati solution** (paper: Fukumizu 1998 for λ = 0; Braun et al. 2022; Dominé et al. 2025).
Stack ``Q = [W₁ᵀ; W₂] ∈ ℝ^{n×w}`` (``n = d_in + d_out``) and let ``J = diag(−I_{d_in}, I_{d_out})``. The flow is
``Q̇ = FQ − [W₁ᵀW₂ᵀW₂; W₂W₁W₁ᵀ]`` with ``F = [[0, Mᵀ], [M, 0]]``; λ-balance turns the cubic term into
``½QQᵀQ + ½λJQ``, so ``Q̇ = AQ − ½QQᵀQ`` with the constant symmetric ``A = F − ½λJ = [[½λI, Mᵀ], [M, −½λI]]``
and ``P = QQᵀ`` obeys the Riccati equation ``Ṗ = AP + PA − P²``. Its solution (derived here in this form)::

    P(t) = e^{At} Q₀ B(t)⁻¹ Q₀ᵀ e^{At},   B(t) = I_w + Q₀ᵀ G(t) Q₀,   G(t) = ∫₀ᵗ e^{2As} ds.

(Linear-fractional substitution ``P = YX⁻¹``, ``Ẏ = AY``, ``Ẋ = −AX + Y``, then the push-through identity.) ``G``
is positive definite for ``t > 0``, so ``B`` is always invertible: no invertibility assumption is needed in this
form. As we recall them (the papers' full texts were not available here; only their abstracts and a reference
code's opening were), the papers diagonalise ``F`` and factor ``e^{2Ft}``, with a ``B``-matrix built from the
initial weights' components along the growing and decaying eigenvectors that must be invertible — failing on the
measure-zero set of inits whose growing component is singular (e.g. a mode started anti-aligned), where the form
above still holds. Everything below is derived and checked numerically, not transcribed.
The blocks of ``P`` are ``W₁ᵀW₁`` (input representation), ``Wᵀ``, ``W`` and ``W₂W₂ᵀ`` (output representation):
the end-to-end map, both representations and the tangent kernel are closed forms.

**Stable evaluation** (derived). With ``A = O diag(μ) Oᵀ``, ``Q̃ = OᵀQ₀``, ``g_i = (e^{2μ_i t} − 1)/(2μ_i)`` and
``k_i = g_i e^{−2μ_i t}`` (``= t`` at ``μ_i = 0``), take the thin QR factorisation ``[I_w; diag(√g) Q̃] = [·; Q_b] R``
with ``diag R > 0`` (so ``RᵀR = B``; rows sorted by norm, for row-wise stability). Then
``Q̂ = O diag(k^{−1/2}) Q_b = e^{At} Q₀ R⁻¹`` satisfies ``Q̂Q̂ᵀ = P`` and has bounded entries: growing modes
(``μ > 0``) enter through ``Q_b`` (orthonormal columns) times ``k^{−1/2} → √(2μ)``, decaying ones through
``k^{−1/2} → 0``. Nothing is exponentiated beyond ``√g``; past ``μ_max t ≈ 300`` the flow is restarted from its
own state (it is autonomous), so there is no overflow at any ``t``.

**The layers** (derived). ``P`` fixes ``Q`` only up to a hidden rotation ``Q → QO``, ``O ∈ O(w)`` (the symmetry the
balance condition leaves). The flow reaches a definite one: gradient flow is orthogonal to the rotation orbits
(``QᵀQ̇`` symmetric). ``Q̂`` is the Cholesky gauge: ``d/dt R⁻¹ = −R⁻¹Φ(H)`` with ``H = Q̂ᵀQ̂`` and ``Φ(H)`` the upper
triangle of ``H`` with half its diagonal, so ``Q̂̇ = AQ̂ − Q̂Φ(H)``. The flow is ``Q = Q̂ O`` with
``Ȯ = ½(triu(H, 1) − tril(H, −1)) O``, ``O(0) = I``: an antisymmetric generator, bounded by ``‖H‖``. ``O`` is a
path-ordered exponential (the ``B(t)`` do not commute for a non-aligned init, and the symmetric gauge
``B^{−1/2}`` is *not* the flow — the test suite checks both); it is integrated numerically (DOP853) — the only
non-closed-form step, and only the layers need it.

**Limits.** *Lazy* (λ → ±∞ at a fixed initial map ``W₀``): one layer grows like ``√|λ|`` while the other shrinks,
the tangent kernel stays at its initial value, and the flow approaches the linearised (NTK) dynamics
``W(t) = M + e^{−tW₂W₂ᵀ}(W₀ − M)e^{−tW₁ᵀW₁}`` (:func:`linearised_flow_fn`; derived, frozen-kernel solution of
``Ẇ = −(W₂W₂ᵀE + EW₁ᵀW₁)``); the deviation decays like ``λ^{−2}`` (derived; measured in the tests). *Aligned*
(``W₁ = R diag(b) Vᵀ``, ``W₂ = U diag(a) Rᵀ`` with the teacher's ``U, V``): each mode ``m = ab`` obeys
``ṁ = √(4m² + λ²)(s − m)`` (derived), solved in closed form by :func:`lambda_mode_trajectory`: the 2×2 instance
of the Riccati solution. *Rich* (λ → 0): it becomes Saxe's logistic ``ṁ = 2m(s − m)``
(:func:`~dlnlab.theory.gradient_flow.mode_trajectory` with ``depth = 2``, the one home of that formula); the
approach is ``O(λ²)`` at fixed ``m₀`` (measured in the tests).

**Tangent kernel** (derived). For ``f(x) = W₂W₁x`` the NTK is ``Θ(x, x') = (xᵀx') W₂W₂ᵀ + (xᵀW₁ᵀW₁x') I_{d_out}``;
on whitened population data it acts on the error matrix as ``K[E] = W₂W₂ᵀE + EW₁ᵀW₁``, i.e.
``K = W₂W₂ᵀ ⊗ I_{d_in} + I_{d_out} ⊗ W₁ᵀW₁`` on row-major ``vec E``. Both depend on the weights only through the
representations, hence are closed forms along the exact solution (:func:`relative_kernel_change`).

Caveats. Sign: the reference code found for Dominé et al. computes λ as ``W₂ᵀW₂ − W₁W₁ᵀ``, the negative of ours
(issue 16's convention); convert with λ → −λ when comparing. Precision: relative accuracy is set by round-off in the QR (~1e−13) and, for the layers, by the
DOP853 tolerance ``rtol`` of the rotation; near a saddle the problem itself is ill-conditioned (perturbations grow
like ``e^{μt}``), as for any integrator.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import integrate

from ..errors import ConfigError

#: ``μ_max · τ`` reached within one stretch of the stable formula before the flow is restarted from its state.
_STRETCH = 300.0


class BalancedFlowState(NamedTuple):
    """State of the exact flow at the requested times (leading axes = the shape of ``t``).

    ``W1``/``W2`` are ``None`` unless the factory was asked for ``layers=True``; the representations
    ``S1 = W₁ᵀW₁`` (``d_in × d_in``) and ``S2 = W₂W₂ᵀ`` (``d_out × d_out``) are gauge-invariant closed forms."""

    end_to_end: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    W1: np.ndarray | None
    W2: np.ndarray | None


def _check_layers(W1, W2, M=None, names=("W1", "W2")):
    """The layers (and ``M``) as float arrays; ``names``: the caller's names of the two layer arguments."""
    W1, W2 = np.asarray(W1, np.float64), np.asarray(W2, np.float64)
    if W1.ndim != 2:
        raise ConfigError(names[0], f"an array of shape {W1.shape}", "a matrix of shape (w, d_in)")
    if W2.ndim != 2 or W2.shape[1] != W1.shape[0]:
        raise ConfigError(names[1], f"an array of shape {W2.shape}",
                          f"a matrix of shape (d_out, w) with w = {W1.shape[0]} (the rows of {names[0]})")
    for name, W in zip(names, (W1, W2)):
        if not np.all(np.isfinite(W)):
            raise ConfigError(name, "a matrix with non-finite entries", "finite entries")
    if M is None:
        return W1, W2
    M = np.asarray(M, np.float64)
    if M.shape != (W2.shape[0], W1.shape[1]) or not np.all(np.isfinite(M)):
        raise ConfigError("M", f"an array of shape {M.shape}" + ("" if np.all(np.isfinite(M)) else ", not finite"),
                          f"a finite (d_out, d_in) = {(W2.shape[0], W1.shape[1])} matrix")
    return W1, W2, M


def balance_constant(W1, W2, rtol: float = 1e-9) -> float:
    """λ of a λ-balanced pair: ``W₁W₁ᵀ − W₂ᵀW₂ = λΠ`` on the active hidden subspace (``= λI`` when it is all of
    ``ℝ^w``). Raises :class:`~dlnlab.errors.ConfigError` (a ``ValueError``) when the pair is not λ-balanced to
    relative ``rtol``; ``0.0`` for zero weights."""
    return _balance_constant(*_check_layers(W1, W2), rtol)


def _balance_constant(W1, W2, rtol, names=("W1", "W2")) -> float:
    Q = np.vstack([W1.T, W2])
    norm2 = np.sum(Q * Q)
    if norm2 == 0:
        return 0.0
    QC = Q @ (W1 @ W1.T - W2.T @ W2)
    lam = float(np.sum(Q * QC) / norm2)
    resid = np.linalg.norm(QC - lam * Q) / (np.sqrt(norm2) * np.linalg.norm(Q, 2) ** 2)
    if resid > rtol:
        raise ConfigError(", ".join(names), f"a pair not λ-balanced: ‖Q(W₁W₁ᵀ − W₂ᵀW₂) − λQ‖ / ‖Q‖‖Q‖₂² = "
                                            f"{resid:.2e} > rtol = {rtol:.0e} (Q = [W₁ᵀ; W₂])",
                          "a λ-balanced pair (W₁W₁ᵀ − W₂ᵀW₂ = λΠ); build one with lambda_balanced_init or "
                          "lambda_balanced_factors")
    return lam


def lambda_balanced_init(rng: np.random.Generator, d_in: int, d_out: int, width: int, lam: float,
                         scale: float = 1.0, rank: int | None = None):
    """A random, non-aligned λ-balanced pair ``(W1, W2)`` from an SVD parametrisation (derived).

    ``W₁ = R diag(b) V₁ᵀ``, ``W₂ = U₂ diag(a) Rᵀ`` with a Haar-random shared hidden frame ``R`` (``w × r``, orthonormal
    columns) and Haar-random ``V₁`` (``d_in × r``), ``U₂`` (``d_out × r``) unrelated to any teacher, and
    ``b² − a² = λ``. Then ``W₁W₁ᵀ − W₂ᵀW₂ = λRRᵀ``. The smaller layer's singular values are ``scale · U(0.5, 1.5)``
    (zero beyond its own rank ``d_out`` for λ > 0, ``d_in`` for λ < 0), the larger layer's follow from λ. ``rank``
    ``r`` (the active hidden dimension) defaults to its maximum: ``min(w, d_in)`` for λ > 0, ``min(w, d_out)`` for
    λ < 0, ``min(w, d_in, d_out)`` for λ = 0."""
    cap = min(width, d_in) if lam > 0 else min(width, d_out) if lam < 0 else min(width, d_in, d_out)
    r = cap if rank is None else int(rank)
    if not 1 <= r <= cap:
        raise ConfigError("rank", rank, f"an integer in [1, {cap}] for λ = {lam}, width = {width}, d_in = {d_in}, "
                                        f"d_out = {d_out}")
    if not scale > 0:
        raise ConfigError("scale", scale, "a number > 0")

    n_small = min(r, d_out if lam > 0 else d_in)  # nonzero singular values of the smaller layer

    def frame(n, cols):
        out = np.zeros((n, r))
        out[:, :cols] = np.linalg.qr(rng.standard_normal((n, cols)))[0]
        return out

    small = np.zeros(r)
    small[:n_small] = scale * rng.uniform(0.5, 1.5, n_small)
    large = np.sqrt(small**2 + abs(lam))
    R = frame(width, r)
    if lam >= 0:
        a, b, U2, V1 = small, large, frame(d_out, n_small), frame(d_in, r)
    else:
        a, b, U2, V1 = large, small, frame(d_out, r), frame(d_in, n_small)
    return (R * b) @ V1.T, (U2 * a) @ R.T


def lambda_balanced_factors(W0, lam: float, width: int, rng: np.random.Generator | None = None):
    """The λ-balanced pair ``(W1, W2)`` with end-to-end map ``W₂W₁ = W0`` and maximal active rank (derived).

    With the full SVD ``W0 = U diag(c) Vᵀ``: ``a² = (√(λ² + 4c²) − λ)/2`` (``W₂``), ``b² = a² + λ`` (``W₁``), so
    ``ab = c`` (the smaller of the two as ``2c²/(√(λ² + 4c²) + |λ|)``, free of cancellation at large |λ|); for λ > 0 (λ < 0) the extra input (output) directions up to the width get ``b = √λ`` (``a = √|λ|``)
    and a zero partner. The shared hidden frame is Haar-random (``rng``) or the first units (``rng=None``). Used to
    vary λ at a fixed initial function (the lazy and rich limits)."""
    W0 = np.asarray(W0, np.float64)
    d_out, d_in = W0.shape
    U, c, Vt = np.linalg.svd(W0)
    k0 = min(d_in, d_out)
    r = min(width, d_in) if lam > 0 else min(width, d_out) if lam < 0 else min(width, k0)
    if np.any(c[r:] > 1e-12 * max(c[0], 1e-300)):
        raise ConfigError("W0", f"a matrix of rank {int(np.sum(c > 1e-12 * c[0]))}",
                          f"rank at most the active rank {r} allowed by width = {width} and λ = {lam} (a wider "
                          "network, or a W0 of lower rank)")
    cc = np.zeros(r)
    cc[: min(r, k0)] = c[: min(r, k0)]
    small = _smaller_layer_value(cc, lam)
    large = np.sqrt(small**2 + abs(lam))
    a, b = (small, large) if lam >= 0 else (large, small)
    R = np.eye(width)[:, :r] if rng is None else np.linalg.qr(rng.standard_normal((width, r)))[0]
    Vr, Ur = np.zeros((d_in, r)), np.zeros((d_out, r))
    Vr[:, : min(r, d_in)], Ur[:, : min(r, d_out)] = Vt.T[:, : min(r, d_in)], U[:, : min(r, d_out)]
    return (R * b) @ Vr.T, (Ur * a) @ R.T


def _smaller_layer_value(c, lam):
    """The smaller of ``|a|, |b|`` with ``ab = c``, ``b² − a² = λ``: ``√(2c² / (√(λ² + 4c²) + |λ|))``."""
    return np.sqrt(2 * c**2 / np.maximum(np.sqrt(lam**2 + 4 * c**2) + np.abs(lam), 1e-300))


class _Stretch:
    """The stable closed form from one base point ``Q_base`` of the flow, for ``0 ≤ τ ≤ μ_max⁻¹ · _STRETCH``."""

    def __init__(self, O, mu, Q_base):
        self.O, self.mu, self.Qt = O, mu, O.T @ Q_base

    def representative(self, tau: float):
        """``(Q̂, H)``: ``Q̂ = e^{Aτ}Q_base R⁻¹`` (``n × w``, Cholesky gauge) and ``H = Q̂ᵀQ̂``."""
        mu, w = self.mu, self.Qt.shape[1]
        if tau == 0:
            Qhat = self.O @ self.Qt
            return Qhat, Qhat.T @ Qhat
        x = 2.0 * mu * tau
        nz = mu != 0
        safe = np.where(nz, mu, 1.0)
        g = np.where(nz, np.expm1(x) / (2.0 * safe), tau)
        k = np.where(nz, -np.expm1(-x) / (2.0 * safe), tau)
        stack = np.vstack([np.eye(w), np.sqrt(g)[:, None] * self.Qt])
        order = np.argsort(-np.linalg.norm(stack, axis=1), kind="stable")
        q, r = np.linalg.qr(stack[order])
        sign = np.where(np.diag(r) < 0, -1.0, 1.0)
        q_all = np.empty_like(q)
        q_all[order] = q * sign
        Qhat_eig = q_all[w:] / np.sqrt(k)[:, None]
        return self.O @ Qhat_eig, Qhat_eig.T @ Qhat_eig


def _rotation_generator(H):
    """``½(triu(H, 1) − tril(H, −1))``: the hidden rotation of the flow relative to the Cholesky gauge."""
    U = np.triu(H, 1)
    return 0.5 * (U - U.T)


def _integrate_rotation(stretch: _Stretch, taus, rtol: float):
    """``O(τ)`` for the sorted ``taus`` (``Ȯ = Ξ(τ) O``, ``O(0) = I``) by DOP853."""
    w = stretch.Qt.shape[1]
    if taus[-1] == 0:
        return np.broadcast_to(np.eye(w), (len(taus), w, w)).copy()

    def rhs(tau, y):
        return (_rotation_generator(stretch.representative(tau)[1]) @ y.reshape(w, w)).ravel()

    sol = integrate.solve_ivp(rhs, (0.0, taus[-1]), np.eye(w).ravel(), method="DOP853", t_eval=taus,
                              rtol=rtol, atol=rtol * 1e-2)
    if not sol.success:
        raise RuntimeError(f"hidden-rotation integration failed: {sol.message}")
    return sol.y.T.reshape(len(taus), w, w)


def lambda_balanced_flow_fn(W1_0, W2_0, M, layers: bool = False, rtol: float = 1e-12, balance_rtol: float = 1e-9):
    """``predict_fn(t) -> BalancedFlowState``: the exact gradient flow of ``½‖W₂W₁ − M‖²`` from a λ-balanced
    ``(W1_0, W2_0)`` (any ``d_in``, ``d_out``, ``w``, λ of any sign; not necessarily aligned).

    ``end_to_end``, ``S1``, ``S2`` are closed forms (see the module docstring); with ``layers=True`` the layers the
    flow reaches are returned too, their hidden rotation integrated to ``rtol``. ``t`` may be a scalar or an array of
    times ``≥ 0``."""
    W1_0, W2_0, M = _check_layers(W1_0, W2_0, M, names=("W1_0", "W2_0"))
    lam = _balance_constant(W1_0, W2_0, balance_rtol, names=("W1_0", "W2_0"))
    d_out, d_in = M.shape
    A = np.block([[0.5 * lam * np.eye(d_in), M.T], [M, -0.5 * lam * np.eye(d_out)]])
    mu, O = np.linalg.eigh(A)
    span = _STRETCH / max(float(np.max(np.abs(mu))), 1e-300)
    bases = [np.vstack([W1_0.T, W2_0])]  # the flow's state (in its own gauge) at t = k · span

    def base(kk):
        while len(bases) <= kk:
            st = _Stretch(O, mu, bases[-1])
            Qhat, _ = st.representative(span)
            bases.append(Qhat @ _integrate_rotation(st, np.array([span]), rtol)[0] if layers else Qhat)
        return bases[kk]

    def predict(t):
        t = np.asarray(t, np.float64)
        if np.any(~np.isfinite(t)) or np.any(t < 0):
            raise ConfigError("t", t, "finite times >= 0")
        flat = t.ravel()
        seg = np.floor(flat / span).astype(int)
        Q = np.empty((flat.size, d_in + d_out, W1_0.shape[0]))
        for kk in np.unique(seg):
            idx = np.flatnonzero(seg == kk)
            idx = idx[np.argsort(flat[idx], kind="stable")]
            st = _Stretch(O, mu, base(kk))
            taus = flat[idx] - kk * span
            Q[idx] = [st.representative(tau)[0] for tau in taus]
            if layers:
                Q[idx] = Q[idx] @ _integrate_rotation(st, taus, rtol)
        return _state(Q, d_in, t.shape, layers)

    return predict


def _state(Q, d_in, shape, layers):
    Q1, Q2 = Q[:, :d_in], Q[:, d_in:]
    T = np.swapaxes
    out = [Q2 @ T(Q1, 1, 2), Q1 @ T(Q1, 1, 2), Q2 @ T(Q2, 1, 2)]
    out += [T(Q1, 1, 2), Q2] if layers else [None, None]
    return BalancedFlowState(*(None if x is None else x.reshape(shape + x.shape[1:]) for x in out))


def linearised_flow_fn(W1_0, W2_0, M):
    """``predict_fn(t) -> W(t)``: the lazy (NTK, frozen-kernel) dynamics ``Ė = −(S₂E + ES₁)`` of the end-to-end map,
    ``W(t) = M + e^{−tS₂}(W₀ − M)e^{−tS₁}`` with ``S₁ = W₁ᵀW₁``, ``S₂ = W₂W₂ᵀ`` at init (derived; any init).

    The λ → ±∞ limit of :func:`lambda_balanced_flow_fn` at a fixed initial map. Returns shape ``t.shape + M.shape``."""
    W1_0, W2_0, M = _check_layers(W1_0, W2_0, M, names=("W1_0", "W2_0"))
    sig1, V = np.linalg.eigh(W1_0.T @ W1_0)
    sig2, U = np.linalg.eigh(W2_0 @ W2_0.T)
    E0 = U.T @ (W2_0 @ W1_0 - M) @ V
    rate = sig2[:, None] + sig1[None, :]

    def predict(t):
        t = np.asarray(t, np.float64)
        if np.any(~np.isfinite(t)) or np.any(t < 0):
            raise ConfigError("t", t, "finite times >= 0")
        E = E0 * np.exp(-t[..., None, None] * rate)
        return M + U @ E @ V.T

    return predict


def lambda_mode_trajectory(t, m0, s, lam):
    """``m(t)`` of one aligned λ-balanced mode, ``ṁ = √(4m² + λ²)(s − m)``, in closed form (derived).

    The mode's layer values ``(b, a)`` (``b² − a² = λ``, ``ab = m₀``) form the 2×2 instance of the Riccati solution
    with ``A = [[λ/2, s], [s, −λ/2]]``, ``ω = √(s² + λ²/4)``; with ``ε = e^{−2ωt}`` and
    ``h = (1 − ε)/(2ω)`` (``= t`` at ``ω = 0``), ``ŷ = ½(1 + ε)q + hAq`` (``q = (b, a)``):
    ``m = ŷ₁ŷ₂ / (ε + ½(1 + ε)h|q|² + h² qᵀAq)`` — bounded terms only. λ = 0 gives Saxe's logistic
    ``s / (1 + (s/m₀ − 1)e^{−2st})`` (and ``m₀/(1 + 2m₀t)`` at ``s = 0``); ``|λ| → ∞`` gives
    ``s + (m₀ − s)e^{−|λ|t}``. Any sign of ``m₀`` and λ; arguments broadcast."""
    t, m0, s, lam = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (t, m0, s, lam)))
    for name, v in (("t", t), ("s", s)):
        if np.any(v < 0):
            raise ConfigError(name, v, "values >= 0")
    omega = np.sqrt(s**2 + 0.25 * lam**2)
    small = _smaller_layer_value(m0, lam)
    large = np.sqrt(small**2 + np.abs(lam))
    a = np.where(lam >= 0, small, large)  # W₂'s value; W₁'s carries the sign of m₀
    b = np.where(lam >= 0, large, small) * np.where(m0 < 0, -1.0, 1.0)
    Aq1, Aq2 = 0.5 * lam * b + s * a, s * b - 0.5 * lam * a
    eps = np.exp(-2 * omega * t)
    h = np.where(omega > 0, -np.expm1(-2 * omega * t) / (2 * np.where(omega > 0, omega, 1.0)), t)  # (1 − ε)/(2ω)
    y1, y2 = 0.5 * (1 + eps) * b + h * Aq1, 0.5 * (1 + eps) * a + h * Aq2
    return y1 * y2 / (eps + 0.5 * (1 + eps) * h * (a**2 + b**2) + h**2 * (b * Aq1 + a * Aq2))


def tangent_kernel(W1, W2, x1=None, x2=None):
    """The neural tangent kernel of ``x ↦ W₂W₁x`` (derived).

    With inputs ``x1`` (``n₁ × d_in``) and ``x2`` (default ``x1``): ``Θ[a, b] = (x1_a·x2_b) W₂W₂ᵀ +
    (x1_aᵀW₁ᵀW₁x2_b) I``, shape ``(n₁, n₂, d_out, d_out)``. Without inputs: the whitened-population kernel acting on
    the error matrix, ``K = W₂W₂ᵀ ⊗ I_{d_in} + I_{d_out} ⊗ W₁ᵀW₁`` on row-major ``vec E`` (``d_out·d_in`` square)."""
    W1, W2 = _check_layers(W1, W2)
    S1, S2 = W1.T @ W1, W2 @ W2.T
    if x1 is None:
        return np.kron(S2, np.eye(S1.shape[0])) + np.kron(np.eye(S2.shape[0]), S1)
    x1 = np.atleast_2d(np.asarray(x1, np.float64))
    x2 = x1 if x2 is None else np.atleast_2d(np.asarray(x2, np.float64))
    return (np.einsum("ak,bk->ab", x1, x2)[:, :, None, None] * S2
            + np.einsum("ak,kl,bl->ab", x1, S1, x2)[:, :, None, None] * np.eye(S2.shape[0]))


def relative_kernel_change(S1, S2, S1_0, S2_0):
    """``‖K − K₀‖_F / ‖K₀‖_F`` for the population tangent kernel ``K = S₂ ⊗ I + I ⊗ S₁`` (:func:`tangent_kernel`),
    from the representations ``S1 = W₁ᵀW₁``, ``S2 = W₂W₂ᵀ`` (leading axes broadcast, e.g. time), via
    ``‖X ⊗ I + I ⊗ Y‖²_F = d_in‖X‖² + d_out‖Y‖² + 2 tr X tr Y`` (no Kronecker product is formed)."""
    S1, S2, S1_0, S2_0 = (np.asarray(x, np.float64) for x in (S1, S2, S1_0, S2_0))
    d_in, d_out = S1.shape[-1], S2.shape[-1]

    def norm2(X, Y):
        tr = np.trace(X, axis1=-2, axis2=-1) * np.trace(Y, axis1=-2, axis2=-1)
        return d_in * np.sum(X**2, axis=(-2, -1)) + d_out * np.sum(Y**2, axis=(-2, -1)) + 2 * tr

    return np.sqrt(norm2(S2 - S2_0, S1 - S1_0) / norm2(S2_0, S1_0))


def kernel_change_width_exponent(gamma: float) -> float:
    """The exponent ``e`` of the width in the relative tangent-kernel change of a trained two-layer network from a
    Gaussian init of entry variance ``σ² = w^−γ``, ``‖K(∞) − K(0)‖/‖K(0)‖ ∝ w^e`` at fixed teacher (derived, by
    scaling; [J]'s γ = 1 is where ``e`` changes sign). ``K(0) ∝ S(0) ≈ wσ² = w^{1−γ}``:

    * γ > 1 (rich): the trained representations are O(1) (``S ≈ |M|``), so the change is O(1) and ``e = γ − 1``;
    * γ < 1 (lazy): the residual decays at rate ~``wσ²``, so ``ΔW₁ = W₂ᵀ∫E ≈ W₂ᵀM/(wσ²)``, and
      ``ΔS₁ = W₁ᵀΔW₁ + ΔW₁ᵀW₁ + ΔW₁ᵀΔW₁`` has a first-order part ``(W₂W₁)ᵀM/(wσ²) ~ √w σ²/(wσ²)`` (the initial map
      is a sum of ``w`` random products) and a second-order part ``W₂W₂ᵀM²/(wσ²)² ~ 1/(wσ²)``; over ``K(0)`` they
      scale as ``w^{γ−3/2}`` and ``w^{2(γ−1)}``, so ``e = max(γ − 3/2, 2(γ − 1))`` (−1 at γ = 1/2, where both agree).

    Checked by simulation at γ = 1/2 and 2 only (``lazy_rich``'s width rows: slopes −1.07 and +1.04 over
    w = 8–128); the lazy branch between is the scaling argument alone."""
    gamma = float(gamma)
    if not (gamma > 0 and gamma != 1 and math.isfinite(gamma)):
        raise ConfigError("gamma", gamma, "a finite γ > 0 other than 1 (at γ = 1 the scaling has logarithms)")
    return gamma - 1.0 if gamma > 1 else max(gamma - 1.5, 2.0 * (gamma - 1.0))
