"""[J] ``escape_times``: the time to leave each saddle against the init scale σ (``saddle_to_saddle.md`` §4, §6.3).

From a random Gaussian init (not aligned; one normalised draw θ̄, θ₀ = σθ̄ for every σ: checks.md G5), gradient flow
through every plateau of a three-mode teacher, σ over ≥ 4 decades:

* ``L = 2``: the escape time from saddle k is affine in ``ln(1/σ)`` with slope ``1/(λ s_{k+1})`` (the linear regime
  of the origin grows each mode at rate ``λs``); measured: the least-squares slope with its regression SE
  (``Estimate.student``, ``n − 2`` dof) against ``1/(λ s_{k+1})``;
* ``L = 3, 4``: ``t_k ∝ σ^−(L−2)``; measured: the log-log slope with its regression SE against ``−(L − 2)``. The
  leading-order law is exact in the σ → 0 limit (the small-init flow is homogeneous of degree ``L − 1``: the same
  draw at scale σ runs the same path at time ``σ^{L−2} t``), up to an O(1) time of the nonlinear phase — the model
  budget of each slope row is that offset over the smallest escape time of the fit, stated in the row;
* ``L = 3, 4``: the plateau losses at the smallest σ against the saddle levels ``½ Σ_{i>k} λ_i s_i²`` (§6.2), every
  plateau; the learning order (which mode each jump learns) is in their note — another order would put the later
  plateaus at other levels.

Gradient flow is ``dynamics.kind = "flow"``: ``L = 2`` with the explicit solver (plateaus ~ln(1/σ) long), ``L ≥ 3``
with ``solver = "auto"`` (Rodas5P while the explicit step is stiffness-limited: :mod:`dlnlab.engines._flow`), to a
fixed ``t_max`` (``t_max_factor`` × the leading-order law of the slowest mode at the smallest σ; ``t_max = "auto"``
stops a run early when the σ values of one run span more than ~3 decades of escape times: its rule sees the
smallest σ's plateau as settled) with log-spaced records, ``per_decade`` per decade. Escape times are the half-times
of the plateau table (:func:`dlnlab.analysis.plateau_table`: linear interpolation between records, an error up to
half the record spacing, ~±3 % of t at 40 per decade, which the regression SE carries).

Arithmetic (:mod:`dlnlab.engines._flow`): once a mode is learned the float64 gradient carries rounding ~1e-17 per
entry, which moves the unlearned entries (~σ) by ~1e-17·t over a plateau; at ``L = 4`` below σ ~1e-5 the later
escapes were set by that rounding (from σ = 1e-6 the second moved by ±15 %, the third ×4 with the solver
settings) and the fits used only σ ≥ 1e-5. A run whose smallest σ has max|θ₀|^(L−1) < 1e-12 now takes the
double-double gradient (``arithmetic = "auto"``: quick L = 4, full L = 3 and 4; quick L = 3 stays float64, its
σ ≥ 1e-6), so every escape enters every fit.

Measured (quick, seed 0; d = 3, width 4, s = 4, 2, 1): L = 2 slopes 0.2505 ± 0.0004, 0.5012 ± 0.0007,
1.0002 ± 0.0017 (theory 0.25, 0.5, 1); L = 3 exponents −1.0010 ± 0.0021, −0.9983 ± 0.0017, −0.9990 ± 0.0019; L = 4
−2.0009 ± 0.0017, −2.0013 ± 0.0017, −2.0009 ± 0.0018 (every escape, σ 1e-2…1e-6: 4 decades; with the float64
gradient the later two were −1.985 ± 0.008 and −1.996 ± 0.004, inconclusive, their σ ≤ 2e-6 values off by up to
30 %); plateau levels to 1e-15.
Smoke (L = 3) at seeds 0, 1, 2: every row holds (exponents within 0.005 of −1). The σ values of a fit must not be
commensurate with the record grid (a σ ratio 10^(−k/per_decade) puts every jump at the same place between records:
the interpolation error is then the same at every σ and the regression SE vanishes). Cost: quick ≈ 87 s of CPU
under a load of ~12 (three compiled flow programs, ~10 s each, dominate), more than the 40 s aimed at; smoke ≈ 20 s.

The σ grid of each depth is a :func:`dlnlab.sweep` (one run per depth, σ stacked on its replica axis) into
``OUT/sweep``; rerunning into the same ``OUT`` skips the finished runs. Perturbations (power test): the teacher
spectrum ``s`` (the L = 2 slopes, the plateau levels) and the exponent ``−(L − 2)`` in the theory only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ... import figures
from ...analysis import fit_escape_law, plateau_table, stats
from ...config import Config, ConfigError
from ...sweep import summarize, sweep
from ...theory import saddle_sequence as th
from ..base import ExperimentResult, Figure, Perturbation, register, theory_factors, write_csv
from ..claims import Tolerance, setting
from ._common import row, teacher_config

NAME = "escape_times"
INPUTS = ("s", "exponent")
T_MIN = 1e-2  # first record time


def escape_rows(ds, config) -> list[dict]:
    """The sweep summary: the rows of :func:`dlnlab.sweep.summarize` (one per σ, the run having one replica per σ;
    ``jump_time_k`` among them), each with ``plateaus``: its replica's rows of the plateau table
    (:func:`dlnlab.analysis.plateau_table`) as JSON records (exact floats; null for missing values)."""
    if config.ensemble.replicas != 1:
        raise ConfigError("ensemble.replicas", config.ensemble.replicas, "1: escape_rows needs one replica per σ")
    tab = plateau_table(ds)
    rows = summarize(ds, config, plateau_table=tab)
    for r, rw in enumerate(rows):  # rows follow the stacked σ, as the replicas do
        sub = tab[tab["replica"] == r].astype(object)
        rw["plateaus"] = json.dumps(sub.where(sub.notna(), None).to_dict("records"))
    return rows


def _row_plateaus(rows: pd.DataFrame) -> pd.DataFrame:
    """The plateau table of the sweep table rows made by :func:`escape_rows`."""
    tab = pd.DataFrame.from_records([r for text in rows["plateaus"] for r in json.loads(text)])
    return tab.astype({"learned_mode": "Int64"})  # plateau_table's dtype (null where no mode is learned)


def _jump_matrix(tab: pd.DataFrame, R: int, K: int, col: str = "t_end") -> np.ndarray:
    """``(R, K)`` array of a jump column (plateaus 0..K−1 end with jumps 1..K); NaN where missing."""
    out = np.full((R, K), np.nan)
    for r, g in tab.groupby("replica"):
        g = g.sort_values("plateau")
        vals = g[col].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[:-1][:K]
        out[int(r), :len(vals)] = vals
    return out


def _t_max(p, depth, sig, s) -> float:
    """``t_max_factor`` × the leading-order escape law (§4, a₀ = σ√w) of the slowest mode at the smallest σ."""
    law = float(th.escape_time_law(min(sig), s[-1], depth, width=p["width"]))
    return float(p["t_max_factor"]) * law + (5.0 if depth == 2 else 0.0)


def _run_grid(p, out):
    """One flow run per depth with every σ stacked (a :func:`dlnlab.sweep`); returns the sweep table."""
    s = np.asarray(p["s"], float)
    base, grids = None, []
    for L in [int(x) for x in p["depths"]]:
        sig = [float(x) for x in p[f"sigmas_{L}"]]
        t_max = _t_max(p, L, sig, s)
        n_times = math.ceil(p["per_decade"] * math.log10(t_max / T_MIN)) + 1
        dyn = {"kind": "flow", "t_max": t_max, "rtol": float(p["rtol"]), "solver": "explicit" if L == 2 else "auto"}
        base = base or Config.from_dict({
            "teacher": teacher_config(s, p["d"], p["seed"]), "network": {"depth": L, "width": int(p["width"])},
            "init": {"kind": "gaussian", "scale": sig}, "dynamics": dyn,
            "record": {"n_times": n_times, "t_min": T_MIN, "observables": ["loss", "singular_values", "mode_strength"]},
            "ensemble": {"replicas": 1, "seed": int(p["seed"])}})
        grids.append({"network.depth": [L], "init.scale": sig, "dynamics.t_max": [t_max],
                      "dynamics.solver": [dyn["solver"]], "record.n_times": [n_times]})
    opts = {"executor": p.get("executor", "serial"), "out": Path(out) / "sweep", "progress": False}
    return sweep(base, grids, summary=escape_rows, **opts).raise_unless_done().table


def _slope_row(depth, k, sig, t, s, s_th, f, per_decade):
    """The escape-law row of saddle ``k`` at depth ``L`` from the escape times ``t`` over ``sig`` (NaN: left out)."""
    ok = np.isfinite(t)
    fit = fit_escape_law(sig[ok], t[ok], depth)
    est = stats.Estimate.student(fit["value"], fit["stderr"], int(ok.sum()) - 2, int(ok.sum()))
    span = f"σ ∈ [{sig[ok].min():.3g}, {sig[ok].max():.3g}] ({int(ok.sum())} values, one draw rescaled)"
    if depth == 2:
        tol = Tolerance.within(relative=0.02, why="O(σ²w) corrections of the linear escape at the largest σ and the "
                               "record interpolation (jumps of width ln81/(2λs) span several records: second order)")
        return row(NAME, "slope", setting(L=depth, saddle=k), f"L=2: the escape time from saddle {k} grows like "
                   f"ln(1/σ)/(λ s_{k + 1}) (§4)", f"slope of t_{k + 1} against ln(1/σ), {span}", 1.0 / s_th[k], est,
                   tol)
    # the O(1) time B of the nonlinear phase (aligned: c_L/(Lλs^(2−2/L)), §3) bends d ln t/d ln σ = −(L−2)(1 − B/t);
    # a half-time is interpolated between records: an error up to half the record spacing, opposite at the two ends
    # a model budget: the simulated s, not the theory's
    offset = abs(th.c_L(depth)) / (depth * s[k] ** (2 - 2.0 / depth))
    delta = (10 ** (1.0 / per_decade) - 1) / 2
    budget = (depth - 2) * offset / float(np.min(t[ok])) + 2 * delta / math.log(sig[ok].max() / sig[ok].min())
    tol = Tolerance.within(absolute=budget, why=f"nonlinear-phase time |c_L|/(Lλs^(2−2/L)) over the shortest escape "
                           f"time, plus the half-time's interpolation between records (≤ {100 * delta:.2g} % of t, "
                           "opposite at the ends of the fit)")
    return row(NAME, "exponent", setting(L=depth, saddle=k), f"L={depth}: the escape time from saddle {k} grows like "
               "σ^−(L−2) (§4)", f"log-log slope of t_{k + 1} against σ, {span}", -(depth - 2.0) * f["exponent"], est,
               tol)


def _level_rows(depth, sig, tab, s_th, K, rtol):
    """Plateau losses at the smallest σ against the saddle levels ½Σ_{i>k} λ_i s_i² (every plateau, §6.2)."""
    i0 = int(np.argmin(sig))
    g = tab[tab.replica == i0].sort_values("plateau")
    levels = th.saddle_losses(s_th, 1.0, 0.0, len(s_th))
    order = [int(x) for x in g.learned_mode.dropna()]
    note = (f"learned modes {order} (λs order {[int(x) + 1 for x in th.learning_order(s_th)]}); plateau loss: "
            "median over the plateau's core")
    rows = []
    for k in range(min(K, len(g))):
        loss = float(g.loss.iloc[k])
        est = stats.Estimate.exact(loss, 10 * rtol * abs(loss))
        rows.append(row(NAME, "plateau_level", setting(L=depth, plateau=k), f"L={depth}: the flow rests on saddle {k} "
                        "at the loss ½Σ_(i>k) λ_i s_i² (§6.2)", f"plateau {k} loss at σ = {sig[i0]:g}", levels[k], est,
                        Tolerance.within(relative=1e-3, why="σ → 0 level; at finite σ the plateau sits below by "
                                         "O(σ) (Errata 10: 1e-5 at σ = 1e-3); solver error 10 rtol"), note=note))
    return rows


@register("escape_times", paper="J", cost="~80 s",
          claim="The time to leave each saddle grows like ln(1/σ)/(λ_k s_k) for L = 2 and like σ^-(L−2) for L = 3, 4 "
                "(random init, gradient flow through every plateau)",
          quick={"d": 3, "width": 4, "s": [4.0, 2.0, 1.0], "depths": [2, 3, 4],
                 "sigmas_2": [0.001, 0.0001, 1e-05, 1e-06, 1e-07, 1e-08],
                 "sigmas_3": [0.01, 0.00359, 0.00129, 0.000464, 0.000167, 5.99e-05, 2.15e-05, 7.74e-06, 2.78e-06, 1e-06],
                 "sigmas_4": [0.01, 0.00464, 0.00215, 0.001, 0.000464, 0.000215, 0.0001, 4.64e-05, 2.15e-05, 1e-05, 4.64e-06, 2.15e-06, 1e-06],
                 "t_max_factor": 3.0, "per_decade": 40, "rtol": 1e-6, "seed": 0,
                 "executor": "serial"},
          full={"d": 5, "width": 6, "s": [4.0, 2.0, 1.0], "depths": [2, 3, 4],
                "sigmas_2": [0.001, 0.000316, 0.0001, 3.16e-05, 1e-05, 3.16e-06, 1e-06, 3.16e-07, 1e-07, 3.16e-08, 1e-08],
                "sigmas_3": [0.01, 0.00346, 0.00119, 0.000412, 0.000143, 4.92e-05, 1.7e-05, 5.88e-06, 2.03e-06, 7.02e-07, 2.42e-07, 8.38e-08, 2.89e-08, 1e-08],
                "sigmas_4": [0.01, 0.00464, 0.00215, 0.001, 0.000464, 0.000215, 0.0001, 4.64e-05, 2.15e-05, 1e-05, 4.64e-06, 2.15e-06, 1e-06, 4.64e-07, 2.15e-07, 1e-07, 4.64e-08, 2.15e-08, 1e-08],
                "t_max_factor": 3.0, "per_decade": 40, "rtol": 1e-8, "seed": 0,
                "executor": "serial"},
          smoke={"depths": [3], "sigmas_3": [0.01, 0.00534, 0.00285, 0.00152, 0.000811, 0.000433, 0.000231, 0.000123, 6.58e-05, 3.51e-05, 1.87e-05, 1e-05]},
          perturbations=(Perturbation("s", 1.05, "teacher singular values × 1.05 in the L = 2 slopes and the levels"),
                         Perturbation("exponent", 1.05, "the escape exponent −(L − 2) × 1.05 in the theory")))
def escape_times(p, out):
    f = theory_factors(p, INPUTS)
    s = np.asarray(p["s"], float)
    s_th = s * f["s"]
    K = int(np.sum(s > 0))
    table = _run_grid(p, out)
    claims, rows, tabs = [], [], {}
    for L in [int(x) for x in p["depths"]]:
        sig = np.asarray(p[f"sigmas_{L}"], float)
        sub = table[table["network.depth"] == L]
        if not np.array_equal(sub["init.scale"].to_numpy(float), sig):  # replica i of the run is σ_i
            raise RuntimeError(f"sweep: σ rows {list(sub['init.scale'])} != sigmas_{L} {list(sig)}")
        tabs[L] = tab = _row_plateaus(sub)
        tj = _jump_matrix(tab, len(sig), K)
        modes = _jump_matrix(tab, len(sig), K, "learned_mode")
        rows += [{"depth": L, "sigma": sg, "saddle": k, "mode": modes[i, k], "t_escape": tj[i, k]}
                 for i, sg in enumerate(sig) for k in range(K)]
        for k in range(K):
            claims.append(_slope_row(L, k, sig, tj[:, k], s, s_th, f, float(p["per_decade"])))
        if L >= 3:
            claims += _level_rows(L, sig, tab, s_th, K, float(p["rtol"]))
    df = pd.DataFrame(rows)
    write_csv(out / "escape_times.csv", rows)
    pd.concat([t.assign(depth=L) for L, t in tabs.items()]).to_csv(out / "plateaus.csv", index=False)
    return ExperimentResult(NAME, claims=claims, figures=_figures(df, s, out))


def _figures(df, s, out) -> list[Figure]:
    depths = sorted(df.depth.unique())
    K = int(df.saddle.max()) + 1
    fig, axes = figures.subplots(1, len(depths), figsize=(4.6 * len(depths), 3.8), squeeze=False)
    for a, L in enumerate(depths):
        ax = axes[0, a]
        for k in range(K):
            sub = df[(df.depth == L) & (df.saddle == k) & np.isfinite(df.t_escape)]
            sg, te = sub.sigma.to_numpy(), sub.t_escape.to_numpy()
            if len(sg) < 3:
                continue
            fit = fit_escape_law(sg, te, L)
            xs = np.geomspace(sg.min(), sg.max(), 50)
            label = f"saddle {k} (s={s[k]:g}): " + (f"slope {fit['value']:.3f} vs {1 / s[k]:.3f}" if L == 2
                                                     else f"exponent {fit['value']:.3f}")
            ax.plot(sg, te, "o", color=f"C{k}", label=label)
            line = fit["intercept"] + fit["value"] * np.log(1 / xs) if L == 2 else np.exp(fit["intercept"]) * xs ** fit[
                "value"]
            ax.plot(xs, line, "-", color=f"C{k}", lw=0.8)
        if L >= 3:
            ax.plot([], [], " ", label=f"theory exponent −(L−2) = {-(L - 2)}")
            ax.set(yscale="log")
        ax.set(xscale="log", xlabel="init scale σ", ylabel="escape (half-)time t_k",
               title=f"L = {L}" + (": t linear in ln(1/σ)" if L == 2 else ": power law in σ"))
        ax.legend(fontsize=7)
    f1 = figures.save(fig, out, "escape_times")
    fig, ax = figures.subplots(figsize=(5, 3.6))
    for a, L in enumerate(depths):
        first = df[(df.depth == L) & (df.saddle == 0)].t_escape.to_numpy()
        for k in range(K):
            sub = df[(df.depth == L) & (df.saddle == k)]
            ax.plot(sub.sigma, sub.t_escape * s[k] / (first * s[0]), ["o-", "s--", "^:"][a % 3], color=f"C{k}",
                    label=f"L={L}, saddle {k}")
    ax.axhline(1, color="k", lw=0.6)
    ax.set(xscale="log", xlabel="init scale σ", ylabel="(t_k s_k)/(t_1 s_1)", title="time ratios against σ")
    ax.legend(fontsize=6, ncol=2)
    f2 = figures.save(fig, out, "escape_time_ratios")
    return [Figure(f1, "Time to leave saddle k (half-time of jump k+1, from the plateau detector) against the init "
                       "scale σ, one normalised random draw rescaled, gradient flow through every plateau. L = 2: "
                       "straight lines in ln(1/σ) with slope 1/(λ_k s_k). L ≥ 3: power laws with exponent −(L−2)."),
            Figure(f2, "Escape times scaled by s_k relative to the first saddle. For L ≥ 3 the ratio tends to a "
                       "draw-dependent constant (each mode's effective initial scale differs by an O(1) factor); "
                       "for L = 2 it approaches 1 like 1/ln(1/σ).")]
