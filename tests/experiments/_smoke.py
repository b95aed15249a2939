"""The registry's smoke run: ``dlnlab reproduce`` of every registered experiment at its ``smoke`` preset, once per
test session (shared by the pytest-xdist workers under a file lock), for the claims-table, registry and
verdict-regression tests.

``SMOKE``: reductions, by ``--set`` overrides, for the experiments that do not declare a smoke preset of their own
yet (their ``smoke`` preset is their ``quick`` one); it is applied to those only, and goes away when every experiment
declares ``register(..., smoke=...)`` (issue 14 migration).
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import time
import traceback
from pathlib import Path

from dlnlab.experiments import REGISTRY

SMOKE = {
    "mode_agreement": ["replicas=300", "weak_replicas_full=300", "weak_replicas_modes=3000", "weak_h=[0.1, 0.2]"],
    "unaligned": ["steps=4000", "mode_replicas=500", "unbalanced_steps=4000", "unbalanced_replicas=4"],
    "diffusion_peak": ["replicas=60", "full_replicas=4"],
    "stationary": ["replicas=200"],
    "diagonal_stationary": ["replicas=300", "sgd_replicas=2000", "L3_replicas=300"],
    "fokker_planck": ["replicas=2000", "sgd_replicas=2000", "n_cells=800"],
    "sparsity": ["sigmas=[0.01, 0.3]", "instances=[0]"],
    "escape_times": ["sigmas_2=[0.01, 0.0001, 1e-06]", "sigmas_3=[0.02, 0.002, 0.00063]"],
    "power_law_tails": ["replicas=200", "steps=20000"],
    "noise_balance_dln": ["t_max=30.0", "n_times=301"],
    "fluctuation_inversion": ["replicas=100"],
}


def own_smoke(name: str) -> bool:
    """Whether an experiment declares a smoke preset of its own (not its quick preset)."""
    presets = REGISTRY[name].presets
    return presets["smoke"] != presets["quick"]


def reductions() -> dict[str, list[str]]:
    """``SMOKE``'s overrides of the registered experiments that have no smoke preset of their own."""
    return {name: items for name, items in SMOKE.items() if name in REGISTRY and not own_smoke(name)}


def smoke_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The smoke run's directory and its ``claims.csv`` rows; the run is made by the first worker to take the lock,
    the others read its outcome (a failure is reported by every test that uses it)."""
    from dlnlab.reproduce import reproduce

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, outcome = shared / "smoke-run", shared / "smoke-run.json"
    with open(shared / "smoke-run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not outcome.exists():
            t0, error = time.perf_counter(), ""
            try:
                reproduce(out, "smoke", overrides=reductions(), progress=False)
            except Exception:  # noqa: BLE001  (recorded for every test that uses the run, not only the first)
                error = traceback.format_exc()
            outcome.write_text(json.dumps({"error": error, "seconds": time.perf_counter() - t0}))
    result = json.loads(outcome.read_text())
    assert not result["error"], f"the smoke run (dlnlab reproduce --smoke) failed:\n{result['error'][-8000:]}"
    with open(out / "claims.csv") as fh:
        return out, list(csv.DictReader(fh))
