"""Gradient flow of the deep linear network (``dynamics.kind = "flow"``): ``θ̇ = −∇𝓛(θ)`` for every replica.

Solvers (``dynamics.solver``):

* ``"auto"`` (default): Dopri5 while its step is set by accuracy, switching per replica to the L-stable Rodas5P
  on the exact Hessian while the explicit step sits at its stability bound, and back (:mod:`._rosenbrock`). Once
  a mode is learned an explicit step is capped at ≈ 3.3/ρ(H), ρ(H) ≈ Lλs₁^{2−2/L}: for L ≥ 3 from a small init
  the later plateaus, lasting ∝ σ^−(L−2), would cost 10⁶–10⁸ explicit steps;
* ``"implicit"``: Rodas5P throughout (one Hessian and one P×P LU per attempt);
* ``"explicit"``: diffrax's Dopri5 with its PID controller, as in earlier versions (bitwise the same results).

Accuracy contract (every solver): per-entry relative error per step, ``max_i |err_i| / (atol + rtol·|θ_i|) ≤ 1``
(max norm), default ``atol = rtol·1e-3·max|θ(0)|`` per replica; the implicit steps add a round-off floor (see
:mod:`._rosenbrock`: keep ``rtol ≥ 1e-12``). The records are landed on exactly. Measured
(tests/engines/test_flow.py, d = 5, width 6, teacher s = 2.5, 1.2, 0.6, rtol 1e-10): from an aligned init
m₀ = 1e-8 the mode strengths are within 1e-9 relative of the closed form at every record (L = 3, 4); from a
random σ = 1e-6 the plateau losses are the saddle levels to 1e-15 relative, the final loss 6e-32; ``auto``
and ``explicit`` agree to 4e-10 on the golden case (rtol 1e-8).

Arithmetic (``dynamics.arithmetic``): once a mode is learned the float64 gradient carries rounding ~1e-17 in every
entry (its terms are O(1)), which over a plateau of length t moves the not yet learned components, ~σ per entry,
by ~1e-17·t; when that is not ≪ σ their escape is set by the rounding rather than by the initial condition.
Measured on the float64 gradient (d = 5, width 6, s = 2.5, 1.2, 0.6): escape times reproducible down to σ = 1e-8
at L = 3 but only down to σ = 1e-5 at L = 4; from σ = 1e-6 at L = 4 the second escape moved between 1.3e11 and
1.7e11 and the third between 1.7e11 and 6.8e11 with the solver's settings. ``"double-double"`` evaluates the gradient
in double-double arithmetic (:func:`~dlnlab.model.gradients.compensated_gradient`: each entry within ~1 ulp of the
exact gradient of the float64 weights; its Jacobian stays the float64 one's) and the ``auto``/``implicit``
integrator keeps its time in double-double (a step h ≪ 1e-16·t still advances it; the explicit solver, diffrax's,
keeps float64 time: it cannot reach such times anyway). On a finite dataset of N samples a double-double product
``X Wᵀ`` holds an N × d_in × d_out intermediate per evaluation. ``"auto"`` (default) takes it at L ≥ 3 when
``max|θ₀|^(L−1) <`` :data:`AUTO_COMPENSATED_BELOW`. Measured (tests/engines/test_flow.py, L = 4, d = 3, width 4,
s = 4, 2, 1): the loss at t = c·σ⁻² from σ = 1e-8 equals that from σ = 1e-5 to 1e-6 at 300 log-spaced c over all
three escapes (homogeneity of the small-init flow), where the float64 gradient from σ = 1e-7 differs at 153 of
them; cost ×2–3 on that problem (11 s against 5 s for two replicas, L = 4); a double-double gradient is ~10× a
float64 one (52 against 5.5 µs, L = 4, width 4, two replicas).

Record times: with a number ``t_max`` (or ``steps``, ``record.times``) those of every engine. With
``t_max = "auto"`` a common log grid, ``record.per_decade`` records per decade from ``record.t_min`` (default
:func:`time_origin`), run one decade (one chunk) at a time; each replica stops by :func:`settled` and is then
held (its later records repeat its final state) while others run; the run ends when every replica has stopped
(the dataset ends with that decade) or after :data:`MAX_DECADES` decades. ``t_stop`` (per replica) is the end of
the decade where the rule held (NaN: it never did).

State and resume: :class:`FlowState` (explicit) or :class:`StiffFlowState` (a pytree of arrays: the weights, the
integrator's per-replica time, step, method and counters, and the stopping rule's record), so a checkpoint after
a chunk resumes bitwise. Per-replica summary variables: ``solver_steps`` (accepted steps) and ``solver_ok``; the
``auto``/``implicit`` solvers add ``solver_rejected``, ``gradient_evaluations``, ``hessian_evaluations``,
``hvp_evaluations`` (:class:`~._rosenbrock.FlowStats`) and, with ``t_max = "auto"``, ``t_stop``.

Errors: a replica whose step size underflows (``h ≤ 1e-14 t``), whose state or error estimate turns non-finite, or
that takes more than :data:`MAX_ATTEMPTS` attempts in one chunk stops there: ``solver_ok`` is false and its
later records are NaN; the other replicas run on.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..errors import ConfigError
from ..model.gradients import compensated_gradient, full_gradient
from ..model.observables import BUILTIN
from ._core import Program, RecordGrid, RunResult, chunk_size, record_grid, trim_records
from ._rosenbrock import SolverState, advance, init_state

#: ``t_max = "auto"``: a replica stops once no entry grew by more than this (relative) over a decade (:func:`settled`).
GROWTH = 1e-3
#: ``t_max = "auto"``: the rule is first checked at the end of this decade (t ≥ 10⁴ t_min by default, ten times the
#: initial time scale).
MIN_DECADES = 4
#: ``t_max = "auto"``: the run ends after this many decades.
MAX_DECADES = 40
#: ``auto``/``implicit``: the most step attempts per chunk (the batch's while loop).
MAX_ATTEMPTS = 2**20


def _atol(config, ens):
    """Per replica: ``dynamics.atol``, or ``rtol·1e-3`` times the largest initial entry."""
    dy, R = config.dynamics, ens.unit.shape[0]
    if dy.atol is not None:
        return jnp.full((R,), dy.atol, ens.dtype)
    return dy.rtol * 1e-3 * jnp.stack([jnp.max(jnp.abs(w.reshape(R, -1)), axis=1) for w in ens.weights0]).max(0)


#: ``solver = "auto"`` takes the dense Hessian (P×P per replica, one LU per attempt) up to this many weights P per
#: replica; above it, ``auto`` runs the explicit solver and warns (128 MiB per Hessian at P = 4096, before its LU and
#: the replicas of a chunk). ``solver = "implicit"`` is taken as asked at any P.
AUTO_MAX_DENSE_PARAMS = 4096


#: ``arithmetic = "auto"`` takes the double-double gradient at depth L ≥ 3 when ``m₀^(L−1)`` is below this for some
#: replica, ``m₀`` its largest initial |entry| (one compiled program: then every replica runs it). Why: along a mode still at scale ~m₀ the gradient is ~m₀^(L−1) while the
#: float64 one carries ~1e-17 of rounding once a mode is learned; over a plateau of length ~m₀^−(L−2) that moves the
#: entry by ~1e-17/m₀^(L−1) relative, 1e-5 here (measured: the float64 later escapes at L = 4 move by up to 2× from
#: σ = 1e-6, m₀^3 ≈ 1e-16; at L = 3 down to σ = 1e-8, m₀² ≈ 1e-15, they were reproducible to the record spacing).
AUTO_COMPENSATED_BELOW = 1e-12


def compensated(config, ens) -> bool:
    """Whether the flow's gradient is the double-double one (``dynamics.arithmetic``; ``auto``:
    :data:`AUTO_COMPENSATED_BELOW`)."""
    arithmetic = config.dynamics.arithmetic
    if arithmetic != "auto":
        return arithmetic == "double-double"
    L = len(ens.weights0)
    if L < 3:
        return False
    R = ens.weights0[0].shape[0]
    m0 = np.max([np.max(np.abs(np.asarray(w).reshape(R, -1)), axis=1) for w in ens.weights0], axis=0)  # per replica
    return bool(np.any((m0 > 0) & (m0 ** (L - 1) < AUTO_COMPENSATED_BELOW)))


def flow(config, ens, observe, common) -> Program:
    """The network engine's flow :class:`Program` for ``config.dynamics.solver`` (``auto`` above
    :data:`AUTO_MAX_DENSE_PARAMS` weights: the explicit solver, with a warning; with ``t_max = "auto"`` an error)
    and ``dynamics.arithmetic`` (:func:`compensated`; what ``auto`` chose is the dataset's ``attrs["flow_arithmetic"]``)."""
    solver = config.dynamics.solver
    P = sum(int(np.prod(w.shape[1:])) for w in ens.weights0)
    if solver == "auto" and P > AUTO_MAX_DENSE_PARAMS:
        if config.dynamics.t_max == "auto":
            raise ConfigError("dynamics.solver", solver,
                              f"'explicit' with a number for dynamics.t_max at {P} weights per replica: the dense "
                              f"Hessian of the implicit steps is for P <= {AUTO_MAX_DENSE_PARAMS} (or 'implicit' to "
                              f"take it anyway: {P * P * 8 / 2**20:.3g} MiB per replica)")
        warnings.warn(f"dynamics.solver = 'auto' at {P} weights per replica (> {AUTO_MAX_DENSE_PARAMS}): running the "
                      f"explicit solver (the implicit steps' dense Hessian would take {P * P * 8 / 2**20:.3g} MiB per "
                      "replica); set dynamics.solver = 'explicit' to silence this, or 'implicit' to take it anyway",
                      stacklevel=2)
        solver = "explicit"
    dd = compensated(config, ens)
    common = {**common, "attrs": {**common.get("attrs", {}), "flow_arithmetic": "double-double" if dd else "float64"}}
    return (_explicit if solver == "explicit" else _stiff)(config, ens, observe, common, dd)


# ---------------------------------------------------------------------------------------------------------
# solver = "explicit": diffrax Dopri5


class FlowState(NamedTuple):
    """Explicit gradient-flow state: ``weights``, the time ``t`` reached, and per replica the accumulated
    ``solver_steps`` and whether every solve succeeded (``solver_ok``)."""

    weights: tuple
    t: np.ndarray
    solver_steps: np.ndarray
    solver_ok: np.ndarray


def _explicit_program(observe, rtol, compensated):
    import diffrax

    def max_norm(tree):
        return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree_util.tree_leaves(tree)]))

    def replica(weights, t0, ts, params, atol, problem):
        grad = _gradient(compensated)
        term = diffrax.ODETerm(lambda t, y, args: tuple(-g for g in grad(y, problem)))
        saveat = diffrax.SaveAt(subs=[
            diffrax.SubSaveAt(ts=ts, fn=lambda t, y, args: observe(y, problem, params)),
            diffrax.SubSaveAt(t1=True),
        ])
        ctrl = diffrax.PIDController(rtol=rtol, atol=atol, norm=max_norm)
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t0, ts[-1], None, weights, saveat=saveat,
                                  stepsize_controller=ctrl, max_steps=2**22, throw=False)
        obs, last = sol.ys
        return tuple(w[0] for w in last), sol.stats["num_steps"], sol.result == diffrax.RESULTS.successful, obs

    return jax.jit(jax.vmap(replica, in_axes=(0, None, None, 0, 0, None)))


def _explicit(config, ens, observe, common, compensated) -> Program:
    R = ens.unit.shape[0]
    grid = record_grid(config, None)
    prog = _explicit_program(observe, config.dynamics.rtol, compensated)
    size = chunk_size(config, grid)
    atol = _atol(config, ens)

    def init():
        return FlowState(ens.weights0, np.float64(0.0), np.zeros(R, dtype=np.int64), np.ones(R, dtype=bool))

    def run(state, records):
        t = grid.t[np.asarray(records)]
        ts = np.concatenate([t, np.full(max(size, len(t)) - len(t), t[-1])])
        w, ns, good, obs = prog(state.weights, float(state.t), jnp.asarray(ts, ens.dtype), ens.params, atol,
                                ens.problem)
        state = FlowState(w, np.float64(t[-1]), state.solver_steps + np.asarray(ns),
                          state.solver_ok & np.asarray(good))
        return RunResult(state, trim_records(obs, len(t)))

    def summary(state):
        return {"solver_steps": (("replica",), state.solver_steps), "solver_ok": (("replica",), state.solver_ok)}

    return Program(name="flow", grid=grid, R=R, init=init, run=run, step=None, summary=summary, **common)


# ---------------------------------------------------------------------------------------------------------
# solver = "auto" | "implicit": the integrator of ._rosenbrock, and t_max = "auto"


class StopState(NamedTuple):
    """``t_max = "auto"``: per replica, the flat state and the objective at the end of the last decade run,
    whether the replica has stopped, and when (``t_stop``, NaN: not yet)."""

    y_prev: jax.Array
    loss_prev: jax.Array
    stopped: np.ndarray
    t_stop: np.ndarray


class StiffFlowState(NamedTuple):
    """State of the ``auto`` and ``implicit`` solvers: the weights, the integrator's
    :class:`~._rosenbrock.SolverState` (flat state, per-replica time, step, method, counters) and, with
    ``t_max = "auto"``, the :class:`StopState` (``None`` otherwise)."""

    weights: tuple
    solver: SolverState
    stop: StopState | None


def objective(weights, problem, params):
    """The training objective whose gradient flow is run: ``train_loss`` (finite data, completion) or the population
    ``loss`` less its label-noise constant ½ d_out σ_ε²."""
    out = BUILTIN["loss"].fn(weights, problem, params)
    if "train_loss" in out:
        return out["train_loss"]
    return out["loss"] - 0.5 * problem.M.shape[0] * params.label_noise**2


def settled(rtol, atol, y_prev, y, loss_prev, loss, loss0):
    """``t_max = "auto"``'s stopping rule for one replica at the end ``t`` of a decade ``[t/10, t]``; both must hold:

    * **nothing grows**: no entry's magnitude grew by more than a factor ``exp(GROWTH)`` over the decade,
      ``max_i ln((|θ_i(t)| + g)/(|θ_i(t/10)| + g)) ≤ GROWTH`` with ``g = atol/rtol`` (default 1e-3·max|θ(0)|;
      below g an entry's solver error, up to atol, is not below rtol of it);
    * **the loss has settled**: ``|𝓛(t) − 𝓛(t/10)| ≤ rtol·(|𝓛(t)| + |𝓛(θ₀)|)``: it changes by less than rtol of
      its scale (so the run ends with the loss within ~rtol·𝓛(θ₀) of its limit: e.g. the slow power-law decay of
      the directions of zero teacher singular value, from a moderate init, is followed only down to there).

    Why growth and not the loss alone: on a plateau the loss is flat to O(σ^L) for decades while the entries that
    will escape grow, by ≈ 0.9 t/t* (L = 3) or 0.45 t/t* (L = 4) over the decade ending at t before the blow-up
    time t*; decaying entries do not count. So an escape later than ~t/GROWTH (10³ t) after a settled decade is
    missed: plateaus whose escape-time ratio t_{k+1}/t_k ≈ λ_k s_k/(λ_{k+1} s_{k+1}) exceeds ~10³ need a fixed
    ``t_max``. (A much smaller GROWTH, ~rtol, keeps runs going for decades after convergence: entries of the
    s = 0 modes drift by power laws, relatively ≫ rtol per decade.)"""
    g = atol / rtol
    grew = jnp.max(jnp.log((jnp.abs(y) + g) / (jnp.abs(y_prev) + g)))
    return (grew <= GROWTH) & (jnp.abs(loss - loss_prev) <= rtol * (jnp.abs(loss) + jnp.abs(loss0)))


def time_origin(rate) -> float:
    """Default ``record.t_min`` of ``t_max = "auto"``: ``1e-3 / r``, ``r`` the largest initial relative rate
    ``‖∇𝓛(θ₀)‖/‖θ₀‖`` over replicas (from a tiny init ≈ the escaping entries' growth rate λs·a^(L−2)); 1 at a fixed
    point or θ₀ = 0."""
    rate = np.asarray(rate)
    r = float(np.max(np.where(np.isfinite(rate), rate, 0.0)))
    return 1e-3 / r if r > 0 else 1.0


def auto_grid(t_min: float, per_decade: int) -> tuple[RecordGrid, list]:
    """``t_max = "auto"``'s record grid, ``0`` then ``t_min·10^(k/per_decade)`` for ``k = 0 … MAX_DECADES·per_decade
    − 1``, and its chunks: one per decade."""
    k = np.arange(MAX_DECADES * per_decade)
    t = np.concatenate([[0.0], t_min * 10.0 ** (k / per_decade)])
    parts = [np.arange(1 + d * per_decade, 1 + (d + 1) * per_decade) for d in range(MAX_DECADES)]
    return RecordGrid(t, None, None), parts


def _gradient(compensated):
    """The layer gradients of the flow: :func:`~dlnlab.model.gradients.compensated_gradient` (double-double) or
    :func:`~dlnlab.model.gradients.full_gradient`."""
    return compensated_gradient if compensated else full_gradient


def _field(unravel, problem, compensated=False):
    """One replica's flat vector field ``y ↦ −∇𝓛(y)`` (``compensated``: in double-double, :func:`_gradient`)."""
    grad = _gradient(compensated)
    return lambda y: ravel_pytree(tuple(-g for g in grad(unravel(y), problem)))[0]


def _start(unravel, rtol, method, compensated):
    """Compiled ``(Y0, atol, problem, params) -> (SolverState, objective (R,), initial relative rate (R,))``."""

    def start(Y0, atol, problem, params):
        fun = _field(unravel, problem, compensated)
        solver = jax.vmap(lambda y, a: init_state(fun, y, rtol, a, method))(Y0, atol)
        loss0 = jax.vmap(lambda y, p: objective(unravel(y), problem, p))(Y0, params)
        rate = jax.vmap(lambda y: jnp.linalg.norm(fun(y)) / jnp.linalg.norm(y))(Y0)
        return solver, loss0, rate

    return jax.jit(start)


def _chunk(observe, unravel, rtol, method, compensated):
    """The compiled chunk ``(solver, ts, active, problem, params, atol) -> (solver, weights, observations, objective
    at the end)``: :func:`~._rosenbrock.advance` through ``ts``, observing at each (NaN for a replica failed before).
    With ``compensated`` the field is the double-double gradient's, its Jacobian the float64 one's."""

    def run(solver, ts, active, problem, params, atol):
        ok0 = solver.ok
        lin = _field(unravel, problem) if compensated else None
        solver, ys = advance(_field(unravel, problem, compensated), solver, ts, rtol, atol, active, method,
                             MAX_ATTEMPTS, lin)
        ys = jnp.where(ok0[:, None, None], ys, jnp.nan)
        obs = jax.vmap(lambda yr, p: jax.vmap(lambda y: observe(unravel(y), problem, p))(yr))(ys, params)
        last = jax.vmap(lambda y, p: objective(unravel(y), problem, p))(solver.y, params)
        return solver, jax.vmap(unravel)(solver.y), obs, last

    return jax.jit(run)


def _stop(stop: StopState, solver, last, decade, t_end, check) -> StopState:
    """The stopping rule after ``decade`` (ending at ``t_end``): a failed replica stops; from decade
    ``MIN_DECADES − 1`` on, so does one that has :func:`settled`."""
    ok = np.asarray(solver.ok)
    newly = ~stop.stopped & ~ok
    if decade + 1 >= MIN_DECADES:
        newly |= ~stop.stopped & np.asarray(check(stop.y_prev, solver.y, stop.loss_prev, last))
    t_stop = np.where(newly & ok, t_end, stop.t_stop)
    return StopState(solver.y, last, stop.stopped | newly, t_stop)


def _stiff(config, ens, observe, common, compensated) -> Program:
    dy, R = config.dynamics, ens.unit.shape[0]
    auto = dy.t_max == "auto"
    Y0 = jax.vmap(lambda w: ravel_pytree(w)[0])(ens.weights0)
    unravel = ravel_pytree(tuple(w[0] for w in ens.weights0))[1]
    atol = _atol(config, ens)
    solver0, loss0, rate = _start(unravel, dy.rtol, dy.solver, compensated)(Y0, atol, ens.problem, ens.params)
    if auto:
        n = config.record.per_decade
        grid, parts = auto_grid(config.record.t_min or time_origin(rate), n)
        size = n
        rule = jax.jit(jax.vmap(lambda *x: settled(dy.rtol, *x)))
    else:
        grid, parts = record_grid(config, None), None
        size = chunk_size(config, grid)
    prog = _chunk(observe, unravel, dy.rtol, dy.solver, compensated)

    def init():
        stop = StopState(Y0, loss0, np.zeros(R, bool), np.full(R, np.nan)) if auto else None
        return StiffFlowState(ens.weights0, solver0, stop)

    def run(state, records):
        records = np.asarray(records)
        t = grid.t[records]
        ts = np.concatenate([t, np.full(max(size, len(t)) - len(t), t[-1])])
        active = np.asarray(state.solver.ok) & (~state.stop.stopped if auto else True)
        solver, weights, obs, last = prog(state.solver, jnp.asarray(ts), jnp.asarray(active), ens.problem,
                                          ens.params, atol)
        stop = None
        if auto:
            stop = _stop(state.stop, solver, last, (records[0] - 1) // n, t[-1],
                         lambda *x: rule(atol, *x, loss0))
        return RunResult(StiffFlowState(weights, solver, stop), trim_records(obs, len(t)))

    def summary(state):
        s = state.solver.stats
        out = {"solver_steps": s.steps, "solver_rejected": s.rejected, "gradient_evaluations": s.field_evals,
               "hessian_evaluations": s.jacobians, "hvp_evaluations": s.hvps, "solver_ok": state.solver.ok}
        if auto:
            out["t_stop"] = state.stop.t_stop
        return {name: (("replica",), np.asarray(v)) for name, v in out.items()}

    return Program(name="flow", grid=grid, R=R, init=init, run=run, step=None, summary=summary, parts=parts,
                   finished=(lambda state: bool(np.all(state.stop.stopped))) if auto else (lambda state: False),
                   **common)
