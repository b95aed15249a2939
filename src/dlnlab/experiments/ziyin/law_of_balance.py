"""``law_of_balance`` — [Z] Fig. 1 and Theorem 3.1 / Corollary 3.3 for the scalar pair ``v = uw`` (``noise_balance.md``
§§3–5; ``checks.md`` Z1–Z3).

Gradient flow conserves ``u² − w²`` and GD changes it only at ``O(η²)`` per step; SGD drives it to 0 (noise balance)
at the rate ``2Tg(v) + η(Eξ)²`` (the exact per-step law of §4, to leading order); GD with isotropic injected noise
makes it a driftless martingale whose variance grows as ``8Tc²∫E[u² + w²]dt`` (derived: Itô on ``u² − w²``, the
symmetry cancels drift and Itô terms); under the parameter-space SDE the law holds pathwise up to the
Euler–Maruyama error, a martingale ``−Σ 2TgΔt(ζ² − 1)`` of variance ``8T²Δt∫g² dt`` (derived: one EM step maps
``u² − w²`` to ``(u² − w²)(1 − a²)`` exactly), and the decay is at least ``2TΔ/α₁`` (the bound, nearly saturated on
the reference data where ``g(v*) = Δ/α₁``).

Start ``(u, w) = (1.2, 0.3)`` (unbalanced, ``v = 0.36``); SGD online ``B = 1``; theory input ``T`` (perturbable).
"""

from __future__ import annotations

import numpy as np
from scipy import integrate

from ... import figures
from ...analysis import stats
from ...engines import diagonal_config, simulate_diagonal
from ...model.diagonal import DiagonalModel
from ...theory.balance import decay_bound_rate, diagonal_balance_rate
from ...theory.diagonal_stationary import DiagonalStationaryLaw
from ..base import ExperimentResult, Perturbation, register
from ..claims import Tolerance
from ._common import REF, exact, figure, row, save_dataset, theory_factors

NAME = "law_of_balance"
SDE_T = 0.01  # the Z2 setting of checks.md
SDE_DTS = (4e-3, 1e-3)


def imbalance(ds):
    """``u² − w²`` of the first path, (replica, t)."""
    w = ds.weights.values[:, :, 0, :]
    return w[..., 0] ** 2 - w[..., 1] ** 2


def em_error_scale(rate, t, dt: float) -> np.ndarray:
    """Per path ``σ_i = (2Δt ∫ r_i(t)² dt)^{1/2}``: the sd of the Euler–Maruyama error ``e_i ~ N(0, σ_i²)`` of a
    pathwise law ``d ln X = −r dt`` whose per-step increment is ``−rΔt ζ²`` (``ζ ~ N(0, 1)``) up to ``O(Δt^{3/2})``.
    ``rate``: ``r`` on the record grid ``t`` per path (trapezoid rule). ``E|e| = √(2/π) E σ_i``."""
    return np.sqrt(2 * dt * integrate.trapezoid(np.asarray(rate) ** 2, t, axis=1))


def _simulate(p, out):
    lr, R, tm, seed = p["lr"], p["replicas"], p["t_max"], p["seed"]
    model, w0 = DiagonalModel(depth=2), [[p["u0"], p["w0"]]]
    times = np.unique(np.concatenate([np.linspace(0, 10, 101), np.linspace(10, tm, 91)]))
    runs = {
        "flow": simulate_diagonal(diagonal_config(model, kind="flow", lr=lr, dt=1e-2, times=times, replicas=1),
                                  weights=w0),
        "gd": simulate_diagonal(diagonal_config(model, kind="gd", lr=lr, times=times, replicas=1), weights=w0),
        "sgd": simulate_diagonal(diagonal_config(model, kind="sgd", lr=lr, times=times, replicas=R, seed=seed),
                                 weights=w0),
        "gd_isotropic": simulate_diagonal(diagonal_config(model, kind="sde", noise="isotropic", isotropic_scale=1.0,
                                                          lr=lr, dt=lr, times=times, replicas=p["iso_replicas"],
                                                          seed=seed + 1),
                                          weights=w0)}
    for n, ds in runs.items():
        save_dataset(ds, out, n)
    for k, dt in enumerate(SDE_DTS):
        runs[f"sde_{dt:g}"] = simulate_diagonal(diagonal_config(
            model, kind="sde", lr=2 * SDE_T, dt=dt, times=np.linspace(0, 3, 13), replicas=p["sde_replicas"],
            seed=seed + 2 + k), weights=w0)
    return runs


def _deterministic_rows(runs, lr):
    i_flow, i_gd = imbalance(runs["flow"])[0], imbalance(runs["gd"])[0]
    drift = float(np.max(np.abs(i_flow / i_flow[0] - 1)))
    change = float(i_gd[-1] / i_gd[0] - 1)
    return [
        row(NAME, "flow_conserves", claim="Gradient flow conserves u² − w²", kind="theory",
            quantity="max relative change of u² − w² (RK4, dt = 0.01)", theory=0.0, estimate=exact(drift),
            tolerance=Tolerance.at_most(absolute=1e-9, why="RK4 truncation"), dynamics="flow"),
        row(NAME, "gd_keeps", claim="GD changes u² − w² only at O(η²) per step: it stays unbalanced", kind="theory",
            quantity="relative change of u² − w² over the run (GD; deterministic)", theory=0.0, estimate=exact(change),
            tolerance=Tolerance.within(absolute=0.01, why="Π(1 − η²ξ̄²) with ξ̄ → 0 converges: O(η²) per step"),
            dynamics="gd", lr=lr)]


def _sgd_rows(sgd, lr, T, tm):
    """Relaxation (paired: the theory on the recorded paths) and the stationary decay rate against the law."""
    t = sgd.t.values
    li = np.log(np.abs(imbalance(sgd)))
    v = sgd.output.values
    rate = -diagonal_balance_rate(v, T, REF) + lr * REF.mean_grad(v) ** 2
    pred = -integrate.trapezoid(rate, t, axis=1)
    obs = li[:, -1] - li[:, 0]
    paired = stats.group_estimate(obs - pred)
    law = DiagonalStationaryLaw(2, T)
    late = int(np.argmax(t >= tm / 2))
    slope = (li[:, -1] - li[:, late]) / (t[-1] - t[late])
    eg = REF.alpha1 * (law.var + law.mean**2) - 2 * REF.alpha2 * law.mean + REF.alpha3
    th_rate = 2 * T * eg + lr * (REF.beta1**2 * law.var + REF.mean_grad(law.mean) ** 2)
    return [
        row(NAME, "sgd_relaxation", claim="SGD drives u² − w² to 0 at the rate 2Tg(v) + η(Eξ)² (law of balance with "
            "the discrete term of §4)", quantity=f"replica mean of Δln|u² − w²| over t ≤ {tm:g} (theory: −∫(2Tg + "
            "ηξ̄²)dt on the recorded paths, paired)", theory=float(pred.mean()), source="derived",
            estimate=stats.Estimate.student(float(obs.mean()), paired.se, paired.dof, paired.n),
            tolerance=Tolerance.within(relative=0.03, why="O(η²ξ̂²) terms of ln(1 − η²ξ̂²) and the trapezoid rule on "
                                       "201 records"), dynamics="sgd", lr=lr),
        row(NAME, "stationary_rate", claim="At stationarity ln|u² − w²| decays at 2T E[g(v)] + η E[(β₁v − β₂)²] "
            "(averages over the stationary law)", quantity=f"replica mean of the slope of ln|u² − w²| on "
            f"[{t[late]:g}, {t[-1]:g}]", theory=-th_rate, estimate=stats.group_estimate(slope),
            tolerance=Tolerance.within(relative=0.1, why="O(h) bias of SGD's stationary law against the SDE's, h = 2η"),
            dynamics="sgd", lr=lr)]


def _isotropic_row(iso, lr, T):
    """The martingale's quadratic variation on the record grid against ``8Tc² ∫(u² + w²)dt``, per path."""
    t, d = iso.t.values, imbalance(iso)
    w = iso.weights.values[:, :, 0, :]
    qv = np.sum(np.diff(d, axis=1) ** 2, axis=1) / integrate.trapezoid(w[..., 0] ** 2 + w[..., 1] ** 2, t, axis=1)
    return row(NAME, "isotropic_diffusion", claim="GD with isotropic noise makes u² − w² a driftless martingale that "
               "diffuses without bound: d⟨u² − w²⟩ = 8Tc²(u² + w²)dt", source="derived",
               quantity=f"replica mean of Σ(Δ(u² − w²))² / ∫(u² + w²)dt over t ≤ {t[-1]:g} (realised quadratic variation "
               f"on {t.size} records)", theory=8 * T, estimate=stats.group_estimate(qv),
               tolerance=Tolerance.within(relative=0.03, why="O(Δt) terms of the Euler step (Δt = η) and the trapezoid "
                                          "rule for ∫(u² + w²)"), dynamics="sde_isotropic", lr=lr)


def _sde_rows(runs, f_T):
    """Z2 with a theory value: the pathwise residual against the law at the theory temperature ``f_T·T`` and the
    mean size of the EM error it predicts."""
    rows, err = [], {}
    T = SDE_T * f_T
    for dt in SDE_DTS:
        ds = runs[f"sde_{dt:g}"]
        li = np.log(np.abs(imbalance(ds)))
        e = np.abs(li[:, -1] - li[:, 0] + 2 * T * ds.g_integral.values[:, -1])
        err[dt] = stats.group_estimate(e / np.sqrt(dt))
        sig = em_error_scale(-diagonal_balance_rate(ds.output.values, T, REF), ds.t.values, dt)
        theory = float(np.sqrt(2 / np.pi) * np.mean(sig) / np.sqrt(dt))
        rows.append(row(NAME, "sde_pathwise", claim="Under the SDE the law d ln|u² − w²| = −2Tg(v)dt holds pathwise, "
                        "up to the Euler–Maruyama martingale of variance 8T²Δt∫g²dt", source="derived",
                        quantity="mean over paths of |Δln|u² − w²| + 2T∫g dt| / √Δt (theory: E|·| of that martingale "
                        "on the recorded paths)", estimate=err[dt], theory=theory,
                        tolerance=Tolerance.within(relative=0.06, why="O(Δt) drift of the EM step (−Δt∫ξ̄²) and ∫g² "
                                                   "on 13 records"), dt=dt, T=SDE_T))
    ds = runs[f"sde_{SDE_DTS[-1]:g}"]
    t = ds.t.values
    k = int(np.argmax(t >= 1.5))
    li = np.log(np.abs(imbalance(ds)))
    rows.append(row(NAME, "decay_bound", claim="|u² − w²| decays at least at the rate 2TΔ/α₁ (the bound of §3)",
                    quantity=f"replica mean of the decay rate of ln|u² − w²| on [{t[k]:g}, {t[-1]:g}] (SDE, Δt = "
                    f"{SDE_DTS[-1]:g})", theory=decay_bound_rate(T, REF),
                    estimate=stats.group_estimate(-(li[:, -1] - li[:, k]) / (t[-1] - t[k])),
                    tolerance=Tolerance.at_least(relative=0.02, why="the EM error of the pathwise law (Z2 scale)"),
                    dt=SDE_DTS[-1], T=SDE_T))
    return rows, err


def _figure(runs, out, lr, T, err):
    gd, sgd, iso = runs["gd"], runs["sgd"], runs["gd_isotropic"]
    fig, ax = figures.subplots(1, 3, figsize=(13, 3.8))
    uu = np.linspace(0.05, 2.5, 200)
    ax[0].plot(uu, 1 / uu, "k:", lw=1, label="minima uw = 1")
    ax[0].plot([0, 2.5], [0, 2.5], color="0.6", lw=0.8, label="u = w (balance)")
    for ds, c, lab in ((gd, "C0", "GD"), (sgd, "C1", "SGD"), (iso, "C2", "GD + isotropic noise")):
        for r in range(min(3, ds.sizes["replica"])):
            w = ds.weights.values[r, :, 0, :]
            ax[0].plot(w[:, 0], w[:, 1], color=c, lw=0.8, alpha=0.7, label=lab if r == 0 else None)
    ax[0].set(xlabel="u", ylabel="w", xlim=(-0.5, 2.5), ylim=(-0.5, 2.5), title="trajectories in the (u, w) plane")
    ax[0].legend(fontsize=7)
    t, i_sgd = sgd.t.values, imbalance(sgd)
    rate = np.mean(-diagonal_balance_rate(sgd.output.values, T, REF) + lr * REF.mean_grad(sgd.output.values) ** 2, 0)
    ax[1].plot(t, np.abs(imbalance(gd)[0]), "C0", label="GD")
    ax[1].plot(t, np.exp(np.mean(np.log(np.abs(i_sgd)), axis=0)), "C1", label="SGD (geometric mean)")
    ax[1].plot(t, abs(i_sgd[0, 0]) * np.exp(-integrate.cumulative_trapezoid(rate, t, initial=0)), "k--", lw=1,
               label="theory −∫(2Tg+ηξ̄²)")
    ax[1].plot(t, np.std(imbalance(iso), axis=0), "C2", label="isotropic: sd of u²−w²")
    ax[1].set(yscale="log", xlabel="t", ylabel="|u² − w²|", title=f"law of balance (T = {lr / 2:g})")
    ax[1].legend(fontsize=7)
    dts = np.array(SDE_DTS)
    ax[2].errorbar(dts, [err[d].value for d in dts], yerr=[err[d].se for d in dts], fmt="o-",
                   label="mean pathwise error / √Δt")
    ax[2].set(xscale="log", xlabel="Δt", ylabel="|Δln|u²−w²| + 2T∫g| / √Δt", title="pathwise SDE law (Z2)")
    ax[2].legend(fontsize=7)
    return figure(fig, out, NAME, "[Z] Fig. 1 in library units (½-loss, T = η/2B). Left: GD keeps its initial "
                  "imbalance and lands on the valley uw = 1 away from u = w; SGD walks to the balanced point; isotropic "
                  "noise wanders along the valley. Middle: |u²−w²| — flat for GD, exponential decay for SGD matching the "
                  "discrete law of balance (dashed), growing spread under isotropic noise. Right: the pathwise SDE law "
                  "holds up to the Euler–Maruyama martingale, whose size is O(√Δt): the ratio to √Δt is flat.")


@register(NAME, paper="Z", cost="~20 s",
          claim="GF/GD conserve u²−w²; SGD drives it to noise balance (u²=w²) at rate 2Tg+η(Eξ)²; isotropic noise "
                "diffuses it",
          quick={"lr": 0.04, "replicas": 400, "t_max": 100.0, "u0": 1.2, "w0": 0.3, "iso_replicas": 1000,
                 "sde_replicas": 8000, "seed": 0},
          full={"lr": 0.04, "replicas": 4000, "t_max": 200.0, "u0": 1.2, "w0": 0.3, "iso_replicas": 4000,
                "sde_replicas": 40000, "seed": 0},
          smoke={"replicas": 200, "t_max": 60.0, "iso_replicas": 500, "sde_replicas": 4000},
          perturbations=(Perturbation("T", 1.2, "the temperature T × 1.2 in every theory value (η in the discrete "
                                      "term and every simulation unchanged)"),))
def law_of_balance(p, out):
    f = theory_factors(p, ("T",))
    lr = p["lr"]
    runs = _simulate(p, out)
    T = lr / 2 * f["T"]
    sde, err = _sde_rows(runs, f["T"])
    claims = [*_deterministic_rows(runs, lr), *_sgd_rows(runs["sgd"], lr, T, p["t_max"]),
              _isotropic_row(runs["gd_isotropic"], lr, T), *sde]
    return ExperimentResult(NAME, claims=claims, figures=[_figure(runs, out, lr, T, err)])
