"""``phase_diagram`` — [Z] Fig. 4 and the (T, L) grid (``noise_balance.md`` §§7, 9; ``checks.md`` Z10, Z11).

* Regimes I/IIa/IIb/III in ``(σ_ε, T)`` for ``y = s x + ε``: ``T_c = s/(2s² + σ²)``, ``T_c/3``, ``T*`` (theory rows:
  closed forms against numerical roots and argmaxes, [A]).
* The ``(T, L)`` grid: SDE walkers (log SDE, tamed) from ``v = 1`` at every ``T`` of the preset for each depth, run
  through :func:`dlnlab.sweep_function` into ``OUT/sweep`` (one run per depth, the temperatures stacked; preset
  parameter ``executor``). Measured rows: the late mean of ``v`` against the stationary law's, at the cells the
  preset lists as equilibrated by ``t_max`` (``equilibrated``: ``[L, T]`` pairs) — in particular ``L = 3`` above
  ``T_c``, where ``L = 2`` has collapsed but the deeper law keeps its mass away from 0 (no sharp transition). The
  fraction of walkers below ``eps`` is shown and reported in the notes.

Theory input ``s`` (the teacher in every law) perturbable.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ... import figures
from ...analysis import stats
from ...engines import diagonal_config, simulate_diagonal
from ...model.diagonal import DiagonalModel
from ...sweep import sweep_function
from ...theory.balance import DataConstants
from ...theory.diagonal_stationary import DiagonalStationaryLaw
from ...theory.diagonal_stationary_forms import mode_depth2, mode_discriminant, t_star
from ..base import ExperimentResult, Perturbation, register
from ..claims import Tolerance
from ._common import REF, constants, exact, figure, row, theory_factors

NAME = "phase_diagram"
GROUPS = 20


def collapse_walkers(depth, temperatures, replicas, t_max, dt, eps, seed):
    """One depth of the (T, L) grid of ``phase_diagram``, every temperature stacked: ``replicas`` SDE walkers
    (``sde_log``, tamed) per T from v = 1 in one compiled run (``lr = 2T`` per replica, T-major), recorded at 21
    times on [0, t_max]. A run of the experiment's sweep; ``eps`` (the collapse threshold) is kept in the attrs for
    the summary :func:`collapse_rows`."""
    Ts = np.asarray(temperatures, float)
    ds = simulate_diagonal(diagonal_config(DiagonalModel(depth=int(depth)), kind="sde_log", lr=2 * Ts, dt=dt,
                                           times=np.linspace(0, t_max, 21), replicas=int(replicas),
                                           common_random_numbers=False, v0=[1.0], scheme="tamed", seed=int(seed)))
    ds.attrs.update(grid_temperatures=[float(T) for T in Ts], walkers_per_T=int(replicas), eps=float(eps),
                    grid_t_max=float(t_max))
    return ds


def collapse_rows(ds) -> list[dict]:
    """Table rows of a :func:`collapse_walkers` run, one per T, over the records with t ≥ t_max/2: the number of
    walkers below ``eps`` at the last record (``n_collapsed``, of ``walkers``), the mean of v (``mean``) and its
    batch-means standard error over 20 groups of walkers (``se_mean``, Student t with 19 dof)."""
    Ts, R, eps = ds.attrs["grid_temperatures"], int(ds.attrs["walkers_per_T"]), ds.attrs["eps"]
    late = ds.output.values[:, ds.t.values >= ds.attrs["grid_t_max"] / 2].reshape(len(Ts), R, -1)
    rows = []
    for i, T in enumerate(Ts):
        e = stats.group_estimate(late[i], groups=GROUPS)
        rows.append({"T": float(T), "n_collapsed": int(np.sum(late[i, :, -1] < eps)), "walkers": R,
                     "mean": e.value, "se_mean": e.se})
    return rows


def _grid(p, out):
    Ts, Ls = np.asarray(p["temperatures"], float), [int(L) for L in p["depths"]]
    params = {"temperatures": [float(T) for T in Ts], "replicas": int(p["replicas"]), "t_max": float(p["t_max"]),
              "dt": float(p["dt"]), "eps": float(p["eps"]), "seed": int(p["seed"])}
    res = sweep_function(collapse_walkers, {"depth": Ls}, params=params, summary=collapse_rows,
                         executor=p.get("executor", "serial"), out=Path(out) / "sweep",
                         progress=False).raise_unless_done()
    sim = {}
    for L in Ls:
        sub = res.table[res.table.depth == L]
        if not np.array_equal(sub["T"].to_numpy(float), Ts):
            raise RuntimeError(f"sweep rows of depth {L}: T = {list(sub['T'])}, expected {list(Ts)}")
        sim[L] = {k: sub[k].to_numpy(float) for k in ("n_collapsed", "walkers", "mean", "se_mean")}
    return Ts, Ls, sim


def _grid_rows(Ts, sim, p, c):
    rows = []
    for L, T in p["equilibrated"]:
        i = int(np.flatnonzero(np.isclose(Ts, T))[0])
        s = sim[L]
        law = DiagonalStationaryLaw(L, T, c)
        k, n = int(s["n_collapsed"][i]), int(s["walkers"][i])
        rows.append(row(NAME, "grid_mean", claim="Over the (T, L) grid the late mean of v is the stationary law's (for "
                        "L ≥ 3 also above T_c: no sharp transition)", quantity=f"mean of v over t ∈ "
                        f"[{p['t_max'] / 2:g}, {p['t_max']:g}] (from v = 1)", theory=law.mean,
                        estimate=stats.Estimate.student(s["mean"][i], s["se_mean"][i], GROUPS - 1, n),
                        tolerance=Tolerance.within(relative=0.05, why="tamed Δt bias and the finite burn-in from v = 1"),
                        note=f"P(v < {p['eps']:g}) at t_max: {k}/{n} (law {law.mass_below(p['eps']):.3f})",
                        depth=L, T=float(T)))
    return rows


def _mode_rows():
    """Theory rows for the L = 2 law (noise_balance.md §9, checks.md Z10/Z11): the corrected closed-form root v*(T)
    against the numerical argmax of the density, its small-T slope, and T*."""
    Ts = (0.01, 0.05, 0.1)
    dev = max(abs(float(mode_depth2(T)) - DiagonalStationaryLaw(2, T).mode()) for T in Ts)
    ts, ts_exact = float(t_star()), (4 + math.sqrt(42)) / 52
    return [
        row(NAME, "mode_root", claim="L=2: the most probable value v*(T) is the (corrected) root of the mode equation "
            "(§9)", quantity=f"max over T ∈ {list(Ts)} of |v*(T) − numerical argmax of the density|", theory=0.0,
            estimate=exact(dev), tolerance=Tolerance.at_most(absolute=1e-5, why="argmax tolerance (checks.md Z10)"),
            kind="theory"),
        row(NAME, "mode_slope", claim="L=2: v*(T) ≈ 1 − 3T at small T (the mode moves below the noiseless solution)",
            quantity="(v*(T) − 1)/T at T = 1e-4", theory=-3.0, estimate=exact((float(mode_depth2(1e-4)) - 1) / 1e-4),
            tolerance=Tolerance.within(absolute=0.01, why="O(T) correction at T = 1e-4 (checks.md Z10)"),
            kind="theory"),
        row(NAME, "t_star", claim="L=2: the local maximum disappears at T* = (4 + √42)/52, where the mode equation's "
            "discriminant vanishes (§9)", quantity=f"T* from the discriminant root; A(T*) = "
            f"{float(mode_discriminant(ts)):.1e}", theory=ts_exact, estimate=exact(ts),
            tolerance=Tolerance.within(absolute=1e-12, why="root finding (checks.md Z11)"), kind="theory"),
        row(NAME, "t_crit", claim="L=2: T_c = β₂/α₃ = 1/3 on the reference data, where the exponent of the law at 0⁺, "
            "β₂/(2α₃T) − 3/2, crosses −1", quantity="T_c from the data constants", theory=1 / 3,
            estimate=exact(REF.T_crit()), tolerance=Tolerance.within(absolute=1e-15, why="float rounding"),
            kind="theory")]


def _figure(Ts, Ls, sim, p, out, c):
    fig, ax = figures.subplots(1, 3, figsize=(14, 4))
    sig = np.linspace(0.02, 2.5, 300)
    Tcs = np.array([DataConstants.single_mode(1, 1, s_).T_crit() for s_ in sig])
    Tst = np.array([t_star(DataConstants.single_mode(1, 1, s_)) for s_ in sig])
    Tst = np.where(Tst < Tcs, Tst, np.nan)
    top = np.where(np.isfinite(Tst), Tst, Tcs)
    a = ax[0]
    a.fill_between(sig, Tcs, 1.2, color="0.85", label="I: δ(0)")
    a.fill_between(sig, Tcs / 3, top, color="C2", alpha=0.3, label="IIb: local max")
    a.fill_between(sig, top, Tcs, color="C1", alpha=0.3, label="IIa: only the sparse max")
    a.fill_between(sig, 0, Tcs / 3, color="C0", alpha=0.2, label="III")
    a.plot(sig, Tcs, "k", lw=1.2, label="T_c = s/(2s²+σ²)")
    a.plot(sig, Tcs / 3, "k--", lw=1)
    a.plot(sig, Tst, "C3", lw=1.2, label="T* (where < T_c)")
    a.set(xlabel="σ_ε", ylabel="T = η/2B", ylim=(0, 0.6), title="[Z] Fig. 4 regimes (L=2, λ=s=1)")
    a.legend(fontsize=6)
    for L in Ls:
        s = sim[L]
        ax[1].plot(Ts, s["n_collapsed"] / s["walkers"], "o", label=f"L={L} sim (t={p['t_max']:g})")
        ax[1].plot(Ts, [DiagonalStationaryLaw(L, T, c).mass_below(p["eps"]) for T in Ts], "-",
                   color=ax[1].lines[-1].get_color(), lw=1)
        ax[2].errorbar(Ts, s["mean"], yerr=2 * s["se_mean"], fmt="o", ms=3, label=f"L={L} sim")
        ax[2].plot(Ts, [DiagonalStationaryLaw(L, T, c).mean for T in Ts], "-", color=ax[2].lines[-1].get_color(), lw=1)
    for a in ax[1:]:
        a.axvline(REF.T_crit(), color="k", ls=":", lw=0.8)
        a.set(xlabel="T")
        a.legend(fontsize=7)
    ax[1].set(ylabel=f"P(v < {p['eps']:g})", title="probability of collapse (lines: stationary law)")
    ax[2].set(ylabel="E v", title="mean (lines: stationary law)")
    return figure(fig, out, NAME, "Left: [Z] Fig. 4 regimes for y = x + ε: I (T ≥ T_c, collapse), II (T_c/3 < T < T_c, "
                  "integrable divergence at 0; b: a non-trivial maximum exists, a: it has disappeared above T*), III "
                  "(T < T_c/3). Middle/right: SDE walkers (from v = 1) over (T, L): the fraction near 0 and the mean "
                  "against the stationary laws. Near T_c the L=2 law puts mass far below ε that a finite run reaches "
                  "only slowly; L = 3 keeps its mean above T_c.")


@register(NAME, paper="Z", cost="~15 s",
          claim="Regimes I/IIa/IIb/III in (σ_ε, T); over (T, L) collapse happens above T_c for L = 2 and never sharply "
                "for L ≥ 3",
          quick={"depths": [2, 3], "temperatures": [0.05, 0.1, 0.2, 0.3, 0.45, 0.7], "replicas": 400, "t_max": 50.0,
                 "dt": 1e-3, "eps": 1e-3, "equilibrated": [[2, 0.05], [2, 0.1], [3, 0.05], [3, 0.1], [3, 0.45]],
                 "seed": 0, "executor": "serial"},
          full={"depths": [2, 3, 4], "temperatures": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.7, 1.0],
                "replicas": 2000, "t_max": 150.0, "dt": 1e-3, "eps": 1e-3,
                "equilibrated": [[2, 0.05], [2, 0.1], [2, 0.15], [3, 0.05], [3, 0.1], [3, 0.2], [3, 0.45], [4, 0.1],
                                 [4, 0.45]], "seed": 0, "executor": "serial"},
          smoke={},  # the quick preset (declared: its verdicts are the stable ones)
          perturbations=(Perturbation("s", 1.1, "the teacher s × 1.1 in every stationary law"),))
def phase_diagram(p, out):
    f = theory_factors(p, ("s",))
    c = constants(s=f["s"])
    Ts, Ls, sim = _grid(p, out)
    np.savez(Path(out) / "phase_grid.npz", temperatures=Ts, depths=np.array(Ls),
             **{f"sim_{k}_L{L}": v for L in Ls for k, v in sim[L].items()})
    claims = [*_grid_rows(Ts, sim, p, c), *_mode_rows()]
    return ExperimentResult(NAME, claims=claims, figures=[_figure(Ts, Ls, sim, p, out, c)])
