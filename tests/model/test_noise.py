"""Gradients and gradient noise (requirement (c); checks.md N1–N3, C4; sgd_noise.md §§1–5).

Monte Carlo (MC) checks use fixed seeds and compare each entry of a sample covariance with the exact value
within 5 standard errors (SE). The SE of a covariance entry is the sd of the product of the two centred
coordinates over √n, i.e. √((E[c_i²c_j²] − Cov_ij²)/n), estimated from the same samples (checks.md N1).
5 SE has a two-sided false-failure rate of 6e-7 per Gaussian entry, so a maximum over ≲ 10³ entries stays
at ≲ 1e-3 — and with fixed seeds each check is deterministic anyway. For scalar statistics of replicas
(C4) the group SE of checks.md §0 is used (20 groups).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab
from dlnlab import theory
from dlnlab.engines import make_step
from dlnlab.model import noise
from dlnlab.model.gradients import full_gradient, minibatch_gradient, minibatch_loss
from dlnlab.model.network import end_to_end
from dlnlab.model.observables import ReplicaParams
from dlnlab.model.problem import Problem

Z = 5.0  # SE multiple for every MC check (see module docstring)


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _general_problem(M, input_cov):
    """A :class:`Problem` with an arbitrary SPD ``Σx`` (not sharing the teacher's basis: the Wick formula and
    the samplers hold for any Gaussian input law)."""
    M, input_cov = np.asarray(M, np.float64), np.asarray(input_cov, np.float64)
    evals, evecs = np.linalg.eigh(input_cov)
    sqrt = (evecs * np.sqrt(evals)) @ evecs.T
    U, s, Vt = np.linalg.svd(M)
    k = len(s)
    lam = np.diag(Vt @ input_cov @ Vt.T)[:k]
    a = lambda x: jnp.asarray(x, jnp.float64)
    return Problem(M=a(M), input_cov=a(input_cov), input_cov_sqrt=a(sqrt), U=a(U), V=a(Vt.T), s=a(s), lam=a(lam))


def _n1_setting():
    """checks.md N1: d_out = 3, d_in = 4, Σx = Q0Q0ᵀ/d0 + 0.3 I, σ_ε = 0.7, random teacher and weights."""
    rng = np.random.default_rng(0)
    Q0 = rng.standard_normal((4, 4))
    cov = Q0 @ Q0.T / 4 + 0.3 * np.eye(4)
    M = rng.standard_normal((3, 4))
    problem = _general_problem(M, cov)
    return problem, 0.7, rng


def _mc_cov(samples):
    """Mean, covariance (divisor n) and per-entry SE of the covariance of the rows of ``samples``."""
    x = np.asarray(samples, np.float64)
    n = x.shape[0]
    mean = x.mean(axis=0)
    c = x - mean
    cov = c.T @ c / n
    c2 = c * c
    m4 = c2.T @ c2 / n  # E[c_i² c_j²]
    se = np.sqrt(np.maximum(m4 - cov**2, 0.0) / n)
    mean_se = c.std(axis=0) / np.sqrt(n)
    return mean, mean_se, cov, se


def _max_z(est, exact, se):
    return float(np.max(np.abs(est - exact) / se))


def _flat(weights):
    return jnp.concatenate([w.reshape(-1) for w in weights])


def _unflatten(theta, shapes):
    out, i = [], 0
    for sh in shapes:
        n = sh[0] * sh[1]
        out.append(theta[i:i + n].reshape(sh))
        i += n
    return tuple(out)


def _param_cov(weights, problem, label_noise):
    """Exact parameter-space covariance ``Σ(θ) = Jᵀ Γ J`` (sgd_noise.md §2): ``Γ`` the Wick covariance of
    vec G (theory oracle) and ``J = ∂ vec W / ∂θ`` by autodiff (θ = row-major vecs of W_1..W_L)."""
    shapes = [w.shape for w in weights]
    J = jax.jacfwd(lambda th: end_to_end(_unflatten(th, shapes)).reshape(-1))(_flat(weights))
    E = np.asarray(end_to_end(weights) - problem.M)
    Gamma = theory.wick_covariance_matrix(E, np.asarray(problem.input_cov), label_noise)
    J = np.asarray(J)
    return J.T @ Gamma @ J


def _random_weights(dims, rng, scale=0.6):
    return tuple(jnp.asarray(scale * rng.standard_normal((dims[l + 1], dims[l]))) for l in range(len(dims) - 1))


def _per_sample_G(weights, X, Y):
    """Per-sample end-to-end gradients ``G_n = (W x_n − y_n) x_nᵀ``, as rows ``vec G_n`` (row-major)."""
    W = np.asarray(end_to_end(weights))
    X, Y = np.asarray(X), np.asarray(Y)
    R = X @ W.T - Y
    return (R[:, :, None] * X[:, None, :]).reshape(X.shape[0], -1)


# ---------------------------------------------------------------------------------------------------------
# (i) gradients


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_minibatch_gradient_equals_autodiff(L):
    """Backprop ``minibatch_gradient`` = ``jax.grad(minibatch_loss)`` to 1e-12 relative per layer (float64
    round-off; the two evaluate the same products in different orders; measured ≤ 3.6e-16)."""
    rng = np.random.default_rng(L)
    dims = [5, 7, 6, 4, 3][: L] + [3]
    problem = _general_problem(rng.standard_normal((3, 5)), np.eye(5) + 0.2 * np.ones((5, 5)))
    weights = _random_weights(dims, rng)
    X, Y = problem.sample(jax.random.PRNGKey(L), 7, 0.5)
    got = minibatch_gradient(weights, X, Y)
    ref = jax.grad(minibatch_loss)(weights, X, Y)
    for g, r in zip(got, ref):
        assert float(jnp.linalg.norm(g - r) / jnp.linalg.norm(r)) < 1e-12


def test_full_gradient_equals_autodiff_of_population_and_empirical_loss():
    """``full_gradient`` = autodiff of the population loss ½tr(EΣxEᵀ) (online) and = ``minibatch_gradient`` on the
    whole dataset (finite data), 1e-12 relative (round-off; measured ≤ 3.9e-16)."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 5, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "input_variance": [1.5, 0.8, 1.2, 0.6, 1.0]},
        "data": {"kind": "finite", "n_samples": 50, "seed": 1},
        "network": {"depth": 3, "width": 6},
        "init": {"kind": "gaussian", "scale": 0.5},
        "dynamics": {"kind": "gd", "lr": 0.01, "steps": 1},
    })
    teacher = dlnlab.Teacher.from_config(cfg)
    weights = dlnlab.Initializer(cfg, teacher)(jax.random.PRNGKey(0), 0.5)
    online = dlnlab.Problem.build(teacher)

    def pop_loss(ws):
        E = end_to_end(ws) - online.M
        return 0.5 * jnp.sum((E @ online.input_cov) * E)

    for g, r in zip(full_gradient(weights, online), jax.grad(pop_loss)(weights)):
        assert float(jnp.linalg.norm(g - r) / jnp.linalg.norm(r)) < 1e-12
    finite = dlnlab.Problem.build(teacher, dlnlab.Dataset.draw(teacher, 50, 0.3, seed=1))
    for g, r in zip(full_gradient(weights, finite), minibatch_gradient(weights, finite.X, finite.Y)):
        assert float(jnp.linalg.norm(g - r) / jnp.linalg.norm(r)) < 1e-12


# ---------------------------------------------------------------------------------------------------------
# (ii) Wick covariance of per-sample end-to-end gradients (N1)


def test_wick_covariance_of_per_sample_gradients():
    """N1: n = 1e6 per-sample gradients G = (Wx − y)xᵀ (samples from ``Problem.sample``), d_out = 3, d_in = 4,
    non-isotropic Σx, σ_ε = 0.7. Mean within 5 SE of P = EΣx; every entry of the 12×12 sample covariance
    within 5 SE of Q_ik Σx_jl + P_il P_kj (measured: mean 1.6 SE, covariance max 1.4 SE; max abs error 0.42%
    of the max entry, against N1's alternative bound 1%). The JAX tensor ``noise.wick_covariance`` equals the NumPy oracle to 1e-14 (round-off)."""
    problem, se_, rng = _n1_setting()
    weights = _random_weights([4, 5, 3], rng)
    X, Y = problem.sample(jax.random.PRNGKey(1), 1_000_000, se_)
    mean, mean_se, cov, se = _mc_cov(_per_sample_G(weights, X, Y))
    E = np.asarray(end_to_end(weights) - problem.M)
    exact = theory.wick_covariance_matrix(E, np.asarray(problem.input_cov), se_)
    P = E @ np.asarray(problem.input_cov)
    assert _max_z(mean, P.reshape(-1), mean_se) < Z
    assert _max_z(cov, exact, se) < Z
    # The library's JAX version of the same formula (used by nothing stochastic, but exported).
    Pj, Qj = noise.wick_PQ(weights, problem, se_)
    tensor = noise.wick_covariance(Pj, Qj, problem.input_cov)
    np.testing.assert_allclose(np.asarray(tensor).reshape(12, 12), exact, rtol=0, atol=1e-14 * np.abs(exact).max())


# ---------------------------------------------------------------------------------------------------------
# (iii) exact SDE samplers (N2) and layer noise


def _draw(fn, n, seed):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return jax.jit(jax.vmap(fn))(keys)


def test_exact_end_to_end_sampler_has_wick_covariance():
    """N2: 4e5 draws of Ψ = EΣ^{1/2}Ξ_symΣ^{1/2} + σ_εΞ₂Σ^{1/2}: mean within 5 SE of 0 and every covariance entry
    within 5 SE of the Wick covariance (measured: mean 1.6 SE, covariance max 2.0 SE, i.e. 0.10% of the max
    entry; N2 observed 0.18%)."""
    problem, se_, rng = _n1_setting()
    weights = _random_weights([4, 5, 3], rng)
    psi = _draw(lambda k: noise.sample_end_to_end_noise(k, weights, problem, se_, "exact").reshape(-1), 400_000, 2)
    mean, mean_se, cov, se = _mc_cov(psi)
    E = np.asarray(end_to_end(weights) - problem.M)
    exact = theory.wick_covariance_matrix(E, np.asarray(problem.input_cov), se_)
    assert _max_z(mean, 0.0, mean_se) < Z
    assert _max_z(cov, exact, se) < Z


def test_label_noise_sampler_is_the_covariance_at_zero_error():
    """``kind="label"`` draws σ_εΞ₂Σ^{1/2}: its covariance is the Wick covariance at E = 0, σ_ε² I ⊗ Σx (4e5 draws,
    5 SE per entry; measured max 3.4 SE, mean 2.6 SE). At E = 0 exactly (L = 1, W = M) the exact sampler returns the
    same draw bit for bit (its E-term vanishes; same key for the label part)."""
    problem, se_, rng = _n1_setting()
    weights = _random_weights([4, 5, 3], rng)  # E ≠ 0: the label sampler must ignore it
    psi = _draw(lambda k: noise.sample_end_to_end_noise(k, weights, problem, se_, "label").reshape(-1), 400_000, 3)
    mean, mean_se, cov, se = _mc_cov(psi)
    exact = theory.wick_covariance_matrix(np.zeros((3, 4)), np.asarray(problem.input_cov), se_)
    assert _max_z(mean, 0.0, mean_se) < Z
    assert _max_z(cov, exact, se) < Z
    at_min = (problem.M,)
    for seed in range(3):
        k = jax.random.PRNGKey(seed)
        a = noise.sample_end_to_end_noise(k, at_min, problem, se_, "exact")
        b = noise.sample_end_to_end_noise(k, at_min, problem, se_, "label")
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def layer_setting():
    """A random 4 → 3 → 3 → 3 network (L = 3, 30 parameters) under the N1 input law and σ_ε = 0.7, its exact
    Σ(θ) = JᵀΓJ, and 4e5 per-sample layer gradients (``minibatch_gradient`` with B = 1)."""
    problem, se_, rng = _n1_setting()
    weights = _random_weights([4, 3, 3, 3], rng, scale=0.8)
    n = 400_000
    X, Y = problem.sample(jax.random.PRNGKey(4), n, se_)
    per_sample = jax.jit(jax.vmap(lambda x, y: _flat(minibatch_gradient(weights, x[None], y[None]))))(X, Y)
    return problem, se_, weights, _param_cov(weights, problem, se_), np.asarray(per_sample), np.asarray(X), np.asarray(Y)


def test_per_sample_layer_gradients_have_covariance_JT_Gamma_J(layer_setting):
    """The per-sample layer-gradient covariance (the definition of Σ(θ)) matches JᵀΓJ: 30×30 entries within 5 SE
    (measured max 2.6 SE); the mean within 5 SE of the population gradient (measured 1.9 SE)."""
    problem, _, weights, sigma, per_sample, _, _ = layer_setting
    mean, mean_se, cov, se = _mc_cov(per_sample)
    assert _max_z(mean, np.asarray(_flat(full_gradient(weights, problem))), mean_se) < Z
    assert _max_z(cov, sigma, se) < Z


def test_layer_noise_sampler_has_parameter_covariance(layer_setting):
    """``sample_layer_noise`` (one Ψ pulled back to every layer) has covariance Σ(θ) = JᵀΓJ, including the
    cross-layer blocks: 4e5 draws, 30×30 entries within 5 SE (measured max 2.9 SE), mean within 5 SE of 0
    (measured 3.0 SE)."""
    problem, se_, weights, sigma, _, _, _ = layer_setting
    xi = _draw(lambda k: _flat(noise.sample_layer_noise(k, weights, problem, se_, "exact")), 400_000, 5)
    mean, mean_se, cov, se = _mc_cov(xi)
    assert _max_z(mean, 0.0, mean_se) < Z
    assert _max_z(cov, sigma, se) < Z


# ---------------------------------------------------------------------------------------------------------
# (iv) noise power (N3, §4, §7.1)


def test_noise_power_total_closed_form_and_monte_carlo(layer_setting):
    """N3: ``noise_power`` total = ``theory.total_noise_trace`` = tr(JᵀΓJ) to 1e-12 relative (three exact
    evaluations of the same quantity; round-off, measured 0 — bitwise equal here), and = the MC trace of the per-sample
    layer-gradient covariance, mean of ‖g_n − ḡ‖² over 4e5 samples, within 5 SE (SE = sd(‖g_n − ḡ‖²)/√n;
    measured 0.65 SE, ratio 1.0034). Per mode, ``noise_power`` = Var⟨A_α, G⟩ (A_α from ``mode_directions``)
    within 5 SE (measured 0.4, 1.3, 3.9 SE)."""
    problem, se_, weights, sigma, per_sample, X, Y = layer_setting
    per_mode, total = noise.noise_power(weights, problem, se_)
    total = float(total)
    oracle = theory.total_noise_trace([np.asarray(w) for w in weights], np.asarray(problem.M),
                                      np.asarray(problem.input_cov), se_)
    assert abs(total - oracle) / oracle < 1e-12
    assert abs(total - np.trace(sigma)) / oracle < 1e-12
    c = per_sample - per_sample.mean(axis=0)
    sq = np.sum(c * c, axis=1)
    assert abs(sq.mean() - total) < Z * sq.std() / np.sqrt(len(sq))
    # per-mode: projections of the per-sample end-to-end gradients on A_α
    A = np.asarray(noise.mode_directions(weights, problem)).reshape(3, -1)
    proj = _per_sample_G(weights, X, Y) @ A.T  # (n, modes)
    pc = proj - proj.mean(axis=0)
    var, var_se = np.mean(pc**2, axis=0), np.std(pc**2, axis=0) / np.sqrt(len(pc))
    assert np.all(np.abs(var - np.asarray(per_mode)) < Z * var_se)


@pytest.mark.parametrize("L", [1, 2, 3, 4])
def test_noise_power_per_mode_on_aligned_balanced_network(L):
    """sgd_noise.md §4, §7.1: on an aligned balanced network the per-mode noise power is
    Var⟨A_α, G⟩ = (L m^{2−2/L})² D_α(m), D_α = 2λ²(m − s)² + λσ_ε². Non-whitened λ, random teacher and hidden
    bases, a mode above its target (m > s) and a zero mode (s = m = 0: noise power λσ_ε² for L = 1, else 0).
    Tolerance 1e-10 relative (exact identity; round-off in the O(L) matrix products; measured ≤ 3.1e-15; zero mode ≤ 2e-32 for L ≥ 2)."""
    s, lam, strength, se_ = [2.0, 1.0, 0.5], [1.5, 0.8, 1.2, 0.6], [0.3, 1.4, 0.05], 0.4
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 4, "d_out": 4, "singular_values": s, "input_variance": lam, "label_noise": se_,
                    "basis": "random", "seed": 7},
        "network": {"depth": L, "width": 5},
        "init": {"kind": "aligned", "strength": strength, "hidden_basis": "random"},
        "dynamics": {"kind": "sgd", "lr": 0.01, "steps": 1},
    })
    teacher = dlnlab.Teacher.from_config(cfg)
    problem = dlnlab.Problem.build(teacher)
    weights = dlnlab.Initializer(cfg, teacher)(jax.random.PRNGKey(3), 0.0)
    per_mode = np.asarray(noise.noise_power(weights, problem, se_)[0])
    m, sv, lm = np.array(strength), np.array(s), np.array(lam[:3])
    # the init is what the formula assumes: m_α = u_αᵀWv_α
    np.testing.assert_allclose(np.diag(np.asarray(problem.U_k.T @ end_to_end(weights) @ problem.V_k))[:3], m, rtol=1e-12)
    # the zero mode: s_4 = m_4 = 0, λ_4 = 0.6; its noise power is λ_4σ_ε² for L = 1 (0⁰ = 1) and 0 for L ≥ 2
    m, sv, lm = np.append(m, 0.0), np.append(sv, 0.0), np.array(lam)
    D = 2 * lm**2 * (m - sv) ** 2 + lm * se_**2
    expected = (L * m ** (2 - 2 / L)) ** 2 * D
    np.testing.assert_allclose(per_mode, expected, rtol=1e-10, atol=1e-10 * expected.max())


# ---------------------------------------------------------------------------------------------------------
# (v) per-step covariance of the SDE step and of the SGD step (C4)


def _c4_setting(kind, noise_kind, lr, B, dt):
    d = {"kind": kind, "lr": lr, "batch_size": B, "steps": 1}
    if kind == "sde":
        d.update(noise=noise_kind, isotropic_scale=0.7)
        if dt is not None:
            d["dt"] = dt
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "input_variance": [1.5, 0.8, 1.2, 0.6],
                    "label_noise": 0.5, "basis": "random", "seed": 2},
        "network": {"depth": 3, "width": [3, 3]},
        "init": {"kind": "gaussian", "scale": 0.8},
        "dynamics": d,
    })
    teacher = dlnlab.Teacher.from_config(cfg)
    problem = dlnlab.Problem.build(teacher)
    weights = dlnlab.Initializer(cfg, teacher)(jax.random.PRNGKey(6), 0.8)
    params = ReplicaParams(lr=jnp.asarray(lr), label_noise=jnp.asarray(0.5), dt=jnp.asarray(dt if dt is not None else lr))
    return cfg, problem, weights, params


_STEPS = {}


def _vmapped_step(cfg):
    """``make_step(cfg)`` vmapped over replica keys and jitted, cached by what the step closes over (kind,
    noise, B): η, Δt and σ_ε enter through ``ReplicaParams``, so cases differing only in those share one
    compilation (compiling the step dominates these tests' runtime)."""
    dy = cfg.dynamics
    cache_key = (dy.kind, dy.noise, dy.batch_size, dy.isotropic_scale)
    if cache_key not in _STEPS:
        step = make_step(cfg)
        _STEPS[cache_key] = jax.jit(jax.vmap(lambda w, key, p, prm: _flat(step(w, key, 0, p, prm)),
                                             in_axes=(None, 0, None, None)))
    return _STEPS[cache_key]


def _one_step_projections(cfg, problem, weights, params, R, seed):
    """φ·(θ' − θ) for R independent replica keys (step k = 0), φ a fixed random unit vector."""
    keys = jax.random.split(jax.random.PRNGKey(seed), R)
    new = _vmapped_step(cfg)(weights, keys, problem, params)
    phi = np.random.default_rng(seed).standard_normal(new.shape[1])
    phi /= np.linalg.norm(phi)
    return np.asarray(new - _flat(weights)) @ phi, phi


def _group_check(y, mean_exp, var_exp, groups=20):
    """Mean and variance of y against expectations within 5 group-SE (checks.md §0). Returns the z-scores."""
    g = y.reshape(groups, -1)
    means, variances = g.mean(axis=1), g.var(axis=1)
    z_mean = abs(means.mean() - mean_exp) / (means.std(ddof=1) / np.sqrt(groups))
    z_var = abs(variances.mean() - var_exp) / (variances.std(ddof=1) / np.sqrt(groups))
    return z_mean, z_var, variances.mean() / var_exp


@pytest.mark.parametrize("noise_kind,lr,B,dt", [
    ("exact", 0.01, 1, None), ("exact", 0.02, 1, None), ("exact", 0.02, 4, 0.005),  # checks.md C4's (η, B)
    ("label", 0.02, 4, 0.005), ("isotropic", 0.02, 4, 0.005),
])
def test_sde_step_covariance(noise_kind, lr, B, dt):
    """C4 for the full-network sampler: one Euler–Maruyama step θ' = θ − Δt∇𝓛 + √(Δtη/B) ξ from ``make_step``
    (kind "sde"), R = 1e5 replicas (halved from
    C4's 2e5 for runtime; the group SE of the variance is then ≈ 0.5%, so 5 SE ≈ 2.5% still resolves any wrong
    factor of Δt, η or B). On a random unit projection φ: mean of φ·Δθ = −Δt φ·∇𝓛 and variance
    = Δt(η/B) φᵀΣφ, with Σ = JᵀΓJ (``exact``), JᵀΓ(E=0)J (``label``) or c²I (``isotropic``), each within
    5 group-SE (20 groups; group SE of the variance 0.4–0.5%). Measured: variance ratios 0.996–1.003,
    max |z| 0.99. The Gaussian ξ makes φ·Δθ exactly Gaussian, so the group statistics are well behaved."""
    cfg, problem, weights, params = _c4_setting("sde", noise_kind, lr, B, dt)
    dt_ = dt if dt is not None else lr
    y, phi = _one_step_projections(cfg, problem, weights, params, 100_000, seed=int(1e4 * lr) + B)
    if noise_kind == "exact":
        sigma = _param_cov(weights, problem, 0.5)
    elif noise_kind == "label":
        shapes = [w.shape for w in weights]
        J = np.asarray(jax.jacfwd(lambda th: end_to_end(_unflatten(th, shapes)).reshape(-1))(_flat(weights)))
        sigma = J.T @ theory.wick_covariance_matrix(np.zeros((3, 4)), np.asarray(problem.input_cov), 0.5) @ J
    else:
        sigma = 0.7**2 * np.eye(len(phi))
    drift = np.asarray(_flat(full_gradient(weights, problem))) @ phi
    z_mean, z_var, ratio = _group_check(y, -dt_ * drift, dt_ * lr / B * phi @ sigma @ phi)
    assert z_mean < Z and z_var < Z, (z_mean, z_var, ratio)


@pytest.mark.parametrize("lr,B", [(0.01, 1), (0.02, 1), (0.02, 4)])
def test_sgd_step_covariance(lr, B):
    """C4 for online SGD: one step θ' = θ − η ĝ (``make_step``, kind "sgd"), R = 1e5 replicas (group SE of
    the variance 0.75–1.0%). On a random unit
    projection φ: mean −η φ·∇𝓛 and variance η² φᵀΣφ / B (exact for online SGD: φ·ĝ is the mean of B
    i.i.d. per-sample values, linear in G), within 5 group-SE. Measured variance ratios 0.996–0.999, max |z| 1.5.
    (The per-sample values are non-Gaussian — products of Gaussians — but have all moments, and the group SE
    does not assume normality.)"""
    cfg, problem, weights, params = _c4_setting("sgd", None, lr, B, None)
    y, phi = _one_step_projections(cfg, problem, weights, params, 100_000, seed=int(1e4 * lr) + B + 100)
    sigma = _param_cov(weights, problem, 0.5)
    drift = np.asarray(_flat(full_gradient(weights, problem))) @ phi
    z_mean, z_var, ratio = _group_check(y, -lr * drift, lr**2 / B * phi @ sigma @ phi)
    assert z_mean < Z and z_var < Z, (z_mean, z_var, ratio)


# ---------------------------------------------------------------------------------------------------------
# (vi) finite datasets (sgd_noise.md §3.2; checks.md N5)


@pytest.fixture(scope="module")
def finite_setting():
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "input_variance": [1.5, 0.8, 1.2, 0.6],
                    "label_noise": 0.4, "basis": "random", "seed": 5},
        "data": {"kind": "finite", "n_samples": 30, "seed": 8},
        "network": {"depth": 2, "width": 5},
        "init": {"kind": "gaussian", "scale": 0.6},
        "dynamics": {"kind": "sde", "lr": 0.01, "steps": 1},
    })
    teacher = dlnlab.Teacher.from_config(cfg)
    dataset = dlnlab.Dataset.draw(teacher, 30, 0.4, seed=8)
    problem = dlnlab.Problem.build(teacher, dataset)
    weights = dlnlab.Initializer(cfg, teacher)(jax.random.PRNGKey(9), 0.6)
    G = _per_sample_G(weights, dataset.X, dataset.Y)  # (N, d_out·d_in)
    Gc = G - G.mean(axis=0)
    return problem, weights, G, Gc.T @ Gc / G.shape[0]


def test_finite_data_exact_noise_has_empirical_covariance(finite_setting):
    """§3.2: on a finite dataset (N = 30) the exact sampler Ψ = N^{-1/2} Σ_n ζ_n (G_n − Ḡ) has covariance
    (1/N) Σ_n (G_n − Ḡ)(G_n − Ḡ)ᵀ: 2e5 draws, every entry within 5 SE (measured max 2.8 SE), mean within
    5 SE of 0 (measured 2.1 SE). The layer noise is the pull-back of the same Ψ (checked exactly against ``layer_maps``)."""
    problem, weights, _, emp = finite_setting
    psi = _draw(lambda k: noise.sample_end_to_end_noise(k, weights, problem, 0.4, "exact").reshape(-1), 200_000, 10)
    mean, mean_se, cov, se = _mc_cov(psi)
    assert _max_z(mean, 0.0, mean_se) < Z
    assert _max_z(cov, emp, se) < Z
    from dlnlab.model.gradients import layer_maps

    key = jax.random.PRNGKey(0)
    xi = noise.sample_layer_noise(key, weights, problem, 0.4, "exact")
    ref = layer_maps(weights, noise.sample_end_to_end_noise(key, weights, problem, 0.4, "exact"))
    for a, b in zip(xi, ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_finite_data_noise_power_is_empirical(finite_setting):
    """On a finite dataset ``noise_power`` is the exact empirical quantity: total = trace of the empirical
    covariance of the per-sample layer gradients, per mode = empirical variance of ⟨A_α, G_n⟩; 1e-12 relative
    (both sides exact, round-off only; measured ≤ 2.7e-16)."""
    problem, weights, G, _emp = finite_setting
    per_mode, total = noise.noise_power(weights, problem, 0.4)
    X, Y = problem.X, problem.Y
    g = np.asarray(jax.vmap(lambda x, y: _flat(minibatch_gradient(weights, x[None], y[None])))(X, Y))
    gc = g - g.mean(axis=0)
    ref_total = np.sum(gc * gc) / g.shape[0]
    assert abs(float(total) - ref_total) / ref_total < 1e-12
    A = np.asarray(noise.mode_directions(weights, problem)).reshape(3, -1)
    ref_mode = np.var(G @ A.T, axis=0)
    np.testing.assert_allclose(np.asarray(per_mode), ref_mode, rtol=1e-12)
