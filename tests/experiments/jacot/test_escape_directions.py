"""[J] ``escape_directions`` (``experiments/jacot/escape_directions.py``): the Hessian at the origin (checks.md G4,
moved from ``tests/test_saddles.py`` unchanged) and the strict-saddle value the experiment's measured rows are held
against, λ_min(H) = −σ₁((M − W_k)Σ_x) at the rank-k saddle of a depth-2 network, checked against dense autodiff
Hessians; the experiment's smallest-eigenvalue observable against the dense spectrum."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from dlnlab.experiments.jacot.escape_directions import min_eigenvalue_observable
from dlnlab.model.gradients import full_gradient
from dlnlab.model.problem import Problem
from dlnlab.model.teacher import Teacher, random_orthogonal
from dlnlab.theory import saddle_sequence as th


def _origin_hessian(teacher, widths):
    """Hessian of the population loss (observables' ``loss``, ½ convention) at θ = 0, by autodiff, for layer
    shapes ``widths = (d_0, w, …, d_L)``; parameters flattened layer after layer."""
    from dlnlab.model.observables import ReplicaParams, _loss

    problem = Problem.build(teacher)
    zeros = tuple(jnp.zeros((widths[i + 1], widths[i])) for i in range(len(widths) - 1))
    flat, unravel = ravel_pytree(zeros)
    params = ReplicaParams(*(jnp.zeros(()) for _ in ReplicaParams._fields))
    loss = lambda th: _loss(unravel(th), problem, params)["loss"]
    return np.asarray(jax.hessian(loss)(flat)), loss, np.asarray(flat)


@pytest.mark.parametrize("s", [[2.0, 0.7], [1.3, 0.0]])
def test_origin_hessian_G4(s):
    """checks.md G4 [A] (saddle_to_saddle.md §6.1), d_0 = 3, d_L = 2, w = 4, anisotropic inputs λ = (1.5, 0.8, 1.1):
    for L = 2 the Hessian at 0 has eigenvalues ±σ_i(G_0), G_0 = MΣ_x, each with multiplicity w, plus
    w(d_0 + d_L − 2 rank G_0) zeros (to 1e-10, autodiff; and to 1e-6 against central finite differences at step 1e-4,
    whose truncation error is 0 for this quadratic-in-each-layer loss and round-off ~1e-16/h² = 1e-8); for L = 3 it
    is the zero matrix (to 1e-10)."""
    rng = np.random.default_rng(3)
    teacher = Teacher(s=np.array(s), U=random_orthogonal(rng, 2), V=random_orthogonal(rng, 3),
                      input_variance=np.array([1.5, 0.8, 1.1]))
    w, d0, dL = 4, 3, 2
    H, loss, flat = _origin_hessian(teacher, (d0, w, dL))
    sig = np.linalg.svd(teacher.M @ teacher.input_cov, compute_uv=False)
    rank = int(np.sum(sig > 1e-12))
    expected = np.sort(np.concatenate([np.repeat(sig[:rank], w), -np.repeat(sig[:rank], w),
                                       np.zeros(w * (d0 + dL - 2 * rank))]))
    assert len(expected) == H.shape[0]
    np.testing.assert_allclose(np.linalg.eigvalsh(H), expected, atol=1e-10)
    h, n = 1e-4, len(flat)
    E = np.eye(n) * h
    f = lambda x: float(loss(jnp.asarray(x)))
    fd = np.array([[(f(E[i] + E[j]) - f(E[i] - E[j]) - f(-E[i] + E[j]) + f(-E[i] - E[j])) / (4 * h * h)
                    for j in range(n)] for i in range(n)])
    assert np.max(np.abs(fd - H)) < 1e-6
    H3, _, _ = _origin_hessian(teacher, (d0, w, w, dL))
    assert np.max(np.abs(H3)) < 1e-10


def _dense_hessian(weights, problem):
    flat, unravel = ravel_pytree(weights)
    grad = lambda f: ravel_pytree(full_gradient(unravel(f), problem))[0]
    H = np.asarray(jax.jacfwd(grad)(flat))
    return (H + H.T) / 2, float(jnp.linalg.norm(grad(flat)))


@pytest.mark.parametrize(("s", "lam", "basis"), [([1.0, 4.0], [9.0, 1.0], "identity"),
                                                 ([3.0, 2.0, 1.0], [1.0, 1.0, 1.0], "random"),
                                                 ([2.0, 1.5, 0.5], [0.7, 1.3, 2.0], "random")])
def test_strict_saddle_value_at_every_saddle(s, lam, basis):
    """At the balanced rank-k saddle W_k of a depth-2 network (width 5 > rank) the gradient vanishes and the smallest
    Hessian eigenvalue is −σ₁((M − W_k)Σ_x) (the escape_directions theory value); at k = rank the spectrum is ≥ 0
    (a global minimum). Dense autodiff Hessian, to 1e-10."""
    s, lam, w = np.array(s), np.array(lam), 5
    d = len(s)
    rng = np.random.default_rng(0)
    U, V = (np.eye(d), np.eye(d)) if basis == "identity" else (random_orthogonal(rng, d), random_orthogonal(rng, d))
    teacher = Teacher(s=s, U=U, V=V, input_variance=lam)
    problem = Problem.build(teacher)
    cov = teacher.input_cov
    for k in range(d + 1):
        order = th.learning_order(s, lam)[:k]
        W1, W2 = np.zeros((w, d)), np.zeros((d, w))
        for j, a in enumerate(order):
            W1[j] = np.sqrt(s[a]) * V[:, a]
            W2[:, j] = np.sqrt(s[a]) * U[:, a]
        H, gnorm = _dense_hessian((jnp.asarray(W1), jnp.asarray(W2)), problem)
        Wk = th.saddle_map(k, s, U, V, lam)
        theory = -np.linalg.norm((teacher.M - Wk) @ cov, 2)
        assert gnorm < 1e-12, (k, gnorm)
        assert abs(np.linalg.eigvalsh(H)[0] - theory) < 1e-10, (k, np.linalg.eigvalsh(H)[0], theory)
        assert (theory < -1e-3) if k < d else abs(theory) < 1e-12


def test_min_eigenvalue_observable_matches_the_dense_spectrum():
    """The experiment's observable (Lanczos on −H with P steps) at random weights of a 3 → 4 → 3 network and of a
    depth-3 one: the smallest eigenvalue of the dense autodiff Hessian to 1e-9, with a small Ritz residual."""
    rng = np.random.default_rng(1)
    teacher = Teacher(s=np.array([2.0, 1.0, 0.5]), U=random_orthogonal(rng, 3), V=random_orthogonal(rng, 3),
                      input_variance=np.array([1.0, 2.0, 0.5]))
    problem = Problem.build(teacher)
    obs = min_eigenvalue_observable()
    for shapes in [((4, 3), (3, 4)), ((4, 3), (4, 4), (3, 4))]:
        weights = tuple(jnp.asarray(0.5 * rng.standard_normal(sh)) for sh in shapes)
        H, _ = _dense_hessian(weights, problem)
        out = obs.fn(weights, problem, None)
        assert abs(float(out["hessian_min"]) - np.linalg.eigvalsh(H)[0]) < 1e-9
        assert float(out["hessian_min_residual"]) < 1e-6
