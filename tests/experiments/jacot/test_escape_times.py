"""[J] ``escape_times`` (``experiments/jacot/escape_times.py``): the escape-time law against σ (checks.md G5) and
the experiment's sweep. Moved from ``tests/test_saddles.py`` (now ``tests/analysis/test_saddles.py``) (the two law checks and the sweep test, unchanged
checks), plus the experiment's rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import dlnlab
from dlnlab import theory
from dlnlab.analysis import fit_escape_law, plateau_table


def _escape_run(L, sigmas, t_max):
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 5, "d_out": 5, "singular_values": [4.0], "basis": "random", "seed": 0},
        "network": {"depth": L, "width": 30},
        "init": {"kind": "gaussian", "scale": sigmas},
        "dynamics": {"kind": "flow", "t_max": t_max, "rtol": 1e-8},
        "record": {"n_times": 400, "spacing": "linear", "chunks": 2, "observables": ["loss", "singular_values"]},
        "ensemble": {"replicas": 1, "seed": 0},
    })
    ds = dlnlab.simulate(cfg, progress=False)
    tab = plateau_table(ds)
    assert (tab.groupby("replica").size() == 2).all()  # one jump per σ
    return tab[tab.plateau == 0].sort_values("replica").t_end.to_numpy()


def test_escape_time_law_L2():
    """L = 2, σ = 1e-2 … 1e-5, the same normalised draw rescaled (G5): the time for σ_1(W) to reach s_1/2 is affine
    in ln(1/σ) with slope 1/(λs_1) = 0.25. Tolerance: 10% (the issue); G5's validated 5% also holds (observed
    0.252; here 0.2498)."""
    sig = [1e-2, 1e-3, 1e-4, 1e-5]
    t = _escape_run(2, sig, 4.0)
    fit = fit_escape_law(sig, t, 2)
    assert fit["kind"] == "slope" and fit["theory"] == 1.0
    _, theo = theory.escape_law_slope(2, 4.0)
    assert abs(fit["value"] / theo - 1) < 0.05, fit
    # the leading-order law has the same slope: t(σ) − law(σ) is constant
    law = theory.escape_time_law(np.array(sig), 4.0, 2, width=30)
    assert np.ptp(t - law) < 0.05 * np.ptp(t)


def test_escape_time_law_L3():
    """L = 3, σ ∈ [0.005, 0.02] (G5): ln t against ln σ has exponent −(L − 2) = −1 within 10% (the issue; G5:
    tσ constant within 10%, observed 0.047–0.048). Measured exponent −1.031, tσ = 0.0457–0.0477."""
    sig = [0.02, 0.01, 0.005]
    t = _escape_run(3, sig, 15.0)
    fit = fit_escape_law(sig, t, 3)
    assert fit["kind"] == "exponent" and fit["theory"] == -1.0
    assert abs(fit["value"] / -1.0 - 1) < 0.10, fit
    ts = np.asarray(t) * np.asarray(sig)
    assert ts.max() / ts.min() < 1.10


def _sweep_runs(out):
    """(manifest, results table, {run id: number of attempts}) of an experiment's sweep directory ``out/sweep``."""
    sw = out / "sweep"
    manifest = json.loads((sw / "manifest.json").read_text())
    table = pd.read_parquet(sw / "results.parquet")
    attempts = {d.name: len(list(d.glob("*.json"))) for d in (sw / "attempts").iterdir()}
    return manifest, table, attempts


def test_escape_times_runs_through_sweep(tmp_path):
    """Issue 7 item 5: escape_times' σ grid is a dlnlab.sweep — one run per depth (σ stacked on its replica axis),
    one done table row per (depth, σ) — and its escape times are the sweep table's jump half-times; rerunning the
    experiment into the same directory skips the finished runs by id (one attempt each). The rows are computed
    claims with the regression slope as a Student estimate (n − 2 dof)."""
    from dlnlab.experiments import get

    exp = get("escape_times")
    over = ["depths=[2]", "d=3", "width=8", "s=[2.0, 1.0]", "sigmas_2=[0.01, 0.001, 0.0001]", "per_decade=20"]
    res = exp.run("quick", tmp_path, over)
    manifest, table, attempts = _sweep_runs(tmp_path)
    assert len(manifest["runs"]) == 1 and manifest["vectorised"] == ["init.scale"]
    assert len(table) == 3 and set(table.status) == {"done"} and table["init.scale"].tolist() == [0.01, 0.001, 0.0001]
    et = pd.read_csv(tmp_path / "escape_times.csv")
    for k in (1, 2):  # the experiment's t_escape (from the run's plateau table) = the sweep's summary
        np.testing.assert_allclose(et[et.saddle == k - 1].t_escape.to_numpy(), table[f"jump_time_{k}"].to_numpy(),
                                   rtol=1e-5)  # the csv keeps 6 digits
    assert attempts == {manifest["runs"][0]["id"]: 1}
    again = exp.run("quick", tmp_path, over)
    assert _sweep_runs(tmp_path)[2] == attempts  # skipped by id: no new attempt
    assert [c.value for c in again.claims] == [c.value for c in res.claims]
    assert [c.id for c in res.claims] == ["escape_times/slope/L=2, saddle=0", "escape_times/slope/L=2, saddle=1"]
    for c in res.claims:
        assert c.kind == "measured" and c.source == "derived" and c.estimate.dof == 1 and c.uncertainty > 0
        assert c.theory == 1.0 / [2.0, 1.0][int(c.id[-1])]


@pytest.mark.slow
def test_L4_every_escape_follows_the_law_down_to_1e_8(tmp_path):
    """Issue 15 item 3: at L = 4 the σ⁻² law of *every* escape (the later ones were cut at σ ≥ 1e-5 while the float64
    gradient set them) over six decades, σ = 1e-2 … 1e-8 (19 values, a σ ratio of 10^(−1/3): not commensurate with the
    40 records per decade), as measured rows that hold, and the plateau levels at σ = 1e-8. Measured: exponents
    −2.0000 ± 0.0009, −2.0000 ± 0.0010, −2.0001 ± 0.0010 (seed 0), −2.0005/−1.9992/−1.9999 (seed 1),
    −1.9992/−1.9998/−2.0003 (seed 2), SE 0.0009–0.0010, tolerances ≈ 0.0044: all hold. With 10 values (SE ≈ 0.0014,
    8 dof) seed 1's third row was inconclusive, hence 19. With the exponent × 1.05 in the theory every one fails."""
    from dlnlab.experiments import get

    sig = [float(f"{10 ** (-2 - k / 3):.3g}") for k in range(19)]
    over = ["depths=[4]", "d=3", "width=4", f"sigmas_4={sig}"]
    res = get("escape_times").run("quick", tmp_path, over)
    rows = [c for c in res.claims if c.setting.startswith("L=4")]
    slopes = [c for c in rows if c.quantity.startswith("log-log slope")]
    assert len(slopes) == 3 and all("19 values" in c.quantity for c in slopes), [c.quantity for c in slopes]
    assert all(c.verdict == "holds" for c in rows), [(c.quantity, c.value, c.verdict) for c in rows]
    off = get("escape_times").run("quick", tmp_path, [*over, "perturb={exponent=1.05}"])  # reuses the sweep
    assert all(c.verdict == "fails" for c in off.claims if "saddle=" in c.setting)
