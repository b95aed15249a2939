"""``dlnlab reproduce``: run every registered experiment, collect the claims table, write the report.

Layout of a reproduction directory::

    OUT/experiments/NAME/   one per experiment: result.json, claims.csv, figures (PNG+PDF), data (zarr)
    OUT/claims.csv          every claim of every experiment
    OUT/manifest.json       preset, seed shift, versions, machine, per-experiment timings
    OUT/report.html         self-contained report (figures embedded)

Resuming: an experiment is written to a temporary directory and renamed into place when it finishes,
so a rerun of the same command skips finished experiments (same preset and parameters) and restarts an
unfinished one from scratch.

Seeds: ``seed=K`` adds K to every experiment's ``seed`` parameter (``dlnlab reproduce --seed K``), for another
independent draw of every row (``benchmarks/flip_table.py`` reruns the quick presets at several).
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

from .config import ConfigError
from .experiments import REGISTRY, ExperimentResult
from .experiments.base import write_claims_csv


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
              overrides: dict[str, list[str]] | None = None, seed: int = 0) -> list[ExperimentResult]:
    """Run (or resume) the selected experiments into ``out``; write claims.csv, manifest.json, report.html.

    ``preset``: ``quick``, ``full`` or ``smoke``. ``overrides`` maps an experiment name to ``key=value`` changes of
    its preset (as ``dlnlab run --set``); ``seed`` is added to every experiment's ``seed``. An experiment finished
    with other parameters is recomputed. Every override is validated before anything runs."""
    from tqdm.auto import tqdm

    from .report import write_report
    from .runtime import package_versions

    out = Path(out)
    (out / "experiments").mkdir(parents=True, exist_ok=True)
    exps = select(papers, names)
    overrides = overrides or {}
    params_of = {exp.name: exp.params(preset, overrides.get(exp.name), seed) for exp in exps}  # validates first
    results = []
    with tqdm(total=len(exps), desc="reproduce", unit="exp", disable=not progress) as bar:
        for exp in exps:
            final = out / "experiments" / exp.name
            res = _finished(final, preset, params_of[exp.name])
            if res is None:
                bar.set_postfix_str(exp.name)
                tmp = out / "experiments" / f".{exp.name}.partial"
                shutil.rmtree(tmp, ignore_errors=True)
                res = exp.run(preset, tmp, overrides.get(exp.name), seed)
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
            results.append(res)
            bar.update(1)
    write_claims_csv([c for r in results for c in r.claims], out / "claims.csv")
    manifest = {
        "preset": preset,
        "seed_shift": seed,
        "experiments": {r.name: {"wall_time_s": r.wall_time_s, "params": r.params} for r in results},
        "versions": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    write_report(out)
    return results
