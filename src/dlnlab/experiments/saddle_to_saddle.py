"""[J] Saddle-to-saddle dynamics (Jacot, Ged, Şimşek, Hongler, Gabriel): ``saddle_to_saddle.md`` §§3–8.

Experiments (each writes its datasets or tables, figures as PNG + PDF, and a claims table):

* ``escape_directions`` — the direction taken at each jump against the top singular pair of the residual
  ``−∇_W 𝓛`` at the saddle (§6.1–6.2), in gradient flow and SGD, with whitened and non-whitened inputs
  (where the residual's top pair is *not* the teacher's top singular pair, checks.md G11); and the autodiff
  Hessian at the origin (§6.1, checks.md G4: ``±σ_i(G_0)`` plus zeros for L = 2, zero for L = 3).

Every formula beyond [J]'s abstract is our derivation (``saddle_to_saddle.md`` anchoring).
"""

from __future__ import annotations

import numpy as np

from .. import figures
from ..analysis import (
    escape_vectors,
    origin_hessian,
    plateau_table,
)
from ..config import Config
from ..engines import simulate
from ..model.observables import Observable
from ..model.problem import Problem
from ..model.teacher import Teacher
from ..storage import save
from ..theory import saddle_sequence as th
from . import jacot  # noqa: F401  (registers the [J] experiments moved to experiments/jacot/ so far)
from .base import Claim, ExperimentResult, Figure, register, verdict

PAPER = "J"


def _claim(exp, claim, quantity, theory, value, unc, tol, ok):
    return Claim(PAPER, claim, exp, quantity, float(theory), float(value), float(unc), tol,
                 verdict(bool(ok)) if ok is not None else "not applicable")


def _flow_and_sgd(p, common, out, gf_replicas, gf_observables=None):
    """Gradient flow (``gf_replicas`` runs, seed ``p["seed"]``) and SGD (``p["sgd_replicas"]`` runs, seed + 1) on
    the same ``common`` config sections up to ``p["t_max"]``, saved as ``gradient_flow.zarr`` and ``sgd.zarr``."""
    gf = simulate(Config.from_dict({**common, "dynamics": {"kind": "flow", "t_max": float(p["t_max"]), "rtol": 1e-8},
                                    "ensemble": {"replicas": int(gf_replicas), "seed": int(p["seed"])}}),
                  observables=gf_observables, progress=False)
    sgd = simulate(Config.from_dict({**common, "dynamics": {"kind": "sgd", "t_max": float(p["t_max"]),
                                                             "lr": float(p["lr"]), "batch_size": int(p["batch_size"])},
                                     "ensemble": {"replicas": int(p["sgd_replicas"]), "seed": int(p["seed"]) + 1}}),
                   progress=False)
    save(gf, out / "gradient_flow.zarr")
    save(sgd, out / "sgd.zarr")
    return gf, sgd


def _base(p, *, depth=None, s=None, lam=1.0, basis="random", d=None):
    d = p["d"] if d is None else d
    return {
        "teacher": {"d_in": d, "d_out": d, "singular_values": list(s if s is not None else p["s"]),
                    "input_variance": lam, "basis": basis, "seed": int(p.get("seed", 0))},
        "network": {"depth": int(depth if depth is not None else p["depth"]), "width": int(p["width"])},
    }


# ---------------------------------------------------------------------------------------------------------
# escape directions


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


def _origin_hessian_rows(teacher, teacher_nw, width, width_nw) -> list[Claim]:
    """§6.1 (checks.md G4 [A]): the autodiff Hessian of the loss at θ = 0. L = 2: eigenvalues ±σ_i(G_0),
    G_0 = MΣx, each ``w`` times, plus w(d_0 + d_L − 2 rank G_0) zeros — on the experiment's whitened teacher and on
    the non-whitened G11 teacher (there σ(G_0) = λs ≠ s). L = 3: the Hessian vanishes (a degenerate saddle)."""
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
    tol = "< 1e-10 (checks.md G4 [A]: float64 autodiff)"
    return [
        _claim("escape_directions", "L=2: the origin is a strict saddle; the Hessian at 0 has eigenvalues ±σ_i(G_0) "
               "(G_0 = MΣx) with multiplicity w, plus w(d_0 + d_L − 2 rank G_0) zeros",
               "max |sorted autodiff eigenvalue − sorted ±σ_i(G_0)×w ∪ zeros| over " + "; ".join(parts), 0.0, dev,
               0.0, tol, dev < 1e-10),
        _claim("escape_directions", "L=3: the Hessian at 0 vanishes (a degenerate saddle of order L)",
               f"max |H_ij| of the autodiff Hessian at 0, {d0}→{width}→{width}→{dL} (whitened teacher)", 0.0, h3, 0.0,
               tol, h3 < 1e-10),
    ]


@register("escape_directions", paper=PAPER, cost="~35 s",
          claim="At each jump gradient flow escapes the saddle along the top singular pair of the residual "
                "−∇_W𝓛 (the optimal escape direction), which need not be the teacher's top singular pair",
          quick={"depth": 3, "d": 5, "width": 30, "s": [4.0, 2.0, 1.0, 0.5], "sigma": 1e-2, "t_max": 100.0,
                 "lr": 0.01, "batch_size": 8, "sgd_replicas": 8, "n_times": 300, "seed": 0,
                 "nw_lambda": [9.0, 1.0], "nw_s": [1.0, 4.0], "nw_width": 20, "nw_sigma": 1e-4, "nw_t_max": 8.0},
          full={"depth": 3, "d": 5, "width": 50, "s": [4.0, 2.0, 1.0, 0.5], "sigma": 1e-3, "t_max": 900.0,
                "lr": 0.005, "batch_size": 8, "sgd_replicas": 64, "n_times": 600, "seed": 0,
                "nw_lambda": [9.0, 1.0], "nw_s": [1.0, 4.0], "nw_width": 20, "nw_sigma": 1e-6, "nw_t_max": 12.0})
def escape_directions(p, out):
    L, s = int(p["depth"]), np.asarray(p["s"], float)
    K = int(np.sum(s > 0))
    obs = ["loss", "singular_values", "mode_strength", "end_to_end", "residual"]
    common = {**_base(p), "init": {"kind": "gaussian", "scale": float(p["sigma"])},
              "record": {"n_times": int(p["n_times"]), "observables": obs}}
    gf, sgd = _flow_and_sgd(p, common, out, 1, [_layer_vectors()])
    teacher = Teacher.from_config(Config.from_dict({**common, "dynamics": {"kind": "flow", "t_max": 1.0}}))
    t_gf, t_sgd = plateau_table(gf), plateau_table(sgd)
    t_gf.to_csv(out / "plateaus_gradient_flow.csv", index=False)
    t_sgd.to_csv(out / "plateaus_sgd.csv", index=False)
    claims = []
    jg = t_gf[t_gf.plateau < K]
    cos_gf = np.minimum(jg.escape_cos_left, jg.escape_cos_right).to_numpy()
    claims.append(_claim("escape_directions", "GF: each jump leaves along the residual's top singular pair",
                         f"min over the {len(jg)} jumps of |cos| (left and right vectors)", 1.0, np.nanmin(cos_gf),
                         0.0, "> 0.99 (checks.md G8 observed 1 − 1e-9)", np.nanmin(cos_gf) > 0.99))
    first = jg[jg.plateau == 0].iloc[0]
    c1 = min(first.mode_cos_left, first.mode_cos_right) if first.learned_mode == 1 else 0.0
    claims.append(_claim("escape_directions", "GF: the first escape is along the teacher's top singular vectors",
                         "min(|cos(u_esc, u_1)|, |cos(v_esc, v_1)|) at the first jump", 1.0, c1, 0.0, "> 0.99 (issue)",
                         c1 > 0.99))
    # G8 on the weights just after the first jump: the first record past t_1 + 0.3 (t_2 − t_1)
    t1, t2 = float(first.t_end), float(jg[jg.plateau == 1].iloc[0].t_end)
    i = int(np.searchsorted(gf.t.values, t1 + 0.3 * (t2 - t1)))
    v1, u1 = teacher.V[:, 0], teacher.U[:, 0]
    cw1 = abs(float(gf.W1_right.values[0, i] @ v1))
    cwl = abs(float(gf.WL_left.values[0, i] @ u1))
    st_rank = gf.stable_rank.values[0, i]
    top = gf.layer_top_sv.values[0, i]
    claims.append(_claim("escape_directions", "GF: after the first jump every layer is rank one along v_1 … u_1",
                         f"min(|cos(top right sv of W_1, v_1)|, |cos(top left sv of W_L, u_1)|) at t={gf.t.values[i]:.3g}",
                         1.0, min(cw1, cwl), 0.0, "> 0.99; stable ranks in [1, 1.1]; top sv within 1% of s_1^(1/L) "
                         "(checks.md G8)", min(cw1, cwl) > 0.99 and np.all(st_rank <= 1.1)
                         and np.all(np.abs(top / s[0] ** (1 / L) - 1) < 0.01)))
    js = t_sgd[t_sgd.plateau < t_sgd.groupby("replica").plateau.transform("max")]
    cos_sgd = np.minimum(js.escape_cos_left, js.escape_cos_right).to_numpy()
    q = float(np.nanquantile(cos_sgd, 0.1))
    claims.append(_claim("escape_directions", "SGD: jumps leave along the residual's top singular pair too",
                         f"10% quantile over {len(cos_sgd)} jumps × replicas of min |cos|", 1.0, q,
                         float(np.nanstd(cos_sgd)), "> 0.95 (SGD fluctuations of the learned modes enter ΔW; "
                         "proposed, not validated)", q > 0.95))

    # non-whitened inputs (checks.md G11): the residual's top pair is mode 1 (λs = 9), not the top s (mode 2)
    lam, s2 = list(p["nw_lambda"]), list(p["nw_s"])
    nw = Config.from_dict({
        "teacher": {"d_in": 2, "d_out": 2, "singular_values": s2, "input_variance": lam, "basis": "identity"},
        "network": {"depth": 2, "width": int(p["nw_width"])}, "init": {"kind": "gaussian", "scale": float(p["nw_sigma"])},
        "dynamics": {"kind": "flow", "t_max": float(p["nw_t_max"]), "rtol": 1e-8},
        "record": {"n_times": int(p["n_times"]), "observables": obs}, "ensemble": {"replicas": 1, "seed": int(p["seed"])}})
    dnw = simulate(nw, progress=False)  # identity basis: M = diag(s), Σx = diag(λ)
    save(dnw, out / "non_whitened.zarr")
    t_nw = plateau_table(dnw)
    t_nw.to_csv(out / "plateaus_non_whitened.csv", index=False)
    order = [int(x) + 1 for x in th.learning_order(s2, lam)]
    got = [int(x) for x in t_nw.learned_mode.dropna()]
    claims.append(_claim("escape_directions", "Non-whitened inputs: modes are learned in order of λs, not of s",
                         f"learned modes {got} against λs order {order} (s order {[int(x) + 1 for x in np.argsort(s2)[::-1]]})",
                         1.0, float(got == order), 0.0, "exact (checks.md G11)", got == order))
    j0 = t_nw[t_nw.plateau == 0].iloc[0]
    i1 = int(np.searchsorted(dnw.t.values, float(j0.t_end)))
    dW = np.gradient(dnw.end_to_end.values[0], dnw.t.values, axis=0)[i1]
    top_s = int(np.argmax(s2))
    u_e, _, vt_e = np.linalg.svd(dW)
    c_top = min(abs(u_e[:, 0] @ np.eye(2)[top_s]), abs(vt_e[0] @ np.eye(2)[top_s]))
    c_res = min(j0.escape_cos_left, j0.escape_cos_right)
    claims.append(_claim("escape_directions", "Non-whitened inputs: the first escape follows the residual's top pair",
                         "min |cos| of the first escape direction with the residual's top pair (with the teacher's "
                         f"top singular pair, mode {top_s + 1}: {c_top:.2g})", 1.0, c_res, 0.0,
                         "> 0.99 with the residual, < 0.1 with the teacher's top pair", c_res > 0.99 and c_top < 0.1))
    mid = float(t_nw[t_nw.plateau == 1].iloc[0].loss)
    theo = th.saddle_loss(1, s2, lam)
    rrr = th.best_rank_k(np.diag(s2), 1, np.diag(lam))[1]
    claims.append(_claim("escape_directions", "Non-whitened inputs: the visited saddle is not the best rank-1 map",
                         f"loss on the plateau after the first jump (best rank-1 loss: {rrr:g})", theo, mid, 0.0,
                         "within 5% (checks.md G11)", abs(mid / theo - 1) <= 0.05))
    claims += _origin_hessian_rows(teacher, Teacher.from_config(nw), int(p["width"]), int(p["nw_width"]))

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
    m = dnw.mode_strength.values[0]
    for a in range(2):
        axes[2].plot(dnw.t.values[1:], m[1:, a], label=f"m_{a + 1} (s={s2[a]:g}, λ={lam[a]:g}, λs={lam[a] * s2[a]:g})")
    axes[2].axhline(theo, color="k", ls="--", lw=0.6)
    axes[2].plot(dnw.t.values[1:], dnw.loss.values[0, 1:], color="k", lw=1, label="loss (dashed: §6.2 saddle)")
    axes[2].axhline(rrr, color="C3", ls=":", lw=0.8, label=f"best rank-1 loss {rrr:g}")
    axes[2].set(xscale="log", xlabel="time t", title="non-whitened inputs (G11): λs decides")
    axes[2].legend(fontsize=7)
    f1 = figures.save(fig, out, "escape_directions")
    return ExperimentResult("escape_directions", claims=claims, figures=[Figure(
        f1, "Left: |cos| between the escape direction at each jump (top singular pair of W(after) − W(saddle)) and "
            "the residual −∇_W𝓛's top singular pair at the saddle: 1 for gradient flow, close to 1 for SGD. Middle: "
            "overlap of the escape direction's right vector with the teacher's v_α: jump k follows mode k only. "
            "Right: with Σx = diag(9, 1) and M = diag(1, 4) the mode with the larger λs (not the larger s) is "
            "learned first and the loss rests at the visited saddle, above the best rank-1 loss.")])
