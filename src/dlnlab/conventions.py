"""The conventions of dlnlab, in one module (see ``shared/theory/README.md``).

Every other module takes these definitions from here:

* loss: per sample ``ℓ = ½‖W x − y‖²``; population ``𝓛 = ½ tr(E Σx Eᵀ) + ½ d_out σ_ε²`` with ``E = W − M``;
* time: continuous time ``t = η · step`` (for the SDE, ``t = dt · step``);
* SDE (Itô): ``dθ = −∇𝓛 dt + sqrt(η/B) Σ(θ)^{1/2} dW``, Σ the per-sample gradient *covariance*;
* temperature ``T = η/(2B)``; label-noise temperature ``T_ε = σ_ε² T``;
* depth ``L`` = number of weight matrices; ``W = W_L ⋯ W_1``;
* mode strength ``m_α = u_αᵀ W v_α``; per-mode noise variance ``D_α(m) = 2λ²(m−s)² + λσ_ε²``;
* initial variance ``σ² = w^−γ`` (or per layer ``min(d_l, d_{l−1})^−γ`` with ``scaling="min_fan"``);
* float64 everywhere unless float32 is asked for explicitly.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

DEFAULT_DTYPE = np.float64

#: float32's relative resolution; a GD update smaller than ~10 of these per step stalls (README item 8).
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def time_of_step(step, lr):
    """Continuous time ``t = η · step``."""
    return lr * step


def temperature(lr, batch_size):
    """SGD temperature ``T = η / (2B)``."""
    return lr / (2.0 * batch_size)


def label_temperature(lr, batch_size, label_noise):
    """Label-noise temperature ``T_ε = σ_ε² η / (2B)``."""
    return label_noise**2 * temperature(lr, batch_size)


def init_variance(width, gamma):
    """Initial entry variance ``σ² = w^−γ``."""
    return float(width) ** (-float(gamma))


def step_ratio(lr, depth, input_variance, s):
    """Dimensionless step of a mode, ``h = η L λ s^{2−2/L}``; SGD-vs-SDE errors scale with it (``lr = 1``: the
    mode's relaxation rate ``L λ s^{2−2/L}``)."""
    return lr * depth * input_variance * s ** (2.0 - 2.0 / depth)


def mode_noise_var(m, s, input_variance, label_noise):
    """Per-sample variance of the mode gradient, ``D(m) = 2λ²(m−s)² + λσ_ε²`` (aligned manifold; NumPy or JAX)."""
    return 2.0 * input_variance**2 * (m - s) ** 2 + input_variance * label_noise**2


def layer_products(a):
    """``(m, π)`` of per-layer mode values ``a`` (layer axis first): ``m = Π_l a_l`` and ``π_l = Π_{j≠l} a_j``.

    Prefix and suffix products, no division (exact at ``a_l = 0``); only ``*`` and the array module's ``stack``,
    so the one implementation serves NumPy arrays (theory) and JAX arrays or tracers (the per-mode engine)."""
    xp = np if isinstance(a, np.ndarray) else jnp
    pre, suf = [xp.ones_like(a[0])], [xp.ones_like(a[0])]
    for l in range(a.shape[0] - 1):
        pre.append(pre[-1] * a[l])
        suf.append(suf[-1] * a[-1 - l])
    suf = suf[::-1]
    return pre[-1] * a[-1], xp.stack([p * q for p, q in zip(pre, suf)])


def population_loss(err, input_cov, label_noise, d_out):
    """``½ tr(E Σx Eᵀ) + ½ d_out σ_ε²`` for the error matrix ``E = W − M`` (works on jax or numpy arrays)."""
    return 0.5 * (err @ input_cov * err).sum() + 0.5 * d_out * label_noise**2


def lr_from_mse_loss(lr_mse, d_out):
    """Learning rate of ½-loss SGD equivalent to PyTorch ``nn.MSELoss()`` (mean over outputs) at ``lr_mse``."""
    return 2.0 * lr_mse / d_out


def from_ziyin(eta_z, batch_size_z, depth_z):
    """Convert Ziyin et al.'s (no-½ loss) step, batch and depth D to ours: ``η = 2η_Z, B = S, L = D + 1``.

    The temperature is then the same number, ``T = η/(2B) = η_Z/S``, and ``t = 2 t_Z``.
    """
    return 2.0 * eta_z, int(batch_size_z), int(depth_z) + 1


def warn_if_float32_stalls(lr, input_variance, s, layer_scale, depth, dtype):
    """Warn when a float32 GD step on the plateau is below 10 ulp, so the iterate would never move.

    The relative change of a layer per step is ``≈ η λ s a^{L−2}`` (README item 8).
    """
    if np.dtype(dtype) != np.float32 or depth < 2:
        return
    rel = lr * input_variance * s * layer_scale ** (depth - 2)
    if rel < 10 * FLOAT32_EPS:
        warnings.warn(
            f"float32: relative step η·λ·s·a^(L−2) = {rel:.2e} is below 10·eps = {10 * FLOAT32_EPS:.1e}; "
            "the iterate will stall on the plateau. Use float64.",
            RuntimeWarning,
            stacklevel=3,
        )
