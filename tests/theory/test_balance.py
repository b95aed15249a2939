"""The law of balance and the noise balance of [Z] as closed forms (``dlnlab.theory.balance``; ``noise_balance.md``
§§3–5, ``checks.md`` Z1, Z4): the exact per-step identities against one SGD step of the model, the rank-one noise
matrices and layer traces, the data-constant estimators, and Theorem 3.1's expected drift for DLN layers.

Tolerances follow checks.md §0 (moved from ``tests/test_noise_balance.py``, issue 14).
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab
from dlnlab.analysis.stats import group_estimate
from dlnlab.engines import make_step
from dlnlab.model.diagonal import path_gradients, sgd_step
from dlnlab.model.gradients import minibatch_gradient
from dlnlab.model.observables import ReplicaParams
from dlnlab.theory.balance import (
    DataConstants,
    estimate_data_constants,
    layer_balance_drift,
    layer_noise_traces,
    path_pair_step_factor,
    rank_one_noise_matrices,
    scalar_pair_step_factor,
    step_imbalance_change,
)

REF = DataConstants.reference()


def _rel(a, b):
    return float(np.max(np.abs(a - b) / np.abs(b)))


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_per_step_identity_diagonal_pair(weight_decay):
    """Scalar pairs v = uw (d = 3 paths, 500 random states, B = 4 fresh samples each): after one SGD step,
    ``(u² − w²)' = ((1 − ηρ)² − η²ξ̂²)(u² − w²)``, and without weight decay ``Δ(u² − w²) = η²(g_u² − g_w²)``.

    Non-vacuous: the first-order terms ``−2η(u g_u − w g_w)`` cancel only by the rescaling symmetry; each of
    them is ≫ the η² change (asserted). The factor form is tested at 1e-12 relative to ``|u² − w²|`` on states
    with ``|w|/|u| ∈ [0.2, 0.6]`` (so that ``u² − w²`` itself is computed without cancellation). The Δ form is
    tested at round-off of the state, ``|Δ_obs − Δ_pred| ≤ 1e-12 (u² + w²)``: the stored weights carry a rounding
    error ~ε|u| that enters the O(η) terms, so no tighter relative statement holds for the difference.
    Measured: factor 8.1e-16 (ρ = 0) and 6.3e-16 (ρ = 0.3) relative; Δ 2.8e-16·(u² + w²)."""
    rng = np.random.default_rng(0)
    lr, B = 0.07, 4
    u = rng.normal(0, 0.8, (500, 3))
    w = u * rng.uniform(0.2, 0.6, u.shape) * rng.choice([-1, 1], u.shape)  # |u² − w²| ≥ 0.47(u² + w²)
    theta = jnp.asarray(np.stack([u, w], axis=-1))
    x = jnp.asarray(rng.normal(size=(500, B)))
    y = x + jnp.asarray(rng.normal(size=(500, B)))
    new, xi = sgd_step(theta, x, y, lr, weight_decay)
    imb0 = np.asarray(theta[..., 0] ** 2 - theta[..., 1] ** 2)
    imb1 = np.asarray(new[..., 0] ** 2 - new[..., 1] ** 2)
    factor = scalar_pair_step_factor(lr, np.asarray(xi), weight_decay)[:, None]
    assert _rel(imb1, factor * imb0) < 1e-12
    if weight_decay == 0.0:
        g = np.asarray(xi)[:, None, None] * np.asarray(path_gradients(theta))  # ĝ per factor
        delta_pred = lr**2 * (g[..., 0] ** 2 - g[..., 1] ** 2)
        first_order = np.abs(2 * lr * np.asarray(theta[..., 0]) * g[..., 0])
        assert np.median(first_order / np.abs(delta_pred)) > 10
        th0, th1 = np.asarray(theta), np.asarray(new)
        step = (th1 - th0) * (th1 + th0)  # per factor: (u' − u)(u' + u), no cancellation
        delta_obs = step[..., 0] - step[..., 1]
        norm = np.sum(th0**2, axis=-1)
        assert np.max(np.abs(delta_obs - delta_pred) / norm) < 1e-12
        # the generic form on each replica's whole groups u = (u_i), w = (w_i)
        d_pred = np.array([step_imbalance_change(lr, g[r, :, 0], g[r, :, 1]) for r in range(500)])
        assert np.max(np.abs(delta_obs.sum(axis=1) - d_pred) / norm.sum(axis=1)) < 1e-12


def test_per_step_identity_depth_L_path():
    """Two factors (l, m) of a depth-4 path: the factor is ``1 − η²ξ̂² Π_{j≠l,m}(u^{(j)})²`` (noise_balance.md §4).
    Measured max relative residual 3.4e-15."""
    rng = np.random.default_rng(1)
    lr = 0.05
    f0 = rng.normal(0, 0.9, (300, 2))
    ratio = lambda a, b: rng.uniform(a, b, f0.shape) * rng.choice([-1, 1], f0.shape)
    # |u^(l)|/|u^(m)| ∉ [0.6, 1.7] for the tested pairs: every pair is far from balanced (well conditioned)
    th = np.stack([f0, f0 * ratio(0.2, 0.6), f0 * ratio(0.5, 1.5), f0 * ratio(1.7, 2.5)], axis=-1)
    theta = jnp.asarray(th)
    x = jnp.asarray(rng.normal(size=(300, 3)))
    y = x + jnp.asarray(rng.normal(size=(300, 3)))
    new, xi = sgd_step(theta, x, y, lr)
    th0, th1 = np.asarray(theta), np.asarray(new)
    for l, m in [(0, 1), (1, 3), (0, 3)]:
        imb0, imb1 = th0[..., l] ** 2 - th0[..., m] ** 2, th1[..., l] ** 2 - th1[..., m] ** 2
        f = path_pair_step_factor(lr, np.asarray(xi)[:, None], th0, l, m)
        assert _rel(imb1, f * imb0) < 1e-12


def test_per_step_identity_two_dln_layers():
    """Consecutive layers of a 5 → 8 → 3 DLN (the scalar rescaling W₂ → cW₂, W₁ → W₁/c): one online SGD step
    (B = 6, library ``make_step``) changes ``‖W₂‖²_F − ‖W₁‖²_F`` by exactly ``η²(‖Ĝ₂‖² − ‖Ĝ₁‖²)``
    (:func:`step_imbalance_change`). 1e-12 relative; measured 1.4e-13 (checks.md G3/Z1)."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 5, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "label_noise": 0.5, "seed": 3},
        "network": {"depth": 2, "width": 8}, "init": {"kind": "gaussian", "scale": 0.5},
        "dynamics": {"kind": "sgd", "lr": 0.05, "batch_size": 6, "steps": 1}})
    teacher = dlnlab.Teacher.from_config(cfg)
    problem = dlnlab.Problem.build(teacher)
    weights = dlnlab.Initializer(cfg, teacher)(jax.random.PRNGKey(4), 0.5)
    params = ReplicaParams(lr=jnp.asarray(0.05), label_noise=jnp.asarray(0.5), dt=jnp.asarray(0.05))
    key, k = jax.random.PRNGKey(8), 3
    new = make_step(cfg)(weights, key, k, problem, params)
    X, Y = problem.sample(jax.random.fold_in(jax.random.fold_in(key, 0), k), 6, params.label_noise)
    G = minibatch_gradient(weights, X, Y)
    for w, wn, gr in zip(weights, new, G):
        np.testing.assert_allclose(wn, w - 0.05 * gr, rtol=0, atol=1e-14)
    sq = lambda a: float(jnp.sum(a**2))
    delta = (sq(new[1]) - sq(new[0])) - (sq(weights[1]) - sq(weights[0]))
    pred = step_imbalance_change(0.05, np.asarray(G[1]), np.asarray(G[0]))
    assert abs(delta - pred) / abs(pred) < 1e-12


def test_rank_one_noise_matrices_and_layer_traces():
    """Exact noise matrices of the rank-one net ``f = u wᵀx``: ``Σ_k Var ∂ℓ/∂w_k = uᵀC₁u`` and
    ``Σ_i Var ∂ℓ/∂u_i = wᵀC₂w`` equal the per-layer traces of the same net as a width-1 DLN (two independent
    formulas, 1e-12 relative), and both match Monte Carlo over 4·10⁵ per-sample gradients within 5 group SE
    (checks.md §0; measured 1e-16 and |z| ≤ 0.21)."""
    rng = np.random.default_rng(2)
    d_in, d_out, sig = 4, 3, 0.7
    M = rng.normal(size=(d_out, d_in))
    S = np.diag([1.5, 1.0, 0.7, 0.4])
    u, w = rng.normal(size=d_out), rng.normal(size=d_in)
    C1, C2 = rank_one_noise_matrices(u, w, M, S, sig)
    tr = layer_noise_traces([w[None, :], u[:, None]], M, S, sig)  # layer 1 = wᵀ, layer 2 = u
    assert abs(tr[0] - u @ C1 @ u) / tr[0] < 1e-12 and abs(tr[1] - w @ C2 @ w) / tr[1] < 1e-12
    n = 400_000
    x = rng.normal(size=(n, d_in)) * np.sqrt(np.diag(S))
    r = x @ (np.outer(u, w) - M).T - sig * rng.normal(size=(n, d_out))  # r = Wx − y
    gw = (r @ u)[:, None] * x  # ∂ℓ/∂w = (uᵀr) x
    gu = (x @ w)[:, None] * r  # ∂ℓ/∂u = (wᵀx) r
    for grad, exact in ((gw, tr[0]), (gu, tr[1])):
        per_group = [np.sum(np.var(g, axis=0)) for g in np.array_split(grad, 20)]
        est, se = np.sum(np.var(grad, axis=0)), np.std(per_group, ddof=1) / np.sqrt(20)
        assert abs(est - exact) < 5 * se, (est, exact, se)


def test_data_constant_estimators():
    """Z4 [V1]: from n = 10⁶ samples of the reference data, each of (β₁, β₂, α₁, α₂, α₃, Δ) is within 5 group
    SE of (1, 1, 2, 2, 3, 2). Measured |z| ≤ 0.59."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=1_000_000)
    y = x + rng.normal(size=x.size)
    est, se = estimate_data_constants(x, y)
    for name, exact in zip(("beta1", "beta2", "alpha1", "alpha2", "alpha3", "det"), (1, 1, 2, 2, 3, 2)):
        value = est.det if name == "det" else getattr(est, name)
        assert abs(value - exact) < 5 * se[name], (name, value, se[name])
    c = DataConstants.single_mode(0.7, 1.3, 0.4)  # the single-mode formulas, e.g. Δ = 2λ³σ²
    assert abs(c.det - 2 * 0.7**3 * 0.4**2) < 1e-14 and abs(c.T_crit() - 1.3 / (2 * 0.7 * 1.3**2 + 0.4**2)) < 1e-14


def test_noise_balance_dln_expected_drift():
    """Theorem 3.1 for consecutive DLN layers, conditionally exact: at 8 random states of a 4 → 6 → 2 network
    (non-isotropic inputs, label noise 0.8), the mean change of ``‖W₂‖² − ‖W₁‖²`` over 4·10⁵ independent online SGD
    steps (η = 0.05, B = 2) equals η·:func:`layer_balance_drift` (``2T(trΣ₂ − trΣ₁) + η(‖∇₂𝓛‖² − ‖∇₁𝓛‖²)``, exact
    Wick traces) within 5 group SE (5 SE: a maximum over 8 states; checks.md §0). Measured |z| ≤ 1.03."""
    rng = np.random.default_rng(8)
    d_in, w, d_out, lr, B, sig = 4, 6, 2, 0.05, 2, 0.8
    S = np.diag([2.0, 1.0, 0.5, 0.3])
    M = rng.normal(size=(d_out, d_in))
    n = 400_000
    for _ in range(8):
        W1, W2 = rng.normal(0, 0.5, (w, d_in)), rng.normal(0, 0.5, (d_out, w))
        X = rng.normal(size=(n, B, d_in)) * np.sqrt(np.diag(S))
        Y = X @ M.T + sig * rng.normal(size=(n, B, d_out))
        R_ = X @ (W2 @ W1).T - Y  # (n, B, d_out)
        G2 = np.einsum("nbo,nbh->noh", R_, X @ W1.T) / B
        G1 = np.einsum("nbh,nbi->nhi", R_ @ W2, X) / B
        delta = lr**2 * (np.sum(G2**2, axis=(1, 2)) - np.sum(G1**2, axis=(1, 2)))
        pred = lr * layer_balance_drift([W1, W2], M, S, sig, lr, B)[0]
        est = group_estimate(delta[:, None], np.mean)
        m, se = est.value, est.se
        assert abs(m - pred) < 5 * se, (m, pred, se)

