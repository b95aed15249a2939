"""Training dynamics, vectorised over an ensemble of replicas as one compiled program.

``simulate(config)`` is the single entry point. Each replica has its own PRNG stream, derived from the
ensemble seed and its ``member`` index only (not from the ensemble size or the stacked hyper-parameters),
and per-step keys are ``fold_in(replica_key, step)``: a replica's trajectory does not depend on how many
replicas run beside it, nor on when observables are recorded.

Dynamics (``dynamics.kind``), for one replica with weights θ:

* ``gd``   — ``θ ← θ − η ∇𝓛`` on the population loss (online data) or the empirical loss (finite data);
* ``sgd``  — ``θ ← θ − η ĝ`` with ``ĝ`` the mean gradient of ``B`` fresh samples (online), or of ``B`` rows
  of the dataset drawn with replacement or by shuffled epochs (a remainder of ``N mod B`` rows per epoch
  is dropped);
* ``sde``  — Itô Euler–Maruyama ``θ ← θ − Δt ∇𝓛 + sqrt(Δt η/B) ξ`` with ``ξ`` of covariance ``Σ(θ)``
  (``noise="exact"``: the exact-covariance sampler, no P×P matrix), its label-noise part (``"label"``)
  or ``c²I`` (``"isotropic"``); ``Δt = η`` by default ("Gaussian SGD");
* every discrete step is guarded: a replica whose weights become non-finite or exceed
  ``dynamics.divergence_threshold`` is frozen at its last good weights where it happens, and marked
  (``diverged``, ``diverged_step``, ``divergence_reason``); the other replicas run on unaffected;
* ``flow`` — gradient flow ``θ̇ = −∇𝓛`` by an adaptive Dormand–Prince 5(4) (diffrax) with a per-entry
  relative tolerance (max norm), so that plateaus from tiny initialisations are crossed accurately.

Time is ``t = η · step`` (SDE: ``Δt · step``). Observables are recorded at ``record.n_times`` times
(log-spaced by default, always including ``t = 0``), snapped to the step grid for discrete dynamics.
With stacked step sizes the ``t`` axis is nominal: each replica records at its nearest step, and the
``(replica, t)`` coordinates ``step`` and ``t_exact = unit · step`` give its exact times.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from . import checkpoint as _checkpoint
from . import conventions
from .checkpoint import CheckpointError
from .config import Config, config_to_toml
from .gradients import full_gradient, minibatch_gradient
from .network import Initializer, end_to_end
from .noise import sample_layer_noise
from .observables import Observable, ReplicaParams, observe_fn, resolve
from .problem import Problem
from .runtime import shard_replicas
from .teacher import Dataset, Teacher, completion_mask

# ---------------------------------------------------------------------------------------------------------
# One step of each discrete dynamics. A replica's keys are derived once per run, ``keys = replica_keys(key)``:
# step k draws from ``fold_in(keys[0], k) = fold_in(fold_in(key, 0), k)``, shuffled-epoch permutations from
# ``fold_in(keys[1], epoch) = fold_in(fold_in(key, 1), epoch)``.


def replica_keys(key):
    """The per-purpose keys of a replica's ``key``: ``(fold_in(key, 0), fold_in(key, 1))`` (step draws, epochs)."""
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def _keyed_step(config: Config):
    """``step(weights, keys, k, problem, params) -> weights`` for ``config.dynamics``, ``keys = replica_keys(key)``.

    When every replica has σ_ε = 0 the label noise is not drawn at all (the other draws use the same keys, so
    the trajectories are those of drawing it and multiplying it by 0)."""
    dy, data = config.dynamics, config.data
    B = dy.batch_size
    label_free = not np.any(np.asarray(config.teacher.label_noise, np.float64))

    def label_noise(params):
        return None if label_free else params.label_noise

    def gd(weights, keys, k, problem, params):
        return tuple(w - params.lr * g for w, g in zip(weights, full_gradient(weights, problem)))

    def batch(keys, k, problem, params):
        if not problem.finite:
            return problem.sample(jax.random.fold_in(keys[0], k), B, label_noise(params))
        N = problem.X.shape[0]
        if data.sampling == "with_replacement":
            idx = jax.random.randint(jax.random.fold_in(keys[0], k), (B,), 0, N)
        else:
            per_epoch = N // B
            epoch_key = jax.random.fold_in(keys[1], k // per_epoch)
            idx = lax.dynamic_slice(jax.random.permutation(epoch_key, N), ((k % per_epoch) * B,), (B,))
        return problem.X[idx], problem.Y[idx]

    def sgd(weights, keys, k, problem, params):
        X, Y = batch(keys, k, problem, params)
        return tuple(w - params.lr * g for w, g in zip(weights, minibatch_gradient(weights, X, Y)))

    def sde(weights, keys, k, problem, params):
        drift = full_gradient(weights, problem)
        xi = sample_layer_noise(jax.random.fold_in(keys[0], k), weights, problem, label_noise(params), dy.noise,
                                dy.isotropic_scale)
        amp = jnp.sqrt(params.dt * params.lr / B)
        return tuple(w - params.dt * g + amp * x for w, g, x in zip(weights, drift, xi))

    return {"gd": gd, "sgd": sgd, "sde": sde}[dy.kind]


def make_step(config: Config):
    """The update of one replica for ``config.dynamics``, ``step(weights, key, k, problem, params) -> weights``
    (a pure function; ``key`` is the replica's key, see :func:`replica_keys`)."""
    step = _keyed_step(config)
    return lambda weights, key, k, problem, params: step(weights, replica_keys(key), k, problem, params)


# ---------------------------------------------------------------------------------------------------------
# Record times


def total_time(config: Config) -> float:
    dy = config.dynamics
    if dy.t_max is not None:
        return dy.t_max
    unit = dy.dt if (dy.kind == "sde" and dy.dt is not None) else dy.lr
    return dy.steps * unit


def record_times(config: Config, unit_min: float | None) -> np.ndarray:
    """Nominal record times: ``0`` then ``n_times − 1`` log- (or linearly) spaced times up to ``t_max``.

    The first log-spaced time is ``record.t_min``, by default one step (flow: ``1e-4 t_max``)."""
    r, t_max = config.record, total_time(config)
    if r.spacing == "linear":
        return np.linspace(0.0, t_max, r.n_times)
    t_min = r.t_min if r.t_min is not None else (unit_min if unit_min is not None else 1e-4 * t_max)
    t_min = min(t_min, t_max)
    if r.n_times == 2:  # np.geomspace(t_min, t_max, 1) would be [t_min]: the run must still reach t_max
        return np.array([0.0, t_max])
    return np.concatenate([[0.0], np.geomspace(t_min, t_max, r.n_times - 1)])


# ---------------------------------------------------------------------------------------------------------
# The engine


def _progress(total, enabled, desc):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enabled, unit="chunk", leave=False)


def _chunks(n, n_chunks):
    """Split ``range(1, n)`` (record indices after t=0) into equal-length chunks (last one padded)."""
    n_chunks = max(1, min(n_chunks, n - 1))
    size = -(-(n - 1) // n_chunks)
    return [np.arange(1 + c * size, min(n, 1 + (c + 1) * size)) for c in range(n_chunks) if 1 + c * size < n], size


#: Divergence reasons recorded in ``divergence_reason`` (CF flag values/meanings).
DIVERGENCE_REASONS = ("none", "nonfinite", "threshold")


def _guarded(step, threshold):
    """Wrap a step so that a replica whose new weights are non-finite, or exceed ``threshold`` in
    absolute value, is frozen at its last good weights, with the step and the reason recorded."""

    def guarded(state, keys, problem, params):
        w, k, div_step, reason = state
        new = step(w, keys, k, problem, params)
        leaves = jax.tree_util.tree_leaves(new)
        nonfinite = ~jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        big = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves])) > threshold
        newly = (div_step < 0) & (nonfinite | big)
        div_step = jnp.where(newly, k, div_step)
        reason = jnp.where(newly, jnp.where(nonfinite, 1, 2), reason)
        frozen = div_step >= 0
        w = jax.tree_util.tree_map(lambda old, nw: jnp.where(frozen, old, nw), w, new)
        return w, k + 1, div_step, reason

    return guarded


def _within(weights, threshold):
    """A sufficient test (one sum, cheaper than the guard's max) that every weight is finite and at most
    ``threshold`` in absolute value: ``Σ_l ‖W_l‖²_F < (1 − δ) threshold²`` in float64, ``δ`` covering the rounding
    of the sum (a weight above the threshold makes the computed sum at least ``(1 − δ) threshold²``)."""
    n = sum(x.size for x in weights)
    total = sum(jnp.sum(jnp.square(x.astype(jnp.float64))) for x in weights)
    return total < threshold * threshold * (1.0 - 8.0 * (n + 4) * np.finfo(np.float64).eps)


#: Weight bytes of the block of replicas that is stepped through a whole record interval at a time (cache size).
BLOCK_BYTES = 2**19


def _discrete_program(config: Config, observe, inc_batched: bool):
    """The ensemble program ``run(state, keys, params, incs, problem) -> (state, observables)``.

    ``state = (weights, step, diverged_step, reason)`` with a leading replica axis, ``keys`` the replica keys,
    ``incs`` the steps of each record interval (per replica when ``inc_batched``); the observables come back as
    ``(replica, interval, …)``. Results are those of guarding every step (:func:`_guarded`), computed faster:

    * in each record interval the replicas step unguarded, recording only whether :func:`_within` held after
      every step; if it failed for a replica that is not frozen, the interval is replayed from its start with the
      per-step guard, which gives the same ``diverged_step``, reason and frozen weights. Weights whose Frobenius
      norm exceeds the threshold without any entry doing so (only possible for a small threshold) trigger
      such replays and cost speed, never exactness;
    * the replica axis is sharded over the CPU cores (:func:`dlnlab.runtime.shard_replicas`), and each shard
      steps blocks of replicas whose weights fit in ``BLOCK_BYTES`` (cache) through an interval;
    * keys are derived once per call (:func:`replica_keys`).

    A replica's trajectory does not depend on the sharding or blocking except through XLA's choice of
    vectorisation for a given batch size (last-bit differences, as for the ensemble size)."""
    step, threshold = _keyed_step(config), config.dynamics.divergence_threshold
    guarded = _guarded(step, threshold)
    n_axis = 0 if inc_batched else None

    def fast(w, k, keys, params, n, problem):  # one replica, ``n`` unguarded steps
        def body(_, c):
            w, k, ok = c
            w = step(w, keys, k, problem, params)
            return w, k + 1, ok & _within(w, threshold)

        return lax.fori_loop(0, n, body, (w, k, jnp.array(True)))

    def replay(state, keys, params, n, problem):  # one replica, ``n`` guarded steps
        return lax.fori_loop(0, n, lambda _, c: guarded(c, keys, problem, params), state)

    def shard(state, rkeys, params, incs, problem):
        keys = jax.vmap(replica_keys)(rkeys)
        n_rep = rkeys.shape[0]
        per_replica = sum(math.prod(x.shape[1:]) * x.dtype.itemsize for x in state[0])
        block = max(1, BLOCK_BYTES // per_replica)

        def interval(state, n):
            w, k, div_step, reason = state
            frozen = div_step >= 0
            if block < n_rep:
                xs = (w, k, keys, params) + ((n,) if inc_batched else ())
                fn = (lambda a: fast(*a, problem)) if inc_batched else (lambda a: fast(*a, n, problem))
                new_w, new_k, ok = lax.map(fn, xs, batch_size=block)
            else:
                new_w, new_k, ok = jax.vmap(fast, in_axes=(0, 0, 0, 0, n_axis, None))(w, k, keys, params, n, problem)

            def accept(_):
                kept = jax.tree_util.tree_map(
                    lambda old, nw: jnp.where(frozen.reshape((-1,) + (1,) * (nw.ndim - 1)), old, nw), w, new_w)
                return kept, new_k, div_step, reason

            def guard_every_step(_):
                return jax.vmap(replay, in_axes=(0, 0, 0, n_axis, None))(state, keys, params, n, problem)

            state = lax.cond(jnp.any(~ok & ~frozen), guard_every_step, accept, None)
            return state, jax.vmap(observe, in_axes=(0, None, 0))(state[0], problem, params)

        state, obs = lax.scan(interval, state, incs.T if inc_batched else incs)
        return state, jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), obs)

    return shard_replicas(shard, (0, 1, 2, 3) if inc_batched else (0, 1, 2))


def _flow_program(observe, rtol):
    import diffrax

    def max_norm(tree):
        return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree_util.tree_leaves(tree)]))

    def replica(weights, t0, ts, params, atol, problem):
        term = diffrax.ODETerm(lambda t, y, args: tuple(-g for g in full_gradient(y, problem)))
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


class Interrupted(KeyboardInterrupt):
    """Raised when a run is interrupted; ``.partial`` holds the dataset of every completed record."""

    def __init__(self, partial: xr.Dataset):
        super().__init__("interrupted")
        self.partial = partial


class _Ensemble:
    """Everything a run needs before its first step: teacher, problem arrays, per-replica
    hyper-parameters, keys and initial weights, and the replica coordinates."""

    def __init__(self, config: Config, weights=None):
        self.config = config
        dy = config.dynamics
        self.dtype = jnp.float32 if dy.precision == "float32" else jnp.float64
        self.teacher = teacher = Teacher.from_config(config)
        grid = config.replica_grid()
        self.R = R = len(grid)

        def col(name, value):
            return np.array([row.get(name, value) for row in grid], dtype=np.float64)

        lr = col("dynamics.lr", dy.lr)
        label_noise = col("teacher.label_noise", config.teacher.label_noise)
        self.unit = np.full(R, dy.dt) if (dy.kind == "sde" and dy.dt is not None) else lr
        self.params = ReplicaParams(lr=jnp.asarray(lr, self.dtype), label_noise=jnp.asarray(label_noise, self.dtype),
                                    dt=jnp.asarray(self.unit, self.dtype))
        members = np.array([row["member"] for row in grid])
        self.coords = {"member": ("replica", members), "label_noise": ("replica", label_noise)}
        if dy.kind != "flow":
            self.coords["lr"] = ("replica", lr)

        dataset = None
        if config.data.kind == "finite":
            dataset = Dataset.draw(teacher, config.data.n_samples, float(label_noise[0]), config.data.seed,
                                   config.data.whiten)
        mask = None
        if config.data.kind == "completion":
            mask = completion_mask(teacher.d_out, teacher.d_in, config.data.observed_fraction, config.data.seed)
        self.problem = Problem.build(teacher, dataset, self.dtype, mask)

        base = jax.random.PRNGKey(config.ensemble.seed)
        rkeys = jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.asarray(members))
        init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(rkeys)
        self.dyn_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(rkeys)
        self.weights0 = self._initial_weights(init_keys, col, weights)

    def _initial_weights(self, init_keys, col, weights):
        config, R, dtype = self.config, self.R, self.dtype
        if weights is not None:
            ws = tuple(jnp.asarray(w, dtype) for w in weights)
            return tuple(jnp.broadcast_to(w, (R, *w.shape[-2:])) for w in ws)
        init, ic, L = Initializer(config, self.teacher), config.init, config.network.depth
        if ic.gamma is not None:
            gamma = col("init.gamma", ic.gamma)
            self.coords["init_gamma"] = ("replica", gamma)
            per_layer = np.stack([np.broadcast_to(init.scale_from_gamma(g), (L,)) for g in gamma])
        else:
            scale = col("init.scale", np.nan if ic.scale is None else ic.scale)
            if ic.scale is not None:
                self.coords["init_scale"] = ("replica", scale)
            per_layer = np.repeat(scale[:, None], L, axis=1)
        per_layer = jnp.asarray(per_layer, dtype)
        if ic.kind == "aligned":
            w0 = jax.vmap(lambda k, p: init(k, p[0]))(init_keys, per_layer)
        else:
            w0 = jax.vmap(init)(init_keys, per_layer)
        if dtype == jnp.float32:  # per-layer scale a = ‖W(0)‖_op^{1/L} (= m^{1/L} when aligned and balanced)
            a = float(np.max(np.linalg.norm(np.asarray(jax.vmap(end_to_end)(w0), np.float64), ord=2, axis=(1, 2))))
            conventions.warn_if_float32_stalls(float(np.min(self.unit)), float(np.max(self.teacher.input_var)),
                                               float(np.max(self.teacher.s, initial=0.0)), a ** (1 / L), L, dtype)
        return w0


def _resume(init, resume, chunks):
    """``(carry, pieces, first chunk)``: from ``init``, or from ``resume`` (a checkpoint read by ``simulate``)
    after checking that its carry has the structure, shapes and dtypes of ``init``."""
    if resume is None:
        return init, [], 0
    leaves, treedef = jax.tree_util.tree_flatten(init)
    saved, done = resume["state"], resume["chunks_done"]
    n_rec = sum(len(idx) for idx in chunks[:done])
    ok = (0 < done <= len(chunks) and len(saved) == len(leaves)
          and all(np.shape(a) == np.shape(b) and np.asarray(a).dtype == b.dtype for a, b in zip(saved, leaves))
          and all(a.shape[:2] == (np.shape(leaves[0])[0], n_rec) for a in resume["records"].values()))
    if not ok:
        raise CheckpointError(resume["path"], "its arrays do not fit this run (written by another version of "
                                              "dlnlab?); delete it to start afresh")
    carry = [jnp.asarray(a) if isinstance(b, jax.Array) else np.array(a) for a, b in zip(saved, leaves)]
    return jax.tree_util.tree_unflatten(treedef, carry), [resume["records"]], done


def _run_flow(ens: _Ensemble, observe, progress, resume=None):
    """Adaptive gradient flow in chunks of record times; yields (t, step coord, pieces, extra vars,
    (chunks done, carry, pieces of those chunks)) after each chunk (and first, when resuming, at the checkpoint)."""
    dy, R = ens.config.dynamics, ens.R
    t = record_times(ens.config, None)
    chunks, size = _chunks(len(t), ens.config.record.chunks)
    prog = _flow_program(observe, dy.rtol)
    if dy.atol is not None:
        atol = jnp.full((R,), dy.atol, ens.dtype)
    else:  # per replica: rtol·1e-3 times the largest initial entry
        atol = dy.rtol * 1e-3 * jnp.stack([jnp.max(jnp.abs(w.reshape(R, -1)), axis=1) for w in ens.weights0]).max(0)
    init = (ens.weights0, np.zeros(R, dtype=np.int64), np.ones(R, dtype=bool))
    (state, n_steps, ok), pieces, start = _resume(init, resume, chunks)
    t_prev = float(t[chunks[start - 1][-1]]) if start else 0.0
    extra = {"solver_steps": (("replica",), n_steps), "solver_ok": (("replica",), ok)}
    with _progress(len(chunks), progress, "flow") as bar:
        if start:
            bar.update(start)
            yield t, None, pieces, extra, (start, (state, n_steps.copy(), ok.copy()), len(pieces))
        for c in range(start, len(chunks)):
            idx = chunks[c]
            ts = np.concatenate([t[idx], np.full(size - len(idx), t[idx[-1]])])
            state, ns, good, obs = prog(state, t_prev, jnp.asarray(ts, ens.dtype), ens.params, atol, ens.problem)
            n_steps += np.asarray(ns)
            ok &= np.asarray(good)
            pieces.append(_trim(obs, len(idx)))
            t_prev = float(t[idx[-1]])
            bar.update(1)
            yield t, None, pieces, extra, (c + 1, (state, n_steps.copy(), ok.copy()), len(pieces))


def _run_discrete(ens: _Ensemble, observe, progress, resume=None):
    """GD/SGD/SDE in compiled chunks; yields (t, step coord, pieces, extra vars, (chunks done, carry,
    pieces of those chunks)) after each chunk (and first, when resuming, at the checkpoint)."""
    unit = ens.unit
    t_nom = record_times(ens.config, float(np.min(unit)))
    if np.all(unit == unit[0]):
        steps = np.unique(np.rint(t_nom / unit[0]).astype(np.int64))
        t, step_coord, incs, batched = steps * unit[0], (("t",), steps), np.diff(steps), False
    else:  # stacked step sizes: one nominal time axis, snapped to each replica's step grid
        steps = np.rint(t_nom[None, :] / unit[:, None]).astype(np.int64)
        t, step_coord, incs, batched = t_nom, (("replica", "t"), steps), np.diff(steps, axis=1), True
        ens.coords["t_exact"] = (("replica", "t"), steps * unit[:, None])
    chunks, size = _chunks(len(t), ens.config.record.chunks)
    dy = ens.config.dynamics
    prog = _discrete_program(ens.config, observe, batched)
    R = ens.R
    state = (ens.weights0, jnp.zeros(R, jnp.int64), jnp.full(R, -1, jnp.int64), jnp.zeros(R, jnp.int32))
    state, pieces, start = _resume(state, resume, chunks)

    def extra(state):
        div_step, reason = np.asarray(state[2]), np.asarray(state[3])
        return {
            "diverged": (("replica",), div_step >= 0),
            "diverged_step": (("replica",), div_step),
            "divergence_reason": (("replica",), reason, {
                "flag_values": list(range(len(DIVERGENCE_REASONS))),
                "flag_meanings": " ".join(DIVERGENCE_REASONS)}),
        }

    with _progress(len(chunks), progress, dy.kind) as bar:
        if start:
            bar.update(start)
            yield t, step_coord, pieces, extra(state), (start, state, len(pieces))
        for c in range(start, len(chunks)):
            idx = chunks[c]
            inc = incs[..., idx - 1]  # the increments leading to the records in idx
            inc = np.concatenate([inc, np.zeros((*inc.shape[:-1], size - len(idx)), np.int64)], axis=-1)
            state, obs = prog(state, ens.dyn_keys, ens.params, jnp.asarray(inc), ens.problem)
            pieces.append(_trim(obs, len(idx)))
            bar.update(1)
            yield t, step_coord, pieces, extra(state), (c + 1, state, len(pieces))


def _trim(obs, n):
    return {name: np.asarray(a)[:, :n] for name, a in obs.items()}


def simulate(config: Config, *, observables: list[Observable] | None = None, weights=None,
             progress: bool | None = None, checkpoint: str | Path | None = None,
             checkpoint_every: float = 60.0) -> xr.Dataset:
    """Run the ensemble described by ``config`` and return its recorded observables.

    Parameters
    ----------
    config : a validated :class:`~dlnlab.config.Config`.
    observables : extra user :class:`~dlnlab.observables.Observable` objects, recorded beside
        ``config.record.observables``.
    weights : optional initial weights ``(W_1, …, W_L)``, either one set (shared by every replica) or
        with a leading replica axis; overrides ``config.init``.
    progress : show a progress bar (default: when stderr is a terminal).
    checkpoint : path of a checkpoint file (``.npz``, see :mod:`dlnlab.checkpoint`). After a compiled chunk
        (``record.chunks``), at most every ``checkpoint_every`` seconds (``0``: after every chunk), and on
        ``KeyboardInterrupt``, the carry state and the records so far are written there atomically. If the
        file exists when ``simulate`` starts, the run resumes from it, skipping the completed chunks: random
        numbers are drawn per step (``fold_in(key, step)``), so the result is bitwise identical to an
        uninterrupted run (same machine and JAX version; wall-time attrs aside). A checkpoint of another
        run (config, observables, initial weights) raises :class:`~dlnlab.checkpoint.CheckpointError`.
        ``simulate`` leaves the file in place: delete it (:func:`dlnlab.checkpoint.remove`) once the
        result is saved, as ``dlnlab train`` does.

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t`` (continuous time; ``step`` coordinate) and
    observable dims (``mode``, ``sv``, ``layer``, ``layer_pair``); replica coordinates for every
    hyper-parameter; the resolved config, seed and versions in ``attrs``. On ``KeyboardInterrupt`` it
    raises :class:`Interrupted`, whose ``.partial`` dataset holds every record completed so far.
    """
    wall0 = time.perf_counter()
    obs_list = resolve(config.record.observables, observables)
    ckpt = resume = None
    if checkpoint is not None:
        ckpt = _Checkpointer(checkpoint, checkpoint_every,
                             _checkpoint.run_hash(config_to_toml(config), obs_list, weights))
        resume = ckpt.read()
    ens = _Ensemble(config, weights)
    observe = observe_fn(obs_list)
    obs0 = jax.jit(jax.vmap(observe, in_axes=(0, None, 0)))(ens.weights0, ens.problem, ens.params)
    obs0 = {name: np.asarray(a)[:, None] for name, a in obs0.items()}
    runner = _run_flow if config.dynamics.kind == "flow" else _run_discrete
    latest = None
    try:
        for latest in runner(ens, observe, progress, resume):
            if ckpt is not None:
                ckpt.maybe_write(latest)
    except KeyboardInterrupt:
        if latest is None:
            raise
        if ckpt is not None:  # so that a rerun resumes from here
            try:
                ckpt.maybe_write(latest, force=True)
            except OSError as exc:
                warnings.warn(f"could not write the checkpoint {ckpt.path}: {exc}", stacklevel=2)
        raise Interrupted(_assemble(ens, obs_list, obs0, *latest[:4], wall0, complete=False)) from None
    return _assemble(ens, obs_list, obs0, *latest[:4], wall0, complete=True)


class _Checkpointer:
    """Writes a runner's ``(chunks done, carry)`` and records to ``path``, at most every ``every`` seconds."""

    def __init__(self, path, every: float, run_hash: str):
        if not every >= 0:
            raise ValueError(f"checkpoint_every = {every!r}; allowed: a number of seconds >= 0")
        self.path, self.every, self.hash = Path(path), float(every), run_hash
        self.last, self.done = time.monotonic(), 0

    def read(self):
        resume = _checkpoint.read(self.path, self.hash)
        if resume is not None:
            resume["path"] = self.path
            self.done = resume["chunks_done"]
        return resume

    def maybe_write(self, latest, force=False):
        done, carry, n_pieces = latest[4]
        if done <= self.done or not (force or time.monotonic() - self.last >= self.every):
            return
        pieces = latest[2][:n_pieces]  # an interrupt may have appended the records of the next chunk
        records = {name: np.concatenate([p[name] for p in pieces], axis=1) for name in pieces[0]}
        leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(carry)]
        _checkpoint.write(self.path, self.hash, done, leaves, records)
        self.last, self.done = time.monotonic(), done


def _assemble(ens: _Ensemble, obs_list, obs0, t, step_coord, pieces, extra, wall0, complete) -> xr.Dataset:
    """Records -> ``xarray.Dataset`` with labelled dims, replica coordinates and provenance attrs."""
    n = 1 + sum(next(iter(p.values())).shape[1] for p in pieces)
    dims_of = {var: dims for o in obs_list for var, dims in o.dims.items()}
    coords = {"replica": np.arange(ens.R), "t": np.asarray(t[:n], dtype=np.float64), **ens.coords}
    if step_coord is not None:
        dims, steps = step_coord
        coords["step"] = (dims, steps[..., :n])
    if "t_exact" in coords:  # stacked step sizes: each replica's exact time, unit·step
        coords["t_exact"] = (coords["t_exact"][0], coords["t_exact"][1][:, :n])
    data_vars = {}
    for name in obs0:
        arr = np.concatenate([obs0[name], *[p[name] for p in pieces]], axis=1)
        dims = ("replica", "t", *dims_of[name])
        data_vars[name] = (dims, arr.astype(bool) if name == "finite" else arr)
        for d, size in zip(dims[2:], arr.shape[2:]):
            coords.setdefault(d, np.arange(1, size + 1))
    data_vars.update(extra)
    ds = xr.Dataset(data_vars, coords=coords)
    if "mode" in ds.dims:
        k = ds.sizes["mode"]
        ds = ds.assign_coords(s=("mode", ens.teacher.s[:k]), input_var=("mode", ens.teacher.mode_input_var[:k]))
    ds.attrs.update(provenance(ens.config))
    diverged = ds["diverged"] if "diverged" in ds else ~ds["finite"].isel(t=-1)
    ds.attrs.update(wall_time_s=time.perf_counter() - wall0, n_replicas=ens.R, complete=int(complete),
                    n_diverged=int(diverged.sum()))
    return ds


def package_versions() -> dict:
    """Versions of dlnlab, its main dependencies and Python."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("dlnlab", "jax", "jaxlib", "numpy", "scipy", "xarray", "zarr", "diffrax"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    versions["python"] = sys.version.split()[0]
    return versions


def provenance(config: Config) -> dict:
    """Config (TOML), seed, versions, device and time, as ``attrs`` (strings and numbers only)."""
    versions = package_versions()
    return {
        "config": config_to_toml(config),
        "seed": config.ensemble.seed,
        "dynamics": config.dynamics.kind,
        "versions": json.dumps(versions, sort_keys=True),
        "backend": jax.default_backend(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "precision": config.dynamics.precision,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "conventions": "loss 1/2|Wx-y|^2; t = lr*step (sde: dt*step); Ito SDE; T = lr/(2B); m_a = u_a^T W v_a",
    }
