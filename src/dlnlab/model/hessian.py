"""The top eigenvalue of the loss Hessian (the sharpness) of one replica, matrix-free.

``H v`` is the forward-mode derivative of the closed-form layer gradients (:func:`~.gradients.full_gradient`) along
``v`` — the Hessian of the *training objective* (population loss for online data, the empirical loss on a finite
dataset, the observed-entries loss for matrix completion), never formed as a ``P × P`` matrix. Its top eigenvalue
comes from ``k = min(P, LANCZOS_STEPS)`` steps of Lanczos with full reorthogonalisation (twice: "twice is
enough") from a fixed pseudo-random start vector; on a breakdown (an invariant Krylov subspace, e.g. the zero
Hessian at the origin of a network of depth ≥ 3) the recursion restarts from a fresh pseudo-random direction
orthogonal to the basis, with a zero coupling in the tridiagonal matrix, so every eigenvalue of it stays a Ritz
value of ``H``.

Accuracy: with ``k = P`` the Ritz values are the eigenvalues (to round-off); for ``P > k`` the top Ritz value is a
lower bound of the top eigenvalue whose error decays exponentially in ``k·√(gap/spread)``. The Ritz residual
``ρ = ‖Hy − θy‖ = |β_k y_k|`` is returned with it: some eigenvalue of ``H`` lies within ``ρ`` of ``θ`` (and within
``ρ²/gap`` when the gap to the rest of the spectrum is ``gap``). Cost: ``k`` Hessian-vector products, each about
three gradient evaluations, and ``O(k²P)`` for the reorthogonalisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .gradients import full_gradient
from .problem import Problem

#: Lanczos steps (the Krylov dimension when the network has more parameters).
LANCZOS_STEPS = 32


def hessian_vector_product(weights, problem: Problem, vector):
    """``H v`` of the training objective at ``weights`` (a tuple of layers; ``vector`` of the same structure)."""
    return jax.jvp(lambda w: full_gradient(w, problem), (weights,), (vector,))[1]


def top_eigenvalue(matvec, n: int, steps: int, dtype=jnp.float64):
    """``(θ, ρ)``: the top Ritz value of the symmetric operator ``matvec`` on ``ℝⁿ`` after ``min(n, steps)`` Lanczos
    steps (full reorthogonalisation, restarts on breakdown; module docstring) and its residual norm ``ρ``."""
    k = min(n, steps)
    key = jax.random.PRNGKey(0)
    fresh = jax.random.normal(key, (k + 1, n), dtype)
    Q = jnp.zeros((k + 1, n), dtype).at[0].set(fresh[0] / jnp.linalg.norm(fresh[0]))

    def orthogonalise(Q, w):
        w = w - Q.T @ (Q @ w)
        return w - Q.T @ (Q @ w)

    def body(j, carry):
        Q, a, b = carry
        w = matvec(Q[j])
        a = a.at[j].set(Q[j] @ w)
        w = orthogonalise(Q, w)
        norm = jnp.linalg.norm(w)
        broke = norm <= 1e-12 * (jnp.abs(a[j]) + jnp.where(j > 0, b[j - 1], 0.0)) + jnp.finfo(dtype).tiny
        r = orthogonalise(Q, fresh[j + 1])
        q = jnp.where(broke, r / jnp.maximum(jnp.linalg.norm(r), jnp.finfo(dtype).tiny), w / jnp.where(broke, 1.0, norm))
        return Q.at[j + 1].set(q), a, b.at[j].set(jnp.where(broke, 0.0, norm))

    Q, a, b = jax.lax.fori_loop(0, k, body, (Q, jnp.zeros(k, dtype), jnp.zeros(k, dtype)))
    T = jnp.diag(a) + jnp.diag(b[:-1], 1) + jnp.diag(b[:-1], -1)
    theta, Y = jnp.linalg.eigh(T)
    return theta[-1], jnp.abs(b[-1] * Y[-1, -1])


def sharpness(weights, problem: Problem, steps: int = LANCZOS_STEPS):
    """``(λ_max(H), ρ)`` of the training objective at ``weights`` (see :func:`top_eigenvalue`)."""
    flat, unravel = ravel_pytree(weights)

    def matvec(v):
        return ravel_pytree(hessian_vector_product(weights, problem, unravel(v)))[0]

    return top_eigenvalue(matvec, flat.size, steps, flat.dtype)
