"""Stiff gradient flow (issue 15 items 1–3): :mod:`dlnlab.stiff_flow`.

* The two integrators are 5th order (fixed-step convergence), so their tableaux are the published ones.
* From a tiny random init (σ = 1e-6, not aligned) at L = 3 and 4, ``t_max = "auto"`` runs through every
  plateau of a 3-mode teacher: plateau losses at the saddle levels ½Σ_{i>k} s_i², learned in order, final loss
  < 1e-10, and the run stops by itself one to two decades after the last escape.
* From an aligned balanced init the mode strengths follow the closed form (hypergeometric time) at every record.
* The explicit method alone is stiffness-limited once a mode is learned: its step rate is the stability bound.
* Stopping, holding and resuming by decades; replicas do not depend on each other; bad options are rejected.
"""

import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dlnlab
from dlnlab import stiff_flow as sf
from dlnlab import theory
from dlnlab.model.gradients import full_gradient

jax = pytest.importorskip("jax")
jnp = jax.numpy

S = (2.5, 1.2, 0.6)
LEVELS = [0.5 * sum(s**2 for s in S[k:]) for k in range(len(S))]  # saddle k (whitened): ½ Σ_{i>k} s_i²
# L = 4 from σ = 1e-6 runs at rtol = 1e-8: at 1e-10 the round-off-dominated error estimate on its 1e10–1e11-long
# plateaus costs ~1e5 implicit attempts (~100 s; see the dlnlab.stiff_flow docstring); 1e-8 still gives the
# plateau levels to round-off and the final loss to 1e-31.
RTOL_RANDOM = {3: 1e-10, 4: 1e-8}


def _problem(d=5, seed=3):
    rng = np.random.default_rng(seed)
    U, V = (dlnlab.model.teacher.random_orthogonal(rng, d) for _ in range(2))
    s = np.concatenate([S, np.zeros(d - len(S))])
    return dlnlab.Problem.build(dlnlab.Teacher(s=s, U=U, V=V, input_variance=np.ones(d)))


def _loss(weights, problem):
    E = dlnlab.end_to_end(weights) - problem.M
    return 0.5 * jnp.sum((E @ problem.input_cov) * E)


def _field(weights, problem):
    return tuple(-g for g in full_gradient(weights, problem))


def _svals(weights, problem):
    return jnp.linalg.svd(dlnlab.end_to_end(weights), compute_uv=False)


def _modes(weights, problem):
    return jnp.diag(problem.U.T @ dlnlab.end_to_end(weights) @ problem.V)[: len(S)]


def _gaussian(L, sigma, R, d=5, width=6, seed=0):
    dims = [d] + [width] * (L - 1) + [d]
    keys = jax.random.split(jax.random.PRNGKey(seed), L)
    return tuple(sigma * jax.random.normal(keys[l], (R, dims[l + 1], dims[l]), jnp.float64) for l in range(L))


def _aligned(problem, L, m0, width=6, seed=1):
    """Balanced aligned init, m_α(0) = m0 for every mode: W_l = O_l diag(m0^(1/L)) O_{l−1}ᵀ, random hidden O_l."""
    d, k = problem.M.shape[0], len(S)
    rng = np.random.default_rng(seed)
    bases = [np.asarray(problem.V)] + [dlnlab.model.teacher.random_orthogonal(rng, width) for _ in range(L - 1)]
    bases.append(np.asarray(problem.U))
    a = m0 ** (1.0 / L)
    assert d >= k and width >= k
    return tuple(jnp.asarray(a * bases[l + 1][:, :k] @ bases[l][:, :k].T)[None] for l in range(L))


# ---------------------------------------------------------------------------------------------------------
# The integrators


def _fixed_step_error(step, n):
    """Global error at t = 2 of ``n`` fixed steps of y' = (y₁(1 − y₁), sin y₁ − y₂) from (0.1, 1)."""
    from scipy.integrate import solve_ivp

    fun = lambda y: jnp.stack([y[0] * (1 - y[0]), jnp.sin(y[0]) - y[1]])
    ref = solve_ivp(lambda t, y: [y[0] * (1 - y[0]), np.sin(y[0]) - y[1]], (0, 2), [0.1, 1.0], method="DOP853",
                    rtol=1e-13, atol=1e-14).y[:, -1]
    y = jnp.array([0.1, 1.0])
    for _ in range(n):
        y = step(fun, y, 2.0 / n)
    return float(np.max(np.abs(np.asarray(y) - ref)))


@pytest.mark.parametrize("method", ["rodas5p", "dopri5"])
def test_integrators_are_fifth_order(method):
    """Halving the step divides the global error by 2⁵ = 32 (measured 32.1–32.8 for both): the tableaux are
    order 5 (a wrong coefficient drops the order; Rodas5P without its last stage is order 4, ratio 16)."""
    v = jnp.array([1.0, 0.0])
    if method == "rodas5p":
        step = lambda fun, y, h: sf._rodas_attempt(fun, jax.jacfwd(fun), y, fun(y), h, v)[0]
    else:
        step = lambda fun, y, h: sf._dopri_attempt(fun, y, fun(y), h, v)[0]
    errs = [_fixed_step_error(step, n) for n in (20, 40, 80)]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 28) & (ratios < 37)), f"error ratios {ratios} (errors {errs})"


# ---------------------------------------------------------------------------------------------------------
# Through every plateau


def _run(w0, problem, observe, **options):
    return sf.solve(_loss, w0, problem, field=_field, observe=observe, **options)


@pytest.mark.parametrize("L", [3, 4])
def test_random_init_crosses_every_plateau(L):
    """σ = 1e-6 Gaussian init (d = 5, width 6, not aligned), ``t_max = "auto"``, rtol ``RTOL_RANDOM[L]``.

    Half-times t_k: first record with σ_k(W) ≥ s_k/2; plateau k's loss: the record nearest the log-midpoint of
    (t_k, t_{k+1}) (t_0: the first record). Measured relative offsets from ½Σ_{i>k} s_i²: ≤ 1.3e-15 (finite-σ
    offsets, errata 10, are far below round-off here); final loss 5e-32 (L = 3), 1.5e-31 (L = 4). The run stops
    by itself within two decades of the last half-time (measured: 45 times it, at L = 3 and 4)."""
    problem = _problem()
    sol = _run(_gaussian(L, 1e-6, 1), problem, _svals, rtol=RTOL_RANDOM[L])
    assert bool(sol.state.ok[0]) and np.isfinite(sol.t_stop[0])
    t, loss, sv = sol.t, sol.loss[0], np.asarray(sol.obs)[0]
    half = [t[np.argmax(sv[:, k] >= S[k] / 2)] for k in range(len(S))]
    assert all(sv[:, k].max() >= S[k] / 2 for k in range(len(S)))
    assert half[0] < half[1] < half[2], f"learning order {half}"
    edges = [t[1]] + half
    for k, level in enumerate(LEVELS):
        mid = np.sqrt(edges[k] * edges[k + 1])
        i = np.argmin(np.abs(np.log(t[1:] / mid))) + 1
        assert abs(loss[i] - level) <= 5e-3 * level, f"plateau {k}: loss {loss[i]} at t = {t[i]:.3g}, level {level}"
        between = (t > edges[k]) & (t < edges[k + 1])
        assert between.sum() >= 3, f"plateau {k} has {between.sum()} records"
    assert loss[-1] < 1e-10
    assert half[-1] < sol.t_stop[0] <= 100 * half[-1]
    assert sol.t[-1] == sol.t_stop[0]


@pytest.mark.parametrize("L", [3, 4])
def test_aligned_init_follows_the_closed_form(L):
    """Aligned balanced init m_α(0) = 1e-8 (random hidden bases): every mode strength at every record within
    relative 1e-6 of the hypergeometric closed form (``theory.mode_flow_fn``); measured max 1.1e-9 (L = 3 and 4)
    at rtol = 1e-10, i.e. ~10 rtol of global error."""
    problem, m0 = _problem(), 1e-8
    sol = _run(_aligned(_problem(), L, m0), problem, _modes)
    assert bool(sol.state.ok[0])
    m = np.asarray(sol.obs)[0]
    pred = theory.mode_flow_fn([m0] * len(S), list(S), 1.0, L)(sol.t)
    rel = np.abs(m - pred) / np.abs(pred)
    assert rel.max() < 1e-6, f"max relative error {rel.max():.3e} at t = {sol.t[np.argmax(rel.max(1))]:.4g}"
    assert np.abs(m[-1] - np.array(S)).max() < 1e-9 * S[0]
    mid = (m[:, 0] > S[0] / 2) & (m[:, 2] < 1e-3 * S[2])  # the comparison covers a plateau
    assert mid.sum() >= 3


# ---------------------------------------------------------------------------------------------------------
# Stopping, holding, resuming; independence of replicas; the explicit method's stiffness


@pytest.fixture(scope="module")
def two_scales():
    """L = 3, replicas from σ = 1e-6 and 1e-3 (same normalised draw): prepared run and its solution."""
    w = _gaussian(3, 1.0, 1)
    w0 = tuple(jnp.concatenate([1e-6 * x, 1e-3 * x]) for x in w)
    p = sf.prepare(_loss, w0, _problem(), field=_field, observe=_svals)
    return p, sf.run(p)


def test_replicas_stop_at_their_own_time_and_are_held(two_scales):
    """σ = 1e-3 escapes ~10³ times earlier (t ∝ 1/σ at L = 3) and stops decades before σ = 1e-6; on the common
    grid its records after its stop repeat its final state exactly."""
    _, sol = two_scales
    t_slow, t_fast = sol.t_stop
    assert t_fast * 100 <= t_slow == sol.t[-1]
    after = sol.t > t_fast
    assert after.sum() >= 2 * 20
    np.testing.assert_array_equal(sol.loss[1, after], sol.loss[1, after][0])
    assert sol.loss[1, -1] < 1e-10 and sol.loss[0, -1] < 1e-10


def test_resume_from_a_decade_is_exact(two_scales):
    """Stopping after 4 decades and resuming from the yielded Carry reproduces the uninterrupted run bitwise."""
    p, sol = two_scales
    args = (p.args, p.atol, p.loss0, p.t_min, p.rtol, p.rule, p.t_max)
    gen = sf.decades(p.program, p.start, *args)
    first = [next(gen) for _ in range(4)]
    carry = first[-1][3]
    rest = list(sf.decades(p.program, carry, *args))
    loss = np.concatenate([np.asarray(x[1]) for x in first + rest], axis=1)
    np.testing.assert_array_equal(loss, sol.loss[:, 1:])


def test_a_replica_does_not_depend_on_the_others(two_scales):
    """Replica σ = 1e-6 alone follows the same trajectory as beside σ = 1e-3 (each replica takes its own steps and
    methods; the batch only decides which method's batch is computed). Not bitwise (kernels batched over 1 or 2
    replicas round differently): measured ≤ 3e-12 relative on genuine singular values; values below 1e-12 are
    round-off of W (after a mode is learned, its unlearned singular values are ~1e-16, rounding noise)."""
    p, sol = two_scales
    alone = sf.solve(_loss, tuple(x[:1] for x in _gaussian(3, 1e-6, 1)), _problem(), field=_field, observe=_svals,
                     t_min=p.t_min)
    n = len(alone.t)
    np.testing.assert_array_equal(alone.t, sol.t[:n])
    np.testing.assert_allclose(alone.obs[0], sol.obs[0, :n], rtol=1e-9, atol=1e-12)
    assert alone.t_stop[0] == sol.t_stop[0]


def test_explicit_step_is_stiffness_limited_once_learned(two_scales):
    """From the converged state, Dopri5 alone needs ≥ ρ(H)/3.3 steps per unit time (the stability bound; measured
    ~1.1 ρ/3.3 with its rejections), while Rodas5P crosses the same stretch in a handful of steps. This rate is
    what :func:`dlnlab.stiff_flow.benchmark` extrapolates the explicit run with."""
    p, sol = two_scales
    unravel = ravel_pytree(tuple(x[0] for x in _gaussian(3, 1.0, 1)))[1]
    fun = lambda y: ravel_pytree(_field(unravel(y), p.args))[0]
    y = sol.state.y[:1]
    rho = float(jnp.max(jnp.abs(jnp.linalg.eigvalsh(jax.jacfwd(fun)(y[0])))))
    window = 3000 * sf.DOPRI5_STABILITY / rho
    steps = {}
    for method in ("explicit", "implicit"):
        st = jax.vmap(lambda y, m=method: sf.init_state(fun, y, p.rtol, p.atol[0], m))(y)
        st, _ = sf.advance(fun, st, jnp.asarray([window]), p.rtol, p.atol[:1], jnp.ones(1, bool), method)
        assert bool(st.ok[0])
        steps[method] = int(st.stats.steps[0] + st.stats.rejected[0])
    rate = steps["explicit"] / window
    assert rho / sf.DOPRI5_STABILITY <= rate <= 2 * rho / sf.DOPRI5_STABILITY, (rate, rho)
    assert steps["implicit"] <= 30


@pytest.mark.parametrize("option, value, message", [
    ("method", "rk4", "method = 'rk4': must be one of auto, explicit, implicit"),
    ("t_max", -1.0, "t_max = -1.0: must be a positive number or 'auto'"),
    ("rtol", 0.0, "rtol = 0.0: must be positive"),
])
def test_bad_options_are_rejected(option, value, message):
    with pytest.raises(ValueError, match=message):
        sf.prepare(_loss, _gaussian(3, 1e-6, 1), _problem(), **{option: value})
