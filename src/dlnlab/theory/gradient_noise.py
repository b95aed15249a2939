"""Gradient-noise covariance in NumPy, as a test oracle (``sgd_noise.md`` §2).

For Gaussian inputs, ``Cov(G_ij, G_kl) = Q_ik Σx_jl + P_il P_kj`` with ``P = E Σx``, ``Q = E Σx Eᵀ + σ_ε² I``.
"""

from __future__ import annotations

import numpy as np


def wick_covariance_matrix(E, input_cov, label_noise):
    """``Cov(vec G)`` as a ``(d_out·d_in) × (d_out·d_in)`` matrix (row-major ``vec``)."""
    E = np.asarray(E, np.float64)
    P = E @ input_cov
    Q = P @ E.T + label_noise**2 * np.eye(E.shape[0])
    C = np.einsum("ik,jl->ijkl", Q, input_cov) + np.einsum("il,kj->ijkl", P, P)
    n = E.size
    return C.reshape(n, n)


def total_noise_trace(weights, M, input_cov, label_noise):
    """``tr Σ(θ) = Σ_l [tr(W_{>l}ᵀ Q W_{>l}) tr(W_{<l} Σx W_{<l}ᵀ) + ‖W_{<l} Pᵀ W_{>l}‖²_F]``."""
    ws = [np.asarray(w, np.float64) for w in weights]
    L = len(ws)
    W = ws[0]
    for w in ws[1:]:
        W = w @ W
    E = W - M
    P = E @ input_cov
    Q = P @ E.T + label_noise**2 * np.eye(E.shape[0])
    total = 0.0
    for l in range(L):
        pre = np.eye(ws[0].shape[1])
        for w in ws[:l]:
            pre = w @ pre
        suf = np.eye(ws[-1].shape[0])
        for w in reversed(ws[l + 1:]):
            suf = suf @ w
        total += np.trace(suf.T @ Q @ suf) * np.trace(pre @ input_cov @ pre.T) + np.sum((pre @ P.T @ suf) ** 2)
    return total
