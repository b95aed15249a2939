"""The engine core shared by every simulator: record grid, replica table and keys, the chunked run with progress,
interrupt, checkpoint/resume, and the dataset with its provenance.

A simulator (:mod:`.network`, :mod:`.modes`, :mod:`.diagonal`, :mod:`.relu`) builds a :class:`Program` for a
config — its state type, ``init``, ``step``, ``run`` and ``observe`` — and :func:`execute` runs it:

* **record grid** (:func:`record_grid`): ``record.times`` or ``record.n_times`` times (log- or linearly spaced
  up to the end of the run), always with ``t = 0`` as record 0, snapped to each replica's step grid. With one
  time step the times are ``step · unit``; when it differs between replicas (stacked ``lr``) the ``t`` axis is
  nominal and the ``(replica, t)`` coordinates ``step`` and ``t_exact = unit · step`` give the exact times;
* **replicas** (:class:`Replicas`): one row per replica of :meth:`Config.replica_grid` (stacked values and the
  ``member`` index of its random stream), hyper-parameter columns, and per-purpose keys
  ``fold_in(fold_in(PRNGKey(seed), member), purpose)`` (0: initial state, 1: dynamics, 2: the simulator's own):
  a replica's trajectory depends only on the seed, its member index and its hyper-parameters;
* **the run** (:func:`execute`): the records after ``t = 0`` in ``record.chunks`` compiled chunks; progress after
  each (a :class:`ProgressMeter`); on ``KeyboardInterrupt`` :class:`~dlnlab.errors.Interrupted` with the
  dataset of every completed record; checkpoints (:mod:`dlnlab.checkpoint`) of the state after a chunk, from
  which a rerun resumes bitwise;
* **the dataset** (:func:`assemble`): dims ``replica``, ``t`` and the simulator's own, replica coordinates,
  per-replica summary variables (divergence), the resolved config, seed and versions in ``attrs``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from .. import checkpoint as ckpt_file
from ..config import Config, config_to_toml
from ..errors import CheckpointError, ConfigError, Interrupted
from ..runtime import package_versions
from . import budget

# ---------------------------------------------------------------------------------------------------------
# Record times


def total_time(config: Config) -> float:
    """The end of the run: ``dynamics.t_max``, ``steps`` times the step (``dynamics.dt``, else ``lr``), or the last
    of ``record.times``."""
    dy, times = config.dynamics, config.record.times
    if times is not None:
        return float(times[-1])
    return dy.t_max if dy.t_max is not None else dy.steps * (dy.dt if dy.dt is not None else dy.lr)


def nominal_times(config: Config, unit_min: float | None) -> np.ndarray:
    """Nominal record times: ``record.times`` with ``0`` first, or ``0`` then ``n_times − 1`` log- (or linearly)
    spaced times up to the end. The first log-spaced time is ``record.t_min``, by default one step (``unit_min``;
    flow: ``1e-4 t_max``)."""
    r = config.record
    if r.times is not None:
        t = np.asarray(r.times, np.float64)
        return t if t[0] == 0 else np.concatenate([[0.0], t])
    t_max = total_time(config)
    if r.spacing == "linear":
        return np.linspace(0.0, t_max, r.n_times)
    t_min = r.t_min if r.t_min is not None else (unit_min if unit_min is not None else 1e-4 * t_max)
    t_min = min(t_min, t_max)
    if r.n_times == 2:  # np.geomspace(t_min, t_max, 1) would be [t_min]: the run must still reach t_max
        return np.array([0.0, t_max])
    return np.concatenate([[0.0], np.geomspace(t_min, t_max, r.n_times - 1)])


class RecordGrid(NamedTuple):
    """The record times of a run. ``t``: ``(n,)`` (nominal when ``steps`` is per replica); ``steps``: ``(n,)`` or
    ``(R, n)``, record ``i`` at step ``steps[..., i]`` (``None`` for gradient flow), ``steps[..., 0] = 0``;
    ``unit``: ``(R,)`` time per step (``None`` for flow)."""

    t: np.ndarray
    steps: np.ndarray | None
    unit: np.ndarray | None

    @property
    def per_replica(self) -> bool:
        return self.steps is not None and self.steps.ndim == 2

    @property
    def increments(self) -> np.ndarray:
        """Steps between consecutive records, ``(n − 1,)`` or ``(R, n − 1)``."""
        return np.diff(self.steps, axis=-1)

    def coords(self, n: int) -> dict:
        """The step coordinates of the first ``n`` records: ``step``, and ``t_exact`` when per replica."""
        if self.steps is None:
            return {}
        if not self.per_replica:
            return {"step": ("t", self.steps[:n])}
        return {"step": (("replica", "t"), self.steps[:, :n]),
                "t_exact": (("replica", "t"), self.steps[:, :n] * self.unit[:, None])}


def record_grid(config: Config, unit) -> RecordGrid:
    """Record times snapped to the step grid of each replica (``unit``: time per step, ``(R,)``; ``None``: flow,
    no snapping). Record 0 is step 0 whatever the requested times."""
    if unit is None:
        return RecordGrid(nominal_times(config, None), None, None)
    unit = np.asarray(unit, np.float64)
    t_nom = nominal_times(config, float(np.min(unit)))
    if np.all(unit == unit[0]):
        steps = np.unique(np.rint(t_nom / unit[0]).astype(np.int64))
        return RecordGrid(steps * unit[0], steps, unit)
    return RecordGrid(t_nom, np.rint(t_nom[None, :] / unit[:, None]).astype(np.int64), unit)


def chunks(n: int, n_chunks: int) -> list[np.ndarray]:
    """Split ``range(1, n)`` (the records after t = 0) into at most ``n_chunks`` chunks of equal length (the last
    one shorter)."""
    if n < 2:
        return []
    n_chunks = max(1, min(n_chunks, n - 1))
    size = -(-(n - 1) // n_chunks)
    return [np.arange(1 + c * size, min(n, 1 + (c + 1) * size)) for c in range(n_chunks) if 1 + c * size < n]


def chunk_size(config: Config, grid: RecordGrid) -> int:
    """The length of the longest chunk of :func:`chunks` (compiled programs are padded to it)."""
    parts = chunks(len(grid.t), config.record.chunks)
    return max((len(p) for p in parts), default=1)


def pad_increments(incs: np.ndarray, size: int) -> np.ndarray:
    """Pad the last axis of step increments with zero-step intervals to ``size``."""
    return np.concatenate([incs, np.zeros((*incs.shape[:-1], size - incs.shape[-1]), np.int64)], axis=-1)


def interval_calls(incs: np.ndarray, size: int, max_steps: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The calls of a compiled program that run the record intervals of step increments ``incs`` (last axis: the
    intervals; a leading replica axis when per replica): ``(increments padded to size, ends)``, ``ends`` (``(size,)``,
    bool) marking the call's intervals that end a record (the others need not be observed). Each call has at most
    ``size`` intervals and at most ``max_steps`` steps (per replica): an interval longer than ``max_steps`` runs as
    several, of which only the last ends its record. ``None``: no step limit, one call."""
    n = incs.shape[-1]
    if max_steps is None:
        return [(pad_increments(incs, size), np.arange(size) < n)]
    pieces = []  # (increments, ends a record)
    for j in range(n):
        col = incs[..., j]
        k = max(1, -(-int(np.max(col, initial=0)) // max_steps))
        pieces += [(np.clip(col - p * max_steps, 0, max_steps), p == k - 1) for p in range(k)]
    calls, current, steps = [], [], 0
    for inc, end in pieces:
        if current and (len(current) == size or steps + int(np.max(inc, initial=0)) > max_steps):
            calls.append(current)
            current, steps = [], 0
        current.append((inc, end))
        steps += int(np.max(inc, initial=0))
    calls.append(current)
    return [(pad_increments(np.stack([i for i, _ in c], axis=-1), size),
             np.array([e for _, e in c] + [False] * (size - len(c)))) for c in calls]


def run_intervals(call, state, incs: np.ndarray, size: int, max_steps: int | None = None):
    """``(state, records)`` after running the intervals of step increments ``incs`` through ``call(state, padded
    increments, ends) -> (state, observables)`` in the calls of :func:`interval_calls`: the records (NumPy,
    :func:`trim_records`) of the intervals that end one, one per interval of ``incs``."""
    kept = []
    for inc, ends in interval_calls(incs, size, max_steps):
        state, obs = call(state, jnp.asarray(inc), jnp.asarray(ends))
        kept.append({name: a[:, ends] for name, a in trim_records(obs, size).items()})
    return state, {name: np.concatenate([k[name] for k in kept], axis=1) for name in kept[0]}


# ---------------------------------------------------------------------------------------------------------
# Replicas


@dataclass(frozen=True)
class Replicas:
    """The replicas of a config: ``rows`` of :meth:`Config.replica_grid`, their ``members`` and ``seed``."""

    rows: list
    seed: int

    @classmethod
    def of(cls, config: Config) -> Replicas:
        """The replicas of ``config``; a run too large for the memory available is refused first
        (:func:`.budget.check_config`), before this table or any array is built."""
        budget.check_config(config)
        return cls(config.replica_grid(), config.ensemble.seed)

    @property
    def R(self) -> int:
        return len(self.rows)

    @property
    def members(self) -> np.ndarray:
        return np.array([row["member"] for row in self.rows])

    def column(self, key: str, value) -> np.ndarray:
        """The per-replica values of the (possibly stacked) hyper-parameter ``key`` whose config value is ``value``."""
        return np.array([row.get(key, value) for row in self.rows], dtype=np.float64)

    def keys(self, purpose: int):
        """``fold_in(fold_in(PRNGKey(seed), member), purpose)`` per replica, ``(R, 2)``."""
        base = jax.random.PRNGKey(self.seed)
        rkeys = jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.asarray(self.members))
        return jax.vmap(lambda k: jax.random.fold_in(k, purpose))(rkeys)


def time_unit(config: Config, lr: np.ndarray) -> np.ndarray:
    """Time per step per replica: ``dynamics.dt`` if given (SDE, diagonal flow), else ``η``."""
    dt = config.dynamics.dt
    return np.full(lr.shape, dt) if dt is not None else lr


# ---------------------------------------------------------------------------------------------------------
# Programs


class RunResult(NamedTuple):
    """What :attr:`Program.run` returns: the ``state`` after the last record index asked for, and the
    ``observations`` at each of them, ``{var: (R, len(records), …)}`` (NumPy)."""

    state: Any
    observations: dict


@dataclass(frozen=True)
class Program:
    """An ensemble simulation compiled for one config (blackjax-like: pure functions of a named state).

    * ``init() -> State``: the state at step 0 (every replica, leading axis ``R``);
    * ``step(state) -> State``: one step of every replica (``None`` for gradient flow, which has no fixed step);
    * ``run(state, records) -> RunResult(state, observations)``: advance to each record index in ``records``
      (increasing, after the state's record) and observe there: ``{var: (R, len(records), …)}``;
    * ``observe(state) -> {var: (R, …)}``: the recorded variables of a state;
    * ``summary(state) -> {var: (dims, values[, attrs])}``: per-replica variables of the final state.

    ``grid`` gives the record times; ``dims`` the dims of each recorded variable after ``(replica, t)``;
    ``coords`` the replica coordinates; ``dataset(ds)`` adds the simulator's own coordinates; ``name`` labels
    progress; ``attrs`` are added to the dataset's. ``parts``: the chunks of record indices that :func:`execute`
    runs (default :func:`chunks` of ``record.chunks``); ``finished(state)``: whether the run has ended before the
    end of its grid (then the dataset stops at the last chunk run; default: never)."""

    config: Config
    name: str
    grid: RecordGrid
    R: int
    init: Callable[[], Any]
    run: Callable[[Any, np.ndarray], RunResult]
    observe: Callable[[Any], dict]
    step: Callable[[Any], Any] | None
    dims: dict
    coords: dict
    summary: Callable[[Any], dict] = lambda state: {}
    dataset: Callable[[xr.Dataset], xr.Dataset] = lambda ds: ds
    attrs: dict = field(default_factory=dict)
    parts: list | None = None
    finished: Callable[[Any], bool] = lambda state: False


def to_numpy(tree) -> dict:
    return {name: np.asarray(a) for name, a in tree.items()}


def trim_records(obs, n) -> dict:
    """The first ``n`` records of a (padded) chunk's observations, as NumPy (``finite`` as bool)."""
    out = to_numpy(obs)
    return {name: a[:, :n].astype(bool) if name == "finite" else a[:, :n] for name, a in out.items()}


# ---------------------------------------------------------------------------------------------------------
# Progress


class ProgressMeter(Protocol):
    """What :func:`execute` reports progress to (diffrax's ``progress_meter`` in spirit): ``start(total,
    description)`` once, ``update(n)`` after ``n`` more chunks, ``close()`` at the end. A ``KeyboardInterrupt``
    raised by ``update`` interrupts the run as Ctrl-C does."""

    def start(self, total: int, description: str) -> None: ...

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class TqdmProgress:
    """A tqdm progress bar on stderr (``enabled=None``: when stderr is a terminal)."""

    def __init__(self, enabled: bool | None = None):
        self.enabled, self.bar = enabled, None

    def start(self, total: int, description: str) -> None:
        from tqdm.auto import tqdm

        enabled = sys.stderr.isatty() if self.enabled is None else self.enabled
        self.bar = tqdm(total=total, desc=description, disable=not enabled, unit="chunk", leave=False)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def progress_meter(progress) -> ProgressMeter:
    """``progress``: ``True``, ``False``, ``None`` (a bar when stderr is a terminal) or a :class:`ProgressMeter`."""
    if progress is None or isinstance(progress, bool):
        return TqdmProgress(progress)
    if all(callable(getattr(progress, m, None)) for m in ("start", "update", "close")):
        return progress
    raise ConfigError("progress", progress, "true, false, None or an object with start(total, description), "
                                            "update(n) and close()")


# ---------------------------------------------------------------------------------------------------------
# Checkpoints


class _Checkpointer:
    """Writes the state after a chunk and the records so far to ``path``, at most every ``every`` seconds (a
    write that fails with an ``OSError`` — disk full, read-only — is warned about and retried at the next one)."""

    def __init__(self, path, every: float, run_hash: str):
        if not (every >= 0 and math.isfinite(every)):
            raise ConfigError("checkpoint_every", every, "a finite number of seconds >= 0")
        self.path, self.every, self.hash = Path(path), float(every), run_hash
        self.last, self.done = time.monotonic(), 0

    def read(self):
        resume = ckpt_file.read(self.path, self.hash)
        if resume is not None:
            self.done = resume["chunks_done"]
        return resume

    def maybe_write(self, done: int, state, pieces: list, force: bool = False) -> None:
        if done <= self.done or not (force or time.monotonic() - self.last >= self.every):
            return
        records = {name: np.concatenate([p[name] for p in pieces], axis=1) for name in pieces[0]}
        try:
            ckpt_file.write(self.path, self.hash, done, [np.asarray(x) for x in jax.tree_util.tree_leaves(state)],
                            records)
        except OSError as exc:  # a full or read-only disk must not stop the computation: try again later
            self.last = time.monotonic()
            if force:
                raise
            warnings.warn(f"could not write the checkpoint {self.path} ({exc.strerror or exc}); the run goes on "
                          "and tries again at the next checkpoint", stacklevel=3)
            return
        self.last, self.done = time.monotonic(), done


def _resume(path, init, resume, parts, R):
    """``(state, pieces, first chunk)``: from ``init``, or from ``resume`` (a checkpoint) after checking that its
    state has the structure, shapes and dtypes of ``init``."""
    if resume is None:
        return init, [], 0
    leaves, treedef = jax.tree_util.tree_flatten(init)
    saved, done = resume["state"], resume["chunks_done"]
    n_rec = sum(len(idx) for idx in parts[:done])
    ok = (0 < done <= len(parts) and len(saved) == len(leaves)
          and all(np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
                  for a, b in zip(saved, leaves))
          and all(a.shape[:2] == (R, n_rec) for a in resume["records"].values()))
    if not ok:
        raise CheckpointError(path, "its arrays do not fit this run (written by another version of dlnlab?); "
                                    "delete it to start afresh")
    state = [jnp.asarray(a) if isinstance(b, jax.Array) else np.array(a) for a, b in zip(saved, leaves)]
    return jax.tree_util.tree_unflatten(treedef, state), [resume["records"]], done


# ---------------------------------------------------------------------------------------------------------
# Running a program


#: Environment variable naming a directory where :func:`execute` keeps every complete run under its run hash
#: (:func:`dlnlab.checkpoint.run_hash`: the resolved config, the recorded variables and their dims, the explicit
#: initial weights — the identity that resuming from a checkpoint trusts) and from which it returns a run with the
#: same hash instead of running it again. Opt-in (:func:`keep_runs`): ``dlnlab reproduce`` keeps an unfinished
#: experiment's runs so that a rerun resumes it mid-way, the power tests share the arms' simulations. An observable
#: is known by its name and dims only, so a cache must not outlive a change of the code (``reproduce`` names its
#: caches by :func:`dlnlab.runtime.code_fingerprint`).
RUN_CACHE_ENV = "DLNLAB_RUN_CACHE"


@contextlib.contextmanager
def keep_runs(path: Path | str | None, replace: bool = True):
    """Within the block :func:`execute` keeps every complete run in ``path`` and returns a kept one instead of
    running it again (:data:`RUN_CACHE_ENV`, inherited by the processes started in the block: sweep workers).
    ``None``, or ``replace=False`` while a cache is set already, changes nothing; the setting before the block is
    restored after it."""
    if path is None or (not replace and os.environ.get(RUN_CACHE_ENV)):
        yield
        return
    before = os.environ.get(RUN_CACHE_ENV)
    os.environ[RUN_CACHE_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(RUN_CACHE_ENV, None)
        else:
            os.environ[RUN_CACHE_ENV] = before


def _cache_path(program: Program, weights) -> Path | None:
    root = os.environ.get(RUN_CACHE_ENV)
    if not root:
        return None
    key = ckpt_file.run_hash(config_to_toml(program.config), program.dims, weights)
    return Path(root) / f"{program.name.replace('/', '-')}-{key[:32]}.nc"


def _store(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to the run cache atomically (a concurrent writer of the same run writes the same data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)


def execute(program: Program, *, progress=None, checkpoint=None, checkpoint_every: float = 60.0,
            weights=None) -> xr.Dataset:
    """Run ``program`` through its record grid and return the dataset (see :func:`dlnlab.simulate`).

    ``weights``: the explicit initial state the program was built with (part of the checkpoint's run hash).
    With :data:`RUN_CACHE_ENV` set, a run kept there is returned instead of run (and a complete run is kept)."""
    cached = _cache_path(program, weights)
    if cached is not None and cached.exists():
        return xr.load_dataset(cached, engine="h5netcdf")
    ds = _execute(program, progress, checkpoint, checkpoint_every, weights)
    if cached is not None:
        _store(ds, cached)
    return ds


def _execute(program: Program, progress, checkpoint, checkpoint_every: float, weights) -> xr.Dataset:
    wall0 = time.perf_counter()
    meter = progress_meter(progress)
    ckpt = resume = None
    if checkpoint is not None:
        ckpt = _Checkpointer(checkpoint, checkpoint_every,
                             ckpt_file.run_hash(config_to_toml(program.config), program.dims, weights))
        resume = ckpt.read()
    state = program.init()
    obs0 = {name: a[:, None] for name, a in program.observe(state).items()}
    parts = program.parts if program.parts is not None else chunks(len(program.grid.t), program.config.record.chunks)
    _check_memory(program, state, obs0, parts)
    state, pieces, start = _resume(checkpoint, state, resume, parts, program.R)
    committed = (start, state, len(pieces))  # chunks done, their state and pieces, once progress is reported
    meter.start(len(parts), program.name)
    try:
        if start:
            meter.update(start)
        for c in range(start, len(parts)):
            if program.finished(state):
                break
            state, obs = program.run(state, parts[c])
            pieces.append(obs)
            meter.update(1)
            committed = (c + 1, state, len(pieces))
            if ckpt is not None:
                ckpt.maybe_write(c + 1, state, pieces)
    except KeyboardInterrupt:
        if not pieces:
            raise
        done, saved, n_pieces = committed
        if ckpt is not None and n_pieces:  # so that a rerun resumes from here
            try:
                ckpt.maybe_write(done, saved, pieces[:n_pieces], force=True)
            except OSError as exc:
                warnings.warn(f"could not write the checkpoint {ckpt.path}: {exc}", stacklevel=2)
        raise Interrupted(assemble(program, obs0, pieces, state, wall0, complete=False)) from None
    finally:
        meter.close()
    return assemble(program, obs0, pieces, state, wall0, complete=True)


def _check_memory(program: Program, state, obs0: dict, parts: list) -> None:
    """Refuse the run, before its first step, when its records and buffers (sized from the initial state and
    its first observation) do not fit in the memory available (:mod:`.budget`)."""
    leaves = jax.tree_util.tree_leaves(state)
    n = 1 + sum(len(p) for p in parts)
    fp = budget.measured(program.config, program.R, n, max((len(p) for p in parts), default=0), leaves, obs0)
    fp.check(allocated=int(fp.state * fp.replicas + fp.record * fp.replicas))


def assemble(program: Program, obs0: dict, pieces: list, state, wall0: float, complete: bool) -> xr.Dataset:
    """Records -> ``xarray.Dataset`` with labelled dims, replica coordinates and provenance attrs."""
    n = 1 + sum(next(iter(p.values())).shape[1] for p in pieces)
    coords = {"replica": np.arange(program.R), "t": np.asarray(program.grid.t[:n], np.float64), **program.coords,
              **program.grid.coords(n)}
    data_vars = {}
    for name, first in obs0.items():
        arr = np.concatenate([first, *[p[name] for p in pieces]], axis=1)
        dims = ("replica", "t", *program.dims[name])
        data_vars[name] = (dims, arr)
        for d, size in zip(dims[2:], arr.shape[2:]):
            coords.setdefault(d, np.arange(1, size + 1))
    data_vars.update(program.summary(state))
    ds = program.dataset(xr.Dataset(data_vars, coords=coords))
    ds.attrs.update(provenance(program.config))
    ds.attrs.update(program.attrs)
    diverged = ds["diverged"] if "diverged" in ds else ~ds["finite"].isel(t=-1)
    ds.attrs.update(wall_time_s=time.perf_counter() - wall0, n_replicas=program.R, complete=int(complete),
                    n_diverged=int(diverged.sum()))
    return ds


def provenance(config: Config) -> dict:
    """Config (TOML), seed, versions, device and time, as ``attrs`` (strings and numbers only)."""
    return {
        "config": config_to_toml(config),
        "model": config.model,
        "seed": config.ensemble.seed,
        "dynamics": config.dynamics.kind,
        "versions": json.dumps(package_versions(), sort_keys=True),
        "backend": jax.default_backend(),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "precision": config.dynamics.precision,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "conventions": "loss 1/2|Wx-y|^2; t = lr*step (sde: dt*step); Ito SDE; T = lr/(2B); m_a = u_a^T W v_a",
    }
