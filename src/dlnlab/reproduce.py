"""``dlnlab reproduce``: run every registered experiment, collect the claims table, write the report.

Layout of a reproduction directory::

    OUT/experiments/NAME/   one per experiment: result.json, claims.csv, figures (PNG+PDF), data (zarr)
    OUT/claims.csv          every claim of every experiment
    OUT/manifest.json       preset, seed shift, versions, machine, per-experiment timings
    OUT/report.html         self-contained report (figures embedded)

Resuming: an experiment is written to a temporary directory and renamed into place when it finishes,
so a rerun of the same command skips finished experiments (same preset and parameters). An unfinished one restarts,
but not from scratch: while it runs, every complete simulation it makes (:func:`dlnlab.engines.execute`, its sweeps'
workers included) is kept in ``OUT/experiments/.NAME.runs/<code fingerprint>/`` (:func:`dlnlab.engines.keep_runs`),
and the rerun takes those instead of simulating them again — the claims and figures are those of an uninterrupted
run (the simulations are deterministic, the kept ones equal). The directory is removed when the experiment finishes;
one kept by other code (another fingerprint, :func:`dlnlab.runtime.code_fingerprint`) is discarded, not trusted.
A simulation interrupted mid-way is rerun (from its start).

Parallel: ``jobs`` experiments run at once, each in its own process (``spawn``; ``dlnlab reproduce --jobs``, default
the usable cores); ``jobs = 1`` runs them in this process, one after the other. Results, claims and report do not
depend on ``jobs``.

Seeds: ``seed=K`` adds K to every experiment's ``seed`` parameter (``dlnlab reproduce --seed K``), for another
independent draw of every row (``benchmarks/flip_table.py`` reruns the quick presets at several).
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from .config import ConfigError
from .engines import keep_runs
from .experiments import REGISTRY, ExperimentResult
from .experiments.base import write_claims_csv
from .runtime import code_fingerprint


def _finished(d: Path, preset: str, params: dict) -> ExperimentResult | None:
    f = d / "result.json"
    if not f.exists():
        return None
    try:
        res = ExperimentResult.from_json(f.read_text())
    except (ValueError, KeyError, TypeError):
        return None
    return res if res.params == {"preset": preset, **params} else None


def select(papers: list[str] | None = None, names: list[str] | None = None):
    exps = sorted(REGISTRY.values(), key=lambda e: (e.paper, e.name))
    if papers:
        exps = [e for e in exps if e.paper in papers]
    if names:
        exps = [e for e in exps if e.name in names]
    return exps


def split_overrides(items: list[str] | None) -> dict[str, list[str]]:
    """``["NAME.key=value", …]`` → ``{NAME: ["key=value", …]}``; an unknown experiment name is a ConfigError."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        name, _, rest = item.partition(".")
        if not rest or "=" not in rest or name not in REGISTRY:
            raise ConfigError("--set", item, "EXPERIMENT.key=value with EXPERIMENT one of " + ", ".join(sorted(REGISTRY)))
        out.setdefault(name, []).append(rest)
    return out


def reproduce(out: Path | str, preset: str = "quick", papers: list[str] | None = None,
              names: list[str] | None = None, progress: bool = True,
              overrides: dict[str, list[str]] | None = None, seed: int = 0, jobs: int = 1) -> list[ExperimentResult]:
    """Run (or resume) the selected experiments into ``out``; write claims.csv, manifest.json, report.html.

    ``preset``: ``quick``, ``full`` or ``smoke``. ``overrides`` maps an experiment name to ``key=value`` changes of
    its preset (as ``dlnlab run --set``); ``seed`` is added to every experiment's ``seed``. An experiment finished
    with other parameters is recomputed. Every override is validated before anything runs. ``jobs``: experiments run
    at once, each in a process of its own (module docstring; an experiment must then be registered in a fresh
    process too: built in or from a plugin)."""
    from tqdm.auto import tqdm

    from .report import write_report
    from .runtime import package_versions

    out = Path(out)
    (out / "experiments").mkdir(parents=True, exist_ok=True)
    exps = select(papers, names)
    overrides = overrides or {}
    params_of = {exp.name: exp.params(preset, overrides.get(exp.name), seed) for exp in exps}  # validates first
    done = {exp.name: _finished(out / "experiments" / exp.name, preset, params_of[exp.name]) for exp in exps}
    todo = sorted((e for e in exps if done[e.name] is None), key=lambda e: -cost_seconds(e.cost))  # longest first
    with tqdm(total=len(exps), desc="reproduce", unit="exp", disable=not progress) as bar:
        bar.update(len(exps) - len(todo))
        if min(jobs, len(todo)) <= 1:
            for exp in todo:
                bar.set_postfix_str(exp.name)
                done[exp.name] = run_experiment(out, exp.name, preset, overrides.get(exp.name), seed)
                bar.update(1)
        else:
            done.update(_run_parallel(out, todo, preset, overrides, seed, jobs, bar))
    results = [done[exp.name] for exp in exps]
    write_claims_csv([c for r in results for c in r.claims], out / "claims.csv")
    manifest = {
        "preset": preset,
        "seed_shift": seed,
        "jobs": jobs,
        "experiments": {r.name: {"wall_time_s": r.wall_time_s, "params": r.params} for r in results},
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    write_report(out)
    return results


def run_experiment(out: Path, name: str, preset: str, overrides: list[str] | None, seed: int) -> ExperimentResult:
    """Run experiment ``name`` into ``OUT/experiments/NAME`` through a partial directory renamed into place when it
    finishes, its complete simulations kept for a rerun until then (:func:`resuming`)."""
    exps = out / "experiments"
    final, tmp = exps / name, exps / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with resuming(exps / f".{name}.runs"):
        res = REGISTRY[name].run(preset, tmp, overrides, seed)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    return res


@contextlib.contextmanager
def resuming(runs: Path):
    """Keep every complete simulation of the block in ``runs/<code fingerprint>`` and read back those a run of the
    same code kept there before (:func:`dlnlab.engines.keep_runs`; runs kept by other code are discarded); remove
    ``runs`` once the block has finished without error. A cache the caller set already (the tests' session cache)
    is used instead. For ``dlnlab reproduce`` (per experiment) and ``dlnlab run``."""
    kept = runs / code_fingerprint()
    for other in runs.iterdir() if runs.is_dir() else ():
        if other != kept:
            shutil.rmtree(other, ignore_errors=True)
    with keep_runs(kept, replace=False):
        yield
    shutil.rmtree(runs, ignore_errors=True)


def _run_parallel(out, todo, preset, overrides, seed, jobs, bar) -> dict[str, ExperimentResult]:
    """:func:`run_experiment` of every experiment of ``todo`` in ``jobs`` worker processes, in that order as workers
    free up. On an error or an interrupt the experiments not started are cancelled, the running ones are waited for
    (an interrupt reaches them too), and the first error is raised."""
    results, error = {}, None
    jobs = min(jobs, len(todo))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        running = {pool.submit(run_experiment, out, e.name, preset, overrides.get(e.name), seed): e.name
                   for e in todo}
        bar.set_postfix_str(f"{jobs} at once")
        try:
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = running.pop(fut)
                    if fut.exception() is not None:
                        error = error or fut.exception()
                        for other in running:
                            other.cancel()
                    else:
                        results[name] = fut.result()
                        bar.update(1)
                if error is not None:
                    wait(running)
                    raise error
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
    return results


def cost_seconds(cost: str) -> float:
    """The longest time an experiment's registered ``cost`` (``"~40 s"``, ``"~1.5 min"``, ``"12–70 s under load"``)
    names, in seconds (60 when it names none): the order in which parallel runs start, longest first."""
    found = [float(x) * (60.0 if unit == "min" else 1.0) for x, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(s|min)\b", cost)]
    return max(found, default=60.0)
