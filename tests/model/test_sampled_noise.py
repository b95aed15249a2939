"""The empirical minibatch-noise observable (``model.noise.sampled_noise_power``, ``model.observables.sampled_noise``):
against a NumPy per-sample-gradient oracle on the same samples, against the exact Wick noise power in expectation,
and on the aligned balanced manifold against ``sgd_noise.md`` §7.1's parameter-space form ``m^{2−2/L} D(m)``."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import dlnlab
from dlnlab.model import noise
from dlnlab.model.observables import sampled_noise
from dlnlab.theory import mode_sde as TM


def _setting(L, kind="gaussian", label_noise=0.4, seed=3):
    """A 4 → 3 teacher (random bases, non-whitened λ), width 5, depth ``L``; random or aligned-balanced weights."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "input_variance": [1.5, 0.8, 1.2, 0.6],
                    "label_noise": label_noise, "basis": "random", "seed": 2},
        "network": {"depth": L, "width": 5},
        "init": {"kind": "gaussian", "scale": 0.6} if kind == "gaussian" else
                {"kind": "aligned", "strength": [1.1, 0.4, 0.2], "hidden_basis": "random"},
        "dynamics": {"kind": "sgd", "lr": 0.01, "steps": 1}})
    teacher = dlnlab.Teacher.from_config(cfg)
    problem = dlnlab.Problem.build(teacher)
    weights = dlnlab.Initializer(cfg, teacher)(jax.random.PRNGKey(seed), 0.6 if kind == "gaussian" else 0.0)
    return problem, weights


def _oracle(weights, problem, X, Y):
    """Per-sample layer gradients as full matrices (NumPy loops), projected on ∂m_α/∂W_l (by finite products)."""
    W = [np.asarray(w) for w in weights]
    L, n = len(W), X.shape[0]
    U, V = np.asarray(problem.U_k), np.asarray(problem.V_k)
    prod = lambda ws, d: np.linalg.multi_dot(ws[::-1]) if len(ws) > 1 else (ws[0] if ws else np.eye(d))
    fun = np.zeros((n, U.shape[1]))
    layer = np.zeros((L, n, U.shape[1]))
    for l in range(L):
        above, below = prod(W[l + 1:], W[-1].shape[0]), prod(W[:l], W[0].shape[1])
        for i in range(n):
            r = prod(W, 0) @ X[i] - Y[i]
            g = above.T @ np.outer(r, X[i]) @ below.T  # ∂ℓ/∂W_l
            for a in range(U.shape[1]):
                d = above.T @ np.outer(U[:, a], V[:, a]) @ below.T  # ∂m_α/∂W_l
                fun[i, a] += np.sum(d * g)
                layer[l, i, a] = np.sum(d * g) / np.linalg.norm(d)
    return fun.var(axis=0, ddof=1), layer.var(axis=1, ddof=1)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_sampled_noise_equals_per_sample_gradient_oracle(L):
    """The closed-form projections equal explicit per-sample gradient matrices (NumPy) on the same 50 samples:
    1e-12 relative (round-off of O(L) products)."""
    problem, weights = _setting(L)
    X, Y = problem.sample(jax.random.PRNGKey(7), 50, 0.4)
    fun, layer = noise.sampled_noise_power(weights, problem, X, Y)
    o_fun, o_layer = _oracle(weights, problem, np.asarray(X), np.asarray(Y))
    np.testing.assert_allclose(fun, o_fun, rtol=1e-12)
    np.testing.assert_allclose(layer, o_layer, rtol=1e-12)


@pytest.mark.parametrize("L", [2, 3])
def test_sampled_noise_is_unbiased_for_the_wick_noise_power(L):
    """E[sampled_noise_power] = noise_power (the exact Wick variance) at random weights: the mean over 40 000
    independent batches of n = 4 fresh samples within 5 SE of the exact value (SE: sd over batches / √40 000).
    Non-vacuous: the divisor n (instead of n − 1) is 25 % low, rejected at > 5 SE."""
    problem, weights = _setting(L)
    exact = np.asarray(noise.noise_power(weights, problem, 0.4)[0])
    draws = np.asarray(jax.vmap(lambda k: noise.sampled_noise_power(weights, problem, *problem.sample(k, 4, 0.4))[0])(
        jax.random.split(jax.random.PRNGKey(11), 40_000)))
    se = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * se), (draws.mean(axis=0), exact, se)
    assert np.all(np.abs(draws.mean(axis=0) * 3 / 4 - exact) > 5 * se)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_sampled_layer_noise_on_the_aligned_manifold(L):
    """On an aligned balanced network the layer direction is o_l o_{l−1}ᵀ and the layer noise is π_l² Var ζ_α:
    with 20 000 samples the per-layer variance is within 5 % of m^{2−2/L} D(m) (relative SE ≈ √((κ − 1)/n) ≤ 3 %
    for the kurtosis κ ≤ 15 of ζ), equal across layers, and the function-space value is within 5 % of
    L² m^{4−4/L} D(m) (``mode_sde.mode_diffusion`` with η/B = 1)."""
    problem, weights = _setting(L, kind="aligned")
    X, Y = problem.sample(jax.random.PRNGKey(5), 20_000, 0.4)
    fun, layer = (np.asarray(x) for x in noise.sampled_noise_power(weights, problem, X, Y))
    m, s, lam = np.array([1.1, 0.4, 0.2]), np.array([2.0, 1.0, 0.5]), np.array([1.5, 0.8, 1.2])
    par = TM.mode_diffusion(m, s, lam, 0.4, 1.0, 1, L, "parameter")
    np.testing.assert_allclose(layer, np.broadcast_to(par, layer.shape), rtol=0.05)
    np.testing.assert_allclose(fun, TM.mode_diffusion(m, s, lam, 0.4, 1.0, 1, L, "function"), rtol=0.05)


def test_sampled_noise_observable_in_a_run():
    """``simulate(config, observables=[sampled_noise(n)])`` records both variables with their dims; batches are
    fresh per replica (different values at the same time) and the observable rejects n < 2."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 3, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "label_noise": 0.2},
        "network": {"depth": 3, "width": 4}, "init": {"kind": "gaussian", "scale": 0.3},
        "dynamics": {"kind": "sgd", "lr": 0.01, "steps": 20}, "record": {"n_times": 3},
        "ensemble": {"replicas": 4, "seed": 1}})
    ds = dlnlab.simulate(cfg, observables=[sampled_noise(64)], progress=False)
    assert ds.sampled_noise_power.dims == ("replica", "t", "mode")
    assert ds.sampled_layer_noise.dims == ("replica", "t", "layer", "mode")
    assert ds.sampled_layer_noise.shape == (4, 3, 3, 3)
    assert len(np.unique(ds.sampled_noise_power.values[:, -1, 0])) == 4
    with pytest.raises(dlnlab.ConfigError, match="n_samples"):
        sampled_noise(1)
