"""Per-mode reduction of SGD in deep linear networks: drift, diffusion, Itô correction, diffusion peak.

NumPy closed forms of ``sgd_noise.md`` §§4–8 (all "derived" there: only [C]'s abstract was available).
Conventions (``README.md``): ½-loss, online SGD ``(η, B)``, ``t = η k``, Itô SDE, ``T = η/(2B)``,
``D(m) = 2λ²(m − s)² + λσ_ε²``.

One mode ``α`` (``s, λ`` its singular value and input variance) on the aligned manifold has per-layer values
``a = (a_1, …, a_L)``, ``m = Π_l a_l`` and ``π_l = Π_{j≠l} a_j``. Per-layer arrays carry the **layer axis
first**: ``a`` has shape ``(L, …)``, the trailing axes broadcast (modes, replicas, grids).

* §5.1 aligned, not necessarily balanced: ``da_l = λπ_l(s − m) dt + sqrt(η/B) π_l sqrt(D(m)) dB`` with **one**
  Brownian motion per mode (rank-one noise covariance ``(η/B) D ππᵀ``);
* §5.2 balanced (``a_l = a``, ``m = a^L``): ``da = λa^{L−1}(s − a^L) dt + sqrt(η/B) a^{L−1} sqrt(D) dB``;
* §5.3 function space with the Itô correction: ``dm = [λK(s − m) + T D πᵀ∇²m π] dt + sqrt(η/B) K sqrt(D) dB``,
  ``K = Σ_l π_l²``; balanced: ``dm = [Lλm^{2−2/L}(s − m) + T L(L−1) m^{3−4/L} D] dt + sqrt(η/B) L m^{2−2/L} sqrt(D) dB``;
* §7 diffusion along a mode ``𝒟_p(m) = c_p (η/B) m^p D(m)``: per-layer ``p = 2 − 2/L`` (``c_p = 1``), function
  space ``p = 4 − 4/L`` (``c_p = L²``); its pre-learning peak ``m* = p s/(p + 2)`` (no label noise) or ``m_−``
  (label noise, when ``σ_ε² ≤ 2λs²/(p(p + 2))``), and the gradient-flow times of the peak and of learning;
* §8 leaving the saddle with noise (``L = 2``) and the collapse temperature ``T_c``.

The stationary laws (§9) live in :mod:`dlnlab.theory.stationary`.
"""

from __future__ import annotations

import numpy as np

from ..conventions import mode_noise_var
from .gradient_flow import mode_time

__all__ = [
    "balanced_layer_diffusion",
    "balanced_layer_drift",
    "collapse_temperature",
    "escape_rates",
    "function_diffusion",
    "function_diffusion_layers",
    "function_drift",
    "function_drift_layers",
    "gf_drift",
    "ito_drift",
    "ito_drift_layers",
    "layer_drift",
    "layer_noise_amplitude",
    "layer_noise_cov",
    "layer_potential",
    "layer_products",
    "learning_time",
    "log_layer_drift",
    "mode_diffusion",
    "mode_noise_var",
    "peak_discriminant",
    "peak_exponent",
    "peak_is_global",
    "peak_label_noise_max",
    "peak_lag",
    "peak_roots",
    "peak_strength",
    "peak_time",
    "sgd_step_variance",
]


def _L_of(a):
    return np.shape(a)[0]


# ---------------------------------------------------------------------------------------------------------
# Per-layer coordinates (§5.1, §5.2)


def layer_products(a):
    """``(m, π)`` with ``m = Π_l a_l`` and ``π_l = Π_{j≠l} a_j`` (products, no division: exact at ``a_l = 0``)."""
    a = np.asarray(a, np.float64)
    L = _L_of(a)
    ones = np.ones_like(a[:1])
    pre = np.cumprod(np.concatenate([ones, a[:-1]]), axis=0)  # a_1 ⋯ a_{l−1}
    suf = np.cumprod(np.concatenate([ones, a[::-1][:-1]]), axis=0)[::-1]  # a_{l+1} ⋯ a_L
    pi = pre * suf
    m = pre[-1] * a[-1] if L else ones[0]
    return m, pi


def layer_drift(a, s, lam=1.0):
    """Drift of §5.1 for every layer: ``λ π_l (s − m)`` (gradient flow of the per-layer values)."""
    m, pi = layer_products(a)
    return lam * pi * (s - m)


def layer_noise_amplitude(a, s, lam, label_noise, lr, batch_size):
    """Coefficient of the mode's single ``dB`` in ``da_l``: ``sqrt(η/B) π_l sqrt(D(m))`` (§5.1)."""
    m, pi = layer_products(a)
    return np.sqrt(lr / batch_size) * pi * np.sqrt(mode_noise_var(m, s, lam, label_noise))


def layer_noise_cov(a, s, lam, label_noise, lr, batch_size):
    """Per-unit-time noise covariance of ``a``: ``(η/B) D(m) π πᵀ``, shape ``(L, L, …)`` (rank one)."""
    g = layer_noise_amplitude(a, s, lam, label_noise, lr, batch_size)
    return g[:, None] * g[None, :]


def balanced_layer_drift(a, s, lam=1.0, L=2):
    """§5.2: ``λ a^{L−1} (s − a^L) = −V'(a)`` with ``V(a) = λ(a^L − s)²/(2L)``."""
    a = np.asarray(a, np.float64)
    return lam * a ** (L - 1) * (s - a**L)


def balanced_layer_diffusion(a, s, lam, label_noise, lr, batch_size, L):
    """§5.2 diffusion coefficient (variance per unit time) of the balanced per-layer value: ``(η/B) a^{2L−2} D(a^L)``."""
    a = np.asarray(a, np.float64)
    return lr / batch_size * a ** (2 * L - 2) * mode_noise_var(a**L, s, lam, label_noise)


def layer_potential(a, s, lam=1.0, L=2):
    """``V(a) = λ (a^L − s)² / (2L)``: the balanced per-layer drift is ``−V'(a)``."""
    a = np.asarray(a, np.float64)
    return lam * (a**L - s) ** 2 / (2 * L)


def log_layer_drift(a, s, lam, label_noise, lr, batch_size):
    """Itô drift of ``y_l = ln a_l`` (``a_l > 0``): ``λ r_l (s − m) − ½ (η/B) r_l² D(m)`` with ``r_l = π_l/a_l``.

    The noise of ``y_l`` is ``sqrt(η/B) r_l sqrt(D) dB``. Balanced: ``r_l = a^{L−2}``."""
    a = np.asarray(a, np.float64)
    m, pi = layer_products(a)
    r = pi / a
    return lam * r * (s - m) - 0.5 * lr / batch_size * r**2 * mode_noise_var(m, s, lam, label_noise)


# ---------------------------------------------------------------------------------------------------------
# Function space (§5.3)


def gf_drift(m, s, lam=1.0, L=2):
    """Gradient-flow part of the balanced function-space drift: ``L λ m^{2−2/L} (s − m)`` (``m ≥ 0``)."""
    m = np.asarray(m, np.float64)
    return L * lam * m ** (2.0 - 2.0 / L) * (s - m)


def ito_drift(m, s, lam, label_noise, lr, batch_size, L):
    """Itô correction of the balanced function-space drift: ``T L(L−1) m^{3−4/L} D(m)`` with ``T = η/(2B)``.

    It is ``T D πᵀ∇²m π`` on the balanced manifold (``π_l = a^{L−1}``, ``∂²m/∂a_l∂a_k = a^{L−2}`` for ``l ≠ k``) and
    vanishes for ``L = 1``."""
    m = np.asarray(m, np.float64)
    T = lr / (2.0 * batch_size)
    if L == 1:
        return np.zeros_like(m)
    return T * L * (L - 1) * m ** (3.0 - 4.0 / L) * mode_noise_var(m, s, lam, label_noise)


def function_drift(m, s, lam, label_noise, lr, batch_size, L):
    """Balanced function-space drift of §5.3: ``L λ m^{2−2/L}(s − m) + T L(L−1) m^{3−4/L} D(m)``."""
    return gf_drift(m, s, lam, L) + ito_drift(m, s, lam, label_noise, lr, batch_size, L)


def ito_drift_layers(a, s, lam, label_noise, lr, batch_size):
    """Itô correction for aligned, possibly unbalanced layers: ``T D(m) πᵀ ∇²_a m π``.

    ``∇²_a m`` has entries ``Π_{j≠l,k} a_j`` off the diagonal and 0 on it, so
    ``πᵀ∇²m π = Σ_{l≠k} π_l π_k Π_{j≠l,k} a_j`` (computed as products, valid at zeros)."""
    a = np.asarray(a, np.float64)
    L = _L_of(a)
    m, pi = layer_products(a)
    quad = np.zeros_like(m)
    for l in range(L):
        for k in range(L):
            if l == k:
                continue
            rest = np.ones_like(m)
            for j in range(L):
                if j not in (l, k):
                    rest = rest * a[j]
            quad = quad + pi[l] * pi[k] * rest
    T = lr / (2.0 * batch_size)
    return T * mode_noise_var(m, s, lam, label_noise) * quad


def function_drift_layers(a, s, lam, label_noise, lr, batch_size):
    """Function-space drift for aligned, possibly unbalanced layers (§5.3): ``λ K (s − m) + T D πᵀ∇²m π``,
    ``K = Σ_l π_l²``."""
    m, pi = layer_products(a)
    K = np.sum(pi**2, axis=0)
    return lam * K * (s - m) + ito_drift_layers(a, s, lam, label_noise, lr, batch_size)


def function_diffusion(m, s, lam, label_noise, lr, batch_size, L):
    """Balanced function-space diffusion (variance per unit time of ``m``): ``(η/B) L² m^{4−4/L} D(m)``."""
    m = np.asarray(m, np.float64)
    return lr / batch_size * L**2 * m ** (4.0 - 4.0 / L) * mode_noise_var(m, s, lam, label_noise)


def function_diffusion_layers(a, s, lam, label_noise, lr, batch_size):
    """Function-space diffusion for aligned, possibly unbalanced layers: ``(η/B) K² D(m)``, ``K = Σ_l π_l²``.

    ``K² D`` is the noise power ``Var⟨A_α, G⟩`` of the ``noise_power`` observable on the aligned manifold."""
    m, pi = layer_products(a)
    K = np.sum(pi**2, axis=0)
    return lr / batch_size * K**2 * mode_noise_var(m, s, lam, label_noise)


# ---------------------------------------------------------------------------------------------------------
# Diffusion along a mode and its peak (§7)

_KINDS = {"parameter": "parameter", "par": "parameter", "function": "function", "fun": "function"}


def _kind(kind):
    if kind not in _KINDS:
        raise ValueError(f"kind = {kind!r}; allowed: 'parameter' (p = 2 − 2/L) or 'function' (p = 4 − 4/L)")
    return _KINDS[kind]


def peak_exponent(L, kind="function"):
    """``p`` of ``𝒟_p ∝ m^p D(m)``: ``2 − 2/L`` (per-layer, ``kind="parameter"``) or ``4 − 4/L`` (``"function"``)."""
    return (2.0 - 2.0 / L) if _kind(kind) == "parameter" else (4.0 - 4.0 / L)


def mode_diffusion(m, s, lam, label_noise, lr, batch_size, L, kind="function"):
    """``𝒟_p(m) = c_p (η/B) m^p D(m)`` (§7.1): ``kind="parameter"``: ``p = 2 − 2/L``, ``c_p = 1`` (one layer of the
    balanced §5.2 SDE); ``kind="function"``: ``p = 4 − 4/L``, ``c_p = L²`` (the §5.3 SDE of ``m``). Exactly ``∝ η/B``."""
    m = np.asarray(m, np.float64)
    p = peak_exponent(L, kind)
    c = 1.0 if _kind(kind) == "parameter" else float(L) ** 2
    return c * lr / batch_size * m**p * mode_noise_var(m, s, lam, label_noise)


def peak_discriminant(s, lam, label_noise, p):
    """Discriminant ``8λ³[2λs² − p(p + 2)σ_ε²]`` of ``d/dm[m^p D(m)] = 0`` (§7.3); ``≥ 0`` iff an interior peak exists."""
    return 8.0 * lam**3 * (2.0 * lam * s**2 - p * (p + 2.0) * label_noise**2)


def peak_label_noise_max(s, lam, p):
    """Largest label-noise sd with an interior pre-learning peak: ``σ_ε,max = sqrt(2λs²/(p(p + 2)))`` (§7.3)."""
    return np.sqrt(2.0 * lam * s**2 / (p * (p + 2.0)))


def peak_roots(s, lam, label_noise, p):
    """``(m_−, m_+)``, the critical points of ``m^p D(m)`` on ``(0, s]`` (§7.3): the local maximum ``m_−`` and the
    local minimum ``m_+``; ``(nan, nan)`` when the discriminant is negative. ``σ_ε = 0`` gives ``(ps/(p+2), s)``."""
    disc = np.asarray(s**2 - p * (p + 2.0) * label_noise**2 / (2.0 * lam), np.float64)
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    lo, hi = (s * (p + 1.0) - root) / (p + 2.0), (s * (p + 1.0) + root) / (p + 2.0)
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi


def peak_strength(s, L, kind="function", lam=1.0, label_noise=0.0):
    """Mode strength at the pre-learning peak of ``𝒟_p``: ``m* = p s/(p + 2)`` without label noise (§7.2) and
    ``m_−`` with label noise (§7.3); ``nan`` when the discriminant condition fails (no interior peak)."""
    p = peak_exponent(L, kind)
    if np.all(np.asarray(label_noise) == 0):
        return p * np.asarray(s, np.float64) / (p + 2.0)
    return peak_roots(s, lam, label_noise, p)[0]


def peak_is_global(s, L, kind="function", lam=1.0, label_noise=0.0):
    """Whether the pre-learning bump is the largest value of ``𝒟_p`` on ``(0, s]``: ``m_−^p D(m_−) ≥ s^p λσ_ε²``."""
    p = peak_exponent(L, kind)
    mm = peak_strength(s, L, kind, lam, label_noise)
    if np.isnan(mm):
        return False
    return bool(mm**p * mode_noise_var(mm, s, lam, label_noise) >= s**p * lam * label_noise**2)


def peak_time(m0, s, lam=1.0, L=2, kind="function", label_noise=0.0):
    """Gradient-flow time ``t*`` at which a balanced mode started at ``m0`` reaches the peak strength (§7.2)."""
    mm = peak_strength(s, L, kind, lam, label_noise)
    if np.isnan(mm):
        return np.nan
    return mode_time(mm, m0, s, lam, L)


def learning_time(m0, s, lam=1.0, L=2, eps=0.01):
    """Gradient-flow time ``t_ε`` at which the mode reaches ``(1 − ε) s`` (learned), from ``m0``."""
    return mode_time((1.0 - eps) * s, m0, s, lam, L)


def peak_lag(s, lam=1.0, L=2, kind="function", eps=0.01, label_noise=0.0):
    """``t_ε − t*`` under gradient flow; independent of ``m0`` (for ``L = 2`` it is
    ``ln(2(1 − ε)/(pε))/(2λs)`` when ``σ_ε = 0``)."""
    mm = peak_strength(s, L, kind, lam, label_noise)
    if np.isnan(mm):
        return np.nan
    return mode_time((1.0 - eps) * s, mm, s, lam, L)


# ---------------------------------------------------------------------------------------------------------
# Leaving the saddle (§8) and per-step noise


def escape_rates(s, lam, label_noise, lr, batch_size):
    """``L = 2`` log-growth rates near the saddle (§8) for ``m = a²`` under the SDE: ``median`` ``2λs − (η/B)D(0)``,
    ``mean`` ``2λs + (η/B)D(0)`` (of ``ln E m``) and ``var`` ``4(η/B)D(0)`` (of ``Var ln m``)."""
    d0 = lr / batch_size * mode_noise_var(0.0, s, lam, label_noise)
    return {"median": 2 * lam * s - d0, "mean": 2 * lam * s + d0, "var": 4 * d0}


def collapse_temperature(s, lam=1.0, label_noise=0.0):
    """``T_c = s/(2λs² + σ_ε²)``: for ``L = 2`` the mode sinks to the saddle when ``T = η/(2B) > T_c`` (§8, §9.1)."""
    return s / (2.0 * lam * s**2 + label_noise**2)


def sgd_step_variance(a, s, lam, label_noise, lr, batch_size, L):
    """Variance of one balanced per-mode SGD step ``Δa`` (checks.md C4): ``η² a^{2L−2} D(a^L) / B``."""
    a = np.asarray(a, np.float64)
    return lr**2 * a ** (2 * L - 2) * mode_noise_var(a**L, s, lam, label_noise) / batch_size
