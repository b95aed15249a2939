"""The worker side: one job is a list of runs; each run is simulated into a temporary directory and renamed into
place when complete, so that it is committed at most once (module :mod:`dlnlab.sweep`, fault tolerance)."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..analysis.summaries import TAIL, plateaus, summarize, summarize_dataset
from ..config import Config, config_to_toml
from ._layout import is_done, write_json
from ._plan import function_name, jsonable

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


def _plain_rows(rows) -> list[dict]:
    """A summary's rows (a dict or a list of dicts) as plain JSON values (nan and inf kept)."""
    rows = [rows] if isinstance(rows, Mapping) else list(rows)
    return [json.loads(json.dumps(dict(r), default=jsonable)) for r in rows]


def _simulate_config(spec: dict, options: dict):
    """A config run: (dataset, summary rows, extra files {name: writer}, marker fields). The rows are
    ``summary(ds, config)``, or the default :func:`summarize`."""
    from ..engines import simulate

    cfg = Config.from_dict(copy.deepcopy(spec["config"]))
    ds = simulate(cfg, progress=False)
    table, plateau_error = plateaus(ds)
    if spec.get("summary") is not None:
        rows = spec["summary"](ds, cfg)
    else:
        rows = summarize(ds, cfg, tail=options.get("tail", TAIL), rank_threshold=options.get("rank_threshold"),
                         plateau_table=table)
    files = {"config.toml": lambda p: p.write_text(config_to_toml(cfg))}
    if table is not None:
        files["plateaus.parquet"] = lambda p: table.to_parquet(p, index=False)
    return ds, _plain_rows(rows), files, {"plateau_table_error": plateau_error}


def _simulate_function(spec: dict, options: dict):
    """A function run: ``fn(**params)``; rows from ``summary(ds)`` (a dict or a list of dicts) or the generic
    :func:`summarize_dataset`."""
    import xarray as xr

    ds = spec["function"](**copy.deepcopy(spec["params"]))
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{function_name(spec['function'])} returned {type(ds).__name__}, not an xarray.Dataset")
    rows = spec["summary"](ds) if spec.get("summary") is not None else summarize_dataset(ds)
    files = {"params.json": lambda p: p.write_text(json.dumps(
        {"function": function_name(spec["function"]), "params": spec["params"]}, indent=1))}
    return ds, _plain_rows(rows), files, {}


def _run_one(out: Path, rid: str, spec: dict, options: dict) -> dict:
    from .. import storage

    final = out / "runs" / rid
    if is_done(out, rid):
        return {"id": rid, "status": "skipped"}
    token = uuid.uuid4().hex[:12]
    attempt = {"id": rid, "token": token, "host": socket.gethostname(), "pid": os.getpid(),
               "started": time.time(), "ended": None, "outcome": None}
    adir = out / "attempts" / rid
    adir.mkdir(parents=True, exist_ok=True)
    write_json(adir / f"{token}.json", attempt)
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
            write_json(adir / f"{token}.json", attempt)
            return {"id": rid, "status": "done", "outcome": "discarded"}
        (out / "failed").mkdir(parents=True, exist_ok=True)
        err = {"id": rid, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
               "host": attempt["host"], "pid": attempt["pid"], "time": time.time()}
        write_json(out / "failed" / f"{rid}.json", err)
        outcome = "failed"
        result = {"id": rid, "status": "failed", "error": err["error"]}
    except BaseException:  # interrupted (Ctrl-C): leave no temporary copy; the attempt stays open
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    attempt.update(ended=time.time(), outcome=outcome)
    write_json(adir / f"{token}.json", attempt)
    return result


def run_job(out: str, runs: list[dict], options: dict) -> list[dict]:
    """Execute one job (on a worker): each run that is not complete yet — ``{"id", "config", "summary"}``, or
    ``{"id", "function", "params", "summary"}`` for a function sweep. Idempotent."""
    _setup_worker(options)
    out = Path(out)
    return [_run_one(out, r["id"], r, options) for r in runs]
