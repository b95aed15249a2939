"""[J] ``staircase``: from a small random initialisation gradient flow and SGD visit saddles of increasing rank —
the loss sits on ``½ Σ_{i>k} λ_i s_i²`` and the singular values of ``W`` are learned one at a time, in the order of
``λ_α s_α`` (``saddle_to_saddle.md`` §§6.2–6.3, 8.1–8.2; checks.md G6, G7; derived).

Simulate. A whitened ``d × d`` teacher (random basis), depth ``L``, width ``w``, Gaussian init of scale ``σ``:
gradient flow (``gf_replicas`` independent inits, the adaptive flow engine) and online SGD (``sgd_replicas``).
And gradient flow from vanishing init (issue 15), for each ``(L, σ)`` of ``deep`` (L = 3 and L = 4 from σ = 1e-8;
``deep_replicas`` inits, width ``deep_width``), by the flow engine's ``auto`` solver with ``t_max = "auto"``:
plateaus of length ∝ σ^−(L−2) (≈ 1e7–1e9 at L = 3, 1e15–1e17 at L = 4) crossed in one run. Both take the
double-double gradient (``dynamics.arithmetic = "auto"``; with the float64 one L = 4 stopped at σ = 1e-6: from 1e-7
the solver did not finish and the later escapes were set by rounding, :mod:`dlnlab.engines._flow`); it costs
×3.5 at L = 3 (8 replicas, quick: 45 s against 13 s in float64) and 102 s at L = 4 (the float64 run from σ = 1e-6
took 20 s). Measured (quick, seed 0): every replica learns the four modes in order, the plateau
losses equal the saddle levels to ≤ 1e-10 relative, the jumps ``s`` to ≤ 1e-12. Plateau 0's loss can be the same
float64 number in every replica; the error is then the solver's tolerance (:func:`_estimate`).
Segment every replica with :func:`dlnlab.analysis.plateau_table`.

Estimate and claims (every row ``derived``; replicas are the independent unit):

* ``plateau_loss`` (gradient flow, plateau ``k < K``) — the loss on the plateau's core, batch means over the
  replicas with ``K + 1`` plateaus, against the saddle loss ``½ Σ_{α not learned} λ_α s_α²``; budget: the finite-σ
  bias (the next mode has grown during the plateau: Errata 10, 2.2–2.4 % at σ ≈ 1e-2, L = 3). SGD's plateau levels
  are [C]'s row ``diffusion_peak/plateau_loss`` (not repeated here);
* ``jump_size`` (gradient flow and SGD, jump ``k``) — the singular value the ``k``-th jump adds to ``W``
  (``learned_value``) against ``s`` of the ``k``-th mode in learning order;
* the same rows for every ``deep`` run (setting ``L``, ``sigma``; levels within ``deep_level_tol`` = 0.5 %, the
  order fraction above ``deep_order_threshold``);
* ``order`` (gradient flow and SGD) — the Wilson fraction of replicas whose jumps learn the modes in the order of
  decreasing ``λ_α s_α`` with the rank of ``W`` equal to ``k`` on plateau ``k`` (a rank staircase), above
  ``order_threshold``.

Power: ``perturb = {s = 1.05}`` evaluates every saddle loss and jump size at ``1.05 s``; ``perturb = {s2 = 2.2}``
puts the second singular value above the first in the theory (``4.4 > 4``), which reverses the predicted order of
the first two jumps and moves saddle 1's level.
"""

from __future__ import annotations

import numpy as np

from ... import figures
from ...analysis import plateau_table, stats
from ...config import Config
from ...engines import simulate
from ...storage import save
from ...theory import saddle_sequence as th
from ..base import ExperimentResult, Figure, Perturbation, register, theory_factors, write_csv
from ..claims import Tolerance, setting
from ._common import network_config, perturbed_s, row, teacher_config

NAME = "staircase"
#: the deep runs' relative tolerance (``dynamics.rtol``; the flow engine's default)
FLOW_RTOL = 1e-10
INPUTS = ("s", "s2")
OBSERVABLES = ("loss", "singular_values", "mode_strength", "end_to_end", "residual")


def simulate_runs(p):
    """Gradient flow (seed ``seed``; the explicit Dopri5 solver: at this width the implicit one of ``solver =
    "auto"`` was several times slower here) and online SGD (seed ``seed + 1``) from the same Gaussian scale."""
    common = {"s": p["s"], "d": p["d"], "depth": p["depth"], "width": p["width"], "teacher_seed": p["seed"],
              "init": {"kind": "gaussian", "scale": float(p["sigma"])}, "n_times": p["n_times"],
              "observables": OBSERVABLES}
    flow = {"kind": "flow", "t_max": float(p["t_max"]), "rtol": 1e-8, "solver": "explicit"}
    gf = simulate(network_config(**common, dynamics=flow, replicas=p["gf_replicas"], seed=p["seed"]), progress=False)
    sgd = simulate(network_config(**common, dynamics={"kind": "sgd", "t_max": float(p["t_max"]), "lr": p["lr"],
                                                      "batch_size": int(p["batch_size"])},
                                  replicas=p["sgd_replicas"], seed=p["seed"] + 1), progress=False)
    return {"gradient flow": gf, "SGD": sgd}


def simulate_deep(p) -> dict:
    """Gradient flow from vanishing init, ``{(L, σ): dataset}`` for the ``deep`` pairs: the flow engine's default
    solver (``auto``: Dopri5 switching to Rosenbrock where stiff) with ``t_max = "auto"`` (records by decades until
    every replica has settled), width ``deep_width``, ``deep_replicas`` Gaussian inits (seed ``seed + 2``)."""
    out = {}
    for L, sigma in p["deep"]:
        cfg = Config.from_dict({
            "teacher": teacher_config(p["s"], p["d"], p["seed"]), "network": {"depth": int(L), "width": p["deep_width"]},
            "init": {"kind": "gaussian", "scale": float(sigma)}, "dynamics": {"kind": "flow", "t_max": "auto", "rtol": FLOW_RTOL},
            "record": {"per_decade": int(p["deep_per_decade"]), "observables": list(OBSERVABLES)},
            "ensemble": {"replicas": int(p["deep_replicas"]), "seed": p["seed"] + 2}})
        out[int(L), float(sigma)] = simulate(cfg, progress=False)
    return out


def per_replica(tab, K: int) -> dict:
    """Per replica of a plateau table: ``complete`` (exactly ``K + 1`` plateaus), the plateau losses and ranks, the
    learned modes (0-based) and the jump sizes, as ``(R, ·)`` arrays (NaN / −1 where missing)."""
    R = int(tab["replica"].max()) + 1
    out = {"complete": np.zeros(R, bool), "loss": np.full((R, K + 1), np.nan), "rank": np.full((R, K + 1), -1),
           "mode": np.full((R, K), -1), "jump": np.full((R, K), np.nan)}
    for r, g in tab.groupby("replica"):
        g = g.sort_values("plateau")
        r = int(r)
        out["complete"][r] = len(g) == K + 1
        n = min(len(g), K + 1)
        out["loss"][r, :n] = g["loss"].to_numpy(float)[:n]
        out["rank"][r, :n] = g["rank"].to_numpy()[:n]
        jumps = g.iloc[:-1][:K]
        out["mode"][r, :len(jumps)] = jumps["learned_mode"].fillna(0).to_numpy(int) - 1
        out["jump"][r, :len(jumps)] = jumps["learned_value"].to_numpy(float)
    return out


def _groups(n: int) -> int:
    return int(min(n, 20))


def _estimate(x, deep):
    """Batch means over replicas of ``x`` (plateau losses, jump sizes). From a vanishing init (``deep``) the
    replicas can agree to round-off (plateau 0's loss is often the same float64 number in all of them), below the
    error they share, the solver's: then the estimate is the mean with that error, its relative tolerance
    :data:`FLOW_RTOL` times the value (``Estimate.exact``), not a spread of ~1e-17."""
    est = stats.group_estimate(x, groups=_groups(x.size))
    if deep is not None and est.se < FLOW_RTOL * abs(est.value):
        return stats.Estimate.exact(est.value, FLOW_RTOL * abs(est.value))
    return est


def claims_of(name, tab, p, s_th, K, deep=None):
    """The rows of one dynamics (``name``: gradient flow or SGD) from its plateau table; ``deep = (L, σ)``: a run
    of :func:`simulate_deep` (gradient flow; its setting names ``L`` and ``σ``, its order threshold
    ``deep_order_threshold``)."""
    dyn = "gf" if name == "gradient flow" or deep else "sgd"
    where = {} if deep is None else {"L": deep[0], "sigma": deep[1]}
    depth, sigma = deep or (p["depth"], p["sigma"])
    threshold = p["order_threshold"] if deep is None else p["deep_order_threshold"]
    level_tol = (Tolerance.within(relative=p["level_tol"], why="the σ → 0 level; at finite σ the next mode has grown "
                                  "during the plateau (Errata 10: 2.2–2.4 % at σ ≈ 1e-2, L = 3)") if deep is None else
                 Tolerance.within(relative=p["deep_level_tol"], why="issue 15's 0.5 %: from σ ≤ 1e-6 the modes not "
                                  "yet learned are still tiny on each plateau (measured: levels to ≤ 1e-10 relative)"))
    rep = per_replica(tab, K)
    order = th.learning_order(s_th)
    good = rep["complete"] & np.all(rep["mode"] == order[None, :], axis=1) & np.all(
        rep["rank"] == np.arange(K + 1)[None, :], axis=1)
    R, full = len(good), rep["complete"]
    note = f"{int(full.sum())} of {R} replicas with {K + 1} plateaus; σ = {sigma:g}, L = {depth}"
    rows = [row(NAME, "order", setting(dynamics=dyn, **where), f"{name}: the jumps learn the modes one at a time in the order "
                "of decreasing λs, the rank of W rising by one per plateau (§6.2, G7)",
                "fraction of replicas with learned modes " + " ".join(str(int(a) + 1) for a in order)
                + f" and rank 0..{K} on the plateaus", 1.0, stats.wilson(int(good.sum()), R),
                Tolerance.above(threshold, why="the saddle sequence is the σ → 0 behaviour; the "
                                f"threshold {threshold:g} leaves room for a replica whose close modes "
                                "merge at finite σ"), note=note)]
    jump_tol = p["gf_jump_tol"] if dyn == "gf" else p["sgd_jump_tol"]
    for k in range(K):
        x = rep["jump"][full, k]
        if x.size >= 2:
            rows.append(row(NAME, "jump_size", setting(dynamics=dyn, **where, jump=k + 1), f"{name}: the k-th jump adds the "
                            "k-th singular value of M (in the order of λs) to W (§6.2)",
                            f"singular value added at jump {k + 1} (batch means over replicas)", s_th[order[k]],
                            _estimate(x, deep), Tolerance.within(relative=jump_tol, why="the unlearned modes' finite-σ mass at the "
                                             "plateau cores" + (" and SGD's fluctuations of W" if dyn == "sgd" else "")),
                            note=note))
    if dyn == "gf":
        for k in range(K):
            x = rep["loss"][full, k]
            if x.size >= 2:
                rows.append(row(NAME, "plateau_loss", setting(dynamics=dyn, **where, plateau=k), "gradient flow: the loss "
                                "rests on the saddle loss ½ Σ_(α not learned) λ_α s_α² (§6.2, G6)",
                                f"loss on plateau {k} (its core; batch means over replicas)", th.saddle_loss(k, s_th),
                                _estimate(x, deep),
                                level_tol, note=note))
    return rows


def _figure(out, p, runs, tabs, levels, K):
    s = np.asarray(p["s"], float)
    fig, axes = figures.subplots(2, 2, figsize=(10, 6.4), sharex="col")
    for c, (name, ds) in enumerate(runs.items()):
        t = ds.t.values[1:]
        ax = axes[0, c]
        for r in range(ds.sizes["replica"]):
            ax.plot(t, ds.loss.values[r, 1:], lw=1.2 if c == 0 else 0.6, alpha=0.5, color="C0",
                    label="simulation" if r == 0 else None)
        for k, lv in enumerate(levels[:K]):
            ax.axhline(lv, color="k", ls="--", lw=0.8)
            ax.text(t[0] * 1.5, lv * 1.12, f"saddle {k}: {lv:g}", fontsize=7)
        ax.set(xscale="log", yscale="log", ylim=(levels[K - 1] / 30, levels[0] * 2.5), ylabel="population loss",
               title=f"{name} (L={p['depth']}, σ={p['sigma']:g}" + (f", η={p['lr']:g}, B={p['batch_size']})" if c
                                                                     else ")"))
        ax.plot([], [], "k--", lw=0.8, label="theory ½Σ_(i>k) s_i²")
        ax.legend(fontsize=7, loc="lower left")
        ax = axes[1, c]
        sv = ds.singular_values.values
        for i in range(min(K + 1, sv.shape[-1])):
            for r in range(ds.sizes["replica"]):
                ax.plot(t, sv[r, 1:, i], color=f"C{i}", lw=1.0 if c == 0 else 0.5, alpha=0.5,
                        label=f"σ_{i + 1}(W)" if r == 0 else None)
        for k in range(K):
            ax.axhline(s[k], color=f"C{k}", ls="--", lw=0.8)
        ax.set(xscale="log", xlabel="time t = η·step", ylabel="singular values of W (dashed: s_k)")
        ax.legend(fontsize=7, loc="upper left")
    return Figure(figures.save(fig, out, NAME),
                  "Top: population loss (log–log) under gradient flow (left) and online SGD (right), every replica, "
                  "from a small random init; dashed: the saddle losses ½Σ_{i>k}s_i². The loss sits on each saddle "
                  "level, then drops to the next. Bottom: the singular values of W rise one at a time to s_k "
                  "(dashed): a rank staircase.")


@register(NAME, paper="J", cost="~180 s",
          claim="From small init, gradient flow and SGD visit saddles of increasing rank: the loss drops in steps to "
                "½Σ_{i>k}s_i² and W's singular values are learned one at a time, in the order of λs",
          quick={"depth": 3, "d": 5, "width": 30, "s": [4.0, 2.0, 1.0, 0.5], "sigma": 1e-2, "t_max": 100.0,
                 "lr": 0.01, "batch_size": 8, "gf_replicas": 20, "sgd_replicas": 20, "n_times": 240,
                 "level_tol": 0.03, "gf_jump_tol": 0.01, "sgd_jump_tol": 0.03, "order_threshold": 0.75,
                 "deep": [[3, 1e-8], [4, 1e-8]], "deep_width": 6, "deep_replicas": 8, "deep_per_decade": 20,
                 "deep_level_tol": 5e-3, "deep_order_threshold": 0.5, "seed": 0},
          full={"depth": 3, "d": 5, "width": 50, "s": [4.0, 2.0, 1.0, 0.5], "sigma": 1e-3, "t_max": 900.0,
                "lr": 0.005, "batch_size": 8, "gf_replicas": 40, "sgd_replicas": 64, "n_times": 600,
                "level_tol": 0.01, "gf_jump_tol": 0.005, "sgd_jump_tol": 0.03, "order_threshold": 0.9,
                "deep": [[3, 1e-8], [4, 1e-8]], "deep_width": 6, "deep_replicas": 24, "deep_per_decade": 20,
                "deep_level_tol": 5e-3, "deep_order_threshold": 0.75, "seed": 0},
          smoke={"s": [4.0, 2.0, 1.0], "t_max": 40.0, "gf_replicas": 8, "sgd_replicas": 8, "n_times": 160,
                 "order_threshold": 0.5, "deep": [[3, 1e-8]]},
          perturbations=(Perturbation("s", 1.05, "teacher singular values × 1.05 in the saddle losses and jump "
                                      "sizes (not in the simulation)"),
                         Perturbation("s2", 2.2, "the second singular value × 2.2 in the theory: it then exceeds the "
                                      "first, reversing the predicted order of the first two jumps")))
def staircase(p, out):
    f = theory_factors(p, INPUTS)
    s = np.asarray(p["s"], float)
    s_th = perturbed_s(s, f)
    K = int(np.sum(s > 0))
    runs = simulate_runs(p)
    claims, tabs = [], {}
    for name, ds in runs.items():
        save(ds, out / f"{'gradient_flow' if name == 'gradient flow' else 'sgd'}.zarr")
        tabs[name] = plateau_table(ds)
        write_csv(out / f"plateaus_{'gradient_flow' if name == 'gradient flow' else 'sgd'}.csv",
                  tabs[name].astype(object).where(tabs[name].notna(), None).to_dict("records"))
        claims += claims_of(name, tabs[name], p, s_th, K)
    for (L, sigma), ds in simulate_deep(p).items():
        save(ds, out / f"gradient_flow_L{L}_sigma{sigma:g}.zarr")
        claims += claims_of(f"gradient flow (L = {L}, σ = {sigma:g})", plateau_table(ds), p, s_th, K, deep=(L, sigma))
    fig = _figure(out, p, runs, tabs, th.saddle_losses(s), K)
    return ExperimentResult(NAME, claims=claims, figures=[fig])
