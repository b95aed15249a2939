"""The registry's smoke run: ``dlnlab reproduce`` of every registered experiment at its ``smoke`` preset, once per
test session (shared by the pytest-xdist workers under a file lock), for the claims-table, registry and
verdict-regression tests, and for the power tests' run at the true theory (:func:`finished_smoke`). The test
session runs it first (``tests/conftest.py`` orders the tests: the smoke run's first user first, the power tests
and the smoke run's other users last, so that one worker makes the run while the other works through the rest).
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import time
import traceback
from pathlib import Path

from dlnlab.engines import keep_runs
from dlnlab.experiments import REGISTRY, ExperimentResult


def own_smoke(name: str) -> bool:
    """Whether an experiment declares its smoke preset (``register(..., smoke=...)``; ``smoke={}`` declares that its
    quick preset is the one at which its verdicts are stable)."""
    return REGISTRY[name].smoke_declared


def _shared(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def run_cache(tmp_path_factory) -> Path:
    """This session's run cache (:func:`dlnlab.engines.keep_runs`), shared by the smoke run and the power
    tests: a power test's perturbed arms, whose simulations are by contract those of the true arm, read them."""
    return _shared(tmp_path_factory) / "run-cache"


def finished_smoke(tmp_path_factory, name: str) -> ExperimentResult | None:
    """Experiment ``name``'s result in this session's smoke run if that run has finished without error (never
    waits for it), else ``None``: the power tests' run at the true theory is that same run (``exp.run("smoke")``,
    same parameters and seed; checked), so they take it from here rather than compute it twice."""
    shared = _shared(tmp_path_factory)
    outcome, f = shared / "smoke-run.json", shared / "smoke-run" / "experiments" / name / "result.json"
    if not outcome.exists() or json.loads(outcome.read_text())["error"] or not f.exists():
        return None
    result = ExperimentResult.from_json(f.read_text())
    return result if result.params == {"preset": "smoke", **REGISTRY[name].params("smoke")} else None


def smoke_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The smoke run's directory and its ``claims.csv`` rows; the run is made by the first worker to take the lock,
    the others read its outcome (a failure is reported by every test that uses it)."""
    from dlnlab.reproduce import reproduce

    shared = _shared(tmp_path_factory)
    out, outcome = shared / "smoke-run", shared / "smoke-run.json"
    with open(shared / "smoke-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not outcome.exists():
            t0, error = time.perf_counter(), ""
            try:
                with keep_runs(run_cache(tmp_path_factory)):
                    reproduce(out, "smoke", progress=False)
            except Exception:  # noqa: BLE001  (recorded for every test that uses the run, not only the first)
                error = traceback.format_exc()
            outcome.write_text(json.dumps({"error": error, "seconds": time.perf_counter() - t0}))
    result = json.loads(outcome.read_text())
    assert not result["error"], f"the smoke run (dlnlab reproduce --smoke) failed:\n{result['error'][-8000:]}"
    with open(out / "claims.csv") as fh:
        return out, list(csv.DictReader(fh))


def run_smoke(tmp_path_factory, name: str, out: Path, seed: int = 0) -> ExperimentResult:
    """Experiment ``name`` at its smoke preset and ``seed``, in ``out``, with this session's run cache: at seed 0 its
    simulations are the smoke run's (bitwise the same datasets, read back instead of recomputed once that run has
    made them: ``tests/conftest.py`` runs these tests last), at other seeds they are computed (and kept)."""
    with keep_runs(run_cache(tmp_path_factory)):
        return REGISTRY[name].run("smoke", out, seed=seed)
