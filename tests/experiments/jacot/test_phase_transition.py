"""[J] ``phase_transition`` (``experiments/jacot/phase_transition.py``): the regime and sharpening rows on synthetic
per-run measurements (a sharp and a flat contrast, the γ_c perturbations flipping them), and the smoke preset's
measured rows (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from dlnlab.experiments.jacot import phase_transition as pt
from experiments._smoke import run_smoke

P = {"gammas": [0.5, 2.0], "widths": [8, 64, 256], "threshold": 0.5}


def _runs(slope_hi=-0.3, n=8, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for w in P["widths"]:
        for g in P["gammas"]:
            for r in range(n):
                saddle = g > 1
                out.append({"depth": 2, "width": w, "gamma": g, "replica": r, "in_order": saddle, "none": not saddle,
                            "rho": (0.5 if not saddle else 0.5 * (w / 8) ** slope_hi) * np.exp(0.05 * rng.normal())})
    return out


def _ids(rows):
    return {c.id: c for c in rows}


def test_regime_and_sharpening_hold_on_a_sharp_transition():
    rows = _ids(pt.regime_claims(_runs(), P, 1.0) + pt.sharpen_claims(_runs(), P, 1.0))
    assert rows["phase_transition/regime/L=2, gamma=0.5, w=256"].verdict == "holds"
    assert rows["phase_transition/regime/L=2, gamma=2, w=256"].verdict == "holds"
    sh = rows["phase_transition/sharpens/L=2"]
    assert sh.verdict == "holds" and sh.value == pytest.approx(0.3, abs=0.05)


def test_no_sharpening_is_not_a_hold():
    sh = pt.sharpen_claims(_runs(slope_hi=0.0), P, 1.0)[0]
    assert sh.verdict != "holds"


@pytest.mark.parametrize("gamma_c, flipped", [(0.4, "gamma=0.5"), (2.5, "gamma=2")])
def test_gamma_c_perturbations_fail(gamma_c, flipped):
    rows = _ids(pt.regime_claims(_runs(), P, gamma_c) + pt.sharpen_claims(_runs(), P, gamma_c))
    assert rows[f"phase_transition/regime/L=2, {flipped}, w=256"].verdict == "fails"
    assert rows["phase_transition/sharpens/L=2"].verdict == "fails"


@pytest.mark.slow
def test_smoke_rows_hold(tmp_path, tmp_path_factory):
    """Every measured row of the smoke preset holds at seeds 0 and 1 (seed 0's simulations: the smoke run's)."""
    for seed in (0, 1):
        res = run_smoke(tmp_path_factory, "phase_transition", tmp_path / str(seed), seed)
        bad = [(c.id, c.verdict) for c in res.claims if c.kind == "measured" and c.verdict != "holds"]
        assert not bad, bad
