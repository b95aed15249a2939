"""The stiff gradient-flow integrator of :mod:`._flow`: Rodas5P on the exact Jacobian, Dopri5 with a stiffness
estimate, and the per-replica switch between them, batched over replicas (float64).

For ``θ̇ = f(θ)`` with ``f`` one replica's flat vector field (the engine's ``−∇𝓛``) and ``J = jax.jacfwd(f)``:

* ``method = "implicit"``: Rodas5P (Steinebach 2023; 8 stages, order 5(4), stiffly accurate, L-stable) with the
  dense Jacobian (the Hessian of 𝓛, P×P) and one LU per attempt;
* ``"explicit"``: Dopri5 (Dormand–Prince 5(4)), stability-limited at ``hρ ≈ 3.3`` once a mode is learned (ρ the
  spectral radius of J);
* ``"auto"``: Dopri5 until its step is at the stability bound, then Rodas5P until its step is small enough for
  Dopri5 again (per replica; ρ by a warm-started power iteration, one Jacobian-vector product per explicit attempt).

Step control (:func:`advance`): per-entry relative error ``max_i |err_i| / (atol + floor_i + rtol·max(|θ_i|,
|θ₁_i|)) ≤ 1``, step factor ``0.9·err^(−1/5)`` within [0.2, 6], and for the implicit steps a round-off floor
``floor_i = NOISE_MARGIN·h·ν_i``, ``ν`` the field's rounding level (:func:`_noise_shift`: the larger of the estimates at
this and at the previous implicit attempt, from two perturbation patterns used in turn). Why the floor: on long
plateaus (L = 4 from σ = 1e-6: t ~ 1e10–1e12) the entries along the network's symmetry directions (zero Hessian
eigenvalues) of a learned channel see only rounding in f (~1e-17), which a step of size h turns into an "error"
~h·1e-17 that no step size removes (the drift is the computed field's own); without the floor the step stalls
at h ~ 1e4 (10⁶ steps per plateau). With ``NOISE_MARGIN = 100`` the floor is ~100·ε relative to a step's genuine
change, so keep ``rtol ≥ 1e-12``. Measured (tests/engines/test_flow.py, d = 5, width 6, 3-mode teacher,
rtol 1e-10): from σ = 1e-6 at L = 4, 3 700 steps with 7 % rejected (one estimate of ν, recomputed unchanged at a
rejected state, was exactly zero in some entries by chance: 7 300 of 15 000 attempts were rejected, 28 s; a margin
of 1e4 costs 15 % fewer steps and 20× the error against the closed form).
The records are landed on exactly (no interpolation).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import lu_factor, lu_solve

from ..model.doubledouble import DD

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


def _table(rows, n):
    """Lower-triangular stage coefficients as an ``n × n`` array (row i: the coefficients of stages 0 … i−1)."""
    out = np.zeros((n, n))
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


_A_TAB, _C_TAB, _M_VEC = _table(_A, 8), _table(_C, 8), np.asarray(_M)


def _stages(fun, y, first, n, increment, finish):
    """Stages ``1 … n−1`` of a Runge–Kutta-type method in a loop, so the field is traced once (not once per stage:
    the double-double gradient is ~6 000 operations, ~1 s of compilation per traced copy):
    ``k_i = finish(i, fun(y + increment(i, k)), k)`` with ``k`` the (n, P) stages so far, ``k_0 = first``."""
    k0 = jnp.zeros((n,) + y.shape, y.dtype).at[0].set(first)
    return lax.fori_loop(1, n, lambda i, k: k.at[i].set(finish(i, fun(y + increment(i, k)), k)), k0)


def _rodas_step(fun, y, f0, J, h):
    """One Rodas5P step of size ``h`` from ``y`` (``f0 = fun(y)``, ``J`` its Jacobian): ``(y₁, error estimate)``."""
    lu = lu_factor(jnp.eye(y.shape[0], dtype=y.dtype) / (h * _GAMMA) - J)
    A, C = jnp.asarray(_A_TAB, y.dtype), jnp.asarray(_C_TAB, y.dtype)
    us = _stages(fun, y, lu_solve(lu, f0), 8, lambda i, u: A[i] @ u,
                 lambda i, fy, u: lu_solve(lu, fy + (C[i] @ u) / h))
    return y + jnp.asarray(_M_VEC, y.dtype) @ us, us[7]


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
_DP_TAB = _table(((),) + _DP_A + (_DP_B,), 7)  # row 6: y₁'s weights, so that stage 6 is k₇ = f(y₁)


def _power(matvec, v):
    """One power iteration: ``(‖A v‖, A v / ‖A v‖)`` (``v`` kept when ``A v = 0``)."""
    w = matvec(v)
    nw = jnp.linalg.norm(w)
    return nw, jnp.where(nw > 0, w / jnp.where(nw > 0, nw, 1.0), v)


def _dopri_attempt(fun, lin, y, f, h, v):
    """One Dopri5 step: ``(y₁, f(y₁), error estimate, 0, ρ, v)`` (no noise floor: its steps stay below the
    stability bound, where h·ν is negligible), ρ the spectral radius of the Jacobian from one power iteration
    (a Jacobian-vector product of ``lin``, the field whose Jacobian is used) warm-started at the carried direction
    ``v``."""
    tab = jnp.asarray(_DP_TAB, y.dtype)
    ks = _stages(fun, y, f, 7, lambda i, k: h * (tab[i] @ k), lambda i, fy, k: fy)
    y1 = y + h * (tab[6] @ ks)  # the point of stage 6: its own coefficient is 0, so 0·k₇ adds exactly 0 (k₇ finite)
    rho, v = _power(lambda u: jax.jvp(lin, (y,), (u,))[1], v)
    return y1, ks[6], h * (jnp.asarray(_DP_E, y.dtype) @ ks), jnp.zeros_like(y), rho, v


def _noise_shift(y, odd):
    """The last-bits perturbation ``δ`` at ``y`` of the field's round-off estimate ``|f(y + δ) + f(y − δ) − 2 f(y)|``
    per entry (:func:`_rodas_attempt`; the second difference cancels the change ``Jδ``, leaving the rounding of the three
    evaluations): ``δ_i = ±8ε|y_i|`` with alternating signs, or (``odd``) ``±5ε|y_i|`` with signs alternating by
    pairs. One such estimate is exactly zero in some entries by chance; :func:`advance` alternates the two patterns
    between attempts and uses the larger of the last two estimates."""
    i = jnp.arange(y.shape[0])
    sign = jnp.where(jnp.where(odd, (i // 2) % 2, i % 2) == 0, 1.0, -1.0)
    return jnp.where(odd, 5.0, 8.0) * jnp.finfo(y.dtype).eps * jnp.abs(y) * sign


def _rodas_attempt(fun, jac, y, f, h, v, odd=False):
    """One Rodas5P step on the exact Jacobian: ``(y₁, f(y₁), error estimate, noise level ν, ρ, v)``, ρ from two
    power iterations on the Jacobian warm-started at ``v``, ν by :func:`_noise_shift` (pattern ``odd``). ``h ν`` bounds
    how much of the error estimate the field's round-off alone explains (the module docstring says why that
    matters on long plateaus)."""
    J = jac(y)
    y1, e = _rodas_step(fun, y, f, J, h)
    rho, v = _power(lambda u: J @ u, _power(lambda u: J @ u, v)[1])
    d = _noise_shift(y, odd)
    f1, f_plus, f_minus = jax.vmap(fun)(jnp.stack([y1, y + d, y - d]))  # one traced copy of the field
    return y1, f1, e, jnp.abs(f_plus + f_minus - 2 * f), rho, v


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


class SolverState(NamedTuple):
    """The carry of one replica between calls (checkpoint it to resume): time ``t + t_lo`` (double-double: a step
    h ≪ ε·t still advances it, as on the plateaus of L = 4 from σ = 1e-8, t ~ 1e16), flat state ``y`` and the field at
    ``y``, the proposed next step ``h``, the method in use (``stiff``: implicit) with its switching counters
    and the power-iteration direction ``v``, counters, ``ok`` (False after a step-size underflow, a non-finite
    state or ``max_steps``: the replica then stays where it failed) and ``nu``, the round-off level of the field
    estimated at the last implicit attempt (:func:`_noise_shift`)."""

    t: jax.Array
    t_lo: jax.Array
    y: jax.Array
    f: jax.Array
    h: jax.Array
    stiff: jax.Array
    count: jax.Array
    misses: jax.Array
    v: jax.Array
    stats: FlowStats
    ok: jax.Array
    nu: jax.Array


METHODS = ("auto", "explicit", "implicit")
_SWITCH_AFTER = 5  # attempts past a switching threshold before ``auto`` changes method (see ``_switch``)
_TO_IMPLICIT = 2.5  # explicit → implicit when hρ > 2.5: the Dopri5 step is at its stability bound (3.3)
_TO_EXPLICIT = 1.0  # implicit → explicit when hρ < 1: an explicit step that size is stable with a margin of 3
NOISE_MARGIN = 100.0  # the floor's factor on h·ν (the stage coefficients amplify the rounding, |c_ij| ≤ 165)
#: A replica fails (step-size underflow) when its step falls to this fraction of its time: the double-double time
#: resolves ~1e-32 t; the float64 time it replaced stalled below ~1e-16 t (the old threshold was 1e-14 t, which at
#: L = 4 from σ = 1e-7 — first escape at t ~ 5e12, jumps needing steps ~0.01 — failed every run).
UNDERFLOW = 1e-28


def init_state(fun, y, rtol, atol, method="auto", t0=0.0) -> SolverState:
    """One replica's state at ``t0``, with Hairer's first-step guess ``h = 0.01 ‖y‖/‖f(y)‖`` (weighted max
    norms); ``auto`` starts explicit."""
    f = fun(y)
    sc = atol + rtol * jnp.abs(y)
    d0, d1 = jnp.max(jnp.abs(y) / sc), jnp.max(jnp.abs(f) / sc)
    h = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0), 1e-6)
    zero = jnp.zeros((), jnp.int64)
    v = jnp.full_like(y, 1.0 / np.sqrt(y.shape[0]))
    return SolverState(jnp.asarray(t0, y.dtype), jnp.zeros((), y.dtype), y, f, h.astype(y.dtype), jnp.asarray(method == "implicit"), zero,
                     zero, v, FlowStats(zero, zero, zero + 1, zero, zero), jnp.asarray(True), jnp.zeros_like(y))


def _attempts(fun, lin, jac, st: SolverState, h, live, method):
    """Each replica's attempt with its method, batched. Under ``auto`` each method's batch is computed only
    when some live replica uses it (a batch-level ``cond``), so an ensemble pays for the Jacobians only in the
    iterations where a replica is implicit."""
    def explicit():
        return jax.vmap(lambda y, f, h, v: _dopri_attempt(fun, lin, y, f, h, v))(st.y, st.f, h, st.v)

    def implicit():
        odd = (st.stats.steps + st.stats.rejected) % 2 == 1  # the noise pattern alternates between attempts
        return jax.vmap(lambda y, f, h, v, o: _rodas_attempt(fun, jac, y, f, h, v, o))(st.y, st.f, h, st.v, odd)

    if method == "explicit":
        return explicit()
    if method == "implicit":
        return implicit()

    def skip():
        return st.y, st.f, jnp.full_like(st.y, jnp.inf), jnp.zeros_like(st.y), jnp.zeros_like(h), st.v

    ex = lax.cond(jnp.any(live & ~st.stiff), explicit, skip)
    im = lax.cond(jnp.any(live & st.stiff), implicit, skip)
    return jax.tree_util.tree_map(lambda a, b: jnp.where(st.stiff.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), im, ex)


def _switch(st: SolverState, h, rho, acc, live):
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


def advance(fun, st: SolverState, ts, rtol, atol, active, method="auto", max_steps=2**20, lin=None):
    """Integrate a batch of replicas (every field of ``st`` has a leading replica axis R; ``atol`` and ``active``
    are (R,)) through the record times ``ts`` (n,), landing exactly on each. Returns ``(st, ys)``, ``ys[r, k]``
    the flat state of replica ``r`` at ``ts[k]`` (NaN where not reached). An inactive replica is held: no step,
    ``ys`` its current state. ``fun`` is one replica's flat vector field; the Jacobian (``jax.jacfwd``) and the
    stiffness estimate's Jacobian-vector products are taken of ``lin`` (default ``fun``): a cheaper evaluation of
    the same field (the compensated gradient's Jacobian is the float64 one's to rounding, at 1/20 of the cost)."""
    lin = fun if lin is None else lin
    jac = jax.jacfwd(lin)
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
        gap = (target - st.t) - st.t_lo
        due = live & (gap <= 0)  # already there (a repeated record time): record without a step
        step, land = live & ~due, st.h >= gap
        h = jnp.where(step & land, gap, st.h)
        y1, f1, e, nu, rho, v = _attempts(fun, lin, jac, st, h, step, method)
        floor = atol[:, None] + NOISE_MARGIN * h[:, None] * jnp.maximum(nu, st.nu)
        err = jnp.max(jnp.abs(e) / (floor + rtol * jnp.maximum(jnp.abs(st.y), jnp.abs(y1))), axis=1)
        finite = jnp.all(jnp.isfinite(y1), axis=1) & jnp.all(jnp.isfinite(f1), axis=1) & jnp.isfinite(err)
        err = jnp.where(finite, err, jnp.inf)
        acc = step & (err <= 1.0)
        fac = jnp.clip(0.9 * jnp.maximum(err, 1e-30) ** (-1.0 / RODAS5P_ORDER), 0.2, 6.0)
        h_new = jnp.where(step, jnp.where(acc & land, jnp.maximum(h * fac, st.h), h * fac), st.h)
        t_new = DD(st.t, st.t_lo) + h
        t_hi, t_lo = t_new.hi, t_new.lo
        t1 = jnp.where(acc, jnp.where(land, target, t_hi), st.t)
        t1_lo = jnp.where(acc, jnp.where(land, 0.0, t_lo), st.t_lo)
        switched = _switch(st, h, rho, acc, step) if method == "auto" else (st.stiff, st.count, st.misses)
        s, exp_step = st.stats, step & ~st.stiff
        evals = jnp.where(step, 6 + 4 * st.stiff, 0)  # Dopri5: 6; Rodas5P: 7 stages, f(y₁), 2 for the noise level
        stats = FlowStats(s.steps + acc, s.rejected + (step & ~acc), s.field_evals + evals, s.hvps + exp_step,
                          s.jacobians + (step & st.stiff))
        ok = st.ok & ~(step & (h_new <= UNDERFLOW * jnp.maximum(jnp.abs(t1), 1e-300)))
        acc2 = acc[:, None]
        new = SolverState(t1, t1_lo, jnp.where(acc2, y1, st.y), jnp.where(acc2, f1, st.f), h_new, *switched,
                          jnp.where(step[:, None], v, st.v), stats, ok,
                          jnp.where((step & st.stiff)[:, None], nu, st.nu))
        done = (acc & land) | due
        rec = jnp.where(due[:, None], st.y, y1)
        ys = ys.at[rows, kk].set(jnp.where(done[:, None], rec, ys[rows, kk]))
        return new, k + done, ys, it + 1

    k0 = jnp.where(active, 0, n)
    st, k, ys, _ = lax.while_loop(cond, body, (st, k0, ys0, jnp.zeros((), jnp.int64)))
    return st._replace(ok=st.ok & (k == n)), ys
