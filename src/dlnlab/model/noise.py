"""Gradient noise of SGD in deep linear networks (``sgd_noise.md`` §§2–4, 7.1).

For Gaussian inputs the per-sample end-to-end gradient ``G = (Wx − y)xᵀ`` has the exact (Wick) covariance
``Cov(G_ij, G_kl) = Q_ik Σx_jl + P_il P_kj`` with ``P = E Σx`` and ``Q = E Σx Eᵀ + σ_ε² I``. Layer noises are
linear images of ``G``. Everything here is exact; samplers never form ``P × P`` covariance matrices. Gaussians come
from :func:`dlnlab.rng.normal`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..rng import normal
from .gradients import layer_maps
from .network import end_to_end, prefix_products, suffix_products
from .problem import Problem


def wick_PQ(weights, problem: Problem, label_noise):
    """``P = E Σx`` and ``Q = E Σx Eᵀ + σ_ε² I`` at the current weights."""
    E = end_to_end(weights) - problem.M
    P = E @ problem.input_cov
    Q = P @ E.T + label_noise**2 * jnp.eye(E.shape[0], dtype=E.dtype)
    return P, Q


def wick_covariance(P, Q, input_cov):
    """``Cov(vec G)`` as a ``(d_out, d_in, d_out, d_in)`` tensor: ``Q_ik Σx_jl + P_il P_kj`` (small dims only)."""
    return jnp.einsum("ik,jl->ijkl", Q, input_cov) + jnp.einsum("il,kj->ijkl", P, P)


def mode_directions(weights, problem: Problem):
    """``A_α = Σ_l W_{>l}W_{>l}ᵀ u_α v_αᵀ W_{<l}ᵀ W_{<l}``, shape ``(k, d_out, d_in)``: ``∂m_α/∂W`` pulled
    through the network, so that the SGD increment of ``m_α`` is ``−η ⟨A_α, Ĝ⟩`` to first order."""
    pre, suf = prefix_products(weights), suffix_products(weights)
    Uk, Vk = problem.U_k, problem.V_k
    A = 0.0
    for l in range(len(weights)):
        left = suf[l] @ (suf[l].T @ Uk)  # (d_out, k)
        right = pre[l].T @ (pre[l] @ Vk)  # (d_in, k)
        A = A + jnp.einsum("ia,ja->aij", left, right)
    return A


def noise_power(weights, problem: Problem, label_noise):
    """Per-sample gradient-noise variance along each mode and in total (no ``η/B`` factor).

    Returns ``(per_mode, total)``: ``per_mode[α] = Var⟨A_α, G⟩`` (function-space noise of ``m_α``; the
    diffusion of ``m_α`` per unit time is ``(η/B)·per_mode[α]``) and ``total = tr Σ(θ)`` (parameter space).
    Exact Wick formulas for online data; the exact empirical covariance for a finite dataset.
    """
    A = mode_directions(weights, problem)
    pre, suf = prefix_products(weights), suffix_products(weights)
    if problem.finite:
        X, Y = problem.X, problem.Y
        R = X @ end_to_end(weights).T - Y  # (N, d_out)
        proj = jnp.einsum("ni,aij,nj->na", R, A, X)
        per_mode = jnp.var(proj, axis=0)
        total = 0.0
        for l in range(len(weights)):
            a, b = R @ suf[l], X @ pre[l].T  # per-sample factors of the rank-one layer gradient
            mean_g = a.T @ b / X.shape[0]
            total = total + jnp.mean(jnp.sum(a**2, 1) * jnp.sum(b**2, 1)) - jnp.sum(mean_g**2)
        return per_mode, total
    P, Q = wick_PQ(weights, problem, label_noise)
    S = problem.input_cov
    per_mode = jnp.einsum("aij,ik,akl,lj->a", A, Q, A, S) + jnp.einsum("aij,kj,akl,il->a", A, P, A, P)
    total = 0.0
    for l in range(len(weights)):
        total = total + jnp.trace(suf[l].T @ Q @ suf[l]) * jnp.trace(pre[l] @ S @ pre[l].T)
        total = total + jnp.sum((pre[l] @ P.T @ suf[l]) ** 2)
    return per_mode, total


def sampled_noise_power(weights, problem: Problem, X, Y, ddof: int = 1):
    """The *empirical* counterpart of :func:`noise_power`: per-sample gradient-noise variances measured on the
    samples ``X, Y`` (rows), not computed from the Gaussian (Wick) moments.

    The per-sample layer gradients are the closed form ``∂ℓ_n/∂W_l = W_{>l}ᵀ r_n x_nᵀ W_{<l}ᵀ = b_{l,n} c_{l,n}ᵀ``
    (``r_n = W x_n − y_n``, ``b = W_{>l}ᵀ r``, ``c = W_{<l} x``), and ``∂m_α/∂W_l = p_{l,α} q_{l,α}ᵀ`` with
    ``p = W_{>l}ᵀ u_α``, ``q = W_{<l} v_α``; their inner products are ``(p·b)(q·c)``, so no gradient matrix is formed.

    Returns ``(per_mode, per_layer)``, variances over the samples with divisor ``n − ddof``:

    * ``per_mode[α]`` — of ``⟨∇_θ m_α, ∇_θ ℓ_n⟩ = ⟨A_α, G_n⟩`` (function space; ``noise_power``'s quantity:
      ``(η/B)·per_mode`` is the diffusion of ``m_α`` per unit time);
    * ``per_layer[l, α]`` — of ``⟨P_{l,α}, ∂ℓ_n/∂W_l⟩`` along the unit layer direction
      ``P_{l,α} = p qᵀ/(‖p‖‖q‖)`` (parameter space; on an aligned balanced network ``P = o_l o_{l−1}ᵀ`` and the
      variance is ``m^{2−2/L} D(m)``, ``sgd_noise.md`` §7.1; 0 where the direction vanishes).

    With ``ddof = 1`` and i.i.d. samples both are unbiased: their expectation is the exact variance (for online
    Gaussian data, ``noise_power``'s per-mode value)."""
    pre, suf = prefix_products(weights), suffix_products(weights)
    R = X @ end_to_end(weights).T - Y  # residuals r_n as rows (n, d_out)
    fun, layer = 0.0, []
    for l in range(len(weights)):
        p, q = suf[l].T @ problem.U_k, pre[l] @ problem.V_k  # (d_l, k), (d_{l−1}, k)
        proj = ((R @ suf[l]) @ p) * ((X @ pre[l].T) @ q)  # (n, k): ⟨p_α q_αᵀ, b_n c_nᵀ⟩
        fun = fun + proj
        norm = jnp.linalg.norm(p, axis=0) * jnp.linalg.norm(q, axis=0)
        unit = proj / jnp.where(norm > 0, norm, 1.0)
        layer.append(jnp.where(norm > 0, jnp.var(unit, axis=0, ddof=ddof), 0.0))
    return jnp.var(fun, axis=0, ddof=ddof), jnp.stack(layer)


def sample_end_to_end_noise(key, weights, problem: Problem, label_noise, kind: str = "exact"):
    """One draw ``Ψ`` of zero-mean end-to-end gradient noise with the per-sample covariance.

    * ``exact`` (online): ``Ψ = E Σ^{1/2} Ξ_sym Σ^{1/2} + σ_ε Ξ₂ Σ^{1/2}`` has ``Cov(vec Ψ)`` equal to the Wick
      covariance exactly (``sgd_noise.md`` §3.1); (finite data): ``Ψ = N^{−1/2} Σ_n ζ_n (G_n − Ḡ)``, the
      empirical covariance exactly (§3.2).
    * ``label``: the label-noise part only, ``σ_ε Ξ₂ Σ^{1/2}`` (the covariance at ``E = 0``).

    ``label_noise=None`` means σ_ε = 0 and skips the draw of ``Ξ₂`` (the other draws are unchanged).
    """
    d_out, d_in = problem.M.shape
    k1, k2 = jax.random.split(key)
    dtype = problem.M.dtype
    if kind == "exact" and problem.finite:
        X, Y = problem.X, problem.Y
        N = X.shape[0]
        R = X @ end_to_end(weights).T - Y
        z = normal(k1, (N,), dtype)
        G_bar = R.T @ X / N
        return ((R * z[:, None]).T @ X - z.sum() * G_bar) / jnp.sqrt(N)
    S_half = problem.input_cov_sqrt
    if label_noise is None:
        label = jnp.zeros((d_out, d_in), dtype)
    else:
        label = label_noise * normal(k2, (d_out, d_in), dtype) @ S_half
    if kind == "label":
        return label
    E = end_to_end(weights) - problem.M
    Xi = normal(k1, (d_in, d_in), dtype)
    Xi_sym = (Xi + Xi.T) / jnp.sqrt(2.0)
    return E @ S_half @ Xi_sym @ S_half + label


def sample_layer_noise(key, weights, problem: Problem, label_noise, kind: str = "exact", isotropic_scale=1.0):
    """Per-layer noise ``ξ_l`` with per-sample covariance ``Σ(θ)`` (``exact``), its label-noise part
    (``label``), or ``c² I`` (``isotropic``). The same ``Ψ`` feeds every layer (``ξ_l = W_{>l}ᵀ Ψ W_{<l}ᵀ``)."""
    if kind == "isotropic":
        keys = jax.random.split(key, len(weights))
        return tuple(isotropic_scale * normal(k, w.shape, w.dtype) for k, w in zip(keys, weights))
    return layer_maps(weights, sample_end_to_end_noise(key, weights, problem, label_noise, kind))
