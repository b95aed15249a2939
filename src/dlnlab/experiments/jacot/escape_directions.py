"""[J] ``escape_directions``: the saddles gradient flow visits and the directions it leaves them by
(``saddle_to_saddle.md`` §6.1–6.2, checks.md G4, G8, G11).

* **Strict saddles at L = 2** (issue 14 item 9, [J]: at L = 2 every critical point is a strict saddle or a global
  minimum): on a depth-2 gradient-flow run (non-whitened inputs, checks.md G11) the smallest Hessian eigenvalue is
  recorded along the path (Lanczos on Hessian-vector products, :mod:`dlnlab.model.hessian`, applied to ``−H``; with
  ``P`` steps on ``P`` parameters the Ritz values are the eigenvalues) and read, on every plateau, at the record
  with the smallest gradient norm (the state nearest the critical point; the plateau's middle is not: there the
  next mode has grown to ~σ^0.3, 0.8 % off in λ_min at σ = 1e-4). It is
  held against the derived value at the exact rank-k saddle ``W_k`` (§6.2): ``λ_min = −σ₁((M − W_k)Σ_x)``, the
  curvature along ``u v`` of the residual's top pair through an unused hidden unit (``θ = ε(h vᵀ, u hᵀ)``:
  ``Δ𝓛 = −ε² uᵀ(M − W_k)Σ_x v``, ``‖θ‖² = 2ε²``); the value at the end of the run (a global minimum: ``λ_min ≈ 0``,
  the flat hidden rotations) is in the last row's note.
* the loss on the plateau after the first jump against the §6.2 saddle loss (the visited saddle is the one of the
  λs order, not the best rank-1 map);
* **escape directions** (``kind = "beyond"``: geometric statements with no theory input to perturb): at each jump
  gradient flow (and SGD) leaves along the top singular pair of the residual ``−∇_W 𝓛`` at the saddle; the first
  escape is along the teacher's top pair for whitened inputs, along the residual's (not the teacher's) top pair
  for non-whitened ones; after the first jump every layer is rank one (checks.md G8); the learning order;
* the autodiff Hessian at the origin against ``±σ_i(G_0)`` (L = 2) and 0 (L = 3): ``kind = "theory"`` (checks.md
  G4 [A], a check of our closed form).

Perturbation (power test): the teacher spectrum × 1.05 in the saddle maps and saddle losses (theory side only).
"""

from __future__ import annotations

import numpy as np
from jax.flatten_util import ravel_pytree

from ... import figures
from ...analysis import escape_vectors, origin_hessian, plateau_table, stats
from ...config import Config
from ...engines import simulate
from ...model.hessian import hessian_vector_product, top_eigenvalue
from ...model.observables import Observable
from ...model.problem import Problem
from ...model.teacher import Teacher
from ...storage import save
from ...theory import saddle_sequence as th
from ..base import ExperimentResult, Figure, Perturbation, register, theory_factors
from ..claims import Tolerance, setting
from ._common import row, teacher_config

NAME = "escape_directions"
OBS = ["loss", "singular_values", "mode_strength", "end_to_end", "residual"]


def _layer_vectors():
    """A user observable (the G8 check): top right singular vector of W_1, top left one of W_L, stable ranks."""
    import jax.numpy as jnp

    def fn(weights, problem, params):
        _, _, vt = jnp.linalg.svd(weights[0], full_matrices=False)
        u, _, _ = jnp.linalg.svd(weights[-1], full_matrices=False)
        stable = jnp.stack([jnp.sum(w**2) / jnp.linalg.norm(w, 2) ** 2 for w in weights])
        top = jnp.stack([jnp.linalg.norm(w, 2) for w in weights])
        return {"W1_right": vt[0], "WL_left": u[:, 0], "stable_rank": stable, "layer_top_sv": top}

    return Observable("layer_vectors", fn, {"W1_right": ("in",), "WL_left": ("out",), "stable_rank": ("layer",),
                                            "layer_top_sv": ("layer",)})


def min_eigenvalue_observable():
    """A user observable: the smallest Hessian eigenvalue of the training objective and its Ritz residual, by
    Lanczos on ``−H`` with as many steps as parameters (exact to round-off; :mod:`dlnlab.model.hessian`)."""

    def fn(weights, problem, params):
        flat, unravel = ravel_pytree(weights)

        def matvec(v):
            return -ravel_pytree(hessian_vector_product(weights, problem, unravel(v)))[0]

        top, resid = top_eigenvalue(matvec, flat.size, flat.size, flat.dtype)
        return {"hessian_min": -top, "hessian_min_residual": resid}

    return Observable("hessian_min", fn, {"hessian_min": (), "hessian_min_residual": ()})


def _flow_and_sgd(p, common, out):
    """Gradient flow (one run, seed ``p["seed"]``, with :func:`_layer_vectors`) and SGD (``p["sgd_replicas"]`` runs,
    seed + 1) on the ``common`` config sections up to ``p["t_max"]``."""
    gf = simulate(Config.from_dict({**common, "dynamics": {"kind": "flow", "t_max": float(p["t_max"]), "rtol": 1e-8},
                                    "ensemble": {"replicas": 1, "seed": int(p["seed"])}}),
                  observables=[_layer_vectors()], progress=False)
    sgd = simulate(Config.from_dict({**common, "dynamics": {"kind": "sgd", "t_max": float(p["t_max"]),
                                                             "lr": float(p["lr"]), "batch_size": int(p["batch_size"])},
                                     "ensemble": {"replicas": int(p["sgd_replicas"]), "seed": int(p["seed"]) + 1}}),
                   progress=False)
    save(gf, out / "gradient_flow.zarr")
    save(sgd, out / "sgd.zarr")
    return gf, sgd


def _beyond(key, where, claim, quantity, estimate, threshold, why, *, below=False, note=""):
    """A geometric row (``beyond``: no theory input to perturb): the estimate above (or ``below``) ``threshold``."""
    est = estimate if isinstance(estimate, stats.Estimate) else stats.Estimate.exact(*estimate)
    tol = Tolerance.below(threshold, why=why) if below else Tolerance.above(threshold, why=why)
    return row(NAME, key, where, claim, quantity, 0.0 if below else 1.0, est, tol, kind="beyond", note=note)


def _whitened_rows(p, gf, sgd, teacher, t_gf, t_sgd, K):
    """Escape directions of the whitened depth-``depth`` runs (checks.md G8)."""
    L, s = int(p["depth"]), np.asarray(p["s"], float)
    jg = t_gf[t_gf.plateau < K]
    cos_gf = np.minimum(jg.escape_cos_left, jg.escape_cos_right).to_numpy()
    rank_ratio = float(np.nanmax(jg.escape_rank_ratio))
    where = setting(L=L)
    rows = [_beyond("gf_residual_pair", where, "GF: each jump leaves along the residual's top singular pair",
                    f"min over the {len(jg)} jumps of |cos| (left and right vectors)", (float(np.nanmin(cos_gf)),
                    rank_ratio), 0.99, "checks.md G8 (observed 1 − 1e-9); error bound: σ₂/σ₁ of the escape ΔW")]
    first = jg[jg.plateau == 0].iloc[0]
    c1 = min(first.mode_cos_left, first.mode_cos_right) if first.learned_mode == 1 else 0.0
    rows.append(_beyond("gf_first_teacher_pair", where, "GF: the first escape is along the teacher's top singular "
                        "vectors", "min(|cos(u_esc, u_1)|, |cos(v_esc, v_1)|) at the first jump", (float(c1),
                        rank_ratio), 0.99, "whitened inputs: the residual's top pair is the teacher's"))
    # G8 on the weights just after the first jump: the first record past t_1 + 0.3 (t_2 − t_1)
    t1, t2 = float(first.t_end), float(jg[jg.plateau == 1].iloc[0].t_end)
    i = int(np.searchsorted(gf.t.values, t1 + 0.3 * (t2 - t1)))
    cw = min(abs(float(gf.W1_right.values[0, i] @ teacher.V[:, 0])), abs(float(gf.WL_left.values[0, i] @ teacher.U[:, 0])))
    st, top = gf.stable_rank.values[0, i], gf.layer_top_sv.values[0, i]
    rows.append(_beyond("gf_rank_one_layers", where, "GF: after the first jump every layer is rank one along v_1 … u_1",
                        f"min(|cos(top right sv of W_1, v_1)|, |cos(top left sv of W_L, u_1)|) at t={gf.t.values[i]:.3g}",
                        (cw, rank_ratio), 0.99, "checks.md G8", note=f"stable ranks {np.round(st, 4).tolist()} (G8: ≤ "
                        f"1.1); layer top singular values / s_1^(1/L) − 1: {np.round(top / s[0] ** (1 / L) - 1, 4).tolist()}"))
    js = t_sgd[t_sgd.plateau < t_sgd.groupby("replica").plateau.transform("max")]
    cos_sgd = np.minimum(js.escape_cos_left, js.escape_cos_right).to_numpy()
    cos_sgd = cos_sgd[np.isfinite(cos_sgd)]
    rows.append(_beyond("sgd_residual_pair", where, "SGD: jumps leave along the residual's top singular pair too",
                        f"10 % quantile over {len(cos_sgd)} jumps × replicas of min |cos|",
                        stats.bootstrap_quantile(cos_sgd, 0.1), 0.95, "SGD fluctuations of the learned modes "
                        "enter ΔW (proposed, not validated)"))
    return rows, jg, js


def _strict_saddle_rows(dnw, t_nw, s_th, lam):
    """The smallest Hessian eigenvalue at the middle of every plateau of the L = 2 run against −σ₁((M − W_k)Σ_x) at
    the exact saddle W_k (module docstring)."""
    t, rows = dnw.t.values, []
    K = len(s_th)
    eye = np.eye(len(s_th))
    for k in range(K):
        g = t_nw[t_nw.plateau == k].iloc[0]
        span = np.flatnonzero((t >= g.t_start) & (t <= g.t_end))
        i = int(span[np.argmin(dnw.grad_norm.values[0, span])])  # the record nearest the critical point
        Wk = th.saddle_map(k, s_th, eye, eye, lam)
        theory = -float(np.linalg.norm((np.diag(s_th) - Wk) @ np.diag(lam), 2))
        val, res = float(dnw.hessian_min.values[0, i]), float(dnw.hessian_min_residual.values[0, i])
        note = ""
        if k == K - 1:
            note = (f"at the end of the run (t = {t[-1]:.3g}, a global minimum) λ_min = "
                    f"{float(dnw.hessian_min.values[0, -1]):.2e} (PSD: the zero modes are the hidden rotations)")
        rows.append(row(NAME, "strict_saddle", setting(L=2, saddle=k), "L=2: every visited critical point other than "
                        "the minimum is a strict saddle, λ_min(H) = −σ₁((M − W_k)Σ_x) (§6.2)",
                        f"smallest Hessian eigenvalue at t = {t[i]:.3g} (the record of plateau {k} with the smallest "
                        f"gradient norm, {float(dnw.grad_norm.values[0, i]):.1e}; Lanczos, Ritz residual {res:.1e})", theory, stats.Estimate.exact(val, max(res, 1e-12)),
                        Tolerance.within(relative=2e-3, why="the recorded state nearest the critical point is off the "
                                         "exact saddle by the incoming and outgoing modes (measured 4e-4 at σ = 1e-4)"),
                        note=note))
    return rows


def _non_whitened(p, out):
    """The depth-2 run with Σx = diag(nw_lambda), M = diag(nw_s) (identity basis; checks.md G11), recording the
    smallest Hessian eigenvalue."""
    nw = Config.from_dict({
        "teacher": {"d_in": 2, "d_out": 2, "singular_values": list(p["nw_s"]), "input_variance": list(p["nw_lambda"]),
                    "basis": "identity"},
        "network": {"depth": 2, "width": int(p["nw_width"])}, "init": {"kind": "gaussian", "scale": float(p["nw_sigma"])},
        "dynamics": {"kind": "flow", "t_max": float(p["nw_t_max"]), "rtol": 1e-10},
        "record": {"n_times": int(p["n_times"]), "observables": [*OBS, "grad_norm"]},
        "ensemble": {"replicas": 1, "seed": int(p["seed"])}})
    dnw = simulate(nw, observables=[min_eigenvalue_observable()], progress=False)
    save(dnw, out / "non_whitened.zarr")
    t_nw = plateau_table(dnw)
    t_nw.to_csv(out / "plateaus_non_whitened.csv", index=False)
    return nw, dnw, t_nw


def _non_whitened_rows(p, dnw, t_nw, s_th):
    """checks.md G11: the λs order, the first escape along the residual's (not the teacher's) top pair, and the
    visited saddle's loss (§6.2) above the best rank-1 loss."""
    lam, s2 = np.asarray(p["nw_lambda"], float), np.asarray(p["nw_s"], float)
    order = [int(x) + 1 for x in th.learning_order(s2, lam)]
    got = [int(x) for x in t_nw.learned_mode.dropna()]
    j0 = t_nw[t_nw.plateau == 0].iloc[0]
    i1 = int(np.searchsorted(dnw.t.values, float(j0.t_end)))
    dW = np.gradient(dnw.end_to_end.values[0], dnw.t.values, axis=0)[i1]
    top_s = int(np.argmax(s2))
    u_e, _, vt_e = np.linalg.svd(dW)
    c_top = float(min(abs(u_e[:, 0] @ np.eye(2)[top_s]), abs(vt_e[0] @ np.eye(2)[top_s])))
    c_res = float(min(j0.escape_cos_left, j0.escape_cos_right))
    bound = float(j0.escape_rank_ratio)
    where = setting(L=2, inputs="non-whitened")
    order_note = f"learned modes {got} against the λs order {order} (s order {[int(x) + 1 for x in np.argsort(s2)[::-1]]})"
    rows = [_beyond("nw_residual_pair", where, "Non-whitened inputs: the first escape follows the residual's top pair",
                    "min |cos| of the first escape direction with the residual's top pair", (c_res, bound), 0.99,
                    "checks.md G11", note=order_note),
            _beyond("nw_not_teacher_pair", where, "Non-whitened inputs: the first escape is not along the teacher's "
                    "top singular pair", f"min |cos| of the first escape direction with the teacher's top pair (mode "
                    f"{top_s + 1})", (c_top, max(bound, 1e-12)), 0.1, "checks.md G11", below=True)]
    mid = float(t_nw[t_nw.plateau == 1].iloc[0].loss)
    rrr = th.best_rank_k(np.diag(s_th), 1, np.diag(lam))[1]
    rows.append(row(NAME, "nw_saddle_loss", where, "Non-whitened inputs: the flow rests at the saddle of the λs order "
                    "(§6.2), not at the best rank-1 map", f"loss on the plateau after the first jump (best rank-1 loss: "
                    f"{rrr:g})", th.saddle_loss(1, s_th, lam), stats.Estimate.exact(mid, 1e-8 * abs(mid)),
                    Tolerance.within(relative=0.05, why="checks.md G11: residual mass of the unlearned mode"),
                    note=order_note))
    return rows


def _origin_hessian_rows(teacher, teacher_nw, width, width_nw):
    """§6.1 (checks.md G4 [A]): the autodiff Hessian of the loss at θ = 0. L = 2: eigenvalues ±σ_i(G_0),
    G_0 = MΣx, each ``w`` times, plus w(d_0 + d_L − 2 rank G_0) zeros — on the whitened teacher and on the
    non-whitened G11 teacher (there σ(G_0) = λs ≠ s). L = 3: the Hessian vanishes. Self-checks (``theory``)."""
    dev, parts = 0.0, []
    for tch, w in ((teacher, width), (teacher_nw, width_nw)):
        d0, dL = tch.M.shape[1], tch.M.shape[0]
        G0 = tch.M @ tch.input_cov
        ev = np.linalg.eigvalsh(origin_hessian(Problem.build(tch), (d0, w, dL)))
        dev = max(dev, float(np.max(np.abs(ev - th.origin_hessian_spectrum(G0, w)))))
        sv = np.linalg.svd(G0, compute_uv=False)
        parts.append(f"{d0}→{w}→{dL}, σ(G_0)=" + ",".join(f"{x:.3g}" for x in sv[sv > 1e-12]))
    d0, dL = teacher.M.shape[1], teacher.M.shape[0]
    h3 = float(np.max(np.abs(origin_hessian(Problem.build(teacher), (d0, width, width, dL)))))
    tol = Tolerance.at_most(absolute=1e-10, why="float64 autodiff (checks.md G4 [A])")
    return [
        row(NAME, "origin_hessian", setting(L=2), "L=2: the origin is a strict saddle; the Hessian at 0 has eigenvalues "
            "±σ_i(G_0) (G_0 = MΣx) with multiplicity w, plus w(d_0 + d_L − 2 rank G_0) zeros",
            "max |sorted autodiff eigenvalue − sorted ±σ_i(G_0)×w ∪ zeros| over " + "; ".join(parts), 0.0,
            stats.Estimate.exact(dev), tol, kind="theory"),
        row(NAME, "origin_hessian", setting(L=3), "L=3: the Hessian at 0 vanishes (a degenerate saddle of order L)",
            f"max |H_ij| of the autodiff Hessian at 0, {d0}→{width}→{width}→{dL} (whitened teacher)", 0.0,
            stats.Estimate.exact(h3), tol, kind="theory"),
    ]


@register(NAME, paper="J", cost="~40 s",
          claim="At L = 2 every visited saddle is strict (λ_min(H) = −σ₁ of the residual); at each jump gradient flow "
                "escapes along the top singular pair of the residual −∇_W𝓛, which need not be the teacher's",
          quick={"depth": 3, "d": 5, "width": 30, "s": [4.0, 2.0, 1.0, 0.5], "sigma": 1e-2, "t_max": 100.0,
                 "lr": 0.01, "batch_size": 8, "sgd_replicas": 8, "n_times": 300, "seed": 0,
                 "nw_lambda": [9.0, 1.0], "nw_s": [1.0, 4.0], "nw_width": 20, "nw_sigma": 1e-4, "nw_t_max": 8.0},
          full={"depth": 3, "d": 5, "width": 50, "s": [4.0, 2.0, 1.0, 0.5], "sigma": 1e-3, "t_max": 900.0,
                "lr": 0.005, "batch_size": 8, "sgd_replicas": 64, "n_times": 600, "seed": 0,
                "nw_lambda": [9.0, 1.0], "nw_s": [1.0, 4.0], "nw_width": 20, "nw_sigma": 1e-6, "nw_t_max": 12.0},
          smoke={"width": 12, "sgd_replicas": 4},
          perturbations=(Perturbation("s", 1.05, "teacher singular values × 1.05 in the saddle maps and losses"),))
def escape_directions(p, out):
    f = theory_factors(p, ("s",))
    s = np.asarray(p["s"], float)
    K = int(np.sum(s > 0))
    common = {"teacher": teacher_config(s, p["d"], p["seed"]),
              "network": {"depth": int(p["depth"]), "width": int(p["width"])},
              "init": {"kind": "gaussian", "scale": float(p["sigma"])},
              "record": {"n_times": int(p["n_times"]), "observables": OBS}}
    gf, sgd = _flow_and_sgd(p, common, out)
    teacher = Teacher.from_config(Config.from_dict({**common, "dynamics": {"kind": "flow", "t_max": 1.0}}))
    t_gf, t_sgd = plateau_table(gf), plateau_table(sgd)
    t_gf.to_csv(out / "plateaus_gradient_flow.csv", index=False)
    t_sgd.to_csv(out / "plateaus_sgd.csv", index=False)
    claims, jg, js = _whitened_rows(p, gf, sgd, teacher, t_gf, t_sgd, K)
    nw, dnw, t_nw = _non_whitened(p, out)
    s_nw = np.asarray(p["nw_s"], float) * f["s"]
    claims += _strict_saddle_rows(dnw, t_nw, s_nw, np.asarray(p["nw_lambda"], float))
    claims += _non_whitened_rows(p, dnw, t_nw, s_nw)
    claims += _origin_hessian_rows(teacher, Teacher.from_config(nw), int(p["width"]), int(p["nw_width"]))
    return ExperimentResult(NAME, claims=claims, figures=[_figure(p, gf, t_gf, jg, js, teacher, dnw, K, out)])


def _figure(p, gf, t_gf, jg, js, teacher, dnw, K, out) -> Figure:
    lam, s2 = list(p["nw_lambda"]), list(p["nw_s"])
    fig, axes = figures.subplots(1, 3, figsize=(13, 3.6))
    x = np.arange(1, K + 1)
    axes[0].plot(x, jg.escape_cos_left, "o-", label="GF: |cos| left (u)")
    axes[0].plot(x, jg.escape_cos_right, "s--", label="GF: |cos| right (v)")
    med = js.groupby("plateau")[["escape_cos_left", "escape_cos_right"]].median()
    lo = js.groupby("plateau")[["escape_cos_left", "escape_cos_right"]].quantile(0.1)
    axes[0].errorbar(med.index + 1, med.escape_cos_left, yerr=[med.escape_cos_left - lo.escape_cos_left,
                                                               0 * med.escape_cos_left], fmt="^", color="C2",
                     label="SGD: median (bar: 10% quantile)")
    axes[0].set(xlabel="jump k", ylabel="|cos| with residual's top singular pair", ylim=(0.9, 1.002),
                title="escape direction vs residual at the saddle")
    axes[0].legend(fontsize=7, loc="lower left")
    vecs = escape_vectors(gf, t_gf)
    C = np.array([[abs(vecs[(0, k)][1] @ teacher.V[:, a]) for a in range(p["d"])] for k in range(K)])
    im = axes[1].imshow(C, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    for k in range(K):
        for a in range(p["d"]):
            axes[1].text(a, k, f"{C[k, a]:.2f}", ha="center", va="center", fontsize=7,
                         color="w" if C[k, a] > 0.5 else "k")
    axes[1].set(xticks=range(p["d"]), xticklabels=[f"v_{a + 1}" for a in range(p["d"])], yticks=range(K),
                yticklabels=[f"jump {k + 1}" for k in range(K)], title="GF: |cos(v_esc, teacher v_α)|")
    axes[1].grid(False)
    figures.plt.colorbar(im, ax=axes[1], shrink=0.8)
    t, m = dnw.t.values[1:], dnw.mode_strength.values[0, 1:]
    for a in range(2):
        axes[2].plot(t, m[:, a], label=f"m_{a + 1} (s={s2[a]:g}, λ={lam[a]:g}, λs={lam[a] * s2[a]:g})")
    axes[2].plot(t, dnw.loss.values[0, 1:], color="k", lw=1, label="loss")
    axes[2].plot(t, dnw.hessian_min.values[0, 1:], color="C3", lw=1, label="λ_min(H)")
    axes[2].axhline(th.saddle_loss(1, s2, lam), color="k", ls="--", lw=0.6)
    axes[2].set(xscale="log", xlabel="time t", title="non-whitened inputs (G11): λs decides")
    axes[2].legend(fontsize=7)
    f1 = figures.save(fig, out, "escape_directions")
    return Figure(f1, "Left: |cos| between the escape direction at each jump (top singular pair of W(after) − "
                      "W(saddle)) and the residual −∇_W𝓛's top singular pair at the saddle: 1 for gradient flow, close "
                      "to 1 for SGD. Middle: overlap of the escape direction's right vector with the teacher's v_α: "
                      "jump k follows mode k only. Right: with Σx = diag(9, 1) and M = diag(1, 4) the mode with the "
                      "larger λs (not the larger s) is learned first; the smallest Hessian eigenvalue (red) is "
                      "negative on both plateaus (strict saddles: −9, then −4) and ≈ 0 at the minimum.")
