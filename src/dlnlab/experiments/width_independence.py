"""[Z] width independence of the L = 2 stationary law (``noise_balance.md`` §6.2–6.3; ``checks.md`` Z14).

``width_independence`` — online ½-loss SGD (``B = 1``, ``T = η/2``) on the reference data of the diagonal network
(:mod:`dlnlab.engines.diagonal`, ``v = Σ_i v_i``). At ``L = 2`` a network of ``d = 5`` paths started from random,
unbalanced factors with mixed signs has the same stationary law of ``v`` as one path: the noise balances each
path (``u_i² = w_i²``), kills the negative ones, and the survivors keep fixed ratios, on which the law does not
depend. At ``L = 3`` the law depends on ``d`` through ``d^{(L−2)/L} = d^{1/3}``: ``d = 5`` equal paths are
compared with one path, and the comparison must reject. Each comparison is a two-sample KS test at α = 0.001
on samples thinned by ``Δt`` (``t = η·step``) along each replica.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .. import figures
from ..analysis.ensembles import stationary_samples
from ..engines import diagonal_config, simulate_diagonal
from ..model.diagonal import DiagonalModel
from ..theory.diagonal_stationary import DiagonalStationaryLaw
from .base import Claim, ExperimentResult, Figure, register, verdict

ALPHA = 1e-3


def width_runs(lr: float, replicas: int, t_burn: float, t_max: float, dt_sample: float, init_scale: float,
               seed: int, d: int = 5):
    """Stationary samples of ``v`` (shape ``(replicas, n)``) at ``t_burn, t_burn + dt_sample, …, t_max``, keyed by
    ``(L, paths)``: ``L = 2`` with one path from ``v = 1`` and with ``d`` paths from i.i.d. ``N(0, init_scale²)``
    factors (per replica); ``L = 3`` with one path from ``v = 1`` and with ``d`` equal balanced paths ``v_i = 1/d``.
    Also returns the lag-``dt_sample`` correlation of the samples of each run and its divergence count."""
    times = np.concatenate([[0.0], np.arange(t_burn, t_max + dt_sample / 2, dt_sample)])
    w0 = init_scale * np.random.default_rng(seed).standard_normal((replicas, d, 2))
    setups = {(2, 1): {"v0": [1.0]}, (2, d): {"weights": w0}, (3, 1): {"v0": [1.0]}, (3, d): {"v0": [1.0 / d] * d}}
    out = {}
    for i, ((L, n), init) in enumerate(setups.items()):
        cfg = diagonal_config(DiagonalModel(depth=L, n_paths=n), kind="sgd", lr=lr, times=times, replicas=replicas,
                              seed=seed + 1 + i, v0=init.get("v0"))
        ds = simulate_diagonal(cfg, weights=init.get("weights"))
        x = stationary_samples(ds, t_burn)
        lag = float(np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1])
        out[(L, n)] = (x, lag, int(ds.n_diverged))
    return out


@register("width_independence", paper="Z", cost="~15 s",
          claim="The L=2 stationary law does not depend on the width d (random unbalanced mixed-sign init); at L=3 it does (d^{1/3})",
          quick={"lr": 0.04, "replicas": 2000, "t_burn": 100.0, "t_max": 150.0, "dt_sample": 10.0, "init_scale": 0.4,
                 "width": 5, "seed": 0},
          full={"lr": 0.04, "replicas": 20000, "t_burn": 100.0, "t_max": 200.0, "dt_sample": 10.0, "init_scale": 0.4,
                "width": 5, "seed": 0})
def width_independence(p, out):
    name, lr, d = "width_independence", p["lr"], p["width"]
    T = lr / 2
    runs = width_runs(lr, p["replicas"], p["t_burn"], p["t_max"], p["dt_sample"], p["init_scale"], p["seed"], d)
    grid = np.geomspace(1e-4, 50, 4000)
    claims = []
    for L in (2, 3):
        (x1, lag1, div1), (xd, lagd, divd) = runs[(L, 1)], runs[(L, d)]
        res = stats.ks_2samp(x1.ravel(), xd.ravel())
        laws = [DiagonalStationaryLaw(L, T, n_paths=n) for n in (1, d)]
        ks_laws = float(np.max(np.abs(laws[0].cdf(grid) - laws[1].cdf(grid))))
        crit = 1.949 * np.sqrt((x1.size + xd.size) / (x1.size * xd.size))
        same = L == 2
        what = (f"KS distance, two-sample, d = 1 vs d = {d} (n = {x1.size} + {xd.size}, thinned by Δt = {p['dt_sample']:g}: "
                f"lag correlations {lag1:.3f}, {lagd:.3f}; p = {res.pvalue:.3g}; diverged {div1 + divd}; "
                f"KS between the exact SDE laws {ks_laws:.3f})")
        if same:
            claims.append(Claim("Z", f"L=2: the stationary law of v is the same for d = 1 and d = {d} paths "
                                "(random unbalanced mixed-sign init)", name, what, 0.0, float(res.statistic), math.nan,
                                f"not rejected at α = {ALPHA:g}: p ≥ {ALPHA:g} (statistic < {crit:.4f})",
                                verdict(res.pvalue >= ALPHA)))
        else:
            claims.append(Claim("Z", f"L=3: the law depends on the width through d^(1/3) — d = 1 and d = {d} equal "
                                "paths differ", name, what, ks_laws, float(res.statistic), math.nan,
                                f"rejected at α = {ALPHA:g}: p < {ALPHA:g}", verdict(res.pvalue < ALPHA)))

    fig, ax = figures.subplots(1, 2, figsize=(10, 3.8))
    edges = np.linspace(0, 2.5, 61)
    vv = np.linspace(1e-3, 2.5, 400)
    for j, L in enumerate((2, 3)):
        for n, c in ((1, "C0"), (d, "C3")):
            x = runs[(L, n)][0].ravel()
            ax[j].hist(x, bins=edges, density=True, histtype="step", color=c, lw=1.4, label=f"SGD, d = {n}")
            ax[j].plot(vv, DiagonalStationaryLaw(L, T, n_paths=n).pdf(vv), color=c, ls="--", lw=1,
                       label=f"SDE law, d = {n}")
        ax[j].set(title=f"L = {L}, T = {T:g} (η = {lr:g}, B = 1)", xlabel="v = Σ v_i", ylabel="density")
        ax[j].legend(fontsize=7)
    f = figures.save(fig, out, "width_independence")
    return ExperimentResult(name, claims=claims, figures=[Figure(
        f, f"Width independence (§6.2). Left, L = 2: the SGD histogram of v with d = {d} paths started from random, "
           "unbalanced, mixed-sign factors (red) lies on the one-path histogram (blue); the exact law (dashed) does "
          f"not depend on d. Right, L = 3: d = {d} equal paths concentrate v closer to the minimiser — the law depends on "
           "d through d^(1/3) (a lower effective temperature). SGD histograms differ from the SDE laws by the O(η) "
           "discretisation bias, identical for both widths at L = 2 (balanced paths follow the same map of v); at L = 3 "
           "d equal paths take d^(−1/3)-times smaller steps in v, so the d = 1 run is the more biased (broader).")])
