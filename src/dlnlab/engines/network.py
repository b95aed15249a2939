"""The deep linear network simulator: GF, GD, SGD and SGD-SDE of an ensemble of replicas as one compiled program.

Each replica has its own PRNG stream (:class:`~._core.Replicas`), and per-step keys are ``fold_in(key, step)``: a
replica's trajectory does not depend on how many replicas run beside it, nor on when observables are recorded.

Dynamics (``dynamics.kind``), for one replica with weights θ:

* ``gd``   — ``θ ← θ − η ∇𝓛`` on the population loss (online data) or the empirical loss (finite data);
* ``sgd``  — ``θ ← θ − η ĝ`` with ``ĝ`` the mean gradient of ``B`` fresh samples (online), or of ``B`` rows
  of the dataset drawn with replacement or by shuffled epochs (a remainder of ``N mod B`` rows per epoch
  is dropped);
* ``sde``  — Itô Euler–Maruyama ``θ ← θ − Δt ∇𝓛 + sqrt(Δt η/B) ξ`` with ``ξ`` of covariance ``Σ(θ)``
  (``noise="exact"``: the exact-covariance sampler, no P×P matrix), its label-noise part (``"label"``)
  or ``c²I`` (``"isotropic"``); ``Δt = η`` by default ("Gaussian SGD"); for a finite dataset sampled by shuffled
  epochs (``data.sampling = "without_replacement"``) the exact noise is scaled by ``(N − B)/(N − 1)`` in
  covariance, the minibatch covariance of sampling without replacement (with replacement: no factor);
* every discrete step is guarded: a replica whose weights become non-finite or exceed
  ``dynamics.divergence_threshold`` is frozen at its last good weights where it happens, and marked
  (``diverged``, ``diverged_step``, ``divergence_reason``); the other replicas run on unaffected;
* ``flow`` — gradient flow ``θ̇ = −∇𝓛`` by an adaptive solver with a per-entry relative tolerance (max norm), so
  that plateaus from tiny initialisations are crossed accurately: Dopri5 switching to the L-stable Rodas5P
  where the flow is stiff, Rodas5P alone, or diffrax's Dopri5 (``dynamics.solver``; :mod:`._flow`), to a given
  ``t_max`` or until the loss has settled (``t_max = "auto"``).

Time is ``t = η · step`` (SDE: ``Δt · step``); the record grid is :func:`~._core.record_grid`'s.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import conventions
from ..config import Config
from ..model.gradients import full_gradient, minibatch_gradient
from ..model.network import Initializer, end_to_end
from ..model.noise import sample_layer_noise
from ..model.observables import Observable, ReplicaParams, observe_fn, resolve
from ..model.problem import Problem
from ..model.teacher import Dataset, Teacher, completion_mask
from ..runtime import replica_devices, shard_replicas
from ._core import (
    Program,
    Replicas,
    RunResult,
    chunk_size,
    record_grid,
    run_intervals,
    time_unit,
    to_numpy,
)
from ._flow import flow

# ---------------------------------------------------------------------------------------------------------
# One step of each discrete dynamics. A replica's keys are derived once per run, ``keys = step_keys(key)``:
# step k draws from ``fold_in(keys[0], k) = fold_in(fold_in(key, 0), k)``, shuffled-epoch permutations from
# ``fold_in(keys[1], epoch) = fold_in(fold_in(key, 1), epoch)``.


def step_keys(key):
    """The per-purpose keys of a replica's dynamics ``key``: ``(fold_in(key, 0), fold_in(key, 1))`` (step draws,
    epochs)."""
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def _keyed_step(config: Config):
    """``step(weights, keys, k, problem, params) -> weights`` for ``config.dynamics``, ``keys = step_keys(key)``.

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

    # finite data by shuffled epochs: a minibatch drawn without replacement has (N − B)/(N − 1) times the
    # covariance of one drawn with replacement (sgd_noise.md §3.2); the exact SDE noise carries that factor
    shuffled = data.kind == "finite" and data.sampling == "without_replacement" and dy.noise == "exact"
    fpc = (data.n_samples - B) / (data.n_samples - 1) if shuffled else None

    def sde(weights, keys, k, problem, params):
        drift = full_gradient(weights, problem)
        xi = sample_layer_noise(jax.random.fold_in(keys[0], k), weights, problem, label_noise(params), dy.noise,
                                dy.isotropic_scale)
        amp = jnp.sqrt(params.dt * params.lr / B if fpc is None else params.dt * params.lr / B * fpc)
        return tuple(w - params.dt * g + amp * x for w, g, x in zip(weights, drift, xi))

    return {"gd": gd, "sgd": sgd, "sde": sde}[dy.kind]


def make_step(config: Config):
    """The update of one replica for ``config.dynamics``, ``step(weights, key, k, problem, params) -> weights``
    (a pure function; ``key`` is the replica's dynamics key, see :func:`step_keys`)."""
    step = _keyed_step(config)
    return lambda weights, key, k, problem, params: step(weights, step_keys(key), k, problem, params)


# ---------------------------------------------------------------------------------------------------------
# States and the divergence guard

#: Divergence reasons recorded in ``divergence_reason`` (CF flag values/meanings).
DIVERGENCE_REASONS = ("none", "nonfinite", "threshold")
#: Weight bytes of the block of replicas that is stepped through a whole record interval at a time (cache size).
BLOCK_BYTES = 2**19
#: Sharded over several CPU devices, at most this many step-loop iterations (steps × blocks of replicas) run in one
#: call of the compiled program (:func:`_max_steps_per_call`).
MAX_LOOP_STEPS_PER_CALL = 2**14


class DiscreteState(NamedTuple):
    """GD/SGD/SDE state: ``weights`` (tuple, leading replica axis), ``step``, ``diverged_step`` (−1: not
    diverged) and ``divergence_reason`` (index into :data:`DIVERGENCE_REASONS`), all per replica."""

    weights: tuple
    step: jax.Array
    diverged_step: jax.Array
    divergence_reason: jax.Array


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
        return DiscreteState(w, k + 1, div_step, reason)

    return guarded


def _within(weights, threshold):
    """A sufficient test (one sum, cheaper than the guard's max) that every weight is finite and at most
    ``threshold`` in absolute value: ``Σ_l ‖W_l‖²_F < (1 − δ) threshold²`` in float64, ``δ`` covering the rounding
    of the sum (a weight above the threshold makes the computed sum at least ``(1 − δ) threshold²``)."""
    n = sum(x.size for x in weights)
    total = sum(jnp.sum(jnp.square(x.astype(jnp.float64))) for x in weights)
    return total < threshold * threshold * (1.0 - 8.0 * (n + 4) * np.finfo(np.float64).eps)


# ---------------------------------------------------------------------------------------------------------
# Compiled programs


def _discrete_program(config: Config, observe, inc_batched: bool):
    """The ensemble program ``run(state, keys, params, incs, ends, problem) -> (state, observables)``.

    ``state`` a :class:`DiscreteState`, ``keys`` the replicas' dynamics keys, ``incs`` the steps of each record
    interval (per replica when ``inc_batched``), ``ends`` whether an interval ends a record (the observables of the
    others are zeros, not computed: :func:`._core.interval_calls`); the observables come back as
    ``(replica, interval, …)``. Results
    are those of guarding every step (:func:`_guarded`), computed faster:

    * in each record interval the replicas step unguarded, recording only whether :func:`_within` held after
      every step; if it failed for a replica that is not frozen, its block's interval is replayed from its start
      with the per-step guard, which gives the same ``diverged_step``, reason and frozen weights. Weights whose
      Frobenius norm exceeds the threshold without any entry doing so (only possible for a small threshold)
      trigger such replays and cost speed, never exactness;
    * the replica axis is sharded over the CPU cores (:func:`dlnlab.runtime.shard_replicas`), and each shard
      steps blocks of replicas whose weights fit in ``BLOCK_BYTES`` (cache) through an interval, one block after
      another, each updated in place in the shard's state (:func:`_blockwise`);
    * keys are derived once per call (:func:`step_keys`);
    * the state is donated to the call (updated in place: no second copy of the weights alive at a call boundary,
      measured as a +60–90 MB transient per call at 256 replicas × w = 100), so :func:`_discrete`'s ``run`` steps
      a copy of its state (``fresh``: :func:`dlnlab.runtime.shard_replicas`).

    A replica's trajectory does not depend on the sharding or blocking except through XLA's choice of
    vectorisation for a given batch size (last-bit differences, as for the ensemble size)."""
    step, threshold = _keyed_step(config), config.dynamics.divergence_threshold
    guarded = _guarded(step, threshold)
    n_axis = 0 if inc_batched else None

    def fast(w, k, keys, params, frozen, n, problem):  # one replica, ``n`` unguarded steps (none kept if frozen)
        def body(_, c):
            w, k, ok = c
            w = step(w, keys, k, problem, params)
            return w, k + 1, ok & _within(w, threshold)

        new_w, k, ok = lax.fori_loop(0, n, body, (w, k, jnp.array(True)))
        return jax.tree_util.tree_map(lambda old, nw: jnp.where(frozen, old, nw), w, new_w), k, ok

    def replay(state, keys, params, n, problem):  # one replica, ``n`` guarded steps
        return lax.fori_loop(0, n, lambda _, c: guarded(c, keys, problem, params), state)

    def shard(state, rkeys, params, incs, ends, problem):
        keys = jax.vmap(step_keys)(rkeys)
        n_rep, block = rkeys.shape[0], _block(state.weights)

        def observed(weights):
            return jax.vmap(observe, in_axes=(0, None, 0))(weights, problem, params)

        def group(state, keys, params, n):  # replicas through an interval: unguarded, replayed guarded if one left
            w, k, div_step, reason = state
            frozen = div_step >= 0
            new_w, new_k, ok = jax.vmap(fast, in_axes=(0, 0, 0, 0, 0, n_axis, None))(w, k, keys, params, frozen, n,
                                                                                    problem)

            def accept(_):
                return DiscreteState(new_w, new_k, div_step, reason)

            def guard_every_step(_):
                return jax.vmap(replay, in_axes=(0, 0, 0, n_axis, None))(state, keys, params, n, problem)

            return lax.cond(jnp.any(~ok & ~frozen), guard_every_step, accept, None)

        def advance(state, n):  # the replicas through an interval of ``n`` steps, block by block (in cache)
            if block >= n_rep:
                return group(state, keys, params, n)
            if inc_batched:
                return _blockwise(lambda s, f: group(s, *f), state, (keys, params, n), n_rep, block)
            return _blockwise(lambda s, f: group(s, *f, n), state, (keys, params), n_rep, block)

        def interval(state, x):  # intervals of no steps (padding) skip the loops; unrecorded ones the observables
            n, end = x
            state = lax.cond(jnp.any(n > 0), advance, lambda state, n: state, state, n)
            unobserved = lambda weights: jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype),
                                                                jax.eval_shape(observed, weights))
            return state, lax.cond(end, observed, unobserved, state.weights)

        state, obs = lax.scan(interval, state, (incs.T if inc_batched else incs, ends))
        return state, jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), obs)

    return shard_replicas(shard, (0, 1, 2, 3) if inc_batched else (0, 1, 2), max_devices=_max_devices(config),
                          donate_state=True)


def _block(weights) -> int:
    """The replicas per block: as many as have weights (leading replica axis) within :data:`BLOCK_BYTES`, at least 1."""
    per_replica = sum(math.prod(np.shape(w)[1:]) * np.dtype(w.dtype).itemsize for w in weights)
    return max(1, BLOCK_BYTES // per_replica)


def _blockwise(fn, carry, fixed, n_rep: int, block: int):
    """``carry`` (a pytree with a leading replica axis of ``n_rep``) after ``piece = fn(piece, fixed piece)`` on its
    consecutive blocks of ``block`` replicas (the last one ``n_rep % block``): the blocks of
    ``lax.map(…, batch_size=block)``, each sliced from ``carry`` and written back into it in place.

    ``lax.map`` gathers its outputs in a second array, so the interval's start state stayed alive beside the new one
    and the call copied the whole state several times (its slices in, its outputs out, the selected result). A
    block's start state is the block still unchanged in ``carry`` until it is written back, so a replay of the block
    (:func:`_discrete_program`) needs no other copy. Measured (2 CPU devices, R = 16, blocks of one replica): a
    one-step run at w = 300 (35 MB of weights) 50 → 31 ms, at w = 1000 (384 MB) 600 → 473 ms (a step ~0.15 s)."""
    tm = jax.tree_util.tree_map

    def on(c, start, size):
        piece = lambda tree: tm(lambda a: lax.dynamic_slice_in_dim(a, start, size), tree)
        return tm(lambda a, b: lax.dynamic_update_slice_in_dim(a, b, start, 0), c, fn(piece(c), piece(fixed)))

    full, rest = divmod(n_rep, block)
    carry = lax.fori_loop(0, full, lambda b, c: on(c, b * block, block), carry)
    return on(carry, full * block, rest) if rest else carry


def _max_devices(config: Config) -> int | None:
    """The devices the discrete program may shard over (``None``: every one, :func:`dlnlab.runtime.replica_devices`).
    Recording the sharpness, the program sharded over two CPU devices never returned (from 12 replicas; jaxlib
    0.10.2, not the batch size of its LAPACK call): such runs use one device."""
    return 1 if "sharpness" in config.record.observables else None


def _max_steps_per_call(config: Config, weights) -> int | None:
    """The steps one call of the discrete program may run (:func:`._core.interval_calls`; ``None``: no limit).

    Sharded over several CPU devices, XLA's CPU runtime (jaxlib 0.10.2) keeps ~7.5 KB per iteration of each block's
    step loop until the call returns (measured: R = 16, w = 100, 2 devices, 8 blocks: +0.48 GB of peak memory over
    8 000 steps in one call, nothing more over three further calls; one device, or one program at a time: none). The
    loop carries whether the weights stayed within the threshold (:func:`_within`): with that reduction over three
    or more layers in the body it appears, without it not. Capping a call at :data:`MAX_LOOP_STEPS_PER_CALL`
    iterations bounds it (~0.12 GB) whatever the number of steps; the split calls run the same steps (bitwise)."""
    R = int(np.shape(weights[0])[0])
    n_dev = len(replica_devices(R)[:_max_devices(config)])
    if n_dev < 2:
        return None
    block, per_device = _block(weights), -(-R // n_dev)
    loops = n_dev * (-(-per_device // block) if block < per_device else 1)
    return max(1, MAX_LOOP_STEPS_PER_CALL // loops)


# ---------------------------------------------------------------------------------------------------------
# The ensemble before its first step


class _Ensemble(NamedTuple):
    """Teacher, problem arrays, per-replica hyper-parameters, keys, initial weights and replica coordinates."""

    teacher: Teacher
    problem: Problem
    params: ReplicaParams
    unit: np.ndarray
    dyn_keys: jax.Array
    weights0: tuple
    coords: dict
    dtype: object


def _ensemble(config: Config, weights=None) -> _Ensemble:
    dy = config.dynamics
    dtype = jnp.float32 if dy.precision == "float32" else jnp.float64
    teacher = Teacher.from_config(config)
    reps = Replicas.of(config)
    lr = reps.column("dynamics.lr", dy.lr)
    label_noise = reps.column("teacher.label_noise", config.teacher.label_noise)
    unit = time_unit(config, lr)
    params = ReplicaParams(lr=jnp.asarray(lr, dtype), label_noise=jnp.asarray(label_noise, dtype),
                           dt=jnp.asarray(unit, dtype))
    coords = {"member": ("replica", reps.members), "label_noise": ("replica", label_noise)}
    if dy.kind != "flow":
        coords["lr"] = ("replica", lr)
    dataset = mask = None
    if config.data.kind == "finite":
        dataset = Dataset.draw(teacher, config.data.n_samples, float(label_noise[0]), config.data.seed,
                               config.data.whiten)
    if config.data.kind == "completion":
        mask = completion_mask(teacher.d_out, teacher.d_in, config.data.observed_fraction, config.data.seed)
    problem = Problem.build(teacher, dataset, dtype, mask)
    w0 = _initial_weights(config, teacher, reps, coords, dtype, weights)
    if weights is None and dtype == jnp.float32:  # per-layer scale a = ‖W(0)‖_op^{1/L}
        L = config.network.depth
        a = float(np.max(np.linalg.norm(np.asarray(jax.vmap(end_to_end)(w0), np.float64), ord=2, axis=(1, 2))))
        conventions.warn_if_float32_stalls(float(np.min(unit)), float(np.max(teacher.input_variance)),
                                           float(np.max(teacher.s, initial=0.0)), a ** (1 / L), L, dtype)
    return _Ensemble(teacher, problem, params, unit, reps.keys(1), w0, coords, dtype)


def _initial_weights(config, teacher, reps: Replicas, coords: dict, dtype, weights):
    """Initial weights with a leading replica axis: ``weights`` broadcast, or drawn from ``config.init`` with
    the keys ``fold_in(replica key, 0)`` (adding the ``init_gamma``/``init_scale`` coordinates)."""
    R = reps.R
    if weights is not None:
        ws = tuple(jnp.asarray(w, dtype) for w in weights)
        return tuple(jnp.broadcast_to(w, (R, *w.shape[-2:])) for w in ws)
    init, ic, L = Initializer(config, teacher), config.init, config.network.depth
    if ic.gamma is not None:
        gamma = reps.column("init.gamma", ic.gamma)
        coords["init_gamma"] = ("replica", gamma)
        per_layer = np.stack([np.broadcast_to(init.scale_from_gamma(g), (L,)) for g in gamma])
    else:
        scale = reps.column("init.scale", np.nan if ic.scale is None else ic.scale)
        if ic.scale is not None:
            coords["init_scale"] = ("replica", scale)
        per_layer = np.repeat(scale[:, None], L, axis=1)
    per_layer = jnp.asarray(per_layer, dtype)
    init_keys = reps.keys(0)
    if ic.kind == "aligned":
        return jax.vmap(lambda k, p: init(k, p[0]))(init_keys, per_layer)
    return jax.vmap(init)(init_keys, per_layer)


def _mode_coords(teacher):
    def add(ds):
        if "mode" not in ds.dims:
            return ds
        k = ds.sizes["mode"]
        return ds.assign_coords(s=("mode", teacher.s[:k]), input_variance=("mode", teacher.mode_input_variance[:k]))

    return add


# ---------------------------------------------------------------------------------------------------------
# Programs


def build(config: Config, observables: list[Observable] | None = None, weights=None) -> Program:
    """The :class:`~._core.Program` of a network config: records ``config.record.observables`` and the user
    ``observables``; ``weights`` (one set ``(W_1, …, W_L)`` or with a leading replica axis) replace ``config.init``."""
    obs_list = resolve(config.record.observables, observables)
    observe = observe_fn(obs_list)
    ens = _ensemble(config, weights)
    dims = {var: d for o in obs_list for var, d in o.dims.items()}
    obs0 = jax.jit(jax.vmap(observe, in_axes=(0, None, 0)))

    def observe_state(state):
        out = to_numpy(obs0(state.weights, ens.problem, ens.params))
        out["finite"] = out["finite"].astype(bool)
        return out

    common = {"config": config, "dims": dims, "coords": ens.coords, "observe": observe_state,
              "dataset": _mode_coords(ens.teacher)}
    if config.dynamics.kind == "flow":
        return flow(config, ens, observe, common)
    return _discrete(config, ens, observe, common)


def _discrete(config, ens: _Ensemble, observe, common) -> Program:
    grid = record_grid(config, ens.unit)
    prog = _discrete_program(config, observe, grid.per_replica)
    size, incs, R = chunk_size(config, grid), grid.increments, ens.unit.shape[0]
    guarded = jax.jit(jax.vmap(_guarded(_keyed_step(config), config.dynamics.divergence_threshold),
                               in_axes=(0, 0, None, 0)))

    def init():
        return DiscreteState(ens.weights0, jnp.zeros(R, jnp.int64), jnp.full(R, -1, jnp.int64),
                             jnp.zeros(R, jnp.int32))

    max_steps = _max_steps_per_call(config, ens.weights0)
    dyn_keys, params = prog.place((ens.dyn_keys, ens.params), ens.weights0)

    def run(state, records):
        # the program consumes (donates) the state it is called with: the chunk's own state stays alive for the
        # caller (checkpoints, an interrupt's partial result), the copy is updated in place call after call
        state = prog.fresh(state)
        records = np.asarray(records)
        call = lambda state, inc, ends: prog(state, dyn_keys, params, inc, ends, ens.problem)
        return RunResult(*run_intervals(call, state, incs[..., records - 1], max(size, len(records)), max_steps))

    def step(state):
        return guarded(state, jax.vmap(step_keys)(ens.dyn_keys), ens.problem, ens.params)

    def summary(state):
        div_step, reason = np.asarray(state.diverged_step), np.asarray(state.divergence_reason)
        return {"diverged": (("replica",), div_step >= 0), "diverged_step": (("replica",), div_step),
                "divergence_reason": (("replica",), reason, {
                    "flag_values": list(range(len(DIVERGENCE_REASONS))),
                    "flag_meanings": " ".join(DIVERGENCE_REASONS)})}

    return Program(name=config.dynamics.kind, grid=grid, R=R, init=init, run=run, step=step, summary=summary,
                   **common)
