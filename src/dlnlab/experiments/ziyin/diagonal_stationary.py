"""``diagonal_stationary`` — [Z] Fig. 3 and Theorem 4.2: long SDE/SGD runs of the diagonal network against the exact
stationary laws (``noise_balance.md`` §§6–7, 12; ``checks.md`` Z8, Z9).

Settings (reference data; every run starts from a stated initial condition far from the law, and reports the
early-vs-late burn-in diagnostic of its kept samples):

* ``L = 1`` (linear model) at ``T = 0.05`` and ``T = 0.5`` (parameter-space SDE, tamed; from ``v = −1``): centred on
  the minimiser with a ``T``-dependent power tail (``E v² = ∞`` at ``T = 0.5``: no mean row there);
* ``L = 2`` at ``T = 0.05`` (log SDE, tamed; from ``v = 0.1``) and online SGD ``η = 0.04``, ``B = 1`` (``T = 0.02``,
  ``h = 0.08``; from ``v = 0.1``), whose ``O(h)`` bias against the SDE law is the budget of ``checks.md`` Z9;
* ``L = 2`` above ``T_c`` (``T = 0.5``): the law is ``δ(0)``; ``ln v`` falls at the rate ``2(β₂ − Tα₃)`` of the log
  SDE's drift at ``v → 0`` (derived);
* ``L = 3`` at ``T = 0.3`` (log SDE, tamed; from ``v = 1``; Theorem 4.2 with ``d = 1``).

Theory inputs: ``s`` (the teacher in every law; the ``L = 3`` law at ``T = 0.3`` hardly moves with it: its scale
``∝ s`` and ``T/T_c`` compensate) and ``d`` (the number of paths of Theorem 4.2, ``L ≥ 2``, entering as
``d^{(L−2)/L}``: only ``L = 3`` moves; the ``d``-path law is the one-path law at ``T/d^{(L−2)/L}``).
"""

from __future__ import annotations

import numpy as np

from ... import figures
from ...analysis import stats
from ...engines import diagonal_config, simulate_diagonal
from ...model.diagonal import DiagonalModel
from ...theory.diagonal_stationary import DiagonalStationaryLaw
from ..base import ExperimentResult, Perturbation, register
from ..claims import Tolerance
from ._common import constants, figure, hist_vs_law, row, save_dataset, stationary_rows, theory_factors

NAME = "diagonal_stationary"
TAMED = "tamed SDE, unbiased within SE at these Δt (engines.diagonal)"


def _law(L, T, f):
    """The theory law; Theorem 4.2's ``d`` paths (``L ≥ 2``) as the one-path law at ``T/d^{(L−2)/L}``."""
    return DiagonalStationaryLaw(L, T * (f["d"] ** (-(L - 2) / L) if L >= 2 else 1.0), constants(s=f["s"]))


def _window(t_burn, t_max, n=11):
    return np.concatenate([[0.0], np.linspace(t_burn, t_max, n)])


def _sde_settings(p, out, f):
    R, seed, claims, samples = p["replicas"], p["seed"], [], {}
    runs = {  # label: (L, T, kind, v0, dt, t_burn, t_max, rel, replicas)
        "L1_T0.05": (1, 0.05, "sde", -1.0, 2e-3, 8.0, 16.0, 0.01, p["l1_replicas"]),
        "L1_T0.5": (1, 0.5, "sde", -1.0, 2e-3, 8.0, 16.0, 0.02, p["l1_replicas"]),
        "L2_T0.05": (2, 0.05, "sde_log", 0.1, 1e-3, 5.0, 15.0, 0.02, R),
        "L3_T0.3": (3, 0.3, "sde_log", 1.0, p["l3_dt"], p["l3_burn"], p["l3_t_max"], 0.05, R),
    }
    for i, (label, (L, T, kind, v0, dt, tb, tm, rel, reps)) in enumerate(runs.items()):
        m = DiagonalModel(depth=L)
        w = [[v0]] if kind == "sde" else None
        ds = simulate_diagonal(diagonal_config(m, kind=kind, lr=2 * T, dt=dt, times=_window(tb, tm, 1 + 10 * L),
                                               replicas=reps,
                                               v0=None if w else [v0], scheme="tamed", seed=seed + i), weights=w)
        save_dataset(ds, out, label)
        x = ds.dln.stationary(tb).values
        law = _law(L, T, f)
        ks = 2.2 * float(stats.ks_critical(reps, 0.01))
        claims += stationary_rows(NAME, x, law, start=f"v = {v0:g}", window=f"t ∈ [{tb:g}, {tm:g}]", rel=rel, ks=ks,
                                  mean=L > 1 or T < 0.25, why=f"{TAMED} (Δt = {dt:g}); KS budget 2.2× its critical "
                                  "value, so that the row resolves it", depth=L, T=T, dynamics=kind)
        samples[label] = (x, law)
    return claims, samples


def _sgd_setting(p, out, f):
    """``checks.md`` Z9: online SGD η = 0.04 (h = 0.08), burn-in 30/h steps, 10 samples thinned by 5/h steps."""
    lr, h = 0.04, 0.08
    burn, thin = 30 / h * lr, 5 / h * lr
    ds = simulate_diagonal(diagonal_config(DiagonalModel(depth=2), kind="sgd", lr=lr,
                                           times=np.concatenate([[0.0], burn + thin * np.arange(10)]),
                                           replicas=p["sgd_replicas"], v0=[0.1], seed=p["seed"] + 10))
    save_dataset(ds, out, "sgd_L2")
    x = ds.dln.stationary(burn).values
    law = _law(2, lr / 2, f)
    rows = stationary_rows(NAME, x, law, start="v = 0.1", window=f"t ∈ [{burn:g}, {burn + 9 * thin:g}]", rel=0.01,
                           ks=0.3 * h + 2 * float(stats.ks_critical(x.shape[0], 0.01)),
                           why="O(h) bias of SGD against the SDE law (checks.md Z9: mean 0.5 %, median 1 %; KS 0.3h)",
                           depth=2, T=lr / 2, dynamics="sgd")
    return rows, (x, law)


def _collapse(p, f):
    """``T = 0.5 > T_c``: the slope of ``ln v`` on the second half of the run against ``2(β₂ − Tα₃)``."""
    T, tm = 0.5, p["collapse_t_max"]
    ds = simulate_diagonal(diagonal_config(DiagonalModel(depth=2), kind="sde_log", lr=2 * T, dt=2.5e-3,
                                           times=[0, tm / 2, tm], replicas=p["collapse_replicas"], v0=[1.0],
                                           scheme="tamed",
                                           seed=p["seed"] + 20))
    y = ds.log_abs_v.values[:, :, 0]
    c = constants(s=f["s"])
    slope = (y[:, 2] - y[:, 1]) / (tm / 2)
    return row(NAME, "collapse_rate", claim="Above T_c the L = 2 law is δ(0): ln v falls without bound at the rate "
               "2(β₂ − Tα₃) of the log SDE's drift at v → 0", source="derived",
               quantity=f"replica mean of the slope of ln v on [{tm / 2:g}, {tm:g}] (from v = 1; tamed, Δt = 2.5e-3)",
               theory=2 * (c.beta2 - T * c.alpha3), estimate=stats.group_estimate(slope),
               tolerance=Tolerance.within(relative=0.03, why="the tamed drift μ/(1 + |μ|Δt) (0.25 %) and walkers not "
                                          "yet at v ≪ 1 at the window's start, where the drift differs"), depth=2, T=T), y


def _figure(samples, sgd, y_col, out):
    fig, ax = figures.subplots(2, 3, figsize=(13, 7))
    hist_vs_law(ax[0, 0], *samples["L1_T0.05"], np.linspace(0.0, 2.0, 60))
    ax[0, 0].set(title="L=1 (depth 0), T=0.05", xlabel="v")
    hist_vs_law(ax[0, 1], *samples["L1_T0.5"], np.linspace(-3.0, 6.0, 90))
    ax[0, 1].set(title="L=1, T=0.5: T-dependent power tail", xlabel="v", yscale="log")
    hist_vs_law(ax[0, 2], *samples["L2_T0.05"], np.linspace(0.05, 2.5, 60))
    ax[0, 2].set(title="L=2 (depth 1), T=0.05", xlabel="v")
    hist_vs_law(ax[1, 0], *sgd, np.linspace(0.3, 1.8, 60), label="SGD η = 0.04")
    ax[1, 0].set(title="L=2, online SGD, T = η/2 = 0.02", xlabel="v")
    for k, lab in ((1, "t = t_max/2"), (2, "t = t_max")):
        ax[1, 1].hist(y_col[:, k] / np.log(10), bins=60, density=True, alpha=0.5, label=lab)
    ax[1, 1].set(title="L=2, T=0.5 > T_c: collapse to δ(0)", xlabel="log₁₀ v")
    hist_vs_law(ax[1, 2], *samples["L3_T0.3"], np.linspace(-4, np.log10(5.0), 60), log10=True)
    ax[1, 2].set(title="L=3 (depth 2), T=0.3 (no sharp T_c)", xlabel="log₁₀ v")
    for a in ax.ravel():
        a.legend(fontsize=7)
    return figure(fig, out, NAME, "[Z] Fig. 3 in library units. Histograms of v from long SDE/SGD runs started far "
                  "from the law (bars) against the exact stationary densities (lines). L=1 stays centred with a "
                  "temperature-dependent power tail; L=2 depends strongly on T and collapses to v = 0 above T_c = 1/3 "
                  "(log₁₀ v drifting to −∞); L=3 has no sharp T_c.")


@register(NAME, paper="Z", cost="~40 s",
          claim="Long-run SGD/SDE distributions of v match the exact stationary laws for depths L = 1, 2, 3; L = 2 "
                "collapses above T_c",
          quick={"replicas": 4000, "l1_replicas": 8000, "sgd_replicas": 10000, "l3_dt": 5e-4, "l3_burn": 20.0,
                 "l3_t_max": 40.0, "collapse_t_max": 80.0, "collapse_replicas": 4000, "seed": 0},
          full={"replicas": 16000, "l1_replicas": 32000, "sgd_replicas": 40000, "l3_dt": 2.5e-4, "l3_burn": 40.0,
                "l3_t_max": 100.0, "collapse_t_max": 150.0, "collapse_replicas": 16000, "seed": 0},
          smoke={"l1_replicas": 4000, "sgd_replicas": 5000, "l3_t_max": 30.0},
          # The weakest rows are L = 3's (4000 replicas; its median is inconclusive at the smoke preset). Smoke
          # preset, seeds 0–3, every measured row holding at the true theory fails at s × 1.2 and at d × 1.25; at
          # s × 1.15 L = 3's KS still held at seed 1 and at d × 1.2 its mean was inconclusive at seed 1 (d enters
          # L = 3 as T/d^(1/3): d × 1.25 is the law at 7 % lower T). At seed 2 the smoke L = 3 mean (+3.7 %) and KS
          # fail at the true theory: its mean runs +0.5 to +1.6 % high at seeds 0, 1, 3 too (the tamed scheme's
          # ~√Δt bias at Δt = 5e−4, engines.diagonal), so a 2.6-SE draw crosses the 5 % band; the quick preset
          # (twice the kept window) holds at seeds 0–4 (benchmarks/flip_table.md).
          perturbations=(Perturbation("s", 1.2, "the teacher s × 1.2 in every law (and in 2(β₂ − Tα₃))"),
                         Perturbation("d", 1.25, "the number of paths d × 1.25 in Theorem 4.2's laws (L ≥ 2), "
                                      "through d^((L−2)/L): the L = 3 law at T/1.25^(1/3); L = 2 unchanged")))
def diagonal_stationary(p, out):
    f = theory_factors(p, ("s", "d"))
    claims, samples = _sde_settings(p, out, f)
    sgd_rows, sgd = _sgd_setting(p, out, f)
    col, y = _collapse(p, f)
    return ExperimentResult(NAME, claims=[*claims, *sgd_rows, col], figures=[_figure(samples, sgd, y, out)])
