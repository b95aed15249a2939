"""The arrays a simulation needs, as one JAX pytree shared (not vmapped) by all replicas."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..rng import normal
from .teacher import Dataset, Teacher


class Problem(NamedTuple):
    """Teacher, input law and (optional) finite dataset, as JAX arrays of one dtype.

    ``U_k``/``V_k`` hold the ``n_modes`` teacher singular vectors as columns; ``s`` and ``lam`` their
    singular values and input variances. ``X``, ``Y`` (rows = samples) are ``None`` for online data.
    ``mask`` (``d_out × d_in``, 0/1) marks the observed entries of ``M`` for matrix completion, else ``None``.
    """

    M: jax.Array
    input_cov: jax.Array
    input_cov_sqrt: jax.Array
    U: jax.Array
    V: jax.Array
    s: jax.Array
    lam: jax.Array
    X: jax.Array | None = None
    Y: jax.Array | None = None
    mask: jax.Array | None = None

    @property
    def finite(self) -> bool:
        return self.X is not None

    @property
    def U_k(self):
        return self.U[:, : self.s.shape[0]]

    @property
    def V_k(self):
        return self.V[:, : self.s.shape[0]]

    def sample(self, key, n: int, label_noise):
        """``n`` fresh samples as rows: ``X (n, d_in)``, ``Y = X Mᵀ + ε`` (usable inside jit/vmap; Gaussians
        from :func:`dlnlab.rng.normal`).

        ``label_noise=None`` means σ_ε = 0 and skips the draw of ``ε`` (``X`` is drawn from the same key)."""
        kx, ke = jax.random.split(key)
        d_out, d_in = self.M.shape
        X = normal(kx, (n, d_in), self.M.dtype) @ self.input_cov_sqrt
        if label_noise is None:
            return X, X @ self.M.T
        return X, X @ self.M.T + label_noise * normal(ke, (n, d_out), self.M.dtype)

    @classmethod
    def build(cls, teacher: Teacher, dataset: Dataset | None = None, dtype=jnp.float64, mask=None) -> Problem:
        a = lambda x: jnp.asarray(x, dtype)
        return cls(
            M=a(teacher.M), input_cov=a(teacher.input_cov), input_cov_sqrt=a(teacher.input_cov_sqrt),
            U=a(teacher.U), V=a(teacher.V), s=a(teacher.s), lam=a(teacher.mode_input_variance),
            X=None if dataset is None else a(dataset.X), Y=None if dataset is None else a(dataset.Y),
            mask=None if mask is None else a(mask),
        )
