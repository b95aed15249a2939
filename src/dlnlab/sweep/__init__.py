"""Sweeps over hyper-parameter grids, on a local process pool, a Dask cluster or SLURM (submitit).

``sweep(config, grid, executor=...)`` expands a grid of config values into *runs*, executes them through a
``concurrent.futures``-style executor and collects one dataset per run plus one parquet table.

Terms
-----
* **grid point** — one combination of grid values (what a phase diagram plots). One row of the table.
* **run** — one resolved :class:`~dlnlab.config.Config`, i.e. one :func:`~dlnlab.simulate` call and
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

Function sweeps. ``sweep_function(fn, grid, params=…, summary=…)`` sweeps any module-level ``fn(**kwargs) ->
xarray.Dataset`` (a simulator that takes no Config, e.g. a wrapper of ``dlnlab.diagonal.simulate_diagonal``)
over its keyword arguments with the same executors, layout and guarantees: one run and one job per grid point,
id = hash of ``module:qualname`` and the keyword arguments, table rows from ``summary(ds)``.

Summaries. The table's rows of a run are computed on the worker, from the dataset in memory, by the sweep's
``summary``: ``summary(ds, config)`` for a config sweep (default :func:`summarize`), ``summary(ds)`` for a
function sweep (default :func:`summarize_dataset`). A caller that needs more of a run than the default summaries
passes its own ``summary`` and reads the table (``SweepResult.table``), not the files of the run.

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
column (the row's own value for stacked keys; list-valued fields as JSON text), the ``summary`` rows
(default :func:`summarize`), and ``wall_time_s`` (of the run). A function sweep has its keyword arguments as
columns and ``summary``'s rows. Load it with ``pandas.read_parquet`` or ``polars.read_parquet``.

Modules: :mod:`._grid` (grid parsing and checks), :mod:`._plan` (runs, jobs, ids, the manifest), :mod:`._layout`
(the output directory and run status), :mod:`._worker` (one job on a worker), :mod:`._executors` (local, dask,
slurm, serial), :mod:`._driver` (:func:`sweep`, :func:`sweep_function`, :class:`SweepResult`) and :mod:`._table`
(the results table). The default summaries live in :mod:`dlnlab.analysis.summaries`.
"""

from ..analysis.summaries import TAIL, plateaus, summarize, summarize_dataset
from ._driver import SweepResult, sweep, sweep_function
from ._executors import EXECUTORS, SerialExecutor, slurm_executor
from ._grid import check_grid, parse_grid
from ._layout import is_done, run_status
from ._plan import SEED_KEY, Plan, Run, function_name, load_plan, plan_function_sweep, plan_sweep, run_id
from ._table import sweep_status, table_rows, write_table
from ._worker import run_job

__all__ = [
    "EXECUTORS", "SEED_KEY", "TAIL", "Plan", "Run", "SerialExecutor", "SweepResult", "check_grid", "function_name",
    "is_done", "load_plan", "parse_grid", "plan_function_sweep", "plan_sweep", "plateaus", "run_id", "run_job",
    "run_status", "slurm_executor", "summarize", "summarize_dataset", "sweep", "sweep_function", "sweep_status",
    "table_rows", "write_table",
]
