"""``infinite_depth`` — [Z] §10 (``noise_balance.md`` §10): as the depth grows with the width ``d ∝ L`` the stationary
law tends to the infinite-depth law, which depends on the width-to-depth ratio and the temperature only through
``(d/L)/T`` ([Z]: ``(d/D)(S/η)``); ``d = o(L)`` drives it to ``δ(0)``, ``d ≫ L`` to the minimiser.

Measured: two simulated networks with the same ``(d/L)/T`` (preset ``settings``, each ``[L, d, T]``; default
``[20, 20, 0.2]`` and ``[20, 5, 0.05]``: ``d/L`` and ``T`` both 4× apart) — the log SDE of ``d`` balanced paths (one
Brownian motion, so equal paths stay equal: the network, not the one-path reduction), tamed, from the stated start
``v = 1`` (``v_i = 1/d``; the law's median is ≈ 0.67), samples ``t ∈ [t_burn, t_max]`` with the burn-in row:

* the difference of the two sample means, against the infinite-depth value 0 within the finite-depth remainder
  (the difference of the two exact depth-``L`` laws' means, Theorem 4.2: at finite ``L`` the law depends on
  ``d^{1−2/L}/T``; 0.032 at the default settings) plus each mean's tamed-step and burn-in budget;
* each setting's mean and median against its exact depth-``L``, ``d``-path law (Theorem 4.2).

Kind theory: the depth-``L`` law with ``d = L`` converges to the infinite-depth law (closed forms), the identity
"only ``r/T``" of the infinite-depth density, and the collapse for ``d = o(L)``.

Wall times measured only on the shared 2-core machine at load 8–14 (no quiet measurement): quick 98–136 s.

Theory inputs: ``T`` (every law's temperature) and ``scaling`` (the exponent of ``d/L`` in the scaling variable: the
infinite-depth law at ``(d/L)^f/T``, which breaks the claim at ``f ≠ 1``).
"""

from __future__ import annotations

import numpy as np
from scipy import integrate

from ... import figures
from ...analysis import stats
from ...engines import diagonal_config, simulate_diagonal
from ...model.diagonal import DiagonalModel
from ...theory.diagonal_stationary import DiagonalStationaryLaw
from ...theory.diagonal_stationary_forms import log_density_general, log_density_infinite_depth
from ..base import ExperimentResult, Perturbation, register
from ..claims import Tolerance
from ._common import REF, burn_in_row, exact, figure, row, save_dataset, theory_factors

NAME = "infinite_depth"
BIAS = 0.02
"""Relative budget for the tamed-step bias and the finite burn-in of a sample mean. Measured at (L, d, T) = (20, 20,
0.2) (loaded machine): t ∈ [7.5, 15], 1000 walkers: mean +1.9 % at Δt = 1e-3 (the step damps the noise by
1/(1 + ς²Δt)), −0.05 % at Δt = 5e-4 (SE ≈ 0.6 %); t ∈ [5, 10], Δt = 5e-4, 2000 walkers: +2.3 % with the burn-in
row at −0.024 ± 0.012 (the d = 20 network relaxes slowly: its one-path clock runs at d^(2/L−1) = 0.07). Hence
Δt = 5e-4 and t ∈ [10, 15]."""
Y = np.linspace(-30.0, 20.0, 20001)  # ln v: the infinite-depth law is ∝ exp(−(r/T)β₂/(α₃v)) at 0⁺, v^{−5} at ∞


def infinite_depth_mean(T: float, r: float) -> float:
    """Mean of the infinite-depth law at ``(T, d/L = r)`` (the density normalised by the trapezoid rule in ``ln v``
    on ``[e^{−30}, e^{20}]``; the neglected tails are below 1e-12 of the mass)."""
    lp = log_density_infinite_depth(np.exp(Y), T, REF, r) + Y
    w = np.exp(lp - lp.max())
    return float(integrate.trapezoid(w * np.exp(Y), Y) / integrate.trapezoid(w, Y))


def _simulate(p, out, k, L, d, T):
    tb, tm = p["t_burn"], p["t_max"]
    ds = simulate_diagonal(diagonal_config(DiagonalModel(depth=L, n_paths=d), kind="sde_log", lr=2 * T, dt=p["dt"],
                                           times=np.concatenate([[0.0], np.linspace(tb, tm, p["records"])]),
                                           replicas=p["replicas"], v0=[p["v0"] / d] * d, scheme="tamed",
                                           seed=p["seed"] + k))
    save_dataset(ds, out, f"L{L}_d{d}")
    return ds.output.values[:, 1:]


def _setting_rows(p, x, L, d, T, f):
    law = DiagonalStationaryLaw(L, T * f["T"], n_paths=d)
    diag, note = burn_in_row(NAME, x, f"t ∈ [{p['t_burn']:g}, {p['t_max']:g}]", f"v = {p['v0']:g}", depth=L,
                             paths=d, T=T)
    tol = Tolerance.within(relative=BIAS + 0.01, why="tamed Δt bias and finite burn-in (2 %; see BIAS), and the slow "
                           "mixing of the deep network's small-v side (1 %)")
    kw = {"tolerance": tol, "note": note, "depth": L, "paths": d, "T": T}
    return [row(NAME, "mean", claim=f"The depth-{L}, width-{d} network's stationary mean is its exact law's "
                "(Theorem 4.2)", quantity="mean of v", theory=law.mean, estimate=stats.group_estimate(x), **kw),
            row(NAME, "median", claim=f"The depth-{L}, width-{d} network's stationary median is its exact law's "
                "(Theorem 4.2)", quantity="median of v", theory=law.median,
                estimate=stats.group_estimate(x, np.median), **kw), diag]


def _pair_row(p, x, f):
    (La, da, Ta), (Lb, db, Tb) = p["settings"]
    ea, eb = stats.group_estimate(x[0]), stats.group_estimate(x[1])
    diff = stats.Estimate.student(ea.value - eb.value, float(np.hypot(ea.se, eb.se)), min(ea.dof, eb.dof))
    theory = (infinite_depth_mean(Ta, (da / La) ** f["scaling"]) - infinite_depth_mean(Tb, (db / Lb) ** f["scaling"]))
    ma, mb = DiagonalStationaryLaw(La, Ta, n_paths=da).mean, DiagonalStationaryLaw(Lb, Tb, n_paths=db).mean
    remainder, bias = abs(ma - mb), BIAS * (ma + mb)
    mean_inf = infinite_depth_mean(Ta, da / La)
    return row(NAME, "scaling", claim="Only (d/L)/T matters: two networks with the same (d/L)/T have the same "
               "stationary law (infinite depth)",
               quantity=f"mean of v at (L, d, T) = ({La}, {da}, {Ta:g}) minus at ({Lb}, {db}, {Tb:g}) (independent "
               "walkers; t with the smaller dof)", theory=theory, estimate=diff,
               note=f"(d/L)/T = {da / La / Ta:g} and {db / Lb / Tb:g}; infinite-depth mean {mean_inf:.4f}",
               tolerance=Tolerance.within(absolute=remainder + bias, why=f"the finite-depth remainder {remainder:.4f} "
                                          "(difference of the exact depth-L laws' means: they depend on d^(1−2/L)/T) "
                                          f"and each mean's tamed-step and burn-in budget (BIAS, 2 %), added: {bias:.4f}"),
               depth=f"{La}-{Lb}", paths=f"{da}-{db}")


def _theory_rows():
    T, v = 0.5, np.geomspace(0.05, 5, 30)
    ref = log_density_infinite_depth(v, T, REF, 1.0)
    Ls = (100, 1000, 10000)
    spreads = [float(np.ptp(log_density_general(v, L, T, REF, n_paths=L) - ref)) for L in Ls]
    means = {r: DiagonalStationaryLaw(400, T, n_paths=max(1, int(r * 400))).mean for r in (2.0, 1.0, 0.1, 0.01)}
    same = float(np.ptp(log_density_infinite_depth(v, 2 * T, REF, 2.0) - ref))
    return [
        row(NAME, "convergence", claim="The depth-L law with d = L paths converges to the infinite-depth law",
            kind="theory", quantity="range of ln p_L − ln p_∞ on v ∈ [0.05, 5] at L = 10⁴ (L = 100, 1000, 10⁴: "
            + ", ".join(f"{s:.3g}" for s in spreads) + ")", theory=0.0, estimate=exact(spreads[-1]), T=T,
            tolerance=Tolerance.at_most(absolute=0.05, why="the O(ln L/L) remainder at L = 10⁴")),
        row(NAME, "convergence_order", claim="The distance to the infinite-depth law falls with L", kind="theory",
            quantity="largest increase of that range from one L to the next", theory=0.0,
            estimate=exact(max(np.diff(spreads))), T=T,
            tolerance=Tolerance.at_most(absolute=0.0, why="strictly decreasing")),
        row(NAME, "scaling_identity", claim="Only (d/L)/T enters the infinite-depth law", kind="theory",
            quantity="range of ln p_∞(d/L = 2, 2T) − ln p_∞(d/L = 1, T) on v ∈ [0.05, 5]", theory=0.0,
            estimate=exact(same), T=T, tolerance=Tolerance.at_most(absolute=1e-12, why="round-off")),
        row(NAME, "width_must_grow", claim="Width must grow with depth: d = o(L) drives the law to δ(0), d ≫ L to the "
            "minimiser", kind="theory", quantity="largest increase of the mean of v at L = 400 as d/L falls through "
            + ", ".join(f"{r:g} ({m:.3f})" for r, m in means.items()), theory=0.0,
            estimate=exact(max(np.diff(list(means.values())))), T=T,
            tolerance=Tolerance.at_most(absolute=0.0, why="strictly decreasing as d/L → 0"))]


def _figure(p, x, out):
    fig, ax = figures.subplots(1, 2, figsize=(10, 3.8))
    v = np.geomspace(0.02, 5, 300)
    for (L, d, T), xi, c in zip(p["settings"], x, ("C0", "C1"), strict=True):
        law = DiagonalStationaryLaw(L, T, n_paths=d)
        ax[0].hist(xi.ravel(), bins=np.geomspace(0.02, 5, 50), density=True, alpha=0.35, color=c,
                   label=f"SDE L={L}, d={d}, T={T:g}")
        ax[0].plot(v, law.pdf(v), color=c, lw=1, label=f"exact law L={L}, d={d}")
    L, d, T = p["settings"][0]
    lp = log_density_infinite_depth(v, T, REF, d / L)
    pinf = np.exp(lp - lp.max())
    ax[0].plot(v, pinf / integrate.trapezoid(pinf, v), "k--", lw=1.2, label=f"infinite depth, (d/L)/T = {d / L / T:g}")
    ax[0].set(xscale="log", xlabel="v", ylabel="p(v)", title="same (d/L)/T")
    ax[0].legend(fontsize=7, loc="upper right")  # a fixed place: "best" is slow over histograms of 10⁴ samples
    for r in (0.02, 0.1, 0.5, 1.0, 3.0):
        lp = log_density_infinite_depth(v, 0.5, REF, r)
        pp = np.exp(lp - lp.max())
        ax[1].plot(v, pp / integrate.trapezoid(pp, v), label=f"d/L = {r:g}")
    ax[1].set(xscale="log", xlabel="v", title="infinite-depth law at T = 0.5 vs d/L")
    ax[1].legend(fontsize=7)
    return figure(fig, out, NAME, "§10. Left: two simulated networks with the same (d/L)/T (histograms) against "
                  "their exact depth-L laws (lines) and the infinite-depth law (dashed), which the depth-L laws "
                  "approach only as O(1/L). Right: the infinite-depth law against d/L; small d/L pushes the mass to 0, "
                  "large d/L to the minimiser.")


@register(NAME, paper="Z", cost="~100 s loaded",
          claim="As depth grows with width ∝ depth the law tends to the infinite-depth law, which depends only on "
                "(d/L)/T; d = o(L) collapses",
          quick={"settings": [[20, 20, 0.2], [20, 5, 0.05]], "replicas": 2000, "t_burn": 10.0, "t_max": 15.0,
                 "records": 11, "dt": 5e-4, "v0": 1.0, "seed": 0},
          full={"settings": [[20, 20, 0.2], [20, 5, 0.05]], "replicas": 8000, "t_burn": 15.0, "t_max": 30.0,
                "records": 21, "dt": 2.5e-4, "v0": 1.0, "seed": 0},
          smoke={"replicas": 1000},
          perturbations=(Perturbation("T", 1.2, "the temperature × 1.2 in the exact depth-L laws"),
                         Perturbation("scaling", 1.2, "the exponent of d/L in the scaling variable × 1.2: the "
                                      "infinite-depth law at (d/L)^1.2/T")))
def infinite_depth(p, out):
    f = theory_factors(p, ("T", "scaling"))
    x = [_simulate(p, out, k, *s) for k, s in enumerate(p["settings"])]
    rows = [r for (L, d, T), xi in zip(p["settings"], x, strict=True) for r in _setting_rows(p, xi, L, d, T, f)]
    return ExperimentResult(NAME, claims=[_pair_row(p, x, f), *rows, *_theory_rows()], figures=[_figure(p, x, out)])
