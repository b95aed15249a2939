"""[J] ``sparsity``: the low-rank bias of small initialisation and of L2 regularisation (``saddle_to_saddle.md`` §7;
checks.md G13; [J]'s v1 abstract).

Simulate, and estimate (replicas, i.e. independent inits or instances, are the independent unit):

* **Matrix completion** (an under-determined cost): ``instances`` masks and teachers (seeds ``seed + i``), gradient
  flow from a small and a large Gaussian scale (stacked). Rows ``completion_rank`` (Wilson fraction of instances
  whose small-init solution has lower rank than the large-init one) and ``completion_error`` (Wilson fraction with
  test error below half the large-init one, checks.md G13). Threshold claims with few instances: reported with
  their Wilson intervals (inconclusive at the quick preset's instance count).
* **L2-regularised minimum** (the Schatten-2/L quasi-norm, v1 abstract; derived): gradient descent on
  ``𝓛(θ) + (ρ/2)‖θ‖²`` (population loss, whitened teacher) from ``wd_replicas`` Gaussian inits to a stationary
  point. Rows ``wd_norm`` — ``‖θ*‖²`` at the simulated minimum against ``L Σ_i a_i^{2/L}``, with ``a_i`` the
  minimiser of the per-mode objective ``½(a − s_i)² + (ρL/2)a^{2/L}``
  (:func:`dlnlab.theory.saddle_sequence.regularised_singular_values`: weight decay acts on ``W`` as the
  Schatten-2/L quasi-norm ``L Σ s_i(W)^{2/L}``), and ``wd_singular_value`` — each singular value of ``W*`` against
  ``a_i`` (batch means over replicas; budget: the stopping tolerance of GD).
* **Stable-rank staircase in time** (§6.3, derived): gradient flow from small init (``stable_*`` parameters), the
  stable ranks ``‖W_l‖_F²/‖W_l‖_op²`` of every layer recorded; row ``stable_rank`` per layer and plateau ``k ≥ 1``:
  the median over the plateau's core, batch means over replicas, against the balanced rank-``k`` saddle's
  ``Σ_{i≤k} (s_i/s_1)^{2/L}`` (modes in learning order).

Power: ``perturb = {s = 1.05}`` moves ``a_i`` and the norm; ``perturb = {s2 = 2.2}`` puts the second singular value
above the first in the theory, which moves every stable rank.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ... import figures
from ...analysis import plateau_table, stats
from ...config import Config
from ...engines import simulate
from ...model.gradients import full_gradient
from ...model.network import Initializer
from ...model.observables import Observable
from ...model.problem import Problem
from ...model.teacher import Teacher, completion_mask
from ...theory import saddle_sequence as th
from ..base import ExperimentResult, Figure, Perturbation, register, theory_factors, write_csv
from ..claims import Tolerance, setting
from ._common import network_config, perturbed_s, row, teacher_config

NAME = "sparsity"
INPUTS = ("s", "s2", "step")


def _stable_ranks():
    """A user observable: the stable rank ``‖W_l‖_F² / ‖W_l‖_op²`` of every layer."""
    def fn(weights, problem, params):
        return {"stable_rank": jnp.stack([jnp.sum(w**2) / jnp.linalg.norm(w, 2) ** 2 for w in weights])}

    return Observable("stable_rank", fn, {"stable_rank": ("layer",)})


def completion(p):
    """Per instance (seed ``seed + i``): rank and test error of the gradient-flow solution at each σ."""
    sig = [float(x) for x in p["sigmas"]]
    rows, curves = [], {}
    for i in range(int(p["instances"])):
        inst = int(p["seed"]) + i
        cfg = Config.from_dict({
            "teacher": teacher_config(p["completion_s"], p["completion_d"], inst),
            "data": {"kind": "completion", "observed_fraction": float(p["fraction"]), "seed": inst},
            "network": {"depth": int(p["depth"]), "width": int(p["completion_width"])},
            "init": {"kind": "gaussian", "scale": sig},
            "dynamics": {"kind": "flow", "t_max": float(p["completion_t_max"]), "rtol": 1e-8, "solver": "explicit"},
            "record": {"n_times": int(p["n_times"]), "observables": ["loss", "singular_values", "end_to_end"]},
            "ensemble": {"replicas": 1, "seed": inst}})
        ds = simulate(cfg, progress=False)
        M = Teacher.from_config(cfg).M
        mask = completion_mask(p["completion_d"], p["completion_d"], p["fraction"], inst)
        W = ds.end_to_end.values
        test = np.linalg.norm((1 - mask) * (W - M), axis=(2, 3)) / np.linalg.norm((1 - mask) * M)
        curves[inst] = (ds.t.values, test)
        for r, sg in enumerate(sig):
            sv = np.linalg.svd(W[r, -1], compute_uv=False)
            rows.append({"instance": inst, "sigma": sg, "rank": int(np.sum(sv > 1e-2 * sv[0])),
                         "test_error": float(test[r, -1]), "train_loss": float(ds.train_loss.values[r, -1])})
    return rows, curves


def completion_claims(rows, p):
    small, large = min(p["sigmas"]), max(p["sigmas"])
    sm = [r for r in rows if r["sigma"] == small]
    lg = [r for r in rows if r["sigma"] == large]
    n = len(sm)
    lower = sum(a["rank"] < b["rank"] for a, b in zip(sm, lg, strict=True))
    better = sum(a["test_error"] < 0.5 * b["test_error"] for a, b in zip(sm, lg, strict=True))
    note = (f"{n} instances; ranks at σ = {small:g}: {[r['rank'] for r in sm]}, at σ = {large:g}: "
            f"{[r['rank'] for r in lg]}; test errors {[round(r['test_error'], 3) for r in sm]} vs "
            f"{[round(r['test_error'], 3) for r in lg]}")
    why = "the low-rank bias is the σ → 0 statement; the threshold allows an instance where finite σ and time pass " \
          "the minimal-rank saddle"
    return [
        row(NAME, "completion_rank", setting(sigma_small=small, sigma_large=large), "small init reaches a lower-rank "
            "solution than large init on an under-determined cost (matrix completion, §7)",
            "fraction of instances with rank(W, σ_i > 1e-2 σ_1) lower at small init", 1.0, stats.wilson(lower, n),
            Tolerance.above(p["completion_threshold"], why=why), note=note, source="paper"),
        row(NAME, "completion_error", setting(sigma_small=small, sigma_large=large), "small init generalises "
            "better: its error on the unobserved entries is below half the large-init one (checks.md G13)",
            "fraction of instances with test error(small) < 0.5 test error(large)", 1.0, stats.wilson(better, n),
            Tolerance.above(p["completion_threshold"], why=why), note=note, source="paper"),
    ]


def wd_minimum(p):
    """Gradient descent on ``𝓛 + (ρ/2)‖θ‖²`` from ``wd_replicas`` Gaussian inits (population loss, whitened
    teacher); returns ``(‖θ‖², singular values of W, final gradient norm)`` per replica."""
    L, w, d, rho = int(p["wd_depth"]), int(p["wd_width"]), int(p["d"]), float(p["rho"])
    cfg = network_config(s=p["s"], d=d, depth=L, width=w, init={"kind": "gaussian", "scale": float(p["wd_sigma"])},
                         dynamics={"kind": "gd", "steps": 1}, n_times=2, replicas=1, seed=p["seed"],
                         teacher_seed=p["seed"])
    problem = Problem.build(Teacher.from_config(cfg))
    init = Initializer(cfg, Teacher.from_config(cfg))
    keys = [jax.random.fold_in(jax.random.PRNGKey(int(p["seed"]) + 7), r) for r in range(int(p["wd_replicas"]))]
    ws0 = [init(k, float(p["wd_sigma"])) for k in keys]
    ws0 = tuple(jnp.stack([x[l] for x in ws0]) for l in range(L))
    lr, steps = float(p["wd_lr"]), int(p["wd_steps"])

    def grad(ws):
        return tuple(g + rho * a for a, g in zip(ws, full_gradient(ws, problem)))

    @jax.jit
    def run(ws):
        ws = lax.fori_loop(0, steps, lambda _, v: tuple(a - lr * g for a, g in zip(v, grad(v))), ws)
        gn = jnp.sqrt(sum(jnp.sum(g**2) for g in grad(ws)))
        return ws, gn

    out = [run(tuple(x[r] for x in ws0)) for r in range(ws0[0].shape[0])]
    norm2 = np.array([float(sum(jnp.sum(a**2) for a in ws)) for ws, _ in out])
    W = [np.asarray(ws[-1] if L == 1 else np.linalg.multi_dot([np.asarray(a) for a in ws[::-1]])) for ws, _ in out]
    sv = np.array([np.linalg.svd(x, compute_uv=False) for x in W])
    return norm2, sv, np.array([float(g) for _, g in out])


def wd_claims(p, s_th):
    norm2, sv, gnorm = wd_minimum(p)
    L, rho, K = int(p["wd_depth"]), float(p["rho"]), int(np.sum(np.asarray(p["s"]) > 0))
    a = th.regularised_singular_values(s_th, rho, L)
    # a deterministic GD limit per init: its error is the spread over the inits plus the distance to the stationary
    # point, ≤ ‖∇‖/ρ (the weight decay's curvature) — the bound of Estimate.exact
    err = float(np.max(gnorm)) / rho
    note = f"{len(norm2)} inits, GD η = {p['wd_lr']:g} for {p['wd_steps']} steps; max ‖∇‖ = {np.max(gnorm):.2e}"
    tag = {"L": L, "rho": rho}
    rows = [row(NAME, "wd_norm", setting(**tag), "weight decay acts on W as the Schatten-2/L quasi-norm: at the "
                "L2-regularised minimum ‖θ‖² = L Σ a_i^{2/L}, a_i the per-mode minimisers (§7, v1 abstract)",
                "‖θ*‖² at the simulated minimum (mean over inits)", L * np.sum(a ** (2.0 / L)),
                stats.Estimate.exact(float(np.mean(norm2)), float(np.ptp(norm2)) + 2 * np.sqrt(np.max(norm2)) * err),
                Tolerance.within(relative=p["wd_tol"], why="GD stopped at a finite gradient norm (bound in the "
                                 "estimate); no model error"), note=note)]
    for i in range(K):
        x = sv[:, i]
        rows.append(row(NAME, "wd_singular_value", setting(**tag, mode=i + 1), "the L2-regularised minimum's "
                        "singular values minimise ½(a − s)² + (ρL/2)a^{2/L} mode by mode (§7; derived)",
                        f"σ_{i + 1}(W*) (mean over inits)", a[i],
                        stats.Estimate.exact(float(np.mean(x)), float(np.ptp(x)) + err),
                        Tolerance.within(relative=p["wd_tol"], why="GD stopped at a finite gradient norm (bound in "
                                         "the estimate); no model error"), note=note))
    return rows


def stable_run(p):
    cfg = network_config(s=p["stable_s"], d=p["d"], depth=p["depth"], width=p["stable_width"],
                         init={"kind": "gaussian", "scale": float(p["stable_sigma"])},
                         dynamics={"kind": "flow", "t_max": float(p["stable_t_max"]), "rtol": 1e-8,
                                   "solver": "explicit"},
                         n_times=p["n_times"], replicas=p["stable_replicas"], seed=p["seed"] + 3,
                         teacher_seed=p["seed"] + 3, observables=("loss", "singular_values", "mode_strength"))
    ds = simulate(cfg, observables=[_stable_ranks()], progress=False)
    return ds, plateau_table(ds)


def stable_claims(ds, tab, p, f):
    s_th, s_sim = perturbed_s(p["stable_s"], f), np.asarray(p["stable_s"], float)
    L, K = int(p["depth"]), int(np.sum(s_sim > 0))
    order, per_step = th.learning_order(s_th), round(f["step"])  # modes learned per plateau in the theory
    top = s_sim[th.learning_order(s_sim)[0]]  # the simulated teacher's largest (the budget is the simulation's)
    t = ds.t.values
    sr = ds.stable_rank.values  # (replica, t, layer)
    w, d = int(p["stable_width"]), int(p["d"])
    sizes = [(w, d)] + [(w, w)] * (L - 2) + [(d, w)]  # W_1 … W_L
    full = [r for r, g in tab.groupby("replica") if len(g) == K + 1]
    rows = []
    for k in range(1, K + 1):
        theo = float(np.sum((s_th[order[:min(per_step * k, K)]] / s_th[order[0]]) ** (2.0 / L)))
        per = np.full((len(full), L), np.nan)
        for j, r in enumerate(full):
            g = tab[(tab.replica == r) & (tab.plateau == k)].iloc[0]
            d = g.t_end - g.t_start
            core = (t >= g.t_start + 0.25 * d) & (t <= g.t_end - 0.25 * d)
            if not core.any():  # the record nearest the midpoint, as plateau_table does
                core = np.arange(t.size) == np.argmin(np.abs(t - 0.5 * (g.t_start + g.t_end)))
            per[j] = np.median(sr[r][core], axis=0)
        for layer in range(L):
            if len(full) < 2:
                continue
            resid = p["stable_sigma"] ** 2 * np.prod(sizes[layer]) / top ** (2.0 / L)
            rows.append(row(NAME, "stable_rank", setting(L=L, plateau=k, layer=layer + 1), "the layers' stable "
                            "ranks climb a staircase in time: on plateau k each layer is the balanced rank-k channel "
                            "with singular values s_i^{1/L} (§6.2–6.3)",
                            f"stable rank ‖W_{layer + 1}‖_F²/‖W_{layer + 1}‖_op² on plateau {k} (median over its "
                            "core; batch means over replicas)", theo,
                            stats.group_estimate(per[:, layer], groups=min(len(full), 20)),
                            Tolerance.within(absolute=resid + p["stable_tol"] * theo,
                                             why=f"the init's residue σ²·(entries) = {resid:.3g} in the unlearned "
                                             f"directions, and {100 * p['stable_tol']:g} % for the next mode's growth "
                                             "during the plateau (the finite-σ bias of Errata 10: 2.2–2.4 % of the "
                                             "loss level at σ ≈ 1e-2)"),
                            note=f"{len(full)} of {ds.sizes['replica']} replicas with {K + 1} plateaus"))
    return rows


def _figure(out, p, curves, comp, ds, tab):
    fig, axes = figures.subplots(1, 3, figsize=(13, 3.6))
    sig = [float(x) for x in p["sigmas"]]
    cmap = figures.plt.get_cmap("plasma")
    for i, sg in enumerate(sig):
        errs = np.stack([c[1][i] for c in curves.values()])
        t = next(iter(curves.values()))[0]
        axes[0].plot(t[1:], np.median(errs, axis=0)[1:], color=cmap(0.85 * i / max(len(sig) - 1, 1)),
                     label=f"σ={sg:g}")
    axes[0].set(xscale="log", yscale="log", xlabel="time t", ylabel="relative test error (unobserved entries)",
                title=f"matrix completion {p['completion_d']}×{p['completion_d']}, {p['fraction']:.0%} observed")
    axes[0].legend(fontsize=7)
    for i, sg in enumerate(sig):
        axes[1].plot([r["instance"] for r in comp if r["sigma"] == sg], [r["rank"] for r in comp if r["sigma"] == sg],
                     "o", color=cmap(0.85 * i / max(len(sig) - 1, 1)), label=f"σ={sg:g}")
    axes[1].set(xlabel="instance", ylabel="rank of the solution (σ_i > 1e-2 σ_1)", title="low-rank bias")
    axes[1].legend(fontsize=7)
    sr = ds.stable_rank.values
    for layer in range(sr.shape[-1]):
        for r in range(sr.shape[0]):
            axes[2].plot(ds.t.values[1:], sr[r, 1:, layer], color=f"C{layer}", lw=0.7, alpha=0.5,
                         label=f"layer {layer + 1}" if r == 0 else None)
    s_st = np.asarray(p["stable_s"], float)
    L = int(p["depth"])
    for k in range(1, len(s_st) + 1):
        axes[2].axhline(np.sum((s_st[:k] / s_st[0]) ** (2.0 / L)), color="k", ls="--", lw=0.6)
    axes[2].set(xscale="log", xlabel="time t", ylabel="stable rank ‖W_l‖_F²/‖W_l‖_op²",
                title="stable-rank staircase (dashed: Σ_{i≤k}(s_i/s_1)^{2/L})")
    axes[2].legend(fontsize=7)
    return Figure(figures.save(fig, out, NAME),
                  "Left: matrix completion by gradient flow, relative error on the unobserved entries against time "
                  "(median over instances) for each init scale. Middle: rank of each instance's solution: small init "
                  "keeps rank(M), large init a full spectrum. Right: the stable rank of every layer against time "
                  "from small init (whitened teacher): it climbs the staircase Σ_{i≤k}(s_i/s_1)^{2/L} (dashed), one "
                  "step per learned mode.")


_QUICK = {"d": 5, "depth": 3, "s": [4.0, 2.0, 1.0, 0.5], "completion_d": 10, "completion_s": [4.0, 2.0],
          "fraction": 0.5, "completion_width": 50, "sigmas": [1e-2, 0.3], "instances": 2, "completion_t_max": 100.0,
          "completion_threshold": 0.5, "n_times": 160, "wd_depth": 3, "wd_width": 10, "wd_sigma": 0.4, "rho": 0.1,
          "wd_lr": 0.02, "wd_steps": 20000, "wd_replicas": 4, "wd_tol": 1e-6, "stable_s": [4.0, 2.0, 1.0],
          "stable_width": 20, "stable_sigma": 1e-2, "stable_t_max": 40.0, "stable_replicas": 8, "stable_tol": 0.02,
          "seed": 0}


@register(NAME, paper="J", cost="~40 s",
          claim="Small init and L2 regularisation bias deep linear networks to low rank: matrix completion from small "
                "init is low-rank and generalises, the L2-regularised minimum minimises the Schatten-2/L quasi-norm, "
                "and the layers' stable ranks climb one step per learned mode",
          quick=_QUICK,
          full={**_QUICK, "sigmas": [3e-3, 0.3], "instances": 8, "completion_t_max": 400.0, "n_times": 200,
                "wd_steps": 40000, "wd_replicas": 8, "stable_width": 30, "stable_sigma": 3e-3, "stable_t_max": 120.0,
                "stable_replicas": 20},
          smoke={"instances": 1, "completion_width": 30, "completion_t_max": 60.0, "wd_steps": 10000,
                 "stable_replicas": 6, "n_times": 120},
          perturbations=(Perturbation("s", 1.05, "teacher singular values × 1.05 in the regularised minimum's closed "
                                      "form (not in the simulation)"),
                         Perturbation("s2", 2.2, "the second singular value × 2.2 in the theory: it exceeds the first, "
                                      "which moves the stable ranks of plateaus k ≥ 2 (and the regularised minimum)"),
                         # plateau 1's stable rank is 1 whatever the singular values: only the staircase's step moves it
                         Perturbation("step", 2.0, "two modes learned per plateau in the theory (the staircase's "
                                      "step doubled): plateau k's stable rank Σ_{i≤2k}")))
def sparsity(p, out):
    f = theory_factors(p, INPUTS)
    comp, curves = completion(p)
    write_csv(out / "solutions.csv", comp)
    ds, tab = stable_run(p)
    claims = [*completion_claims(comp, p), *wd_claims(p, perturbed_s(p["s"], f)), *stable_claims(ds, tab, p, f)]
    return ExperimentResult(NAME, claims=claims, figures=[_figure(out, p, curves, comp, ds, tab)])
