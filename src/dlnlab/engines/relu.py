"""The simulator of the two-layer ReLU network under online SGD (model and statistics: :mod:`dlnlab.model.relu`).

A config with a ``[relu]`` section (:func:`relu_config`) records :func:`~dlnlab.model.relu.balance_statistics` on
``relu.n_mc`` fresh samples per record (a multiple of 100); the bounds of :func:`~dlnlab.model.relu.ratio_bounds`
only at step 0 and at the last ``relu.n_bound_records`` records (NaN elsewhere; they cost
``O(n_mc·hidden·d²)``). Time ``t = η·step``; ``layer`` 1 is ``W₁``, 2 is ``W₂``. A replica whose weights become
non-finite or exceed ``dynamics.divergence_threshold`` (default 1e3) is frozen and marked ``diverged``.

Randomness (:class:`~._core.Replicas`): replica ``r`` has key ``fold_in(PRNGKey(seed), member_r)``; its initial
weights use ``fold_in(·, 0)``, SGD step ``k`` uses ``fold_in(fold_in(·, 1), k)`` and the Monte-Carlo sample of
record ``j`` uses ``fold_in(fold_in(·, 2), j)``: trajectories do not depend on the record schedule nor on the
number of replicas.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..config import Config
from ..errors import ConfigError
from ..model.relu import ReluTask, balance_statistics, init_weights, ratio_bounds, sample_data, sgd_step
from ._core import Program, Replicas, RunResult, execute, record_grid, time_unit, to_numpy


@partial(jax.jit, static_argnames=("task", "batch_size", "n_steps"))
def _advance(weights, diverged, keys, k0, lr, threshold, task, batch_size, n_steps):
    """``n_steps`` SGD steps from step ``k0`` for every replica (leading axis of ``weights`` and ``keys``); a replica
    whose weights become non-finite or exceed ``threshold`` in absolute value is frozen at its last good weights."""

    def one(w, div, key):
        def body(carry, k):
            w, div = carry
            x, y = sample_data(jax.random.fold_in(key, k), task, batch_size)
            new = sgd_step(w, x, y, lr)[0]
            bad = ~jnp.all(jnp.stack([jnp.all(jnp.abs(a) < threshold) for a in new]))  # also catches NaN
            div = div | bad
            return (tuple(jnp.where(div, a, b) for a, b in zip(w, new)), div), None

        return lax.scan(body, (w, div), k0 + jnp.arange(n_steps))[0]

    return jax.vmap(one)(weights, diverged, keys)


@partial(jax.jit, static_argnames=("task", "n_mc", "with_matrices"))
def _observe(weights, keys, j, task, n_mc, with_matrices):
    def one(w, key):
        x, y = sample_data(jax.random.fold_in(key, j), task, n_mc)
        return balance_statistics(w, x, y, with_matrices)

    return jax.vmap(one)(weights, keys)


def relu_config(task: ReluTask | None = None, **keys) -> Config:
    """A ReLU :class:`~dlnlab.config.Config` (``[relu]`` section) from ``task`` and keywords named as the config
    keys (``lr``, ``steps``, ``n_times``, ``replicas``, ``scale1``, ``n_mc``, …; ``None``: not given). Defaults:
    η = 0.02, 2000 steps, 41 linearly spaced records, 4 replicas."""
    task = ReluTask() if task is None else task
    defaults = {"lr": 0.02, "steps": 2000, "n_times": 41, "spacing": "linear", "replicas": 4}
    if keys.get("times") is not None or keys.get("t_max") is not None:
        defaults.pop("steps")
    if keys.get("times") is not None:
        defaults.pop("n_times"), defaults.pop("spacing")
    return Config.of("relu", d=task.d, hidden=task.hidden, label_noise=task.label_noise, **(defaults | keys))


class ReluState(NamedTuple):
    """``weights`` ``(W₁, W₂)`` (leading replica axis), ``diverged`` per replica, the common ``step`` and the index
    of the last ``record`` (it selects the Monte-Carlo sample of the observation)."""

    weights: tuple
    diverged: jax.Array
    step: int
    record: int


def build(config: Config, weights=None) -> Program:
    """The :class:`~._core.Program` of a ReLU config; ``weights``: ``(W₁, W₂)``, shared or with a replica axis."""
    if config.model != "relu":
        raise ConfigError("config", config.model, "a relu config (section [relu]; see relu_config)")
    rc, dy, task = config.relu, config.dynamics, ReluTask.from_config(config)
    reps = Replicas.of(config)
    grid = record_grid(config, time_unit(config, reps.column("dynamics.lr", dy.lr)))
    lr, thr = jnp.asarray(dy.lr, jnp.float64), jnp.asarray(dy.divergence_threshold, jnp.float64)
    step_keys, mc_keys, n = reps.keys(1), reps.keys(2), len(grid.t)

    def init():
        if weights is None:
            w0 = jax.vmap(lambda k: init_weights(k, task, rc.scale1, rc.scale2))(reps.keys(0))
        else:
            w0 = tuple(jnp.broadcast_to(jnp.asarray(w, jnp.float64), (reps.R, *np.shape(w)[-2:])) for w in weights)
        return ReluState(w0, jnp.zeros(reps.R, bool), 0, 0)

    def advance(state, k_end):
        if k_end <= state.step:
            return state
        w, div = _advance(state.weights, state.diverged, step_keys, jnp.asarray(state.step), lr, thr, task,
                          dy.batch_size, int(k_end - state.step))
        return ReluState(w, div, int(k_end), state.record)

    def observe(state):
        j = state.record
        obs = to_numpy(_observe(state.weights, mc_keys, j, task, rc.n_mc, bool(j == 0 or j >= n - rc.n_bound_records)))
        if "C1" in obs:
            obs["neuron_bounds"], obs["ratio_bounds"] = ratio_bounds(obs.pop("C1"), obs.pop("C2"))
        else:
            obs["neuron_bounds"] = np.full((reps.R, task.hidden, 2), np.nan)
            obs["ratio_bounds"] = np.full((reps.R, 2), np.nan)
        return obs

    def run(state, records):
        rows = []
        for j in np.asarray(records):
            state = advance(state, grid.steps[j])._replace(record=int(j))
            rows.append(observe(state))
        return RunResult(state, {name: np.stack([r[name] for r in rows], axis=1) for name in rows[0]})

    dims = {"sq_norm": ("layer",), "noise_trace": ("layer",), "grad_sq_norm": ("layer",), "loss": (),
            "ratio_bounds": ("bound",), "neuron_bounds": ("neuron", "bound"), "neuron_ratio": ("neuron",)}
    coords = {"layer": [1, 2], "bound": ["lower", "upper"], "neuron": np.arange(task.hidden)}
    return Program(config=config, name="relu/sgd", grid=grid, R=reps.R, init=init, run=run, observe=observe,
                   step=lambda state: advance(state, state.step + 1), dims=dims, coords=coords,
                   summary=lambda state: {"diverged": (("replica",), np.asarray(state.diverged))},
                   attrs={"conventions": "loss 1/2|f(x)-y|^2; t = lr*step; T = lr/(2B); layer 1 = W1 (incoming)"})


def simulate_relu(config: Config, *, weights=None, progress=None, checkpoint=None, checkpoint_every: float = 60.0):
    """Simulate the ReLU config ``config`` (see the module docstring; :func:`dlnlab.simulate` does the same).

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t`` (``step`` coordinate), ``layer``, ``bound``,
    ``neuron`` and the variables of :func:`~dlnlab.model.relu.balance_statistics`, ``ratio_bounds``,
    ``neuron_bounds`` and ``diverged``."""
    return execute(build(config, weights), progress=progress, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, weights=weights)
