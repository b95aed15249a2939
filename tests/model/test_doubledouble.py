"""Double-double arithmetic (:mod:`dlnlab.model.doubledouble`) against exact rational arithmetic, and the compensated
gradient against the exact gradient where the float64 one loses its small entries."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnlab.model.doubledouble import DD, two_prod, two_sum
from dlnlab.model.gradients import compensated_gradient, full_gradient
from dlnlab.model.problem import Problem


def _exact(x) -> list:
    return [Fraction(float(v)) for v in np.asarray(x).ravel()]


def _parts(x: DD):
    return x.hi, x.lo


def _values(rng, n):
    """Float64 values over 40 decades with random signs (products and sums of these exercise every branch)."""
    return rng.standard_normal(n) * 10.0 ** rng.integers(-20, 20, n)


@pytest.mark.parametrize("op", [two_prod, two_sum])
def test_error_free_transformations_are_exact(op):
    """``p + e`` equals ``a·b`` (``a + b``) exactly, compiled on the default backend: the check that XLA neither
    contracts ``a·b + c`` into a fused multiply-add nor reassociates (the module's caveat)."""
    rng = np.random.default_rng(0)
    a, b = _values(rng, 2000), _values(rng, 2000)
    p, e = jax.jit(op)(a, b)
    want = [x * y if op is two_prod else x + y for x, y in zip(_exact(a), _exact(b))]
    got = [x + y for x, y in zip(_exact(p), _exact(e))]
    assert sum(w != g for w, g in zip(want, got)) == 0


@pytest.mark.parametrize("k", [1, 4, 7, 64])
def test_matmul_is_exact_to_double_double_rounding(k):
    """DD ``@`` of float64 matrices (odd, even and one-term contractions) within 1e-30 relative of the rational
    product's largest term; float64 ``@`` is ~1e-16 off on the same data."""
    rng = np.random.default_rng(k)
    A, B = rng.standard_normal((3, k)), rng.standard_normal((k, 5))
    hi, lo = jax.jit(lambda a, b: _parts((DD(a) @ b) if k % 2 else (a @ DD(b))))(A, B)
    ea, eb = np.array(_exact(A)).reshape(A.shape), np.array(_exact(B)).reshape(B.shape)
    exact = ea @ eb
    got = np.array(_exact(hi)).reshape(exact.shape) + np.array(_exact(lo)).reshape(exact.shape)
    scale = float(np.abs(A).max() * np.abs(B).max() * k)
    assert max(abs(float(x)) for x in (got - exact).ravel()) <= 1e-30 * scale


def test_arithmetic_of_dd_operands():
    """``+``, ``−``, ``*`` and ``/`` with two double-double operands (both low parts set): 1e-30 relative."""
    rng = np.random.default_rng(1)
    x = DD(*two_sum(rng.standard_normal(50), 1e-17 * rng.standard_normal(50)))
    y = DD(*two_sum(rng.standard_normal(50), 1e-17 * rng.standard_normal(50)))
    b = rng.standard_normal(50)
    ex, ey = [h + l for h, l in zip(_exact(x.hi), _exact(x.lo))], [h + l for h, l in zip(_exact(y.hi), _exact(y.lo))]
    for got, want in [(x + y, [p + q for p, q in zip(ex, ey)]), (x - y, [p - q for p, q in zip(ex, ey)]),
                      (x * y, [p * q for p, q in zip(ex, ey)]), (x / b, [p / Fraction(q) for p, q in zip(ex, b)])]:
        g = [h + l for h, l in zip(_exact(got.hi), _exact(got.lo))]
        assert max(abs(float((a - w) / w)) for a, w in zip(g, want)) < 1e-30


def _saddle_weights(L, sigma, rng):
    """A depth-``L`` network (d = 3, width 4) at the saddle after the teacher's first mode (s = 4, 2, 1) is
    learned: aligned balanced modes of strengths 4 and σ^L, σ^L, in random orthonormal bases of every layer, and
    the teacher ``M``. The gradient is then ~σ^(L−1) in every entry, a sum of O(1) terms whose float64 rounding
    (~1e-16) is far above it."""
    dims = [3] + [4] * (L - 1) + [3]
    Q = [np.linalg.qr(rng.standard_normal((n, n)))[0][:, :3] for n in dims]
    a = np.array([4.0 ** (1.0 / L), sigma, sigma])
    weights = tuple(Q[l + 1] @ np.diag(a) @ Q[l].T for l in range(L))
    return weights, Q[-1] @ np.diag([4.0, 2.0, 1.0]) @ Q[0].T


def _rational(x):
    x = np.asarray(x)
    return np.array(_exact(x), dtype=object).reshape(x.shape)


def _exact_gradient(weights, M, X=None, mask=None):
    """Layer gradients in rational arithmetic: of ½‖W_L⋯W_1 − M‖² (identity input covariance), of the mean ½ squared
    error on the rows of ``X`` (labels ``X Mᵀ``), or of ½ Σ_Ω (W − M)² on the entries of ``mask``."""
    F = [_rational(w) for w in weights]
    W = F[0]
    for Wl in F[1:]:
        W = Wl @ W
    if X is not None:
        Xr = _rational(X)
        G = (Xr @ W.T - _rational(X @ M.T)).T @ Xr / Fraction(X.shape[0])
    elif mask is not None:
        G = _rational(mask) * (W - _rational(M))
    else:
        G = W - _rational(M)
    out = []
    for l in range(len(F)):
        pre = np.eye(F[0].shape[1], dtype=object) * Fraction(1)
        for Wk in F[:l]:
            pre = Wk @ pre
        suf = np.eye(F[-1].shape[0], dtype=object) * Fraction(1)
        for Wk in reversed(F[l + 1:]):
            suf = suf @ Wk
        out.append(suf.T @ G @ pre.T)
    return out


@pytest.mark.parametrize("L", [3, 4])
def test_compensated_gradient_keeps_the_small_entries(L):
    """At the saddle after the first mode, σ = 1e-6 (gradient entries ≤ 1.3e-12 at L = 3, 3.2e-15 at L = 4), every
    entry of the compensated gradient is within 4 ulp of the exact one (measured 0 and 1 ulp), where the float64
    formula's are off by up to 5e13 and 2e15 ulp (asserted: > 1e6)."""
    rng = np.random.default_rng(L)
    weights, M = _saddle_weights(L, 1e-6, rng)
    problem = Problem(jnp.asarray(M), jnp.eye(3), jnp.eye(3), jnp.eye(3), jnp.eye(3), jnp.ones(3), jnp.ones(3))
    exact = [np.array([float(v) for v in g.ravel()]).reshape(g.shape) for g in _exact_gradient(weights, M)]
    ws = tuple(jnp.asarray(w) for w in weights)
    comp = jax.jit(lambda w: compensated_gradient(w, problem))(ws)
    plain = jax.jit(lambda w: full_gradient(w, problem))(ws)
    ulp = [np.spacing(np.abs(e)) for e in exact]
    assert max(float(np.max(np.abs(np.asarray(c) - e) / u)) for c, e, u in zip(comp, exact, ulp)) <= 4
    assert max(float(np.max(np.abs(np.asarray(p) - e) / u)) for p, e, u in zip(plain, exact, ulp)) > 1e6


@pytest.mark.parametrize("kind", ["finite", "completion"])
def test_compensated_gradient_on_data_and_masks(kind):
    """The same at L = 3 on the other branches of the end-to-end gradient: a finite dataset (6 samples, labels
    ``X Mᵀ``) and matrix completion (a random mask): within 4 ulp of exact (measured 0), float64 off by 8e13 and
    1.7e12 ulp."""
    rng = np.random.default_rng(7)
    weights, M = _saddle_weights(3, 1e-6, rng)
    eye = jnp.eye(3)
    if kind == "finite":
        X = rng.standard_normal((6, 3))
        problem = Problem(jnp.asarray(M), eye, eye, eye, eye, jnp.ones(3), jnp.ones(3), jnp.asarray(X),
                          jnp.asarray(X @ M.T))
        exact = _exact_gradient(weights, M, X=X)
    else:
        mask = (rng.random((3, 3)) < 0.7).astype(float)
        problem = Problem(jnp.asarray(M), eye, eye, eye, eye, jnp.ones(3), jnp.ones(3), mask=jnp.asarray(mask))
        exact = _exact_gradient(weights, M, mask=mask)
    exact = [np.array([float(v) for v in g.ravel()]).reshape(g.shape) for g in exact]
    ws = tuple(jnp.asarray(w) for w in weights)
    ulp = [np.spacing(np.abs(e)) for e in exact]
    def worst(grad):
        return max(float(np.max(np.abs(np.asarray(g) - e) / u)) for g, e, u in zip(grad, exact, ulp))
    assert worst(jax.jit(lambda w: compensated_gradient(w, problem))(ws)) <= 4
    assert worst(jax.jit(lambda w: full_gradient(w, problem))(ws)) > 1e6
