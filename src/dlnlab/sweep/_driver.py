"""The driver: plan a sweep, write its manifest, submit the jobs that are not complete to an executor, collect
the results table (module :mod:`dlnlab.sweep` for the layout and the guarantees)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from ..analysis.summaries import TAIL
from ..config import ConfigError
from ._executors import Backend, check_executor, make_backend, wait_some
from ._grid import is_number
from ._layout import is_done, read_json, run_status, write_json
from ._plan import Plan, plan_function_sweep, plan_sweep
from ._table import write_table
from ._worker import run_job


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
        return {rid: read_json(self.out / "failed" / f"{rid}.json").get("error", "")
                for rid, s in self.status.items() if s == "failed"}

    def dataset(self, rid: str):
        from ..storage import load

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


def sweep(config, grid, *, summary=None, executor="local", out: str | Path | None = None, address: str | None = None,
          max_workers: int | None = None, retries: int = 3, compile_cache: bool | str | Path = True,
          tail: float = TAIL, rank_threshold: float | None = None, slurm: Mapping | None = None,
          progress: bool | None = None, timeout: float | None = None) -> SweepResult:
    """Run ``config`` over ``grid`` and collect the results (see the module docstring for the layout).

    Parameters
    ----------
    config : a :class:`Config`, a config dict or a TOML path — the base of every run (a simulator that takes no
        Config is swept by :func:`sweep_function`).
    grid : ``{"dynamics.lr": [0.01, 0.02], "network.width": [10, 20], …}``, ``["dynamics.lr=0.01,0.02", …]``,
        or a list of grids (their union).
    summary : ``summary(ds, config) -> dict | list[dict]`` (module level, so that workers can import or unpickle
        it), computed on the worker from the run's dataset and resolved config: the table's rows of the run, one
        per stacked combination, each holding its stacked values (``dynamics.lr`` …; cf.
        :meth:`Config.replica_grid`). Default: :func:`summarize` with ``tail`` and ``rank_threshold``.
    tail, rank_threshold : see :func:`summarize` (the default summary only).
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
    timeout : give up waiting after this many seconds (unfinished runs stay pending; rerun to resume).

    The local executor starts its workers with ``spawn`` (JAX is not fork-safe): a script that calls a sweep
    must do so under ``if __name__ == "__main__":``.
    """
    if summary is not None:
        _check_summary(summary, "summary(ds, config) -> dict | list[dict]")
        if tail != TAIL or rank_threshold is not None:
            field, value = ("tail", tail) if tail != TAIL else ("rank_threshold", rank_threshold)
            raise ConfigError(field, value, "given only with the default summary (summary=None)")
    plan = plan_sweep(config, grid)
    if not (is_number(tail) and 0 < tail <= 1):
        raise ConfigError("tail", tail, "a number in (0, 1]")
    by_id = {r.id: r for r in plan.runs}
    return _execute(plan, lambda rid: {"id": rid, "config": by_id[rid].config, "summary": summary},
                    {"tail": float(tail), "rank_threshold": rank_threshold}, executor=executor, out=out,
                    address=address, max_workers=max_workers, retries=retries, compile_cache=compile_cache,
                    slurm=slurm, progress=progress, timeout=timeout)


def sweep_function(fn, grid, *, params: Mapping | None = None, summary=None, executor="local",
                   out: str | Path | None = None, address: str | None = None, max_workers: int | None = None,
                   retries: int = 3, compile_cache: bool | str | Path = True, slurm: Mapping | None = None,
                   progress: bool | None = None, timeout: float | None = None) -> SweepResult:
    """Sweep a simulator that takes no Config over its keyword arguments, with :func:`sweep`'s executors, layout
    and guarantees: one run and one job per grid point.

    Parameters
    ----------
    fn : ``fn(**kwargs) -> xarray.Dataset``, module level (so that workers can import or unpickle it), e.g. a
        wrapper of ``dlnlab.diagonal.simulate_diagonal``, or an analysis.
    grid : keyword name -> values (``{"theta": [0.5, 2.0]}``), or ``["theta=0.5,2.0", …]``.
    params : the base keyword arguments of every run.
    summary : ``summary(ds) -> dict | list[dict]`` (module level too): the table's rows of a run (default
        :func:`summarize_dataset`).

    The other parameters (``executor``, ``out``, ``address``, ``max_workers``, ``retries``, ``compile_cache``,
    ``slurm``, ``progress``, ``timeout``) are :func:`sweep`'s.
    """
    if summary is not None:
        _check_summary(summary, "summary(ds) -> dict | list[dict]")
    plan = plan_function_sweep(fn, params, grid)
    by_id = {r.id: r for r in plan.runs}
    return _execute(plan, lambda rid: {"id": rid, "function": fn, "params": by_id[rid].config["params"],
                                       "summary": summary}, {}, executor=executor, out=out, address=address,
                    max_workers=max_workers, retries=retries, compile_cache=compile_cache, slurm=slurm,
                    progress=progress, timeout=timeout)


def _check_summary(summary, allowed: str) -> None:
    if not callable(summary):
        raise ConfigError("summary", summary, f"a function {allowed}")


def _execute(plan: Plan, spec, options: dict, *, executor, out, address, max_workers, retries, compile_cache, slurm,
             progress, timeout) -> SweepResult:
    """Write the manifest of ``plan`` into ``out``, run the jobs not complete yet (``spec(rid)``: a run's
    payload for :func:`run_job`; ``options``: the worker's), write the table."""
    check_executor(executor, address)
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError("--retries", retries, "an integer >= 0")
    if out is None:
        out = Path("dlnlab-runs") / f"sweep-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "a directory (this path is an existing file)")
    for sub in ("runs", "failed", "attempts", ".tmp"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    write_json(out / "manifest.json", json.loads(plan.to_json()))
    if compile_cache is True and isinstance(executor, str) and executor == "serial":
        compile_cache = False  # in this process: leave its JAX configuration alone unless given a path
    cache = (str(out / ".jax_cache") if compile_cache is True else str(Path(compile_cache).resolve())) \
        if compile_cache else None
    options = {"compile_cache": cache, **options}
    skipped = [r.id for r in plan.runs if is_done(out, r.id)]
    todo = [[rid for rid in job if not is_done(out, rid)] for job in plan.jobs]
    todo = [job for job in todo if job]
    executed: list[str] = []
    finished = True
    if todo:
        backend = make_backend(executor, address=address, out=out, retries=retries, slurm=slurm,
                               max_workers=max_workers or max(1, min(os.cpu_count() or 1, len(todo))))
        try:
            executed, finished = _drive(backend, out, todo, spec, options, retries, progress, timeout,
                                        len(plan.runs), len(skipped))
        finally:
            if backend.close is not None:
                backend.close()
        _clean_tmp(out)
    table = write_table(out, plan)
    status = {r.id: run_status(out, r.id) for r in plan.runs}
    return SweepResult(out, plan, table, status, executed, skipped, timed_out=not finished)


def _drive(backend: Backend, out: Path, todo, spec, options, retries, progress, timeout, n_total, n_skipped):
    """Submit the jobs ``todo`` (lists of run ids; ``spec(rid)`` is a run's payload for :func:`run_job`), wait for
    them, resubmit those whose worker died (up to ``retries`` times); return (runs committed, all jobs finished)."""
    from tqdm.auto import tqdm

    def payload(job):
        return [spec(rid) for rid in job]

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
            for h in wait_some(backend, list(pending), 1.0):
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
            write_json(out / "failed" / f"{rid}.json",
                        {"id": rid, "error": f"job failed: {type(exc).__name__}: {exc}",
                         "traceback": "".join(traceback.format_exception(exc)), "time": time.time()})


def _clean_tmp(out: Path) -> None:
    """Remove the temporary copies of runs that are complete (left by killed or losing attempts). Copies of
    unfinished runs are kept: their attempt may still be running (e.g. a job of an interrupted driver)."""
    for p in (out / ".tmp").glob("*"):
        if is_done(out, p.name.split(".")[0]):
            shutil.rmtree(p, ignore_errors=True)
