"""Sweeps over hyper-parameter grids, on a local process pool, a Dask cluster or SLURM (submitit).

``sweep(config, grid, executor=...)`` expands a grid of config values into *runs*, executes them through a
``concurrent.futures``-style executor and collects one dataset per run plus one parquet table.

Terms
-----
* **grid point** — one combination of grid values (what a phase diagram plots). One row of the table.
* **run** — one resolved :class:`~dlnlab.config.Config`, i.e. one :func:`~dlnlab.dynamics.simulate` call and
  one dataset. Grid axes that keep array shapes — the stackable hyper-parameters ``dynamics.lr``,
  ``teacher.label_noise``, ``init.scale``, ``init.gamma`` — are *vectorised*: their values become a list
  stacked on the replica axis of one compiled run, so several grid points share a run. ``dynamics.lr`` is
  vectorised only when the base config gives ``dynamics.t_max`` (stacked step sizes need a common time
  axis); with ``dynamics.steps`` each learning rate is its own run. Every other axis (width, depth, batch
  size, dynamics kind, …) makes separate runs. A run's id is the first 16 hex digits of the SHA-256 of the
  canonical JSON of its validated config (``Config.to_dict()``, sorted keys): the same resolved config
  always has the same id, whatever grid produced it.
* **job** — what is submitted to the executor: one run, or — for an ``ensemble.seed`` axis — the runs that
  differ only in their seed, executed one after the other by one worker (same shapes: compiled once).

A grid is a mapping ``key -> values`` (or ``["key=v1,v2", …]``); a list of grids is the union of their products
(ranges that depend on another axis). A grid key replaces its exclusive alternative in the base config
(``init.scale`` ↔ ``init.gamma``, ``dynamics.t_max`` ↔ ``dynamics.steps``).

Function sweeps. ``sweep(fn, grid, params=…, summary=…)`` sweeps any module-level ``fn(**kwargs) ->
xarray.Dataset`` (a simulator that takes no Config, e.g. a wrapper of ``dlnlab.diagonal.simulate_diagonal``)
over its keyword arguments with the same executors, layout and guarantees: one run and one job per grid point,
id = hash of ``module:qualname`` and the keyword arguments, table rows from ``summary(ds)``.

Seeds. ``ensemble.replicas`` is the vectorised seed axis: its members are independent streams inside one
compiled run. A grid over ``ensemble.seed`` keeps one run per seed, so that each is bitwise the run that
``dlnlab train --set ensemble.seed=S`` gives; the seeds of one grid point are grouped into one job. (The
engine draws every replica's stream from one base seed, so distinct base seeds cannot share one compiled
program.)

Output directory ``OUT``::

    OUT/manifest.json            the plan: base config, grid, one row per run (id, config, point, job)
    OUT/runs/ID/                 a *complete* run (renamed into place when finished):
        dataset.zarr             the simulate() dataset (dlnlab.load)
        plateaus.parquet         its saddle-to-saddle plateau table (dlnlab.analysis.plateau_table)
        config.toml              the resolved config
        run.json                 completion marker: id, attempt token, host, pid, timings, summary rows
    OUT/failed/ID.json           a run that raised: the error and its traceback (removed once it succeeds)
    OUT/attempts/ID/TOKEN.json   one record per attempt (host, pid, start, end, outcome)
    OUT/results.parquet          one row per grid point (see below)
    OUT/.jax_cache/              JAX persistent compilation cache shared by the workers (compile_cache)

Fault tolerance. A run is simulated into ``OUT/.tmp/ID.TOKEN`` and renamed to ``OUT/runs/ID`` only when its
dataset, config and marker are written, so a killed worker never leaves a half run under the final name, and
``runs/ID`` exists at most once: a second attempt that finishes later (a retried job whose first attempt was
not dead after all) loses the rename and discards its copy (outcome ``discarded``). A job whose worker dies is
retried (Dask reschedules it; the local pool is restarted; other executors are resubmitted by the driver,
``retries`` times); a run that raises is recorded in ``OUT/failed`` and the sweep goes on. Rerunning a sweep
into the same ``OUT`` skips every run whose id is already complete, and retries failed ones.

The results table (``results.parquet``, also ``SweepResult.table``), one row per grid point — a run with
stacked values has one row per stacked combination, each summarising that combination's replicas:
``run_id``, ``status`` (done | failed | started | pending), ``error``, every config field as a ``section.key``
column (the row's own value for stacked keys; list-valued fields as JSON text), the summaries of
:func:`summarize`, and ``wall_time_s`` (of the run). A function sweep has its keyword arguments as columns
and ``summary``'s rows. Load it with ``pandas.read_parquet`` or ``polars.read_parquet``.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import shutil
import socket
import sys
import time
import tomllib
import traceback
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from .config import SECTIONS, STACKABLE, Config, ConfigError, config_to_toml, load_config

EXECUTORS = ("local", "dask", "slurm", "serial")
SEED_KEY = "ensemble.seed"
#: Summary defaults: the stationary moments use records with ``t >= (1 - TAIL) * t_final``.
TAIL = 0.5

# ---------------------------------------------------------------------------------------------------------
# Grid parsing and the plan


def _known_keys() -> dict[str, set[str]]:
    return {sec: {f.name for f in dataclasses.fields(cls)} for sec, cls in SECTIONS.items()}


def _check_key(key: Any, values: Any) -> str:
    if not isinstance(key, str) or key.count(".") != 1 or not all(key.split(".")):
        raise ConfigError("--grid", key, "a dotted config key section.key, e.g. dynamics.lr")
    sec, name = key.split(".")
    known = _known_keys()
    if sec not in known or name not in known[sec]:
        allowed = ", ".join(f"{s}.{k}" for s in known for k in sorted(known[s]))
        raise ConfigError(key, values, f"a config key among {allowed}")
    return key


def _parse_value(raw: str):
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _split_top(raw: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in raw:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["dynamics.lr=0.01,0.02", "network.width=10,20"]`` -> ``{"dynamics.lr": [0.01, 0.02], ...}``.

    Each value is read as TOML (``[10, 20]`` is a list, bare words are strings)."""
    grid: dict[str, list] = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError("--grid", item, "key=v1,v2,... with a dotted key, e.g. dynamics.lr=0.01,0.02")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key in grid:
            raise ConfigError(key, raw, "each grid key given once")
        if not raw.strip():
            raise ConfigError(key, raw, "at least one value, e.g. dynamics.lr=0.01,0.02")
        parts = _split_top(raw)
        if any(not p.strip() for p in parts):
            raise ConfigError(key, raw, "comma-separated values, none empty")
        grid[key] = [_parse_value(p) for p in parts]
    return check_grid(grid)


def check_grid(grid: Mapping[str, Sequence] | Sequence[str]) -> dict[str, list]:
    """Validate a grid (a mapping ``key -> values`` or a list of ``key=v1,v2`` strings); return it as a dict."""
    if isinstance(grid, (list, tuple)) and all(isinstance(g, str) for g in grid):
        return parse_grid(grid)
    if not isinstance(grid, Mapping):
        raise ConfigError("grid", grid, "a mapping of dotted config keys to lists of values")
    out = {}
    for key, values in grid.items():
        _check_key(key, values)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigError(key, values, "a non-empty list of values")
        values = list(values)
        canon = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(canon)) != len(canon):
            raise ConfigError(key, values, "distinct values")
        out[key] = values
    return out


def run_id(config: Config) -> str:
    """Stable id of a resolved config: SHA-256 of its canonical JSON, first 16 hex digits."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _set(d: dict, key: str, value) -> None:
    sec, name = key.split(".")
    d.setdefault(sec, {})[name] = value


def _get(d: dict, key: str, default=None):
    sec, name = key.split(".")
    return d.get(sec, {}).get(name, default)


@dataclasses.dataclass
class Run:
    id: str
    config: dict  # validated, resolved (Config.to_dict())
    point: dict  # values of the job axes (and ensemble.seed) that define this run
    stacked: dict  # vectorised grid axes: key -> list of values
    job: int


@dataclasses.dataclass
class Plan:
    base: dict  # the base config (config sweeps) or the base keyword arguments (function sweeps)
    grid: Any  # a grid, or a list of grids (their union)
    vectorised: list  # grid axes stacked on the replica axis
    job_axes: list  # grid axes that make separate runs
    runs: list  # list[Run]
    jobs: list  # list[list[str]]: run ids per job
    function: str | None = None  # "module:qualname" of a function sweep; None for config sweeps

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["format"] = "dlnlab-sweep-manifest/1"
        return json.dumps(d, indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        d = json.loads(text)
        d.pop("format", None)
        d["runs"] = [Run(**r) for r in d["runs"]]
        return cls(**d)

    def run(self, rid: str) -> Run:
        return next(r for r in self.runs if r.id == rid)


def _base_dict(config) -> dict:
    if isinstance(config, Config):
        return config.to_dict()
    if isinstance(config, (str, Path)):
        return load_config(config).to_dict()
    if isinstance(config, Mapping):
        return Config.from_dict(copy.deepcopy(dict(config))).to_dict()
    raise ConfigError("config", config, "a Config, a dict or a path to a TOML file")


def _is_grid_list(grid) -> bool:
    return isinstance(grid, (list, tuple)) and len(grid) > 0 and all(isinstance(g, Mapping) for g in grid)


def plan_sweep(config, grid) -> Plan:
    """Expand ``grid`` over ``config`` into runs and jobs (nothing is executed). Every run is validated:
    an invalid combination raises :class:`ConfigError` naming the field.

    ``grid`` may also be a list of grids: the union of their products (e.g. a range of ``init.scale`` that
    depends on ``network.depth``: ``[{"network.depth": [2], "init.scale": [...]}, {"network.depth": [3], …}]``)."""
    if _is_grid_list(grid):
        plans = [plan_sweep(config, g) for g in grid]
        runs, jobs, seen = [], [], set()
        for pl in plans:
            for job in pl.jobs:
                new = [rid for rid in job if rid not in seen]
                if not new:
                    continue
                seen.update(new)
                for rid in new:
                    runs.append(dataclasses.replace(pl.run(rid), job=len(jobs)))
                jobs.append(new)
        vec = list(dict.fromkeys(k for pl in plans for k in pl.vectorised))
        axes = list(dict.fromkeys(k for pl in plans for k in pl.job_axes))
        return Plan(_base_dict(config), [pl.grid for pl in plans], vec, axes, runs, jobs)
    base = _base_dict(config)
    grid = check_grid(grid)
    # a grid key replaces its exclusive alternative in the base config (the grid wins)
    for key, other in (("init.scale", "init.gamma"), ("init.gamma", "init.scale"),
                       ("dynamics.t_max", "dynamics.steps"), ("dynamics.steps", "dynamics.t_max")):
        if key in grid and other not in grid:
            sec, name = other.split(".")
            base.get(sec, {}).pop(name, None)
    lr_vectorisable = "steps" not in base.get("dynamics", {}) and "dynamics.steps" not in grid
    vectorised = [k for k, vs in grid.items()
                  if k in STACKABLE and len(vs) > 1 and all(_is_number(v) for v in vs)
                  and (k != "dynamics.lr" or lr_vectorisable)]
    job_axes = [k for k in grid if k not in vectorised]
    runs, jobs, seen = [], [], {}
    group_of: dict[str, int] = {}
    for combo in itertools.product(*(grid[k] for k in job_axes)):
        point = dict(zip(job_axes, combo))
        d = copy.deepcopy(base)
        for k, v in point.items():
            _set(d, k, v)
        for k in vectorised:
            _set(d, k, list(grid[k]))
        try:
            cfg = Config.from_dict(d)
        except ConfigError as exc:
            where = ", ".join(f"{k}={v!r}" for k, v in point.items())
            raise ConfigError(exc.field, exc.value, exc.allowed + (f" (grid point {where})" if where else "")) from None
        rid = run_id(cfg)
        if rid in seen:  # two grid points resolve to the same config (e.g. a value equal to a default)
            continue
        seen[rid] = True
        group = json.dumps({k: v for k, v in point.items() if k != SEED_KEY}, sort_keys=True)
        if group not in group_of:
            group_of[group] = len(jobs)
            jobs.append([])
        job = group_of[group]
        jobs[job].append(rid)
        runs.append(Run(rid, cfg.to_dict(), point, {k: list(grid[k]) for k in vectorised}, job))
    return Plan(base, grid, vectorised, job_axes, runs, jobs)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def _canonical(key: str, v):
    try:
        return json.loads(json.dumps(v, default=_jsonable, allow_nan=False))
    except (TypeError, ValueError):
        raise ConfigError(key, v, "a JSON value (number, string, bool, list or table of these; finite)") from None


def function_name(fn) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def plan_function_sweep(fn, params: Mapping | None, grid) -> Plan:
    """Plan a sweep of ``fn(**params) -> xarray.Dataset`` over ``grid`` (keyword names -> values). Each grid
    point is one run and one job; its id hashes the function's name and the point's keyword arguments (not the
    function's code: change a parameter, e.g. a ``version`` keyword, to recompute after editing it)."""
    import inspect

    if not callable(fn) or not hasattr(fn, "__qualname__"):
        raise ConfigError("function", fn, "a function fn(**params) -> xarray.Dataset")
    name = function_name(fn)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    open_kwargs = sig is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    known = set() if sig is None else {k for k, p in sig.parameters.items()
                                       if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    base = {k: _canonical(k, v) for k, v in dict(params or {}).items()}
    if isinstance(grid, (list, tuple)) and all(isinstance(g, str) for g in grid):
        items = {}
        for item in grid:
            if not isinstance(item, str) or "=" not in item or not item.split("=", 1)[0].strip():
                raise ConfigError("--grid", item, "name=v1,v2,... with a keyword of the function")
            key, raw = item.split("=", 1)
            items[key.strip()] = [_parse_value(x) for x in _split_top(raw)]
        grid = items
    if not isinstance(grid, Mapping):
        raise ConfigError("grid", grid, "a mapping of keyword names to lists of values")
    grid = {k: list(vs) if isinstance(vs, (list, tuple, np.ndarray)) else vs for k, vs in grid.items()}
    for key, values in list(grid.items()) + [(k, None) for k in base]:
        if not open_kwargs and key not in known:
            raise ConfigError(key, values, f"a keyword of {name}: " + ", ".join(sorted(known)))
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, list) or not values:
            raise ConfigError(key, values, "a non-empty list of values")
        canon = [json.dumps(_canonical(key, v), sort_keys=True) for v in values]
        if len(set(canon)) != len(canon):
            raise ConfigError(key, values, "distinct values")
    grid = {k: [_canonical(k, v) for v in vs] for k, vs in grid.items()}
    runs, jobs = [], []
    for combo in itertools.product(*grid.values()):
        point = dict(zip(grid, combo))
        kwargs = {**base, **point}
        if sig is not None:
            try:
                sig.bind(**kwargs)
            except TypeError as exc:
                raise ConfigError("params", kwargs, f"the keyword arguments of {name} ({exc})") from None
        spec = {"function": name, "params": kwargs}
        rid = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
        if any(r.id == rid for r in runs):
            continue
        runs.append(Run(rid, spec, point, {}, len(jobs)))
        jobs.append([rid])
    return Plan(base, grid, [], list(grid), runs, jobs, function=name)


# ---------------------------------------------------------------------------------------------------------
# Summaries (computed on the worker, from the dataset in memory)


def _first_time(mask: np.ndarray, times: np.ndarray) -> np.ndarray:
    """First time along the last axis where ``mask`` holds (nan if never). ``times`` broadcasts to mask."""
    times = np.broadcast_to(times, mask.shape)
    hit = mask.any(axis=-1)
    idx = mask.argmax(axis=-1)
    first = np.take_along_axis(times, idx[..., None], axis=-1)[..., 0]
    return np.where(hit, first, np.nan)


def _nanmedian(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmedian(x)) if np.isfinite(x).any() else math.nan


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def plateaus(ds):
    """The saddle-to-saddle plateau table of a run (:func:`dlnlab.analysis.saddles.plateau_table`, one row per
    replica and plateau) and ``None``, or ``None`` and the reason it could not be computed."""
    try:
        from .analysis.saddles import plateau_table

        return plateau_table(ds), None
    except Exception as exc:  # noqa: BLE001 - an optional summary: the run itself is fine
        return None, f"{type(exc).__name__}: {exc}"


def summarize(ds, config: Config, *, tail: float = TAIL, rank_threshold: float | None = None,
              plateau_table=None) -> list[dict]:
    """Scalar summaries of a run, one dict per stacked combination (the rows of the sweep table).

    Each row holds the stacked values (``dynamics.lr`` …) and, over that combination's replicas:

    * ``n_replicas``, ``n_diverged`` (replicas flagged ``diverged``, or non-finite at the end); the other
      summaries use the non-diverged replicas only;
    * ``t_final`` and ``loss_final_mean`` / ``loss_final_median`` (population loss at the last record);
    * ``learned_rank_mean`` / ``learned_rank_median``: singular values of W at the last record at least
      ``rank_threshold`` (default half the smallest non-zero teacher singular value);
    * per teacher mode α = 1..k with s_α > 0: ``escape_time_α`` — median over replicas of the first record
      time at which the mode strength m_α reaches s_α/2 (singular value σ_α of W, sorted, if mode strengths
      are not recorded; a replica that never gets there counts as +∞, nan if the median is), ``escaped_α`` —
      the fraction of replicas that got there, and ``plateau_α`` — median over replicas of the time from
      the previous escape (of any mode; 0 for the first) to mode α's escape: the plateau before its jump;
    * ``m_mean_α``, ``m_median_α``, ``m_var_α``: stationary moments of the mode strength m_α pooled over
      the replicas and the records with ``t >= (1 − tail) t_final``;
    * given ``plateau_table`` (from :func:`plateaus`): ``n_jumps_median`` — median number of jumps of the
      rank staircase — and ``jump_time_k`` (k = 1, 2, …) — median over replicas of the half-time of the k-th
      jump (a replica with fewer jumps counts as +∞; nan if the median is).

    Times are the replica's exact times (``t_exact`` when step sizes are stacked)."""
    grid = config.replica_grid()
    stacked = config.stacked()
    names = list(stacked)
    R = ds.sizes["replica"]
    if len(grid) != R:
        raise ValueError(f"dataset has {R} replicas, config describes {len(grid)}")
    if "diverged" in ds:
        diverged = np.asarray(ds["diverged"].values, bool)
    elif "finite" in ds:
        diverged = ~np.asarray(ds["finite"].isel(t=-1).values, bool)
    else:
        diverged = np.zeros(R, bool)
    t_nom = np.asarray(ds["t"].values, np.float64)
    times = np.asarray(ds["t_exact"].values, np.float64) if "t_exact" in ds.coords else np.broadcast_to(t_nom, (R, len(t_nom)))
    s_all = np.asarray(ds["s"].values, np.float64) if "s" in ds.coords else None
    if s_all is None:
        from .teacher import Teacher

        s_all = np.asarray(Teacher.from_config(config).s, np.float64)
    s_pos = s_all[s_all > 0]
    thr = rank_threshold if rank_threshold is not None else (0.5 * float(s_pos.min()) if len(s_pos) else 0.0)
    modes = [a for a in range(len(s_all)) if s_all[a] > 0]
    m = np.asarray(ds["mode_strength"].values, np.float64) if "mode_strength" in ds else None  # (R, T, mode)
    sv = np.asarray(ds["singular_values"].values, np.float64) if "singular_values" in ds else None  # (R, T, sv)
    loss = np.asarray(ds["loss"].values, np.float64) if "loss" in ds else None
    tail_mask = t_nom >= (1.0 - tail) * t_nom[-1]

    rows = []
    for combo in itertools.product(*(stacked[n] for n in names)):
        sel = np.array([all(row[n] == v for n, v in zip(names, combo)) for row in grid])
        ok = sel & ~diverged
        row: dict[str, Any] = dict(zip(names, combo))
        row.update(n_replicas=int(sel.sum()), n_diverged=int((sel & diverged).sum()),
                   t_final=float(np.max(times[sel][:, -1])))
        row["loss_final_mean"] = _nanmean(loss[ok, -1]) if loss is not None and ok.any() else math.nan
        row["loss_final_median"] = _nanmedian(loss[ok, -1]) if loss is not None and ok.any() else math.nan
        if sv is not None and ok.any():
            ranks = (sv[ok, -1, :] >= thr).sum(axis=-1) if thr > 0 else (sv[ok, -1, :] > 0).sum(axis=-1)
            row["learned_rank_mean"], row["learned_rank_median"] = float(ranks.mean()), float(np.median(ranks))
        else:
            row["learned_rank_mean"] = row["learned_rank_median"] = math.nan
        esc_all = {}
        for j, a in enumerate(modes, start=1):
            if m is not None and a < m.shape[-1]:
                track = m[ok][:, :, a]
            elif sv is not None and j - 1 < sv.shape[-1]:
                track = np.sort(sv[ok], axis=-1)[:, :, ::-1][:, :, j - 1]
            else:
                track = None
            if track is not None and ok.any():
                esc = _first_time(track >= 0.5 * s_all[a], times[ok])
                esc_all[j] = np.where(np.isnan(esc), np.inf, esc)
        # per replica, the escape event just before each mode's escape (0 for the first): its plateau
        stack = np.stack(list(esc_all.values())) if esc_all else np.zeros((0, int(ok.sum())))
        for j, a in enumerate(modes, start=1):
            if j not in esc_all:
                row[f"escape_time_{j}"] = row[f"escaped_{j}"] = row[f"plateau_{j}"] = math.nan
            else:
                e = esc_all[j]
                med = float(np.median(e))
                row[f"escape_time_{j}"] = med if np.isfinite(med) else math.nan
                row[f"escaped_{j}"] = float(np.mean(np.isfinite(e)))
                before = np.where(stack < e[None, :], stack, -np.inf).max(axis=0, initial=-np.inf)
                pl = np.where(np.isfinite(e), e - np.maximum(before, 0.0), np.inf)
                pmed = float(np.median(pl))
                row[f"plateau_{j}"] = pmed if np.isfinite(pmed) else math.nan
        if plateau_table is not None:
            row.update(_jump_summary(plateau_table, np.flatnonzero(ok)))
        for j, a in enumerate(modes, start=1):
            if m is not None and a < m.shape[-1] and ok.any():
                x = m[ok][:, tail_mask, a].ravel()
                row[f"m_mean_{j}"], row[f"m_median_{j}"], row[f"m_var_{j}"] = (
                    float(np.mean(x)), float(np.median(x)), float(np.var(x, ddof=1)) if x.size > 1 else math.nan)
            else:
                row[f"m_mean_{j}"] = row[f"m_median_{j}"] = row[f"m_var_{j}"] = math.nan
        rows.append(row)
    return rows


def _jump_summary(table, replicas) -> dict:
    if len(replicas) == 0:
        return {"n_jumps_median": math.nan}
    sub = table[table["replica"].isin(replicas)]
    jumps = {r: np.sort(np.asarray(g["t_end"], np.float64))[:-1] for r, g in sub.groupby("replica")}
    counts = [len(jumps.get(r, [])) for r in replicas]
    out = {"n_jumps_median": float(np.median(counts))}
    for k in range(1, max(counts, default=0) + 1):
        tk = [jumps[r][k - 1] if len(jumps.get(r, [])) >= k else np.inf for r in replicas]
        med = float(np.median(tk))
        out[f"jump_time_{k}"] = med if np.isfinite(med) else math.nan
    return out


# ---------------------------------------------------------------------------------------------------------
# Worker side: one job = a list of runs; each run is executed at most once to completion


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


_CACHE_SET: str | None = None  # the compilation cache this process was pointed at by _setup_worker


def _setup_worker(options: dict) -> None:
    """Point JAX's persistent compilation cache at the sweep's cache (unless the process already has one: a
    long-lived Dask worker keeps the cache of the first sweep it served), so that workers compile each distinct
    program once between them."""
    cache = options.get("compile_cache")
    if not cache:
        return
    import jax

    global _CACHE_SET
    current = jax.config.jax_compilation_cache_dir
    if current:
        if current == _CACHE_SET:
            Path(current).mkdir(parents=True, exist_ok=True)  # ours; it may have been deleted since
    else:
        Path(cache).mkdir(parents=True, exist_ok=True)
        _CACHE_SET = str(cache)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def is_done(out: Path, rid: str) -> bool:
    return (Path(out) / "runs" / rid / "run.json").is_file()


def summarize_dataset(ds) -> list[dict]:
    """Generic summary of a function sweep's dataset (one row): ``n_replicas``, ``n_diverged`` (the
    ``diverged`` variable, or ``attrs['n_diverged']``), ``t_final`` and ``loss_final_mean``/``_median`` over
    the non-diverged replicas when ``loss`` is recorded on ``(replica, t)``."""
    row: dict[str, Any] = {}
    R = ds.sizes.get("replica")
    row["n_replicas"] = int(R) if R is not None else math.nan
    div = None
    if "diverged" in ds and ds["diverged"].dims == ("replica",):
        div = np.asarray(ds["diverged"].values, bool)
        row["n_diverged"] = int(div.sum())
    else:
        row["n_diverged"] = int(ds.attrs["n_diverged"]) if "n_diverged" in ds.attrs else math.nan
    if "t" in ds.coords and ds.sizes.get("t"):
        row["t_final"] = float(ds["t"].values[-1])
    if "loss" in ds and set(ds["loss"].dims) == {"replica", "t"}:
        last = np.asarray(ds["loss"].transpose("replica", "t").values[:, -1], np.float64)
        ok = ~div if div is not None else np.ones(last.shape, bool)
        row["loss_final_mean"] = _nanmean(last[ok]) if ok.any() else math.nan
        row["loss_final_median"] = _nanmedian(last[ok]) if ok.any() else math.nan
    return [row]


def _simulate_config(spec: dict, options: dict):
    """A config run: (dataset, summary rows, extra files {name: writer}, marker fields)."""
    from .dynamics import simulate

    cfg = Config.from_dict(copy.deepcopy(spec["config"]))
    ds = simulate(cfg, progress=False)
    table, plateau_error = plateaus(ds)
    rows = summarize(ds, cfg, tail=options.get("tail", TAIL), rank_threshold=options.get("rank_threshold"),
                     plateau_table=table)
    files = {"config.toml": lambda p: p.write_text(config_to_toml(cfg))}
    if table is not None:
        files["plateaus.parquet"] = lambda p: table.to_parquet(p, index=False)
    return ds, rows, files, {"plateau_table_error": plateau_error}


def _simulate_function(spec: dict, options: dict):
    """A function run: ``fn(**params)``; rows from ``summary(ds)`` (a dict or a list of dicts) or the generic
    :func:`summarize_dataset`."""
    import xarray as xr

    ds = spec["function"](**copy.deepcopy(spec["params"]))
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{function_name(spec['function'])} returned {type(ds).__name__}, not an xarray.Dataset")
    rows = spec["summary"](ds) if spec.get("summary") is not None else summarize_dataset(ds)
    rows = [rows] if isinstance(rows, Mapping) else list(rows)
    rows = [json.loads(json.dumps(dict(r), default=_jsonable)) for r in rows]  # plain values (nan, inf kept)
    files = {"params.json": lambda p: p.write_text(json.dumps(
        {"function": function_name(spec["function"]), "params": spec["params"]}, indent=1))}
    return ds, rows, files, {}


def _run_one(out: Path, rid: str, spec: dict, options: dict) -> dict:
    from . import storage

    final = out / "runs" / rid
    if is_done(out, rid):
        return {"id": rid, "status": "skipped"}
    token = uuid.uuid4().hex[:12]
    attempt = {"id": rid, "token": token, "host": socket.gethostname(), "pid": os.getpid(),
               "started": time.time(), "ended": None, "outcome": None}
    adir = out / "attempts" / rid
    adir.mkdir(parents=True, exist_ok=True)
    _write_json(adir / f"{token}.json", attempt)
    tmp = out / ".tmp" / f"{rid}.{token}"
    t0 = time.perf_counter()
    try:
        tmp.mkdir(parents=True)
        run = _simulate_function if "function" in spec else _simulate_config
        ds, rows, files, extra = run(spec, options)
        storage.save(ds, tmp / "dataset.zarr")
        for name, write in files.items():
            write(tmp / name)
        marker = {"id": rid, "token": token, "host": attempt["host"], "pid": attempt["pid"],
                  "wall_time_s": time.perf_counter() - t0,
                  "simulate_wall_time_s": float(ds.attrs.get("wall_time_s", math.nan)),
                  "n_diverged": int(ds.attrs["n_diverged"]) if "n_diverged" in ds.attrs else None, "rows": rows,
                  **extra, "finished": time.time()}
        (tmp / "run.json").write_text(json.dumps(marker, indent=1))
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)  # the commit point: atomic, fails if another attempt committed first
            outcome = "committed"
        except OSError:
            if not is_done(out, rid):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            outcome = "discarded"
        (out / "failed" / f"{rid}.json").unlink(missing_ok=True)
        result = {"id": rid, "status": "done", "outcome": outcome, "wall_time_s": marker["wall_time_s"]}
    except Exception as exc:  # noqa: BLE001 - a run that raises is recorded and the job goes on
        shutil.rmtree(tmp, ignore_errors=True)
        if is_done(out, rid):  # another attempt completed it meanwhile (and may have cleaned our copy)
            attempt.update(ended=time.time(), outcome="discarded")
            _write_json(adir / f"{token}.json", attempt)
            return {"id": rid, "status": "done", "outcome": "discarded"}
        (out / "failed").mkdir(parents=True, exist_ok=True)
        err = {"id": rid, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
               "host": attempt["host"], "pid": attempt["pid"], "time": time.time()}
        _write_json(out / "failed" / f"{rid}.json", err)
        outcome = "failed"
        result = {"id": rid, "status": "failed", "error": err["error"]}
    except BaseException:  # interrupted (Ctrl-C): leave no temporary copy; the attempt stays open
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    attempt.update(ended=time.time(), outcome=outcome)
    _write_json(adir / f"{token}.json", attempt)
    return result


def run_job(out: str, runs: list[dict], options: dict) -> list[dict]:
    """Execute one job (on a worker): each run that is not complete yet — ``{"id", "config"}``, or
    ``{"id", "function", "params", "summary"}`` for a function sweep. Idempotent."""
    _setup_worker(options)
    out = Path(out)
    return [_run_one(out, r["id"], r, options) for r in runs]


# ---------------------------------------------------------------------------------------------------------
# Executors


class SerialExecutor(cf.Executor):
    """Runs each submitted call immediately in the calling process (debugging, small in-process sweeps)."""

    def submit(self, fn, /, *args, **kwargs):
        f = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - delivered through the future; Ctrl-C propagates at once
            f.set_exception(exc)
        return f


def _local_pool(max_workers: int) -> cf.ProcessPoolExecutor:
    # JAX is not fork-safe: start workers with spawn.
    return cf.ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))


def _submitit_params(slurm: Mapping | None) -> dict:
    generic = {"timeout_min", "cpus_per_task", "mem_gb", "gpus_per_node", "nodes", "tasks_per_node", "name",
               "stderr_to_stdout"}
    params = {"timeout_min": 60, "cpus_per_task": 1}
    for k, v in (slurm or {}).items():
        params[k if (k in generic or k.startswith("slurm_")) else f"slurm_{k}"] = v
    return params


def slurm_executor(out: Path, slurm: Mapping | None = None, cluster: str = "slurm"):
    """A submitit ``AutoExecutor`` writing its logs to ``OUT/slurm``. ``slurm``: parameters, e.g.
    ``{"partition": "gpu", "timeout_min": 120, "mem_gb": 16, "gpus_per_node": 1, "array_parallelism": 64}``
    (bare SLURM names get the ``slurm_`` prefix submitit expects)."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor", "slurm", "an installed submitit: pip install 'dlnlab[slurm]'") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--executor", "slurm", "a machine with SLURM (sbatch on PATH); use local or dask here")
    ex = submitit.AutoExecutor(folder=str(Path(out) / "slurm" / "%j"), cluster=cluster)
    ex.update_parameters(**_submitit_params(slurm))
    return ex


@dataclasses.dataclass
class _Backend:
    submit: Any  # (fn, *args) -> handle
    kind: str  # cf | dask | poll
    close: Any = None
    restart: Any = None  # for an owned local pool: () -> None (after BrokenProcessPool)
    native_retries: bool = False
    batch: Any = None  # context manager for submitting many jobs at once (submitit job arrays)


def _check_executor(executor, address) -> None:
    """Input errors of the executor choice, raised before anything is written."""
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ConfigError("--executor", executor, "one of " + ", ".join(EXECUTORS))
        if address is not None and executor != "dask":
            raise ConfigError("--address", address, "given only with --executor dask")
        if executor == "dask":
            try:
                import distributed  # noqa: F401
            except ImportError:
                raise ConfigError("--executor", "dask", "an installed dask.distributed: pip install 'dask[distributed]'") from None
        if executor == "slurm":
            try:
                import submitit  # noqa: F401
            except ImportError:
                raise ConfigError("--executor", "slurm", "an installed submitit: pip install 'dlnlab[slurm]'") from None
            if shutil.which("sbatch") is None:
                raise ConfigError("--executor", "slurm", "a machine with SLURM (sbatch on PATH); use local or dask here")
    elif executor is not None and not callable(getattr(executor, "submit", None)):
        raise ConfigError("executor", executor, "local, dask, slurm, serial, or an object with submit(fn, *args)")


def _make_backend(executor, *, address, max_workers, out: Path, retries: int, slurm) -> _Backend:
    if executor is None:
        executor = "local"
    _check_executor(executor, address)
    if isinstance(executor, str):
        if executor == "serial":
            return _Backend(SerialExecutor().submit, "cf")
        if executor == "local":
            state = {"pool": _local_pool(max_workers)}

            def restart():
                state["pool"].shutdown(wait=False, cancel_futures=True)
                state["pool"] = _local_pool(max_workers)

            return _Backend(lambda fn, *a: state["pool"].submit(fn, *a), "cf",
                            close=lambda: state["pool"].shutdown(wait=True, cancel_futures=True), restart=restart)
        if executor == "dask":
            try:
                from distributed import Client, LocalCluster
            except ImportError:
                raise ConfigError("--executor", "dask", "an installed dask.distributed: pip install 'dask[distributed]'") from None
            if address is not None:
                try:
                    client = Client(address, timeout="20s")
                except (OSError, TimeoutError) as exc:
                    raise ConfigError("--address", address, f"a reachable Dask scheduler ({exc})") from None
                cluster = None
            else:
                cluster = LocalCluster(n_workers=max_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
                client = Client(cluster)

            def close():
                client.close()
                if cluster is not None:
                    cluster.close()

            return _dask_backend(client, retries, close)
        if executor == "slurm":
            return _submitit_backend(slurm_executor(out, slurm))
    # an executor object
    if _is_dask_client(executor):
        return _dask_backend(executor, retries, None)
    if _is_submitit(executor):
        return _submitit_backend(executor)
    if isinstance(executor, cf.Executor):
        return _Backend(executor.submit, "cf")
    if callable(getattr(executor, "submit", None)):
        return _Backend(executor.submit, "poll")
    raise ConfigError("executor", executor, "local, dask, slurm, serial, or an object with submit(fn, *args)")


def _is_dask_client(obj) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("distributed") and type(obj).__name__ == "Client"


def _is_submitit(obj) -> bool:
    return (type(obj).__module__ or "").startswith("submitit")


def _dask_backend(client, retries, close) -> _Backend:
    def submit(fn, *args):
        return client.submit(fn, *args, retries=retries, pure=False, key=f"dlnlab-sweep-{uuid.uuid4().hex}")

    return _Backend(submit, "dask", close=close, native_retries=True)


def _submitit_backend(ex) -> _Backend:
    return _Backend(ex.submit, "poll", batch=getattr(ex, "batch", None))


def _wait_some(backend: _Backend, handles: list, timeout: float) -> list:
    if not handles:
        return []
    if backend.kind == "cf":
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)
    if backend.kind == "dask":
        from distributed import wait

        try:
            done, _ = wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)
    deadline = time.monotonic() + timeout
    while True:
        done = [h for h in handles if h.done()]
        if done or time.monotonic() >= deadline:
            return done
        time.sleep(min(0.5, timeout))


# ---------------------------------------------------------------------------------------------------------
# The driver


@dataclasses.dataclass
class SweepResult:
    out: Path
    plan: Plan
    table: Any  # pandas.DataFrame, one row per grid point
    status: dict  # run id -> done | failed | started | pending
    executed: list  # run ids simulated (and committed) by this call
    skipped: list  # run ids already complete before this call
    timed_out: bool = False  # the driver stopped waiting (timeout) with jobs still out

    @property
    def n_done(self) -> int:
        return sum(s == "done" for s in self.status.values())

    @property
    def failed(self) -> dict:
        """run id -> error, for the runs that raised."""
        return {rid: _read_json(self.out / "failed" / f"{rid}.json").get("error", "")
                for rid, s in self.status.items() if s == "failed"}

    def dataset(self, rid: str):
        from .storage import load

        return load(self.out / "runs" / rid / "dataset.zarr")

    def raise_unless_done(self) -> SweepResult:
        """Return ``self`` if every run is done; otherwise raise ``RuntimeError`` naming the runs that are not
        (with the errors of the failed ones) — for callers that need the whole grid, e.g. an experiment."""
        bad = {rid: s for rid, s in self.status.items() if s != "done"}
        if bad:
            errors = self.failed
            lines = [f"{rid}: {s}" + (f" ({errors[rid]})" if rid in errors else "") for rid, s in bad.items()]
            raise RuntimeError(f"sweep {self.out}: {len(bad)} of {len(self.status)} runs not done"
                               + (" (timed out)" if self.timed_out else "") + ":\n  " + "\n  ".join(lines))
        return self


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_status(out: Path, rid: str) -> str:
    if is_done(out, rid):
        return "done"
    if (out / "failed" / f"{rid}.json").is_file():
        return "failed"
    adir = out / "attempts" / rid
    if adir.is_dir() and any(_read_json(p).get("ended") is None for p in adir.glob("*.json")):
        return "started"
    return "pending"


def load_plan(out: Path | str) -> Plan:
    out = Path(out)
    f = out / "manifest.json"
    if not f.is_file():
        raise ConfigError("DIR", str(out), "a sweep directory (with manifest.json)")
    return Plan.from_json(f.read_text())


def sweep(config, grid, *, executor="local", out: str | Path | None = None, address: str | None = None,
          max_workers: int | None = None, retries: int = 3, compile_cache: bool | str | Path = True,
          tail: float = TAIL, rank_threshold: float | None = None, slurm: Mapping | None = None,
          progress: bool | None = None, timeout: float | None = None, params: Mapping | None = None,
          summary=None) -> SweepResult:
    """Run ``config`` over ``grid`` and collect the results (see the module docstring for the layout).

    Parameters
    ----------
    config : a :class:`Config`, a config dict or a TOML path — the base of every run. Or a **function**
        ``fn(**kwargs) -> xarray.Dataset`` (module level, so that workers can import or unpickle it): a
        function sweep over its keyword arguments, ``params`` the base ones, ``grid`` keyword -> values, one run
        per grid point, for simulators that take no Config (``dlnlab.diagonal.simulate_diagonal`` wrapped,
        analyses, …); ``summary(ds) -> dict | list[dict]`` (module level too) gives the table's rows
        (default :func:`summarize_dataset`).
    grid : ``{"dynamics.lr": [0.01, 0.02], "network.width": [10, 20], …}``, ``["dynamics.lr=0.01,0.02", …]``,
        or a list of grids (their union).
    executor : ``"local"`` (process pool, spawn; default), ``"dask"`` (``address`` of a scheduler, or a local
        cluster started here), ``"slurm"`` (submitit; ``slurm`` = its parameters), ``"serial"`` (in this
        process), or an executor object: a ``concurrent.futures.Executor``, a ``distributed.Client``, a
        submitit executor, or anything with ``submit(fn, *args)`` returning futures with ``done()``/``result()``.
    out : output directory (default ``dlnlab-runs/sweep-<timestamp>``); rerun into it to resume.
    max_workers : local pool / local Dask cluster size (default: CPU count, at most the number of jobs).
    retries : attempts after the first for a job whose worker died or that raised outside a run.
    compile_cache : share a JAX persistent compilation cache between the workers (``True``: ``OUT/.jax_cache``,
        except for ``serial``, which leaves this process's JAX configuration alone; a path; ``False``: off). A
        worker process keeps the first cache it is given. Programs are the same, so results are bitwise unchanged.
    tail, rank_threshold : see :func:`summarize`.
    timeout : give up waiting after this many seconds (unfinished runs stay pending; rerun to resume).

    The local executor starts its workers with ``spawn`` (JAX is not fork-safe): a script that calls
    ``sweep`` must do so under ``if __name__ == "__main__":``.
    """
    import datetime

    if callable(config) and not isinstance(config, (Config, str, Path, Mapping)):
        plan = plan_function_sweep(config, params, grid)
        fn = config
    else:
        if params is not None or summary is not None:
            raise ConfigError("params", params, "given only for a function sweep (config = a function)")
        plan = plan_sweep(config, grid)
        fn = None
    _check_executor(executor, address)
    if not (_is_number(tail) and 0 < tail <= 1):
        raise ConfigError("tail", tail, "a number in (0, 1]")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError("--retries", retries, "an integer >= 0")
    if out is None:
        out = Path("dlnlab-runs") / f"sweep-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "a directory (this path is an existing file)")
    for sub in ("runs", "failed", "attempts", ".tmp"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _write_json(out / "manifest.json", json.loads(plan.to_json()))
    cache = None
    if compile_cache is True and isinstance(executor, str) and executor == "serial":
        compile_cache = False  # in this process: leave its JAX configuration alone unless given a path
    if compile_cache:
        cache = str(out / ".jax_cache") if compile_cache is True else str(Path(compile_cache).resolve())
    options = {"compile_cache": cache, "tail": float(tail), "rank_threshold": rank_threshold}

    by_id = {r.id: r for r in plan.runs}
    skipped = [r.id for r in plan.runs if is_done(out, r.id)]
    todo = [[rid for rid in job if not is_done(out, rid)] for job in plan.jobs]
    todo = [job for job in todo if job]
    n_workers = max_workers or max(1, min(os.cpu_count() or 1, len(todo) or 1))
    executed: list[str] = []
    finished = True
    if todo:
        backend = _make_backend(executor, address=address, max_workers=n_workers, out=out, retries=retries,
                                slurm=slurm)
        try:
            executed, finished = _drive(backend, out, todo, by_id, options, retries, progress, timeout, len(plan.runs),
                                        len(skipped), fn, summary)
        finally:
            if backend.close is not None:
                backend.close()
        _clean_tmp(out)
    table = write_table(out, plan)
    status = {r.id: run_status(out, r.id) for r in plan.runs}
    return SweepResult(out, plan, table, status, executed, skipped, timed_out=not finished)


def _drive(backend: _Backend, out: Path, todo, by_id, options, retries, progress, timeout, n_total, n_skipped,
           fn=None, summary=None):
    from tqdm.auto import tqdm

    def payload(job):
        if fn is not None:
            return [{"id": rid, "function": fn, "params": by_id[rid].config["params"], "summary": summary}
                    for rid in job]
        return [{"id": rid, "config": by_id[rid].config} for rid in job]

    attempts = {i: 0 for i in range(len(todo))}
    pending: dict[Any, int] = {}

    def submit(i):
        pending[backend.submit(run_job, str(out), payload(todo[i]), options)] = i

    if backend.batch is not None:
        with backend.batch():
            handles = [(backend.submit(run_job, str(out), payload(job), options), i) for i, job in enumerate(todo)]
        pending.update({h: i for h, i in handles})
    else:
        for i in range(len(todo)):
            submit(i)
    executed = []
    finished = True
    deadline = None if timeout is None else time.monotonic() + timeout
    enabled = sys.stderr.isatty() if progress is None else progress
    with tqdm(total=n_total, initial=n_skipped, desc="sweep", unit="run", disable=not enabled) as bar:
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                finished = False
                break
            for h in _wait_some(backend, list(pending), 1.0):
                i = pending.pop(h)
                try:
                    results = h.result()
                except Exception as exc:  # noqa: BLE001 - the job failed: worker died, pool broken, KilledWorker…
                    if backend.restart is not None and isinstance(exc, BrokenProcessPool):
                        # every unfinished future of a broken local pool fails: restart it, resubmit them all
                        lost = [i, *pending.values()]
                        pending.clear()
                        backend.restart()
                        for j in lost:
                            attempts[j] += 1
                            if attempts[j] <= retries:
                                submit(j)
                            else:
                                _record_job_failure(out, todo[j], exc)
                        break
                    attempts[i] += 1
                    if not backend.native_retries and attempts[i] <= retries:
                        submit(i)
                    else:
                        _record_job_failure(out, todo[i], exc)
                    continue
                for r in results:
                    if r.get("status") == "done" and r.get("outcome") == "committed":
                        executed.append(r["id"])
                bar.update(sum(r.get("status") in ("done", "failed") for r in results))
    return executed, finished


def _record_job_failure(out: Path, job: list[str], exc: BaseException) -> None:
    """The job could not be executed (its worker kept dying): record every unfinished run as failed."""
    for rid in job:
        if not is_done(out, rid):
            _write_json(out / "failed" / f"{rid}.json",
                        {"id": rid, "error": f"job failed: {type(exc).__name__}: {exc}",
                         "traceback": "".join(traceback.format_exception(exc)), "time": time.time()})


def _clean_tmp(out: Path) -> None:
    """Remove the temporary copies of runs that are complete (left by killed or losing attempts). Copies of
    unfinished runs are kept: their attempt may still be running (e.g. a job of an interrupted driver)."""
    for p in (out / ".tmp").glob("*"):
        if is_done(out, p.name.split(".")[0]):
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# The table


def _flat_config(d: dict) -> dict:
    row = {}
    for sec, vals in d.items():
        for k, v in vals.items():
            row[f"{sec}.{k}"] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else v
    return row


def table_rows(out: Path | str, plan: Plan) -> list[dict]:
    """One dict per grid point (see the module docstring), from what is on disk now."""
    out = Path(out)
    rows = []
    for run in plan.runs:
        st = run_status(out, run.id)
        if plan.function is not None:
            flat = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in run.config["params"].items()}
            stacked = {}
        else:
            flat = _flat_config(run.config)
            stacked = Config.from_dict(copy.deepcopy(run.config)).stacked()
        if st == "done":
            marker = _read_json(out / "runs" / run.id / "run.json")
            summaries, wall, err = marker.get("rows", []), marker.get("wall_time_s", math.nan), None
        else:
            summaries = [dict(zip(stacked, combo)) for combo in itertools.product(*stacked.values())]
            wall = math.nan
            err = _read_json(out / "failed" / f"{run.id}.json").get("error") if st == "failed" else None
        for s in summaries:
            row = {"run_id": run.id, "status": st, "error": err, **flat}
            row.update({k: v for k, v in s.items() if k in STACKABLE})  # the row's own stacked values
            row.update({k: v for k, v in s.items() if k not in STACKABLE})
            row["wall_time_s"] = wall
            rows.append(row)
    return rows


def write_table(out: Path | str, plan: Plan | None = None):
    """(Re)write ``OUT/results.parquet`` from the runs on disk; return it as a pandas DataFrame."""
    import pandas as pd

    out = Path(out)
    plan = plan or load_plan(out)
    df = pd.DataFrame(table_rows(out, plan))
    for col in df.columns:  # a column mixing types (e.g. width 10 and [10, 20]) is stored as JSON text
        if df[col].dtype == object:
            types = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(types) > 1:
                df[col] = [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in df[col]]
    tmp = out / f".results.{uuid.uuid4().hex}.parquet"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, out / "results.parquet")
    return df


def sweep_status(out: Path | str) -> dict:
    """Progress of a sweep directory: counts by status and one entry per run (id, status, point, error)."""
    out = Path(out)
    plan = load_plan(out)
    runs = []
    for r in plan.runs:
        st = run_status(out, r.id)
        err = _read_json(out / "failed" / f"{r.id}.json").get("error") if st == "failed" else None
        runs.append({"id": r.id, "status": st, "point": r.point, "stacked": r.stacked, "error": err})
    counts = {k: sum(r["status"] == k for r in runs) for k in ("done", "started", "pending", "failed")}
    return {"out": str(out), "n_runs": len(runs), "n_jobs": len(plan.jobs), "counts": counts, "runs": runs,
            "grid": plan.grid, "vectorised": plan.vectorised}
