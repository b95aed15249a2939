"""The ``stationary`` experiment's rows at checks.md S7/S8 settings (per-mode SGD from a far start, m0 = 0.01 s):
each measured row's computed verdict, at fixed seeds. The closed forms and the quadrature are tested in
``tests/test_stationary.py``."""

from __future__ import annotations

import numpy as np
import pytest

from dlnlab.experiments import get
from dlnlab.experiments.corlouer import stationary as exp


def _rows(group, replicas, n_per, seed):
    p = get("stationary").params("quick", [f"replicas={replicas}", f"n_per={n_per}"])
    L, s, lam, B, lrs, sigs = group
    runs, n_skip = exp.simulate(p, group, seed)
    rows = {}
    for lr in lrs:
        for sig in sigs:
            for c in exp.row_claims(runs[(lr, sig)][:, n_skip + 1:], L, s, lam, sig, lr, B, p, 1.0):
                rows[c.id] = c
        c = exp.collapse_claim(runs[(lr, 0.0)][:, -1], L, s, lam, lr, B, p, 1.0)
        rows[c.id] = c
    return rows


@pytest.mark.parametrize("group", [(2, 1.0, 1.0, 1, [0.01], [1.0]), (3, 1.0, 1.0, 1, [0.01], [0.5])], ids=["L2", "L3"])
def test_s8_rows_hold_at_n_8e4(group):
    """S8 (η = 0.01; L = 2, σ_ε = 1, h = 0.02; L = 3, σ_ε = 0.5, h = 0.03) at n = 8e4 (4000 replicas × 20 records
    10/h apart): the exact law (KS ≤ 0.3h + 0.01), its mean with the Itô shift, its variance (1.5h), the Boltzmann law
    within 0.05 and the label-dominated law within 0.3h + 0.01 hold; S7: every replica without label noise ends at s
    (≤ 1e-6). (At L = 3, σ_ε = 1, T_ε = 0.005 the Boltzmann law is off by KS ≈ 0.055, beyond 0.05: it is the
    small-T_ε limit.)"""
    rows = _rows(group, 4000, 20, seed=11)
    assert len(rows) == 6
    bad = {i: (c.verdict, c.value, c.evidence) for i, c in rows.items() if c.verdict != "holds"}
    assert not bad, bad
    assert all("burn-in check" in c.note for i, c in rows.items() if "collapse" not in i)


@pytest.mark.slow
def test_s8_depth_4_and_two_step_sizes_at_n_2e5():
    """S8 at n = 2e5 (10 000 replicas × 20): L = 4, s = λ = 1, σ_ε = 0.3, B = 2, η = 0.01 (h = 0.04), and L = 2,
    σ_ε = 0.5 at η = 0.005 and 0.01 (h = 0.01, 0.02) in one engine call: every measured row but the mean holds; the
    mean (the Itô shift 3e-4 to 1.3e-3 resolved to 50 %) holds or is inconclusive, never fails."""
    for group in ((4, 1.0, 1.0, 2, [0.01], [0.3]), (2, 1.0, 1.0, 1, [0.005, 0.01], [0.5])):
        rows = _rows(group, 10_000, 20, seed=21)
        for i, c in rows.items():
            allowed = ("holds", "inconclusive") if "/mean/" in i else ("holds",)
            assert c.verdict in allowed, (i, c.verdict, c.value, c.theory, c.evidence)


def test_theory_rows_are_self_checks():
    rows, table = exp.theory_claims([2], 0.5, [1e-4, 3e-4, 1e-3])
    assert {c.kind for c in rows} == {"theory"} and all(c.verdict == "holds" for c in rows)
    assert len(table) == 3 and np.all(np.diff([r["ks_gauss"] for r in table]) > 0)
