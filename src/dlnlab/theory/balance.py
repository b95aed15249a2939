"""The law of balance ([Z] §§2–5 of ``noise_balance.md``) and [Z]'s data constants, in library units.

Library units (``README.md``): ½-loss, ``t = η·step``, ``T = η/(2B)`` (the same number as [Z]'s
``T = η_Z/S``), weight decay ``(ρ/2)‖θ‖²``. Rates per unit ``t`` are **half** of [Z]'s rates per ``t_Z``
(``t = 2 t_Z``); [Z]'s loss is 2× ours and its noise covariance 4× ours. Conversions of step, batch and
depth are in :func:`dlnlab.conventions.from_ziyin` (the one place).

Rescaling symmetry between parameter groups ``u`` and ``w`` (``ℓ(cu, w/c) = ℓ(u, w)``):

* **exact per step** (derived; ``noise_balance.md`` §4): ``Δ(‖u‖² − ‖w‖²) = η²(‖ĝ_u‖² − ‖ĝ_w‖²)``
  — :func:`step_imbalance_change`; scalar pair factor ``(1 − ηρ)² − η²ξ̂²`` — :func:`scalar_pair_step_factor`;
  factor pair of one depth-L path — :func:`path_pair_step_factor`;
* **continuous time** (Theorem 3.1): ``d(‖u‖² − ‖w‖²)/dt = −2T(uᵀC₁u − wᵀC₂w) = 2T(tr Σ_u − tr Σ_w)``
  — :func:`balance_drift`; bounds — :func:`balance_drift_bounds`, :func:`stationary_ratio_bounds`;
* **noise balance** (the fixed point): equal noise traces ``tr Σ_u = tr Σ_w``; along a valley the preferred
  scale is ``c⁴ = w*ᵀC₂w* / u*ᵀC₁u*`` — :func:`noise_balance_scale`;
* two-layer diagonal path: ``d ln|u_i² − w_i²|/dt = −2(T g(v) + ρ)`` — :func:`diagonal_balance_rate`,
  bounded by ``−2(TΔ/α₁ + ρ)`` — :func:`decay_bound_rate`;
* deep linear networks: exact per-layer noise traces ``tr Var ∂_{W_l}ℓ`` (Wick) — :func:`layer_noise_traces`,
  and the expected change of ``‖W_{l+1}‖²_F − ‖W_l‖²_F`` per unit time — :func:`layer_balance_drift`.

Data constants ([Z] §5): ``β₁ = E x²``, ``β₂ = E xy``, ``α₁ = Var x²``, ``α₂ = Cov(x², xy)``,
``α₃ = Var xy``, ``Δ = α₁α₃ − α₂²``, ``g(v) = α₁v² − 2α₂v + α₃`` (= Var ∂ℓ/∂v) — :class:`DataConstants`,
with the estimator :func:`estimate_data_constants` (group standard errors, ``checks.md`` §0).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..model.diagonal import DataConstants  # re-exported: theory callers import it from here

# ---------------------------------------------------------------------------------------------------------
# Data constants (the class lives in the model layer, :mod:`dlnlab.model.diagonal`)


def estimate_data_constants(x, y, groups: int = 20):
    """Estimate ``(β₁, β₂, α₁, α₂, α₃, Δ)`` from samples, with group standard errors.

    The ``n`` samples are split into ``groups`` consecutive groups; the SE of each statistic is
    ``sd(per-group estimates)/√groups`` (``checks.md`` §0: robust to the heavy, eighth-moment tails).
    Returns ``(DataConstants, {name: se})`` with names ``beta1 … alpha3, det``.
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ConfigError("y", f"{y.size} samples", f"as many samples as x ({x.size})")

    def stats(xx, yy):
        a, b = xx * xx, xx * yy
        a_c, b_c = a - a.mean(), b - b.mean()
        n = a.size
        alpha1, alpha3 = (a_c @ a_c) / (n - 1), (b_c @ b_c) / (n - 1)
        alpha2 = (a_c @ b_c) / (n - 1)
        return np.array([a.mean(), b.mean(), alpha1, alpha2, alpha3, alpha1 * alpha3 - alpha2**2])

    full = stats(x, y)
    per = np.array([stats(xg, yg) for xg, yg in zip(np.array_split(x, groups), np.array_split(y, groups))])
    se = per.std(axis=0, ddof=1) / np.sqrt(groups)
    names = ("beta1", "beta2", "alpha1", "alpha2", "alpha3", "det")
    return DataConstants(*full[:5]), dict(zip(names, se))


# ---------------------------------------------------------------------------------------------------------
# Exact per-step law (noise_balance.md §4)


def step_imbalance_change(lr, grad_u, grad_w):
    """``Δ(‖u‖² − ‖w‖²) = η²(‖ĝ_u‖² − ‖ĝ_w‖²)`` for one SGD step ``u' = u − ηĝ_u``, ``w' = w − ηĝ_w``
    (exact whenever ``⟨u, ĝ_u⟩ = ⟨w, ĝ_w⟩``, i.e. without weight decay)."""
    gu, gw = np.asarray(grad_u, np.float64), np.asarray(grad_w, np.float64)
    return lr**2 * (np.sum(gu**2) - np.sum(gw**2))


def scalar_pair_step_factor(lr, xi_hat, weight_decay: float = 0.0):
    """``(u² − w²)_{k+1} / (u² − w²)_k = (1 − ηρ)² − η²ξ̂²`` for a scalar pair ``v = uw`` (ξ̂ = minibatch
    mean of ``∂ℓ/∂v``)."""
    return (1 - lr * weight_decay) ** 2 - lr**2 * np.asarray(xi_hat, np.float64) ** 2


def path_pair_step_factor(lr, xi_hat, factors, l: int, m: int, weight_decay: float = 0.0):
    """Factor multiplying ``(u^{(l)})² − (u^{(m)})²`` in one SGD step of a depth-L path ``v_i = Π_j u^{(j)}``:
    ``(1 − ηρ)² − η²ξ̂² Π_{j≠l,m} (u^{(j)})²`` (``factors``: the path's L factors, last axis)."""
    f = np.asarray(factors, np.float64)
    others = np.prod(np.delete(f, [l, m], axis=-1) ** 2, axis=-1)
    return (1 - lr * weight_decay) ** 2 - lr**2 * np.asarray(xi_hat, np.float64) ** 2 * others


# ---------------------------------------------------------------------------------------------------------
# Continuous-time law (Theorem 3.1) and noise balance


def noise_matrices(A):
    """``C₁ = E[AᵀA] − E[A]ᵀE[A]`` and ``C₂ = E[AAᵀ] − E[A]E[A]ᵀ`` from per-sample matrices ``A`` (leading
    sample axis), ``A_{ki} = ∂ℓ̃/∂(u_i w_k)``, so that ``Σ_k Var ∂ℓ/∂w_k = uᵀC₁u`` and
    ``Σ_i Var ∂ℓ/∂u_i = wᵀC₂w``."""
    A = np.asarray(A, np.float64)
    mean = A.mean(axis=0)
    C1 = np.einsum("nki,nkj->ij", A, A) / A.shape[0] - mean.T @ mean
    C2 = np.einsum("nik,njk->ij", A, A) / A.shape[0] - mean @ mean.T
    return C1, C2


def rank_one_noise_matrices(u, w, M, input_cov, label_noise):
    """Exact ``C₁, C₂`` of the rank-one linear network ``f(x) = u wᵀx`` (``u ∈ ℝ^{d_out}``, ``w ∈ ℝ^{d_in}``)
    on Gaussian data ``x ~ N(0, Σx)``, ``y = Mx + ε``: with ``P = EΣx`` and ``Q = EΣxEᵀ + σ_ε²I``,
    ``C₁ = Q tr Σx + PPᵀ`` (d_out × d_out) and ``C₂ = Σx tr Q + PᵀP`` (d_in × d_in) (Wick)."""
    u, w = np.asarray(u, np.float64), np.asarray(w, np.float64)
    E = np.outer(u, w) - np.asarray(M, np.float64)
    S = np.asarray(input_cov, np.float64)
    P = E @ S
    Q = P @ E.T + label_noise**2 * np.eye(E.shape[0])
    return Q * np.trace(S) + P @ P.T, S * np.trace(Q) + P.T @ P


def balance_drift(u, w, C1, C2, temperature):
    """``d(‖u‖² − ‖w‖²)/dt = −2T(uᵀC₁u − wᵀC₂w)`` (Theorem 3.1, SDE; our units)."""
    u, w = np.asarray(u, np.float64), np.asarray(w, np.float64)
    return -2 * temperature * (u @ C1 @ u - w @ C2 @ w)


def balance_drift_bounds(u, w, C1, C2, temperature):
    """``(lower, upper)`` bounds of :func:`balance_drift` from the extreme eigenvalues of ``C₁, C₂``:
    ``−2T(μ₁max‖u‖² − μ₂min‖w‖²) ≤ d(‖u‖² − ‖w‖²)/dt ≤ −2T(μ₁min‖u‖² − μ₂max‖w‖²)``."""
    e1, e2 = np.linalg.eigvalsh(C1), np.linalg.eigvalsh(C2)
    uu, ww = float(np.sum(np.asarray(u) ** 2)), float(np.sum(np.asarray(w) ** 2))
    return -2 * temperature * (e1[-1] * uu - e2[0] * ww), -2 * temperature * (e1[0] * uu - e2[-1] * ww)


def stationary_ratio_bounds(C1, C2):
    """At stationarity ``μ₂min/μ₁max ≤ ‖u‖²/‖w‖² ≤ μ₂max/μ₁min``."""
    e1, e2 = np.linalg.eigvalsh(C1), np.linalg.eigvalsh(C2)
    return e2[0] / e1[-1], (e2[-1] / e1[0] if e1[0] > 0 else np.inf)


def noise_balance_scale(u_star, w_star, C1, C2):
    """Preferred scale ``c`` along the valley ``u = c u*``, ``w = w*/c``: ``c⁴ = w*ᵀC₂w* / u*ᵀC₁u*``
    (C₁, C₂ are rescaling invariant); ``inf`` when ``C₁`` vanishes on ``u*``."""
    a = float(np.asarray(u_star) @ C1 @ np.asarray(u_star))
    b = float(np.asarray(w_star) @ C2 @ np.asarray(w_star))
    return np.inf if a == 0 else (b / a) ** 0.25


# ---------------------------------------------------------------------------------------------------------
# Two-layer diagonal path (noise_balance.md §5, Corollary 3.3, §7)


def diagonal_balance_rate(v, temperature, constants: DataConstants, weight_decay: float = 0.0):
    """``d ln|u_i² − w_i²|/dt = −2(T g(v) + ρ)`` for a two-factor path (pathwise under the SDE; v is the
    model output ``Σ_i u_i w_i``). [Z] writes ``−4[Tg + γ_Z]`` per ``t_Z``."""
    return -2 * (temperature * constants.g(v) + weight_decay)


def factor_pair_rate(v, v_path, u_l, u_m, temperature, constants: DataConstants, weight_decay: float = 0.0):
    """``d ln|(u^{(l)})² − (u^{(m)})²|/dt = −2(T (v_i/(u^{(l)}u^{(m)}))² g(v) + ρ)`` for two factors of one
    depth-L path (corrected factor-pair variance, ``noise_balance.md`` §13 #5)."""
    return -2 * (temperature * (np.asarray(v_path) / (np.asarray(u_l) * np.asarray(u_m))) ** 2 * constants.g(v)
                 + weight_decay)


def decay_bound_rate(temperature, constants: DataConstants, weight_decay: float = 0.0):
    """The guaranteed decay rate ``2(TΔ/α₁ + ρ)``: ``|u² − w²|(t) ≤ |u² − w²|(0) e^{−2(TΔ/α₁+ρ)t}``."""
    return 2 * (temperature * constants.g_min + weight_decay)


def opposite_sign_rate(v, temperature, constants: DataConstants):
    """``d ln(v_i |v_j|)/dt = −4T g(v)`` for two L = 2 paths of opposite signs (one of them dies);
    [Z]: ``−8Tg`` per ``t_Z`` (§13 #6)."""
    return -4 * temperature * constants.g(v)


def sgd_balance_rate(v, lr, batch_size, constants: DataConstants, weight_decay: float = 0.0):
    """Expected ``d ln|u² − w²|`` per unit time of discrete SGD on a scalar pair, to leading order in η:
    ``−(2T g(v) + η(β₁v − β₂)² + 2ρ)``: the SDE part plus the discretisation ("modified loss") part
    ``η(Eξ)²`` (``noise_balance.md`` §4, interpretation)."""
    T = lr / (2 * batch_size)
    return -(2 * T * constants.g(v) + lr * constants.mean_grad(v) ** 2 + 2 * weight_decay)


# ---------------------------------------------------------------------------------------------------------
# Deep linear networks: per-layer noise traces


def _products(ws):
    L = len(ws)
    pre, suf = [np.eye(ws[0].shape[1])], [np.eye(ws[-1].shape[0])]
    for w in ws[:-1]:
        pre.append(w @ pre[-1])
    for w in reversed(ws[1:]):
        suf.append(suf[-1] @ w)
    return pre, suf[::-1][:L]


def layer_noise_traces(weights, M, input_cov, label_noise):
    """``tr Var[∂ℓ/∂W_l]`` for every layer, exact for Gaussian data (Wick): with ``A = W_{>l}W_{>l}ᵀ``,
    ``B = W_{<l}ᵀW_{<l}``, ``P = EΣx``, ``Q = EΣxEᵀ + σ_ε²I``: ``tr(AQ) tr(BΣx) + tr(APBPᵀ)``."""
    ws = [np.asarray(w, np.float64) for w in weights]
    W = ws[0]
    for w in ws[1:]:
        W = w @ W
    S = np.asarray(input_cov, np.float64)
    P = (W - M) @ S
    Q = P @ (W - M).T + label_noise**2 * np.eye(W.shape[0])
    pre, suf = _products(ws)
    out = []
    for l in range(len(ws)):
        A, B = suf[l] @ suf[l].T, pre[l].T @ pre[l]
        out.append(np.trace(A @ Q) * np.trace(B @ S) + np.trace(A @ P @ B @ P.T))
    return np.array(out)


def layer_gradient_norms(weights, M, input_cov):
    """``‖∇_{W_l}𝓛‖²_F`` of the population loss for every layer."""
    ws = [np.asarray(w, np.float64) for w in weights]
    W = ws[0]
    for w in ws[1:]:
        W = w @ W
    G = (W - M) @ np.asarray(input_cov, np.float64)
    pre, suf = _products(ws)
    return np.array([np.sum((suf[l].T @ G @ pre[l].T) ** 2) for l in range(len(ws))])


def layer_balance_drift(weights, M, input_cov, label_noise, lr, batch_size, *, discrete: bool = True):
    """Expected change per unit time of ``‖W_{l+1}‖²_F − ‖W_l‖²_F`` (one entry per pair l = 1 … L−1).

    SDE part ``2T(tr Σ_{l+1} − tr Σ_l)``; with ``discrete=True`` also the exact discrete-SGD part
    ``η(‖∇_{l+1}𝓛‖² − ‖∇_l𝓛‖²)``, so that the value is exactly ``E[Δ]/η`` for one online SGD step
    (``E‖ĝ‖² = ‖∇𝓛‖² + tr Σ/B``; ``noise_balance.md`` §4)."""
    T = lr / (2 * batch_size)
    tr = layer_noise_traces(weights, M, input_cov, label_noise)
    out = 2 * T * (tr[1:] - tr[:-1])
    if discrete:
        gn = layer_gradient_norms(weights, M, input_cov)
        out = out + lr * (gn[1:] - gn[:-1])
    return out
