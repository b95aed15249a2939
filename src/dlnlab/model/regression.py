"""Diagonal linear networks for sparse regression (model layer): the task, its data and the factor maps.

Setting (the conventions of :mod:`dlnlab.theory.sparse_regression`): a design ``X ∈ ℝ^{n×d}`` (rows are samples,
i.i.d. ``N(0, 1)`` entries), a ``k``-sparse target ``β*`` (``k = sparsity`` non-zero coordinates on a random
support, values ``target``), labels ``y = Xβ* + σε``; training loss ``L(β) = ‖Xβ − y‖²/(2n)``; population risk
on fresh ``x ~ N(0, I_d)``: ``½‖β − β*‖² + ½σ²`` (the test error). The design, support and label noise are
drawn once from ``seed`` (NumPy ``default_rng``), shared by every replica.

The network's factors ``θ = (u, v)`` (shape ``(2, d)``) give

* ``kind="product"`` (depth 2; Pesme & Flammarion 2023): ``β = u ⊙ v``, started at ``u = √2 α 1``, ``v = 0``;
* ``kind="power"`` (depth ``D ≥ 2``; Woodworth et al. 2020): ``β = u^D − v^D``, started at ``u = v = α 1``;

so that ``β(0) = 0`` and the mirror-flow time scales of the theory module apply (``u² − v² = 2α²`` is conserved by
the product kind's flow). The simulator is :mod:`dlnlab.engines.regression`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


class RegressionData(NamedTuple):
    """The data of a task: ``X (n, d)``, ``y (n,)``, the target ``beta_star (d,)`` and its ``support``."""

    X: np.ndarray
    y: np.ndarray
    beta_star: np.ndarray
    support: np.ndarray


@dataclass(frozen=True)
class RegressionTask:
    """Sparse linear regression by a diagonal network (module docstring); fields as the ``[regression]`` config."""

    n_samples: int = 20
    d: int = 40
    sparsity: int = 3
    target: float | tuple = 1.0
    label_noise: float = 0.0
    seed: int = 0
    depth: int = 2
    kind: str = "product"

    @classmethod
    def from_config(cls, config) -> RegressionTask:
        """The task of a config's ``[regression]`` section."""
        return cls(**{f.name: getattr(config.regression, f.name) for f in fields(cls)})

    def data(self) -> RegressionData:
        """Design, labels and target, drawn from ``seed``: ``X`` first, then the support, then the label noise."""
        rng = np.random.default_rng(self.seed)
        X = rng.standard_normal((self.n_samples, self.d))
        support = np.sort(rng.choice(self.d, self.sparsity, replace=False))
        beta = np.zeros(self.d)
        beta[support] = np.broadcast_to(np.asarray(self.target, np.float64), (self.sparsity,))
        y = X @ beta + self.label_noise * rng.standard_normal(self.n_samples)
        return RegressionData(X, y, beta, support)


def initial_factors(alpha, d: int, kind: str):
    """``θ(0)`` of shape ``alpha.shape + (2, d)``: ``(√2α, 0)`` (product) or ``(α, α)`` (power)."""
    a = np.asarray(alpha, np.float64)[..., None] * np.ones(d)
    return np.stack([np.sqrt(2) * a, np.zeros_like(a)] if kind == "product" else [a, a], axis=-2)


def beta_of(theta, kind: str, depth: int):
    """``β`` of factors ``θ = (u, v)`` (leading axes broadcast): ``u ⊙ v`` or ``u^D − v^D``."""
    u, v = theta[..., 0, :], theta[..., 1, :]
    return u * v if kind == "product" else u**depth - v**depth


def factor_gradient(theta, g, kind: str, depth: int):
    """``∂L/∂θ`` from ``g = ∂L/∂β`` (chain rule): ``(g v, g u)`` or ``(D u^{D−1} g, −D v^{D−1} g)``."""
    u, v = theta[..., 0, :], theta[..., 1, :]
    if kind == "product":
        return jnp.stack([g * v, g * u], axis=-2)
    return jnp.stack([depth * u ** (depth - 1) * g, -depth * v ** (depth - 1) * g], axis=-2)


def beta_gradient(beta, X, y):
    """``∂L/∂β = Xᵀ(Xβ − y)/n`` of the training loss on the rows ``X``, ``y`` (all of them, or a minibatch)."""
    return X.T @ (X @ beta - y) / X.shape[0]
