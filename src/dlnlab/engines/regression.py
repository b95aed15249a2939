"""The simulator of diagonal linear networks for sparse regression (model: :mod:`dlnlab.model.regression`).

A config with a ``[regression]`` section (:func:`regression_config`) describes the task (an ``n × d`` Gaussian
design, a ``k``-sparse target, label noise, all drawn from ``regression.seed`` and shared by the replicas), the
network (``kind = "product"``: ``β = u ⊙ v``; ``"power"``: ``β = u^D − v^D``), the init scale α
(``regression.init_scale``, stackable: one group of replicas per α) and the dynamics, on the training loss
``‖Xβ − y‖²/(2n)``, vectorised over replicas as one compiled program, in float64:

* ``"flow"`` — gradient flow ``θ̇ = −∇L`` by an adaptive Dormand–Prince 5(4) (diffrax) with a per-entry relative
  tolerance ``dynamics.rtol`` (max norm; ``atol`` by default ``rtol·1e−3·max|θ(0)|``), so that the plateaus of a
  small init — of duration ``~ln(1/α)`` at depth 2, ``~α^{2−D}`` at depth ``D`` — are crossed at the accuracy
  of the escape (the solver's step grows on the plateaus; its error is relative to each factor's own size);
* ``"gd"`` — ``θ ← θ − η∇L`` (full batch: the ``n`` rows);
* ``"sgd"`` — ``θ ← θ − η∇L_b``, ``L_b`` the loss on ``B = dynamics.batch_size`` distinct rows drawn afresh at each
  step (without replacement within the step).

Time is ``t = η·step`` (flow: continuous); the record grid is :func:`~._core.record_grid`'s. Recorded: ``beta``
(``β``, dim ``feature``), ``loss`` (the population risk ``½‖β − β*‖² + ½σ²`` on fresh ``x ~ N(0, I)``: the test
error) and ``train_loss``; the dataset carries the target ``beta_star``. A discrete replica whose factors become
non-finite or exceed ``dynamics.divergence_threshold`` is frozen at its last good state (``diverged``,
``diverged_step``); a flow replica whose solve fails is marked ``solver_ok = false``.

Randomness (:class:`~._core.Replicas`): SGD step ``k`` of a replica draws its rows from
``fold_in(dynamics key, k)``: trajectories depend neither on the record schedule nor on the number of replicas.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..config import Config
from ..errors import ConfigError
from ..model.regression import RegressionTask, beta_gradient, beta_of, factor_gradient, initial_factors
from ._core import Program, Replicas, RunResult, chunk_size, execute, pad_increments, record_grid, to_numpy


class RegressionState(NamedTuple):
    """State of every replica: factors ``theta`` ``(R, 2, d)`` (``u``, ``v``), the common ``step`` (discrete) and time
    ``t`` reached, ``diverged_step`` (−1: not diverged; discrete), ``solver_steps`` and ``solver_ok`` (flow)."""

    theta: jax.Array
    step: int
    t: float
    diverged_step: jax.Array
    solver_steps: np.ndarray
    solver_ok: np.ndarray


class _Data(NamedTuple):
    X: jax.Array
    y: jax.Array
    beta_star: jax.Array
    noise_var: jax.Array


def _gradient(kind, depth):
    """``∇_θ L(θ)`` on rows ``X``, ``y``."""
    return lambda theta, X, y: factor_gradient(theta, beta_gradient(beta_of(theta, kind, depth), X, y), kind, depth)


def _observe(kind, depth):
    def observe(theta, data: _Data):
        beta = beta_of(theta, kind, depth)
        r = data.X @ beta - data.y
        return {"beta": beta, "loss": 0.5 * jnp.sum((beta - data.beta_star) ** 2) + 0.5 * data.noise_var,
                "train_loss": 0.5 * jnp.mean(r**2)}

    return observe


@lru_cache(maxsize=32)
def _discrete_program(kind, depth, dyn, batch, threshold):
    """``run(theta, div_step, keys, k0, incs, lr, data) -> (theta, div_step, observations)``: for each record
    interval ``incs[j]`` steps of every replica, then an observation (compiled once per process and setting)."""
    grad, observe = _gradient(kind, depth), _observe(kind, depth)

    def one(theta, key, k, lr, data):
        if dyn == "gd":
            return theta - lr * grad(theta, data.X, data.y)
        idx = jax.random.choice(jax.random.fold_in(key, k), data.X.shape[0], (batch,), replace=False)
        return theta - lr * grad(theta, data.X[idx], data.y[idx])

    step_all = jax.vmap(one, in_axes=(0, 0, None, None, None))

    @jax.jit
    def run(theta, div_step, keys, k0, incs, lr, data):
        def body(k, c):
            theta, div_step = c
            new = step_all(theta, keys, k, lr, data)
            bad = ~jnp.all(jnp.isfinite(new), axis=(1, 2)) | jnp.any(jnp.abs(new) > threshold, axis=(1, 2))
            div_step = jnp.where((div_step < 0) & bad, k, div_step)
            return jnp.where((div_step >= 0)[:, None, None], theta, new), div_step

        def interval(c, n):
            theta, div_step, k = c
            theta, div_step = lax.fori_loop(k, k + n, body, (theta, div_step))
            return (theta, div_step, k + n), jax.vmap(observe, in_axes=(0, None))(theta, data)

        (theta, div_step, _), obs = lax.scan(interval, (theta, div_step, k0), incs)
        return theta, div_step, jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), obs)

    return run


@lru_cache(maxsize=32)
def _flow_program(kind, depth, rtol):
    """The batched diffrax solve ``(theta, t0, ts, atol, data) -> (theta, steps, ok, observations)``."""
    import diffrax

    grad, observe = _gradient(kind, depth), _observe(kind, depth)

    def replica(theta, t0, ts, atol, data):
        term = diffrax.ODETerm(lambda t, th, args: -grad(th, data.X, data.y))
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts, fn=lambda t, th, args: observe(th, data)),
                                      diffrax.SubSaveAt(t1=True)])
        ctrl = diffrax.PIDController(rtol=rtol, atol=atol, norm=lambda x: jnp.max(jnp.abs(x)))
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), t0, ts[-1], None, theta, saveat=saveat,
                                  stepsize_controller=ctrl, max_steps=2**22, throw=False)
        obs, last = sol.ys
        return last[0], sol.stats["num_steps"], sol.result == diffrax.RESULTS.successful, obs

    return jax.jit(jax.vmap(replica, in_axes=(0, None, None, 0, None)))


def regression_config(task: RegressionTask | None = None, dynamics: str = "flow", **keys) -> Config:
    """A regression :class:`~dlnlab.config.Config` (``[regression]`` section) from ``task`` (default
    :class:`RegressionTask`: every ``regression`` field but ``init_scale``), the ``dynamics`` kind and keywords
    named as the config keys (``init_scale``, ``lr``, ``batch_size``, ``t_max``, ``times``, ``n_times``,
    ``replicas``, …; the ensemble's seed dotted, ``**{"ensemble.seed": 1}``; ``None``: not given)."""
    task = RegressionTask() if task is None else task
    fields = {f"regression.{k}": v for k, v in task.__dict__.items()}
    return Config.of("regression", **fields, **{"dynamics.kind": dynamics}, **keys)


def build(config: Config, weights=None) -> Program:
    """The :class:`~._core.Program` of a regression config; ``weights``: initial factors ``(2, d)`` or
    ``(R, 2, d)`` replacing the init ``(√2α, 0)`` / ``(α, α)`` of ``regression.init_scale``."""
    if config.model != "regression":
        raise ConfigError("config", config.model, "a regression config (section [regression]; see regression_config)")
    task, dy, reps = RegressionTask.from_config(config), config.dynamics, Replicas.of(config)
    data_np = task.data()
    data = _Data(*(jnp.asarray(a, jnp.float64) for a in data_np[:3]), jnp.asarray(task.label_noise**2, jnp.float64))
    alpha = reps.column("regression.init_scale", config.regression.init_scale)
    if weights is None:
        theta0 = initial_factors(alpha, task.d, task.kind)
    else:
        theta0 = np.broadcast_to(np.asarray(weights, np.float64), (reps.R, 2, task.d)).copy()
    theta0 = jnp.asarray(theta0)
    coords = {"member": ("replica", reps.members), "init_scale": ("replica", alpha), "feature": np.arange(task.d)}
    common = {"config": config, "R": reps.R, "coords": coords,
              "dims": {"beta": ("feature",), "loss": (), "train_loss": ()},
              "dataset": lambda ds: ds.assign(beta_star=("feature", data_np.beta_star)),
              "attrs": {"kind": task.kind, "depth": task.depth,
                        "conventions": "train loss |X beta - y|^2/(2n); loss = population risk "
                                       "1/2|beta - beta*|^2 + sigma^2/2; t = lr*step"}}
    observe = jax.jit(jax.vmap(_observe(task.kind, task.depth), in_axes=(0, None)))
    zeros = (np.zeros(reps.R, np.int64), np.ones(reps.R, bool))

    def observe_state(state):
        return to_numpy(observe(state.theta, data))

    def init():
        return RegressionState(theta0, 0, 0.0, jnp.full((reps.R,), -1, jnp.int64), *zeros)

    if dy.kind == "flow":
        return _flow(config, task, data, theta0, init, observe_state, common)
    grid = record_grid(config, np.full(reps.R, dy.lr))
    prog = _discrete_program(task.kind, task.depth, dy.kind, dy.batch_size, float(dy.divergence_threshold))
    size, keys = chunk_size(config, grid), reps.keys(1)
    lr = jnp.asarray(dy.lr, jnp.float64)

    def run(state, records):
        records = np.asarray(records)
        incs = pad_increments(grid.increments[records - 1], max(size, len(records)))
        theta, div, obs = prog(state.theta, state.diverged_step, keys, jnp.asarray(state.step, jnp.int64),
                               jnp.asarray(incs), lr, data)
        k = int(grid.steps[records[-1]])
        obs = {name: a[:, :len(records)] for name, a in to_numpy(obs).items()}
        return RunResult(state._replace(theta=theta, step=k, t=float(grid.t[records[-1]]), diverged_step=div), obs)

    def step(state):
        theta, div, _ = prog(state.theta, state.diverged_step, keys, jnp.asarray(state.step, jnp.int64),
                             jnp.ones(1, jnp.int64), lr, data)
        return state._replace(theta=theta, step=state.step + 1, t=state.t + float(dy.lr), diverged_step=div)

    def summary(state):
        div = np.asarray(state.diverged_step)
        return {"diverged": (("replica",), div >= 0), "diverged_step": (("replica",), div)}

    common["coords"]["lr"] = ("replica", np.full(reps.R, dy.lr))
    return Program(name=f"regression/{dy.kind}", grid=grid, init=init, run=run, observe=observe_state, step=step,
                   summary=summary, **common)


def _flow(config, task, data, theta0, init, observe_state, common) -> Program:
    dy, R = config.dynamics, theta0.shape[0]
    grid = record_grid(config, None)
    prog = _flow_program(task.kind, task.depth, dy.rtol)
    size = chunk_size(config, grid)
    scale = jnp.max(jnp.abs(theta0.reshape(R, -1)), axis=1)
    atol = jnp.full((R,), dy.atol) if dy.atol is not None else dy.rtol * 1e-3 * scale

    def run(state, records):
        t = grid.t[np.asarray(records)]
        ts = np.concatenate([t, np.full(max(size, len(t)) - len(t), t[-1])])
        theta, ns, ok, obs = prog(state.theta, float(state.t), jnp.asarray(ts), atol, data)
        obs = {name: a[:, :len(t)] for name, a in to_numpy(obs).items()}
        return RunResult(state._replace(theta=theta, t=float(t[-1]), solver_steps=state.solver_steps + np.asarray(ns),
                                        solver_ok=state.solver_ok & np.asarray(ok)), obs)

    def summary(state):
        bad = ~np.asarray(jnp.all(jnp.isfinite(state.theta), axis=(1, 2))) | ~state.solver_ok
        return {"diverged": (("replica",), bad), "solver_steps": (("replica",), state.solver_steps),
                "solver_ok": (("replica",), state.solver_ok)}

    return Program(name="regression/flow", grid=grid, init=init, run=run, observe=observe_state, step=None,
                   summary=summary, **common)


def simulate_regression(config: Config, *, weights=None, progress=None, checkpoint=None,
                        checkpoint_every: float = 60.0):
    """Simulate the regression config ``config`` (see the module docstring; :func:`dlnlab.simulate` does the same).

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t``, ``feature`` and variables ``beta``, ``loss``
    (population risk), ``train_loss``, ``beta_star`` (the target), ``diverged`` (and ``diverged_step``, or
    ``solver_steps`` and ``solver_ok`` for flow); coordinates ``member``, ``init_scale`` (and ``step``, ``lr``)."""
    return execute(build(config, weights), progress=progress, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, weights=weights)
