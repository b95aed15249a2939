"""The ``fokker_planck`` experiment: the FP solution against the per-mode SDE ensemble (density of m(t), learning-time
law and median) and the L = 2 escape rates of §8 (checks.md S6), as computed verdicts at fixed seeds."""

from __future__ import annotations

import pytest

from dlnlab.experiments import get
from dlnlab.experiments.corlouer import fokker_planck as exp


@pytest.mark.slow
def test_fp_rows_hold_at_40000_replicas():
    """R = 4e4 SDE paths (Δt = 2e-3), L = 2, λ = s = 1, σ_ε = 0.5, η/B = 0.05, m0 = 0.01: KS(SDE m(t), FP) ≤ 0.3h_Δt +
    0.02 at t = 1, 2.5, 4; the learning-time law (KS on the record grid, Broadie–Glasserman-corrected FP) and its
    median for θ = 0.5 and 0.99."""
    p = get("fokker_planck").params("quick", ["times=[1.0, 2.5, 4.0]", "t_max=5.0", "seed=3"])
    sde = exp._sde_run(p)
    rows = exp.law_claims(p, sde, 1.0)[0] + exp.passage_claims(p, sde, 1.0)[0]
    assert len(rows) == 7
    bad = [(c.id, c.verdict, c.value, c.evidence) for c in rows if c.verdict != "holds"]
    assert not bad, bad


def test_escape_rates_hold():
    """S6: slopes of E ln m, Var ln m, ln E m between t = 1 and 4 from m0 = 1e-8 (R = 2e4, Δt = 1e-3) within 1, 4
    and 2 % of 2λs − (η/B)D(0), 4(η/B)D(0), 2λs + (η/B)D(0); with s × 1.05 in the theory every one fails."""
    p = get("fokker_planck").params("quick", ["seed=4"])
    assert [c.verdict for c in exp.escape_claims(p, 1.0)] == ["holds"] * 3
    assert [c.verdict for c in exp.escape_claims(p, 1.05)] == ["fails"] * 3
