"""Issue 6: a reduced ``dlnlab reproduce`` of every registered experiment, end to end.

The reduction (``SMOKE``) lowers replicas and steps through ``reproduce``'s per-experiment overrides, so the run
checks the pipeline — every registered experiment writes its claims with finite numbers into one table and the
report — not the verdicts (those need the quick preset's statistics; ``dlnlab reproduce --quick``).
"""

from __future__ import annotations

import csv
import math

import pytest
from typer.testing import CliRunner

from dlnlab.cli import app
from dlnlab.experiments import PAPERS, REGISTRY, VERDICTS

# per-experiment preset changes (``--set NAME.key=value``); experiments not listed run their quick preset
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
    "relu_balance": ["steps=300", "replicas=3", "n_mc=500", "n_records=11"],
    "width_independence": ["replicas=300", "t_burn=20.0", "t_max=40.0"],
    "discrete_collapse": ["replicas=4000", "steps=100", "fate_replicas=50", "fate_steps=500"],
}
# quantities that are a test statistic (a p-value) or an extreme over runs have no standard error
NO_SE = ("min KS p", "min two-sample KS p", "max over runs", "max over layer pairs", "KS distance")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    args = ["reproduce", "--quick", "--out", str(out)]
    for name, items in SMOKE.items():
        args += [x for item in items for x in ("--set", f"{name}.{item}")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with open(out / "claims.csv") as fh:
        return out, list(csv.DictReader(fh))


def _finite(x: str) -> bool:
    return x != "" and math.isfinite(float(x))


def test_every_registered_experiment_has_claims_with_finite_numbers(smoke_run):
    out, rows = smoke_run
    by_exp = {}
    for r in rows:
        by_exp.setdefault(r["experiment"], []).append(r)
    assert set(by_exp) == set(REGISTRY), set(REGISTRY) ^ set(by_exp)
    for name, exp_rows in by_exp.items():
        # rows may cite another paper (saxe's depth-L≥3 rows are [J]'s), but every experiment checks its own
        assert any(r["paper"] == REGISTRY[name].paper for r in exp_rows), name
    for r in rows:
        assert r["verdict"] in VERDICTS and r["paper"] in PAPERS, r
        assert r["claim"] and r["quantity"] and r["tolerance"], r
        assert _finite(r["value"]), r
        assert _finite(r["uncertainty"]) or r["quantity"].startswith(NO_SE), r
    html = (out / "report.html").read_text()
    for name in REGISTRY:
        assert name in html


def test_reproduce_rejects_a_bad_override(tmp_path):
    res = CliRunner().invoke(app, ["reproduce", "--out", str(tmp_path / "r"), "--set", "nosuch.replicas=3"])
    assert res.exit_code == 2 and "--set" in res.output and "nosuch.replicas=3" in res.output
    res = CliRunner().invoke(app, ["reproduce", "--out", str(tmp_path / "r"), "--set", "saxe.nosuch=3"])
    assert res.exit_code == 2 and "saxe.nosuch" in res.output
    assert not (tmp_path / "r" / "experiments" / "saxe").exists()
