"""The plan of a sweep: its runs (one resolved config, or one function call, each with a stable id) grouped into
jobs, written to ``OUT/manifest.json`` before anything runs."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..config import STACKABLE, Config, ConfigError, load_config
from ._grid import check_grid, is_number, parse_value, split_top

SEED_KEY = "ensemble.seed"


def run_id(config: Config) -> str:
    """Stable id of a resolved config: SHA-256 of its canonical JSON, first 16 hex digits."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _set(d: dict, key: str, value) -> None:
    sec, name = key.split(".")
    d.setdefault(sec, {})[name] = value


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
    hint = " (sweep a function with dlnlab.sweep.sweep_function)" if callable(config) else ""
    raise ConfigError("config", config, "a Config, a dict or a path to a TOML file" + hint)


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
                  if k in STACKABLE and len(vs) > 1 and all(is_number(v) for v in vs)
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


def jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def _canonical(key: str, v):
    try:
        return json.loads(json.dumps(v, default=jsonable, allow_nan=False))
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
            items[key.strip()] = [parse_value(x) for x in split_top(raw)]
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


def load_plan(out: Path | str) -> Plan:
    out = Path(out)
    f = out / "manifest.json"
    if not f.is_file():
        raise ConfigError("DIR", str(out), "a sweep directory (with manifest.json)")
    return Plan.from_json(f.read_text())
