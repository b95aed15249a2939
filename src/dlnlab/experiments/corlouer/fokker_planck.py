"""[C] ``fokker_planck`` (beyond the paper's statements, on its per-mode SDE): the time-dependent law of a mode and
its learning time (``sgd_noise.md`` §§5.2, 8, 9; :mod:`dlnlab.theory.mode_fokker_planck`; checks.md S6).

Simulate. One mode (L, s, λ, σ_ε, η, B) from ``m0``: the per-mode SDE (Euler–Maruyama of §5.1,
:func:`~dlnlab.engines.simulate_modes`, ``Δt = sde_dt``), and an L = 2 SDE ensemble from ``m0 = 1e-8`` for the
escape rates. (Discrete SGD is not held against the FP law in the transient: near the saddle its log-growth rate
differs from the SDE's by GD's ``−ηλ²s²/2`` (§8), a time shift ``∝ η t`` against a spread ``∝ √(η t)``, so its KS
distance to the SDE law is ``O(√η)``, not ``O(h)``. ``mode_agreement`` holds SGD against the SDE at small η/B.)

Estimate and claims (KS distances with exact Kolmogorov bounds; the whole 98 % interval inside the budget):

* ``ks_sde`` — KS(SDE m(t), FP at t) ≤ 0.3 h_Δt (the SDE step's weak error) + ``ks_margin``, at several t;
* ``ks_tau`` — KS(first record time with m ≥ θs, absorbing FP with the Broadie–Glasserman correction for the
  record spacing) on the record grid; ``median_tau`` — the censored bootstrap median of τ against FP's median;
* ``escape_*`` (L = 2, §8) — slopes of E ln m, Var ln m, ln E m between two times near the saddle (batch means,
  Student t) against ``2λs ∓ (η/B)D(0)`` and ``4(η/B)D(0)``.

Theory self-checks (``kind = "theory"``): the finite-volume solver conserves probability and relaxes to the exact
stationary law. Power: ``perturb = {s = 1.05}`` evaluates every FP solution and rate at ``1.05 s``.
"""

from __future__ import annotations

import math

import numpy as np

from ... import figures
from ...analysis import stats
from ...conventions import step_ratio
from ...engines import mode_config, simulate_modes
from ...theory import mode_fokker_planck as fpk
from ...theory import mode_sde as tm
from ...theory import mode_stationary as st
from ..base import ExperimentResult, Figure, Perturbation, register
from ..claims import Tolerance, setting
from ._common import factor, ks_distance, row

NAME = "fokker_planck"
INPUTS = ("s",)


def _setting(p):
    L, s, lam, se, lr, B = p["setting"]
    return int(L), float(s), float(lam), float(se), float(lr), int(B)


def _fp(p, s, T):
    L, _, lam, se, _, _ = _setting(p)
    return fpk.ModeFokkerPlanck(L, s, lam, se, T, m_min=p["m0"] * math.exp(-14), m_max=math.exp(3.0) * s,
                                n_cells=p["n_cells"])


def _sde_run(p):
    """The SDE ensemble recorded every ``record_dt``."""
    L, s, lam, se, lr, B = _setting(p)
    return simulate_modes(mode_config([s], depth=L, lr=lr, batch_size=B, label_noise=se, input_variance=lam,
                                      m0=p["m0"], kind="sde", dt=p["sde_dt"], t_max=p["t_max"],
                                      n_times=round(p["t_max"] / p["record_dt"]) + 1, replicas=p["replicas"],
                                      seed=10 * p["seed"] + 1), progress=False)


def self_checks(p):
    """Theory rows at the true theory: mass conservation and relaxation to the exact stationary law."""
    L, s, lam, se, lr, B = _setting(p)
    fp = _fp(p, s, lr / (2 * B))
    sol = fp.solve(p["m0"], [1.0, 60.0], dt=p["fp_dt"])
    law = st.stationary_law(L, s, lam, se, lr / (2 * B))
    grid = np.exp(fp.edges)
    tag = setting(L=L, s=s, lam=lam, sigma=se, T=lr / (2 * B), cells=p["n_cells"])
    mass = float(np.max(np.abs(sol.total_mass() - 1)))
    relax = float(np.max(np.abs(sol.cdf(grid, 1) - law.cdf(grid))))
    return [row(NAME, "fp_mass", tag, "the finite-volume FP solver conserves probability", "max_t |Σ P(t) − 1|", 0.0,
                stats.Estimate.exact(mass), Tolerance.at_most(absolute=1e-10, why="round-off"), kind="theory"),
            row(NAME, "fp_relaxation", tag, "the FP solution relaxes to the exact stationary law (§9.1)",
                "KS(FP at t = 60, exact law)", 0.0, stats.Estimate.exact(relax),
                Tolerance.at_most(absolute=1e-3, why="second-order cell error"), kind="theory")]


def law_claims(p, sde, fs):
    """KS rows of the SDE ensemble against the FP solution at the (perturbed) theory inputs."""
    L, s, lam, se, lr, B = _setting(p)
    rows, t, m = [], sde.t.values, sde.mode_strength.values[:, :, 0]
    h_dt = step_ratio(p["sde_dt"], L, lam, s)
    sol = _fp(p, s * fs, lr / (2 * B)).solve(p["m0"], list(p["times"]), dt=p["fp_dt"])
    for k, tk in enumerate(p["times"]):
        j = int(np.argmin(np.abs(t - tk)))
        rows.append(row(NAME, "ks_sde", setting(L=L, sigma=se, lr=lr, B=B, dt=p["sde_dt"], t=float(tk)),
                        "the FP density of m(t) is the law of the per-mode SDE", "KS(SDE m(t), FP)", 0.0,
                        stats.ks_1samp(m[:, j], lambda v, k=k: sol.cdf(v, k)).distance,
                        Tolerance.at_most(absolute=0.3 * h_dt + p["ks_margin"], why="0.3h of the SDE step (checks.md "
                                          f"§0) + {p['ks_margin']:g}: the agreement claimed"),
                        note=f"R = {m.shape[0]}, m0 = {p['m0']:g}"))
    return rows, sol


def passage_claims(p, sde, fs):
    """Learning-time rows: the law (KS on the record grid) and the median of τ = inf{t : m ≥ θs}."""
    L, s, lam, se, lr, B = _setting(p)
    t, m = sde.t.values, sde.mode_strength.values[:, :, 0]
    h_dt, rows, curves = step_ratio(p["sde_dt"], L, lam, s), [], []
    for theta in p["targets"]:
        res = fpk.first_passage_law(L, s * fs, lam, se, lr / (2 * B), m0=p["m0"], target=theta * s,
                                    times=np.linspace(0.0, p["t_max"], round(p["t_max"] / 0.005) + 1),
                                    n_cells=p["n_cells"], dt=p["fp_dt"], monitor_dt=p["record_dt"])
        tau = stats.first_hit_time(t, m, theta * s).time  # NaN: not reached within the run (censored)
        F = np.searchsorted(np.sort(np.where(np.isnan(tau), np.inf, tau)), t, side="right") / tau.size
        ks = float(np.max(np.abs(F - np.interp(t, res["times"], res["cdf"]))))
        tag = setting(L=L, sigma=se, lr=lr, B=B, theta=float(theta))
        note = f"R = {tau.size}, {int(np.isnan(tau).sum())} never reached θs by t = {t[-1]:g} (censored)"
        rows.append(row(NAME, "ks_tau", tag, "the absorbing FP gives the law of the time to learn a mode",
                        "KS(SDE τ, FP first-passage law) on the record grid", 0.0, ks_distance(ks, tau.size),
                        Tolerance.at_most(absolute=0.3 * h_dt + p["ks_margin"], why="as ks_sde; Broadie–Glasserman "
                                          "correction for the record spacing"), note=note))
        rows.append(row(NAME, "median_tau", tag, "the median learning time is the FP first-passage median",
                        "median τ (bootstrap, never-hit censored)", res["median"],
                        stats.bootstrap_quantile(tau, censored=True, seed=p["seed"]),
                        Tolerance.within(absolute=p["record_dt"], relative=0.01, why="one record interval, or the "
                                         "SDE step's O(h_Δt) weak error (1 %)"), note=note))
        curves.append((theta, res, tau))
    return rows, curves


def escape_claims(p, fs):
    """§8 (checks.md S6), L = 2: log-growth rates of m = a² near the saddle under the SDE (Euler–Maruyama in a; not
    discrete SGD, which adds O(η) corrections of the same order), slopes between the two ``escape_times``."""
    _, s, lam, se, lr, B = _setting(p)
    t1, t2 = (float(x) for x in p["escape_times"])
    ds = simulate_modes(mode_config([s], depth=2, lr=lr, batch_size=B, label_noise=se, input_variance=lam,
                                    m0=p["escape_m0"], kind="sde", dt=p["escape_dt"], times=[0.0, t1, t2],
                                    replicas=p["escape_replicas"], seed=10 * p["seed"] + 3), progress=False)
    m = ds.mode_strength.values[:, 1:, 0]
    ok = np.all(np.isfinite(m) & (m > 0), axis=1)
    lm, dT = np.log(m[ok]), t2 - t1
    rates = tm.escape_rates(s * fs, lam, se, lr, B)
    ests = {"median": stats.group_estimate((lm[:, 1] - lm[:, 0]) / dT),
            "var": stats.group_estimate(lm, lambda g: float((g[:, 1].var() - g[:, 0].var()) / dT)),
            "mean": stats.group_estimate(m[ok], lambda g: float(np.log(g[:, 1].mean() / g[:, 0].mean()) / dT))}
    what = {"median": ("E ln m grows at 2λs − (η/B)D(0)", "slope of E ln m", 0.01),
            "var": ("Var ln m grows at 4(η/B)D(0)", "slope of Var ln m", 0.04),
            "mean": ("ln E m grows at 2λs + (η/B)D(0)", "slope of ln E m", 0.02)}
    tag = setting(L=2, s=s, sigma=se, lr_over_B=lr / B, dt=p["escape_dt"], m0=p["escape_m0"])
    return [row(NAME, f"escape_{k}", tag, f"leaving the saddle with noise (L = 2, §8): {c}", f"{q} between t = {t1:g} "
                f"and {t2:g}", rates[k], ests[k], Tolerance.within(relative=rel, why="O(m) drift beyond the saddle "
                f"and the EM step (checks.md S6 observed ≤ {100 * rel:g} %)"),
                note=f"R = {m.shape[0]} ({int((~ok).sum())} dropped: non-finite or ≤ 0)")
            for k, (c, q, rel) in what.items()]


def _figures(out, p, sde, sol, curves):
    L, s, lam, se, lr, B = _setting(p)
    t, m = sde.t.values, sde.mode_strength.values[:, :, 0]
    fig, axes = figures.subplots(1, len(p["times"]) + 1, figsize=(3.1 * (len(p["times"]) + 1), 3.1), squeeze=False)
    for k, tk in enumerate(p["times"]):
        ax, x = axes[0, k], np.log(np.maximum(m[:, int(np.argmin(np.abs(t - tk)))], 1e-300))
        bins = np.linspace(*np.quantile(x, [0.001, 0.999]), 60)
        ax.hist(x, bins=bins, density=True, color="0.75", label="SDE")
        ax.plot(sol.centres, sol.density_y(k), "k", lw=1.3, label="Fokker–Planck")
        ax.set(xlim=(bins[0], bins[-1]), xlabel="ln m", title=f"t = {tk:g}")
    axes[0, 0].legend(fontsize=7)
    ax = axes[0, -1]
    for i, (theta, res, tau) in enumerate(curves):
        ax.plot(res["times"], res["cdf"], color=f"C{i}", label=f"FP, m ≥ {theta:g}s")
        ax.step(t, np.searchsorted(np.sort(tau[np.isfinite(tau)]), t, side="right") / tau.size, where="post",
                color=f"C{i}", ls="--", lw=0.8)
    ax.set(xlabel="t", ylabel="P(τ ≤ t)", title="learning time (dashed: SDE)")
    ax.legend(fontsize=7)
    return [Figure(figures.save(fig, out, "fokker_planck"),
                   f"One mode (L={L}, s={s:g}, λ={lam:g}, σ_ε={se:g}, T={lr / (2 * B):g}, m₀={p['m0']:g}): the density "
                   "of ln m(t) from the Fokker–Planck solver (black) against the per-mode SDE ensemble (grey), and "
                   "the law of the learning time τ from the absorbing FP (Broadie–Glasserman-corrected for the record "
                   "spacing) against the SDE's first record times; the noise spreads the escape from the saddle.")]


@register(NAME, paper="C", cost="~40 s",
          claim="(beyond the paper) The time-dependent Fokker–Planck solution of the per-mode SDE predicts the "
                "density of m(t) and the distribution of learning times of the per-mode SDE, and its escape rates",
          quick={"setting": [2, 1.0, 1.0, 0.5, 0.05, 1], "m0": 0.01, "times": [1.0, 2.0, 3.0, 5.0],
                 "targets": [0.5, 0.99], "t_max": 6.0, "replicas": 40000, "sde_dt": 2e-3, "record_dt": 0.01,
                 "n_cells": 2000, "fp_dt": 2e-3,
                 "ks_margin": 0.02, "escape_m0": 1e-8, "escape_dt": 1e-3, "escape_times": [1.0, 4.0],
                 "escape_replicas": 20000, "seed": 0},
          full={"setting": [2, 1.0, 1.0, 0.5, 0.05, 1], "m0": 0.01, "times": [1.0, 2.0, 2.5, 3.0, 4.0, 6.0],
                "targets": [0.5, 0.9, 0.99], "t_max": 8.0, "replicas": 80000, "sde_dt": 1e-3, "record_dt": 0.005,
                "n_cells": 4000,
                "fp_dt": 1e-3, "ks_margin": 0.01, "escape_m0": 1e-8, "escape_dt": 1e-3, "escape_times": [1.0, 4.0],
                "escape_replicas": 40000, "seed": 0},
          smoke={"times": [1.0, 3.0], "targets": [0.5], "t_max": 4.0, "replicas": 30000, "n_cells": 1500},
          perturbations=(Perturbation("s", 1.05, "teacher singular value × 1.05 in every FP solution and rate"),))
def fokker_planck(p, out):
    fs = factor(p, "s", INPUTS)
    sde = _sde_run(p)
    laws, sol = law_claims(p, sde, fs)
    passage, curves = passage_claims(p, sde, fs)
    claims = self_checks(p) + laws + passage + escape_claims(p, fs)
    return ExperimentResult(NAME, claims=claims, figures=_figures(out, p, sde, sol, curves))
