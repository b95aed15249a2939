"""Closed-form sharpness (top Hessian eigenvalue) of deep linear networks at their global minima, and GD stability.

At a global minimum with zero residual the Hessian of ``𝓛 = ½ tr((W − M)Σx(W − M)ᵀ)`` is its Gauss–Newton part
``JᵀJ`` (the residual term vanishes), whose non-zero spectrum is that of the function-space operator (derived)::

    E ↦ Σ_l A_l A_lᵀ E Σx^{1/2} B_lᵀ B_l Σx^{1/2},   A_l = W_L⋯W_{l+1},  B_l = W_{l−1}⋯W_1.

* **Balanced minima** (derived; the known whitened form ``L·s₁^{2−2/L}``): ``W_l`` balanced with ``W = M = USVᵀ``
  gives ``A_lA_lᵀ = U S^{2(L−l)/L} Uᵀ`` and ``B_lᵀB_l = V S^{2(l−1)/L} Vᵀ``; with ``Σx = V diag(λ) Vᵀ`` (the
  teacher's input basis) the operator is diagonal on ``u_i v_jᵀ`` with eigenvalues
  ``λ_j Σ_{l=1}^{L} s_i^{2(L−l)/L} s_j^{2(l−1)/L}`` (``0⁰ = 1``; ``s_i = 0`` beyond the rank). Whitened and
  ``i = j = 1``: ``L s₁^{2−2/L}``. At ``L = 2`` the balanced minima are the flattest: any minimum has top
  eigenvalue ``‖W₂‖²_op + ‖W₁‖²_op ≥ 2‖W₂‖_op‖W₁‖_op ≥ 2s₁`` (whitened; the Rayleigh quotient at ``E = xyᵀ``
  with ``x``, ``y`` the top eigenvectors of ``W₂W₂ᵀ``, ``W₁ᵀW₁``; AM–GM; derived). For ``L ≥ 3`` the same is
  stated by Mulayoff & Michaeli (2020) (recalled, not checked here).
* **λ-balanced two-layer minima** (derived; whitened, ``W₁W₁ᵀ − W₂ᵀW₂ = λΠ``, :mod:`.lambda_balanced`): balance
  and ``W₂W₁ = M`` give ``S₁² − λS₁ = MᵀM`` for ``S₁ = W₁ᵀW₁`` and ``S₂² + λS₂ = MMᵀ``, so the kernel
  ``E ↦ S₂E + ES₁`` has top eigenvalue ``(√(λ² + 4s₁²) − λ)/2 + (√(λ² + 4s₁²) + λ)/2 = √(λ² + 4s₁²)``: the
  gradient-flow solution from a λ-balanced init is sharper than the balanced one by the factor
  ``√(1 + λ²/4s₁²)``.
* **GD stability**: at a minimum of sharpness ``S`` gradient descent with step ``η`` is linearly stable only if
  ``S ≤ 2/η``: no minimum flatter than the balanced one exists, so GD cannot converge for
  ``η > 2/S_balanced``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def balanced_minimum_sharpness(s, depth: int, input_variance=1.0) -> float:
    """Top Hessian eigenvalue at a balanced global minimum of depth ``L`` (module docstring).

    ``s``: the teacher's singular values (``k`` of them); ``input_variance``: a number, or one ``λ_j`` per input
    direction of the teacher's basis, at least ``k`` (entries past ``k`` are input directions with ``s_j = 0``)."""
    s = np.asarray(s, np.float64)
    if s.ndim != 1 or s.size == 0 or np.any(s < 0):
        raise ConfigError("s", s, "a non-empty list of singular values >= 0")
    if int(depth) != depth or depth < 1:
        raise ConfigError("depth", depth, "an integer >= 1")
    lam = np.broadcast_to(np.asarray(input_variance, np.float64), s.shape) if np.ndim(input_variance) == 0 \
        else np.asarray(input_variance, np.float64)
    if lam.size < s.size or np.any(lam <= 0):
        raise ConfigError("input_variance", input_variance, f"a number > 0, or at least len(s) = {s.size} values > 0")
    s_j = np.concatenate([s, np.zeros(lam.size - s.size)])
    L = int(depth)
    terms = sum(s[:, None] ** (2.0 * (L - l) / L) * s_j[None, :] ** (2.0 * (l - 1) / L)
                for l in range(1, L + 1))  # (i, j); numpy's 0.0 ** 0.0 = 1
    return float(np.max(terms * lam[None, :]))


def lambda_balanced_minimum_sharpness(s1: float, lam: float) -> float:
    """``√(λ² + 4s₁²)``: top Hessian eigenvalue at a λ-balanced global minimum of a two-layer network (whitened;
    module docstring); ``λ = 0`` gives the balanced ``2s₁``."""
    if not s1 >= 0:
        raise ConfigError("s1", s1, "a singular value >= 0")
    return float(np.hypot(lam, 2.0 * s1))
