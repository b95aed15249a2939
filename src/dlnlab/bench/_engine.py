"""Access to the engine's compiled programs, so that compilation can be excluded from timings.

The discrete and flow engines are timed through their compiled programs (``dlnlab.dynamics`` internals); the
per-mode engine caches its programs, so :func:`dlnlab.modes.simulate_modes` is timed directly by the workloads.
"""

from __future__ import annotations

import numpy as np


def discrete_engine(config):
    """``(run, ens, steps)``: ``run()`` executes the whole discrete run of ``config`` (one chunk) with the
    engine's compiled program and returns ``(state, observables)``; ``steps`` are the record steps."""
    import jax.numpy as jnp

    from .. import dynamics as dyn
    from ..observables import observe_fn, resolve

    ens = dyn._Ensemble(config)
    unit = ens.unit
    if not np.all(unit == unit[0]):
        raise ValueError("bench engine runs need a single step size")
    t = dyn.record_times(config, float(unit[0]))
    steps = np.unique(np.rint(t / unit[0]).astype(np.int64))
    incs = jnp.asarray(np.diff(steps))
    observe = observe_fn(resolve(config.record.observables))
    prog = dyn._discrete_program(config, observe, False)
    R = ens.R
    state = (ens.weights0, jnp.zeros(R, jnp.int64), jnp.full(R, -1, jnp.int64), jnp.zeros(R, jnp.int32))

    def run():
        return prog(state, ens.dyn_keys, ens.params, incs, ens.problem)

    return run, ens, steps


def flow_engine(config):
    """``(run, ens, t)``: ``run()`` integrates the whole flow of ``config`` in one solve with the engine's
    compiled program and returns ``(last, num_steps, ok, observables)`` (observables at ``t[1:]``)."""
    import jax.numpy as jnp

    from .. import dynamics as dyn
    from ..observables import observe_fn, resolve

    ens = dyn._Ensemble(config)
    R, dy = ens.R, config.dynamics
    t = dyn.record_times(config, None)
    prog = dyn._flow_program(observe_fn(resolve(config.record.observables)), dy.rtol)
    if dy.atol is not None:
        atol = jnp.full((R,), dy.atol, ens.dtype)
    else:  # as the engine: rtol·1e-3 times the largest initial entry
        atol = dy.rtol * 1e-3 * jnp.stack([jnp.max(jnp.abs(w.reshape(R, -1)), axis=1) for w in ens.weights0]).max(0)
    ts = jnp.asarray(t[1:], ens.dtype)

    def run():
        return prog(ens.weights0, 0.0, ts, ens.params, atol, ens.problem)

    return run, ens, t

