"""Stiff gradient flow: an L-stable Rosenbrock solver (Rodas5P) on the exact Jacobian, and ``t_max = "auto"``.

For ``θ̇ = f(θ)`` (default ``f = −∇𝓛``, any pytree field with a JAX Jacobian), batched over replicas, float64:

* ``method = "implicit"``: Rodas5P (Steinebach 2023; 8 stages, order 5(4), stiffly accurate, L-stable) with the
  dense Jacobian ``jax.jacfwd(f)`` (the Hessian of 𝓛) and one LU per attempt — for small P (the Jacobian is
  P×P; HVP + Krylov solves for large P are not implemented);
* ``"explicit"``: Dopri5 (Dormand–Prince 5(4)), stability-limited at ``hρ ≈ 3.3`` once a mode is learned;
* ``"auto"`` (default): Dopri5 until its step is at the stability bound, then Rodas5P until its step is small
  enough for Dopri5 again (per replica; ρ by warm-started power iteration, a JVP per explicit attempt).

Accuracy contract (as the engine's flow): per-entry relative error per step, max over entries of
``|err_i| / (atol + rtol·max(|θ_i|, |θ₁_i|))`` ≤ 1 (default ``atol = rtol·1e-3·max|θ(0)|``), plus, for the implicit
steps, a round-off floor ``NOISE_MARGIN·h·ν_i`` with ``ν`` the field's rounding level (:func:`_noise`). Why the
floor: on long plateaus (L = 4 from σ = 1e-6: t ~ 1e10–1e11) the entries of a learned channel along the network's
symmetry directions (zero Hessian eigenvalues) see only rounding in f (~1e-17), which a step of size h turns into
an "error" h·1e-17 that no step size can remove (the drift is the computed field's own); without the floor the
step stalls at h ~ 1e4 (10⁶ steps per plateau). The floor is ≤ NOISE_MARGIN·ε = 2e-12 relative to a step's genuine
change, so keep ``rtol ≥ 1e-11``. Measured (tests/test_stiff_flow.py, rtol = 1e-10): aligned init m₀ = 1e-8,
mode strengths vs the hypergeometric closed form ≤ 1.1e-9 relative at every record (L = 3, 4); random σ = 1e-6
plateau levels within 1.3e-15 relative of ½Σ_{i>k}s_i² (L = 4 at rtol 1e-8), final loss ≤ 1.5e-31. At
rtol ≤ 1e-9 from σ = 1e-6 at L = 4 the noise-dominated error estimate still rejects ~50 % of the implicit
attempts (rtol 1e-10: ~1e5 attempts, ~100 s; 1e-9: 4e4, 44 s; 1e-8: 2.6e3, 3–6 s on this machine).

Records: a common log grid, ``records_per_decade`` per decade, landing exactly on each record (no
interpolation); ``t_max = "auto"`` stops each replica by :class:`AutoStop` and holds it while others run.
Engine use: :func:`prepare` once, then :func:`decades` yields ``(ts, loss, obs, carry)`` per decade; checkpoint
the :class:`Carry` (a pytree of arrays) and pass it back to resume; :func:`flow_program` is the compiled chunk.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import lu_factor, lu_solve

# ---------------------------------------------------------------------------------------------------------
# Rodas5P (Steinebach, BIT Numer. Math. 63:27, 2023): 8 stages, order 5, embedded order 4, stiffly accurate,
# L-stable. Transformed (Hairer–Wanner) form for an autonomous field f with Jacobian J:
#   (I/(hγ) − J) u_i = f(y + Σ_{j<i} a_ij u_j) + Σ_{j<i} (c_ij/h) u_j,   y₁ = y + Σ_i m_i u_i,   error = u₈.
# Rows 6–8 of ``a`` are partial sums of ``m`` (stiffly accurate); the embedded order-4 solution is y₁ − u₈.

_GAMMA = 0.21193756319429014
_A = (
    (),
    (3.0,),
    (2.849394379747939, 0.45842242204463923),
    (-6.954028509809101, 2.489845061869568, -10.358996098473584),
    (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
    (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946),
)
_M = (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946,
      1.0, 1.0, 1.0)
_A = _A + (_M[:6], _M[:7])
_C = (
    (),
    (-14.155112264123755,),
    (-17.97296035885952, -2.859693295451294),
    (147.12150275711716, -1.41221402718213, 71.68940251302358),
    (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
    (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471),
    (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
     -28.087943162872662),
    (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
     -54.66780262877968, -9.48861652309627),
)
RODAS5P_ORDER = 5


def _rodas_step(fun, y, f0, J, h):
    """One Rodas5P step of size ``h`` from ``y`` (``f0 = fun(y)``, ``J`` its Jacobian): ``(y₁, error estimate)``."""
    lu = lu_factor(jnp.eye(y.shape[0], dtype=y.dtype) / (h * _GAMMA) - J)
    us, fy = [], f0
    for i in range(8):
        if i:
            fy = fun(y + sum(a * u for a, u in zip(_A[i], us)))
        rhs = fy + sum(c * u for c, u in zip(_C[i], us)) / h if i else fy
        us.append(lu_solve(lu, rhs))
    return y + sum(m * u for m, u in zip(_M, us)), us[7]


# Dormand–Prince 5(4) (Hairer, Nørsett & Wanner I, II.5), first same as last: stages k₁ … k₆, y₁ = y + h Σ b_j k_j,
# k₇ = f(y₁); error h Σ e_j k_j (e = b − b̂ over k₁ … k₇). Its real stability interval is [−3.3, 0].
_DP_A = (
    (0.2,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
_DP_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
DOPRI5_STABILITY = 3.3


def _combine(coefs, vecs):
    return sum(c * v for c, v in zip(coefs, vecs) if c)


def _power(matvec, v):
    """One power iteration: ``(‖A v‖, A v / ‖A v‖)`` (``v`` kept when ``A v = 0``)."""
    w = matvec(v)
    nw = jnp.linalg.norm(w)
    return nw, jnp.where(nw > 0, w / jnp.where(nw > 0, nw, 1.0), v)


def _dopri_attempt(fun, y, f, h, v):
    """One Dopri5 step: ``(y₁, f(y₁), error estimate, 0, ρ, v)`` (no noise floor: its steps stay below the
    stability bound, where h·ν is negligible), ρ the spectral radius of the Jacobian from one power iteration
    (a Jacobian-vector product) warm-started at the carried direction ``v``."""
    ks = [f]
    for a in _DP_A:
        ks.append(fun(y + h * _combine(a, ks)))
    y1 = y + h * _combine(_DP_B, ks)
    f1 = fun(y1)
    rho, v = _power(lambda u: jax.jvp(fun, (y,), (u,))[1], v)
    return y1, f1, h * _combine(_DP_E, ks + [f1]), jnp.zeros_like(y), rho, v


def _noise(fun, y, f):
    """The round-off level of the field at ``y``, entry by entry: ``|f(y + δ) + f(y − δ) − 2 f(y)|`` for a
    last-bits perturbation ``δ_i = ±8ε|y_i|`` (alternating signs); the second difference cancels the change
    ``Jδ``, leaving the rounding of the three evaluations."""
    d = 8 * jnp.finfo(y.dtype).eps * jnp.abs(y) * jnp.where(jnp.arange(y.shape[0]) % 2 == 0, 1.0, -1.0)
    return jnp.abs(fun(y + d) + fun(y - d) - 2 * f)


def _rodas_attempt(fun, jac, y, f, h, v):
    """One Rodas5P step on the exact Jacobian: ``(y₁, f(y₁), error estimate, noise level ν, ρ, v)``, ρ from two
    power iterations on the Jacobian warm-started at ``v``. ``h ν`` bounds how much of the error estimate the
    field's round-off alone explains (the module docstring says why that matters on long plateaus)."""
    J = jac(y)
    y1, e = _rodas_step(fun, y, f, J, h)
    rho, v = _power(lambda u: J @ u, _power(lambda u: J @ u, v)[1])
    return y1, fun(y1), e, _noise(fun, y, f), rho, v


class FlowStats(NamedTuple):
    """Work counters of one replica: accepted and rejected steps, vector-field (gradient) evaluations (per
    attempt: Dopri5 6; Rodas5P 10 = 7 stages, f(y₁) and 2 for the round-off level),
    Jacobian-vector (Hessian-vector) products of the explicit method's stiffness estimate, and Jacobian
    (Hessian) evaluations (one per implicit attempt)."""

    steps: jax.Array
    rejected: jax.Array
    field_evals: jax.Array
    hvps: jax.Array
    jacobians: jax.Array


class FlowState(NamedTuple):
    """The carry of one replica between calls (checkpoint it to resume): time, flat state ``y`` and the field at
    ``y``, the proposed next step ``h``, the method in use (``stiff``: implicit) with its switching counters
    and the power-iteration direction ``v``, counters, and ``ok`` (False after a step-size underflow, a non-finite
    state or ``max_steps``: the replica then stays where it failed)."""

    t: jax.Array
    y: jax.Array
    f: jax.Array
    h: jax.Array
    stiff: jax.Array
    count: jax.Array
    misses: jax.Array
    v: jax.Array
    stats: FlowStats
    ok: jax.Array


METHODS = ("auto", "explicit", "implicit")
_SWITCH_AFTER = 5  # attempts past a switching threshold before ``auto`` changes method (see ``_switch``)
_TO_IMPLICIT = 2.5  # explicit → implicit when hρ > 2.5: the Dopri5 step is at its stability bound (3.3)
_TO_EXPLICIT = 1.0  # implicit → explicit when hρ < 1: an explicit step that size is stable with a margin of 3
NOISE_MARGIN = 1e4  # the field's rounding enters the error estimate amplified by the stage coefficients (|c_ij| ≤ 165)


def init_state(fun, y, rtol, atol, method="auto", t0=0.0) -> FlowState:
    """One replica's state at ``t0``, with Hairer's first-step guess ``h = 0.01 ‖y‖/‖f(y)‖`` (weighted max
    norms); ``auto`` starts explicit."""
    f = fun(y)
    sc = atol + rtol * jnp.abs(y)
    d0, d1 = jnp.max(jnp.abs(y) / sc), jnp.max(jnp.abs(f) / sc)
    h = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0), 1e-6)
    zero = jnp.zeros((), jnp.int64)
    v = jnp.full_like(y, 1.0 / np.sqrt(y.shape[0]))
    return FlowState(jnp.asarray(t0, y.dtype), y, f, h.astype(y.dtype), jnp.asarray(method == "implicit"), zero,
                     zero, v, FlowStats(zero, zero, zero + 1, zero, zero), jnp.asarray(True))


def _attempts(fun, jac, st: FlowState, h, live, method):
    """Each replica's attempt with its method, batched. Under ``auto`` each method's batch is computed only
    when some live replica uses it (a batch-level ``cond``), so an ensemble pays for the Jacobians only in the
    iterations where a replica is implicit."""
    def explicit():
        return jax.vmap(lambda y, f, h, v: _dopri_attempt(fun, y, f, h, v))(st.y, st.f, h, st.v)

    def implicit():
        return jax.vmap(lambda y, f, h, v: _rodas_attempt(fun, jac, y, f, h, v))(st.y, st.f, h, st.v)

    if method == "explicit":
        return explicit()
    if method == "implicit":
        return implicit()

    def skip():
        return st.y, st.f, jnp.full_like(st.y, jnp.inf), jnp.zeros_like(st.y), jnp.zeros_like(h), st.v

    ex = lax.cond(jnp.any(live & ~st.stiff), explicit, skip)
    im = lax.cond(jnp.any(live & st.stiff), implicit, skip)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(st.stiff.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), im, ex)


def _switch(st: FlowState, h, rho, acc, live):
    """``auto``'s method change: ``(stiff, count, misses)``.

    * explicit → implicit when the step is stability-limited: ``_SWITCH_AFTER`` attempts with
      ``hρ > _TO_IMPLICIT``, counted as Hairer's DOPRI5 counts them (a run of 6 attempts below resets the count);
    * implicit → explicit after ``_SWITCH_AFTER`` consecutive accepted steps with ``hρ < _TO_EXPLICIT``."""
    hr = h * rho
    hit = jnp.where(st.stiff, acc & (hr < _TO_EXPLICIT), hr > _TO_IMPLICIT)
    misses = jnp.where(live & ~st.stiff, jnp.where(hit, 0, st.misses + 1), st.misses)
    reset = jnp.where(st.stiff, ~hit, misses >= 6)
    count = jnp.where(live, jnp.where(reset, 0, st.count + hit), st.count)
    flip = count >= _SWITCH_AFTER
    return jnp.where(flip, ~st.stiff, st.stiff), jnp.where(flip, 0, count), jnp.where(flip, 0, misses)


def advance(fun, st: FlowState, ts, rtol, atol, active, method="auto", max_steps=2**20):
    """Integrate a batch of replicas (every field of ``st`` has a leading replica axis R; ``atol`` and ``active``
    are (R,)) through the record times ``ts`` (n,), landing exactly on each. Returns ``(st, ys)``, ``ys[r, k]``
    the flat state of replica ``r`` at ``ts[k]`` (NaN where not reached). An inactive replica is held: no step,
    ``ys`` its current state. ``fun`` is one replica's flat vector field; its Jacobian is ``jax.jacfwd(fun)``."""
    jac = jax.jacfwd(fun)
    n = ts.shape[0]
    R, P = st.y.shape
    rows = jnp.arange(R)
    ys0 = jnp.where(active[:, None, None], jnp.nan, jnp.broadcast_to(st.y[:, None, :], (R, n, P)))

    def cond(c):
        st, k, _, it = c
        return jnp.any((k < n) & st.ok) & (it < max_steps)

    def body(c):
        st, k, ys, it = c
        kk = jnp.minimum(k, n - 1)
        target, live = ts[kk], (k < n) & st.ok
        due = live & (target <= st.t)  # already there (a repeated record time): record without a step
        step, land = live & ~due, st.h >= target - st.t
        h = jnp.where(step & land, target - st.t, st.h)
        y1, f1, e, nu, rho, v = _attempts(fun, jac, st, h, step, method)
        floor = atol[:, None] + NOISE_MARGIN * h[:, None] * nu
        err = jnp.max(jnp.abs(e) / (floor + rtol * jnp.maximum(jnp.abs(st.y), jnp.abs(y1))), axis=1)
        finite = jnp.all(jnp.isfinite(y1), axis=1) & jnp.all(jnp.isfinite(f1), axis=1) & jnp.isfinite(err)
        err = jnp.where(finite, err, jnp.inf)
        acc = step & (err <= 1.0)
        fac = jnp.clip(0.9 * jnp.maximum(err, 1e-30) ** (-1.0 / RODAS5P_ORDER), 0.2, 6.0)
        h_new = jnp.where(step, jnp.where(acc & land, jnp.maximum(h * fac, st.h), h * fac), st.h)
        t1 = jnp.where(acc, jnp.where(land, target, st.t + h), st.t)
        switched = _switch(st, h, rho, acc, step) if method == "auto" else (st.stiff, st.count, st.misses)
        s, exp_step = st.stats, step & ~st.stiff
        evals = jnp.where(step, 6 + 4 * st.stiff, 0)  # Dopri5: 6; Rodas5P: 7 stages, f(y₁), 2 for the noise level
        stats = FlowStats(s.steps + acc, s.rejected + (step & ~acc), s.field_evals + evals, s.hvps + exp_step,
                          s.jacobians + (step & st.stiff))
        ok = st.ok & ~(step & (h_new <= 1e-14 * jnp.maximum(jnp.abs(t1), 1e-300)))
        acc2 = acc[:, None]
        new = FlowState(t1, jnp.where(acc2, y1, st.y), jnp.where(acc2, f1, st.f), h_new, *switched,
                        jnp.where(step[:, None], v, st.v), stats, ok)
        done = (acc & land) | due
        rec = jnp.where(due[:, None], st.y, y1)
        ys = ys.at[rows, kk].set(jnp.where(done[:, None], rec, ys[rows, kk]))
        return new, k + done, ys, it + 1

    k0 = jnp.where(active, 0, n)
    st, k, ys, _ = lax.while_loop(cond, body, (st, k0, ys0, jnp.zeros((), jnp.int64)))
    return st._replace(ok=st.ok & (k == n)), ys


# ---------------------------------------------------------------------------------------------------------
# Record times on a common log grid, the stopping rule of ``t_max = "auto"``, and the driver


class AutoStop(NamedTuple):
    """The stopping rule of ``t_max = "auto"``.

    Records are log-spaced, ``records_per_decade`` per decade, from the time origin ``t_min`` (default
    :func:`time_origin`, 10⁻³ of the initial relative rate's time). From the end of decade ``min_decades`` on
    (t ≥ 10⁴ t_min, i.e. ten times the initial time scale), a replica stops at the end ``t`` of a decade
    ``[t/10, t]`` when both hold:

    * **nothing grows**: no entry's magnitude grew by more than a factor ``exp(growth)`` over the decade,
      ``max_i ln((|θ_i(t)| + g)/(|θ_i(t/10)| + g)) ≤ growth`` with ``g = atol/rtol`` (default 1e-3·max|θ(0)|;
      below g an entry's solver error, up to atol, is not below rtol of it), and
    * **the loss has settled**: ``|𝓛(t) − 𝓛(t/10)| ≤ rtol·|𝓛(t)| + loss_atol`` (default ``loss_atol =
      rtol²·|𝓛(θ₀)|``: the loss is determined to O(rtol²) near a minimum, where its gradient vanishes).

    Why growth and not the loss alone: on a plateau the loss is flat to O(σ^L) for decades, while the entries
    that will escape grow, by ≈ 0.9 t/t* (L = 3) or 0.45 t/t* (L = 4) over the decade ending at t before the
    blow-up time t*; decaying entries do not count. So an escape later than ~t/growth (10³ t by default) after
    a settled decade would be missed: plateaus whose escape-time ratio t_{k+1}/t_k ≈ λ_k s_k/(λ_{k+1} s_{k+1})
    exceeds ~10³ need a smaller ``growth``. (Much smaller values, ~rtol, keep runs going for decades after
    convergence: entries of the s = 0 modes drift by power laws, relatively ≫ rtol per decade.) A replica whose
    run fails (``ok`` false) stops too; ``max_decades`` caps the run.
    """

    records_per_decade: int = 20
    growth: float = 1e-3
    loss_atol: float | None = None
    min_decades: int = 4
    max_decades: int = 40


def _settled(rule: AutoStop, rtol, atol, y_prev, y, loss_prev, loss, loss0):
    """The rule of :class:`AutoStop` for one replica at the end of a decade."""
    growth = rule.growth
    loss_atol = rtol**2 * jnp.abs(loss0) if rule.loss_atol is None else rule.loss_atol
    g = atol / rtol
    grew = jnp.max(jnp.log((jnp.abs(y) + g) / (jnp.abs(y_prev) + g)))
    return (grew <= growth) & (jnp.abs(loss - loss_prev) <= rtol * jnp.abs(loss) + loss_atol)


class Carry(NamedTuple):
    """The driver's state between decades (checkpoint it to resume by chunks): the replicas' :class:`FlowState`,
    their flat state and loss at the end of the last decade, whether each has stopped and when (NaN: not yet),
    and the number of decades done."""

    state: FlowState
    y_prev: jax.Array
    loss_prev: jax.Array
    stopped: np.ndarray
    t_stop: np.ndarray
    decades: int


class FlowSolution(NamedTuple):
    """A run: record times ``t`` (T,) with ``t[0] = 0``, observations ``obs`` (leaves (R, T, …)), the loss (R, T),
    each replica's stop time ``t_stop`` (R,) (the end of the decade where the rule held; NaN where it never did or
    ``t_max`` was a number) and the final :class:`FlowState` (its ``stats`` and ``ok``)."""

    t: np.ndarray
    obs: object
    loss: np.ndarray
    t_stop: np.ndarray
    state: FlowState


def gradient_field(loss):
    """``θ̇ = −∇𝓛(θ)`` by autodiff, for a loss ``loss(θ, args)`` of a pytree ``θ``."""
    return lambda y, args: jax.tree_util.tree_map(jnp.negative, jax.grad(loss)(y, args))


def flow_program(field, loss, observe, unravel, rtol, method="auto", max_steps=2**20):
    """The compiled chunk ``(state, ts, args, atol, active) -> (state, loss (R, n), obs (R, n, …))`` for a batch
    of replicas: :func:`advance` through ``ts``, then ``loss`` and ``observe`` (both ``(θ, args) ->``) at each
    record. ``field(θ, args)`` is the vector field on pytrees, ``unravel`` maps a flat state back to one."""

    def run(st, ts, args, atol, active):
        fun = lambda y: ravel_pytree(field(unravel(y), args))[0]
        st, ys = advance(fun, st, ts, rtol, atol, active, method, max_steps)
        at = lambda y: (loss(unravel(y), args), observe(unravel(y), args))
        return (st, *jax.vmap(jax.vmap(at))(ys))

    return jax.jit(run)


def default_atol(y, rtol):
    """Today's flow default per replica: ``rtol · 1e-3 · max_i |θ_i(0)|`` (``y`` flat, (R, P))."""
    return rtol * 1e-3 * jnp.max(jnp.abs(y), axis=1)


def time_origin(fun, y):
    """Default ``t_min``: ``1e-3 / r``, ``r = max over replicas of ‖f(θ₀)‖/‖θ₀‖``, the relative rate at the
    start (from a tiny init, ≈ the escaping entries' growth rate λs·a^(L−2)); 1 at a fixed point or θ₀ = 0."""
    rate = jax.vmap(lambda y: jnp.linalg.norm(fun(y)) / jnp.linalg.norm(y))(y)
    rate = float(jnp.max(jnp.where(jnp.isfinite(rate), rate, 0.0)))
    return 1e-3 / rate if rate > 0 else 1.0


def decade_times(t_min, decade, per_decade):
    """Record times of decade ``d``: ``t_min · 10^(d + j/n)``, ``j = 1 … n`` (the grid is common to all replicas)."""
    return t_min * 10.0 ** (decade + np.arange(1, per_decade + 1) / per_decade)


def decades(program, carry: Carry, args, atol, loss0, t_min, rtol, rule: AutoStop, t_max="auto"):
    """Run ``program`` (:func:`flow_program`) decade by decade from ``carry``; yields ``(ts, loss, obs, carry)``
    after each (resume by passing a yielded carry back). With ``t_max = "auto"`` a replica stops by
    :class:`AutoStop` and is then held (its later records repeat its final state); the run ends when every
    replica has stopped or failed, or after ``rule.max_decades``. With a number, every replica runs to ``t_max``
    (the last decade's times are clipped to it and repeat it)."""
    auto = isinstance(t_max, str)
    settled = jax.jit(jax.vmap(lambda *a: _settled(rule, rtol, *a)))
    while carry.decades < rule.max_decades:
        ts = decade_times(t_min, carry.decades, rule.records_per_decade)
        if not auto:
            ts = np.minimum(ts, t_max)
        st0 = carry.state
        active = ~carry.stopped & np.asarray(st0.ok)
        st, loss, obs = program(st0, jnp.asarray(ts), args, atol, jnp.asarray(active))
        stop = ~active | ~np.asarray(st.ok)
        if auto and carry.decades + 1 >= rule.min_decades:
            stop |= np.asarray(settled(atol, carry.y_prev, st.y, carry.loss_prev, loss[:, -1], loss0))
        t_stop = np.where(stop & ~carry.stopped & np.asarray(st.ok) & auto, ts[-1], carry.t_stop)
        carry = Carry(st, st.y, loss[:, -1], carry.stopped | stop, t_stop, carry.decades + 1)
        yield ts, loss, obs, carry
        if (auto and carry.stopped.all()) or (not auto and ts[-1] >= t_max):
            return


class Prepared(NamedTuple):
    """A run ready to start (:func:`prepare`): the compiled chunk, the starting :class:`Carry` and what
    :func:`decades` needs, and the record at ``t = 0``. Running it twice reuses the compilation."""

    program: object
    start: Carry
    args: object
    atol: jax.Array
    loss0: jax.Array
    obs0: object
    t_min: float
    rtol: float
    rule: AutoStop
    t_max: object


def prepare(loss, y0, args=None, *, field=None, t_max="auto", rtol=1e-10, atol=None, method="auto",
            rule: AutoStop | None = None, t_min=None, observe=None, max_steps=2**20) -> Prepared:
    """Set up the gradient flow ``θ̇ = field(θ, args)`` (default ``−∇loss``) of a batch of replicas, ``y0`` a
    pytree whose leaves have a leading replica axis R, recorded on a common log grid
    (``rule.records_per_decade`` per decade from ``t_min``, default :func:`time_origin`) up to ``t_max`` (a
    number, or ``"auto"``: :class:`AutoStop`).

    ``atol``: a number or (R,) array, default :func:`default_atol`; ``observe(θ, args)`` (default: θ itself) is
    recorded with the loss; ``method``: ``"auto"`` (explicit Dopri5, switching to Rodas5P while the explicit step
    is stability-limited), ``"explicit"`` or ``"implicit"``."""
    if method not in METHODS:
        raise ValueError(f"method = {method!r}: must be one of {', '.join(METHODS)}")
    if not (t_max == "auto" or (isinstance(t_max, (int, float)) and t_max > 0)):
        raise ValueError(f"t_max = {t_max!r}: must be a positive number or 'auto'")
    if not rtol > 0:
        raise ValueError(f"rtol = {rtol!r}: must be positive")
    rule = AutoStop() if rule is None else rule
    field = gradient_field(loss) if field is None else field
    observe = (lambda y, a: y) if observe is None else observe
    Y0 = jax.vmap(lambda y: ravel_pytree(y)[0])(y0)
    unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: x[0], y0))[1]
    fun = lambda y: ravel_pytree(field(unravel(y), args))[0]
    atol = default_atol(Y0, rtol) if atol is None else jnp.broadcast_to(jnp.asarray(atol, Y0.dtype), Y0.shape[:1])
    if t_min is None:
        t_min = time_origin(fun, Y0) if t_max == "auto" else min(time_origin(fun, Y0), 0.1 * t_max)
    state = jax.vmap(lambda y, a: init_state(fun, y, rtol, a, method))(Y0, atol)
    loss0, obs0 = jax.vmap(lambda y: (loss(unravel(y), args), observe(unravel(y), args)))(Y0)
    R = Y0.shape[0]
    start = Carry(state, Y0, loss0, np.zeros(R, bool), np.full(R, np.nan), 0)
    return Prepared(flow_program(field, loss, observe, unravel, rtol, method, max_steps), start, args, atol, loss0,
                    obs0, float(t_min), rtol, rule, t_max)


def run(p: Prepared) -> FlowSolution:
    """Run a prepared flow to the end (:func:`decades`) and gather the records."""
    pieces = [(np.zeros(1), p.loss0[:, None], jax.tree_util.tree_map(lambda x: x[:, None], p.obs0))]
    carry = p.start
    for ts, L, obs, carry in decades(p.program, p.start, p.args, p.atol, p.loss0, p.t_min, p.rtol, p.rule, p.t_max):
        pieces.append((ts, L, obs))
    t = np.concatenate([q[0] for q in pieces])
    keep = np.concatenate([[True], np.diff(t) > 0])  # a clipped last decade repeats t_max
    cat = lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=1)[:, keep]
    return FlowSolution(t[keep], jax.tree_util.tree_map(cat, *[q[2] for q in pieces]), cat(*[q[1] for q in pieces]),
                        carry.t_stop, carry.state)


def solve(loss, y0, args=None, **options) -> FlowSolution:
    """``run(prepare(loss, y0, args, **options))``: see :func:`prepare`."""
    return run(prepare(loss, y0, args, **options))


# ---------------------------------------------------------------------------------------------------------
# Benchmark (issue 15 item 4: B4 extended)


def _b4_problem(L, m0, s):
    """Whitened identity-basis teacher ``s``, width ``len(s)``, aligned balanced init ``m_α(0) = m0``."""
    from .model import Problem, Teacher
    from .model.gradients import full_gradient
    from .model.network import end_to_end

    k = len(s)
    problem = Problem.build(Teacher(s=np.asarray(s, float), U=np.eye(k), V=np.eye(k), input_variance=np.ones(k)))
    w0 = tuple(jnp.asarray(m0 ** (1.0 / L) * np.eye(k))[None] for _ in range(L))

    def loss(w, p):
        E = end_to_end(w) - p.M
        return 0.5 * jnp.sum((E @ p.input_cov) * E)

    return problem, w0, loss, lambda w, p: tuple(-g for g in full_gradient(w, p)), lambda w, p: jnp.diag(end_to_end(w))


def _timed(fn):
    import time

    fn()  # compile
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _dopri5_today(fun, y0, ts, rtol, atol, max_steps):
    """Today's engine solver (diffrax Dopri5, PID controller, max norm) through ``ts``: ``(states at ts, steps)``;
    states not reached are non-finite."""
    import diffrax

    term = diffrax.ODETerm(lambda t, y, a: fun(y))
    ctrl = diffrax.PIDController(rtol=rtol, atol=atol, norm=lambda x: jnp.max(jnp.abs(x)))
    sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, ts[-1], None, y0, saveat=diffrax.SaveAt(ts=ts),
                              stepsize_controller=ctrl, max_steps=max_steps, throw=False)
    return sol.ys, sol.stats["num_steps"]


def _explicit_today(fun, y0, y_end, t, rtol, atol, cap, ref, modes):
    """Today's explicit solver from ``y0`` through the records ``t[1:]``, capped at ``cap`` steps and extrapolated
    past the cap from its stability-bounded step rate at the converged state ``y_end`` (see :func:`benchmark`)."""
    (ys, n), wall = _timed(jax.jit(lambda: _dopri5_today(fun, y0, jnp.asarray(t[1:]), rtol, atol, cap)))
    reached = np.isfinite(np.asarray(ys[:, 0]))
    t_reached = float(t[1:][reached][-1]) if reached.any() else 0.0
    rho = float(jnp.max(jnp.abs(jnp.linalg.eigvalsh(jax.jacfwd(fun)(y_end)))))
    window = 2000 * DOPRI5_STABILITY / rho
    n_win = jax.jit(lambda: _dopri5_today(fun, y_end, jnp.asarray([window]), rtol, atol, 10**6))()[1]
    rate = int(n_win) / window
    steps = int(n) + (0.0 if reached.all() else rate * (t[-1] - t_reached))
    m, pred = np.asarray(jax.vmap(modes)(ys[np.flatnonzero(reached)])), ref(t[1:][reached])
    return {"steps_run": int(n), "t_reached": t_reached, "t_end": float(t[-1]), "completed": bool(reached.all()),
            "extrapolated": not bool(reached.all()), "stiff_steps_per_time": rate, "rho_hessian": rho,
            "steps": steps, "gradient_evaluations": 6 * steps + 1, "wall_s": wall / max(int(n), 1) * steps,
            "max_rel_error_reached": float(np.max(np.abs(m - pred) / pred)) if reached.any() else None}


def _b4_depth(L, m0, s, rtol, explicit_cap):
    from .theory import mode_flow_fn

    problem, w0, loss, field, modes = _b4_problem(L, m0, s)
    ref = mode_flow_fn([m0] * len(s), list(s), 1.0, L)
    row = {}
    for method in ("implicit", "auto"):
        p = prepare(loss, w0, problem, field=field, observe=modes, rtol=rtol, method=method)
        sol, wall = _timed(lambda p=p: run(p))
        st = jax.tree_util.tree_map(lambda a: int(np.asarray(a)[0]), sol.state.stats)
        pred = ref(sol.t)
        row[method] = {**st._asdict(), "wall_s": wall, "t_stop": float(sol.t_stop[0]), "records": len(sol.t),
                       "max_rel_error": float(np.max(np.abs(np.asarray(sol.obs)[0] - pred) / pred))}
    y0, unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: x[0], w0))
    fun = lambda y: ravel_pytree(field(unravel(y), problem))[0]
    atol = float(default_atol(y0[None], rtol)[0])
    row["explicit_today"] = _explicit_today(fun, y0, sol.state.y[0], sol.t, rtol, atol, explicit_cap, ref,
                                            lambda y: modes(unravel(y), problem))
    return row


def benchmark(depths=(3, 4), m0=1e-8, s=(1.0, 0.5, 0.25, 0.125), rtol=1e-10, explicit_cap=200_000) -> dict:
    """Gradient flow through every plateau from an aligned ``m₀`` (``t_max = "auto"``) at ``rtol``: for each depth,
    work and wall time (second run, compilation excluded) of ``implicit``, ``auto`` and today's explicit solver
    (the engine's diffrax Dopri5, 6 gradients per step), and each one's max relative error against the closed form
    (whitened identity-basis teacher ``s``, width ``len(s)``).

    The explicit run is capped at ``explicit_cap`` steps; past the cap its step count is **extrapolated**:
    ``steps(0 → t_reached) + rate·(t_end − t_reached)``, ``rate`` its measured steps per unit time over 2000
    stability-bounded steps from the converged state (where its step is ≈ 3.3/ρ(H)), and its wall time as
    steps × its measured time per step."""
    runs = {f"L{L}": _b4_depth(L, m0, s, rtol, explicit_cap) for L in depths}
    return {"params": {"depths": list(depths), "m0": m0, "s": list(s), "rtol": rtol, "explicit_cap": explicit_cap},
            "runs": runs}
