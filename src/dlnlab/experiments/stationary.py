"""[C] per-mode stationary laws and the time-dependent Fokker–Planck equation (``sgd_noise.md`` §§5.4, 8, 9).

Every simulation here runs the main engine (:func:`dlnlab.simulate`) on a ``1 × 1`` network of depth ``L`` and
width 1 with an aligned init: online SGD on it *is* the exact per-mode recursion of §5.4, and the SDE
(``dynamics.kind = "sde"``, exact noise) is Euler–Maruyama of the per-layer SDE §5.1–5.2 with ``Δt = dt``.

Experiments
-----------
* ``stationary`` — long-run SGD histograms against the exact law (§9.1), the label-dominated law (§9.4) and the
  Boltzmann law (§9.5) for several ``σ_ε, η, B`` (checks.md S8: KS, mean, mean shift, variance); the Boltzmann
  error (KS, mean and variance) as a function of temperature; the collapse to ``δ(m − s)`` without label
  noise (§9.3, S7); and the [C] = [Z] bridge (§9.1: the per-mode law is [Z]'s depth-L law with one path; S9, Z17).
* ``fokker_planck`` — the density of ``m(t)`` from the Fokker–Planck solver against SDE and SGD histograms at
  several times, and the distribution of the learning time ``τ = inf{t : m ≥ θs}`` (absorbing FP) against the
  first-passage times of SDE and SGD ensembles; and the L = 2 log-growth rates of ``m`` near the saddle (§8, S6).

Statistics (checks.md §0): replicas are the independent unit; standard errors are group SEs over 20 groups of
replicas; KS critical value ``1.95/√n`` (α = 0.001) plus a discretisation budget ``0.3h`` (``h = ηLλs^{2−2/L}``;
for the SDE, ``h`` of its step ``Δt``).
"""

from __future__ import annotations

import csv
import math

import numpy as np
from scipy import stats

from .. import figures
from ..analysis.stats import bootstrap_quantile, first_hit_time, group_estimate
from ..config import Config
from ..conventions import step_ratio
from ..engines import as_network, mode_config, simulate
from ..theory import mode_fokker_planck as fpk
from ..theory import mode_stationary as st
from ..theory import mode_stationary_forms as stf
from .base import Claim, ExperimentResult, Figure, register, verdict

KS_C = 1.95  # c_0.001 ≈ 1.949
KS_H = 0.3  # discretisation budget per unit h (checks.md §0)
KS_SD = 0.2603  # sd of √n·KS under the null (Kolmogorov law): the "uncertainty" reported with a KS value


# ---------------------------------------------------------------------------------------------------------
# Running one mode with the main engine


def run_mode(*, depth, s, input_variance, label_noise, lr, batch_size, m0, steps, replicas, n_times, kind="sgd",
             dt=None, seed=0, chunks=4):
    """One mode run by the network simulator: the ``1 × 1`` depth-``L`` width-1 network with aligned init
    ``m(0) = m0`` and online data (:func:`~dlnlab.engines.as_network` of :func:`~dlnlab.engines.mode_config`),
    ``mode_strength`` at ``n_times`` linearly spaced times (``t = η·step``; SDE: ``dt·step``). Returns
    ``(t, steps, m)`` with ``m`` of shape ``(R, n_times)`` and the number of diverged replicas."""
    cfg = mode_config([s], depth=depth, lr=lr, batch_size=batch_size, label_noise=label_noise,
                      input_variance=input_variance, m0=m0, kind=kind, dt=dt, steps=steps, n_times=n_times,
                      chunks=chunks, replicas=replicas, seed=seed)
    ds = simulate(as_network(cfg, observables=("mode_strength",)), progress=False)
    return ds.t.values, ds.step.values, ds.mode_strength.values[:, :, 0], int(ds.attrs["n_diverged"])


def stationary_runs(depth, s, input_variance, batch_size, lrs, label_noises, *, m0_of=None, replicas, n_per,
                    burn_h=30.0, thin_h=10.0, t_min=0.0, seed=0):
    """Long-run per-mode SGD for every combination ``lrs × label_noises`` in **one** engine call
    (``dynamics.lr`` and ``teacher.label_noise`` are stacked on the replica axis; one compilation).

    Thinning and burn-in are fixed in units of ``1/h`` steps (checks.md S8 asks for ≥ 5/h and ≥ 10/h): since
    ``h = η Lλs^{2−2/L}``, ``k/h`` steps of any ``η`` last the same time ``k/(Lλs^{2−2/L})``, so every ``η`` shares
    one record grid. Records every ``thin_h/h`` steps; the run lasts ``burn_h/h + n_per·thin_h/h`` steps (at
    least ``t_min``); the samples are the last ``n_per`` records. Every replica starts at ``m = s`` (as in S8)
    unless ``m0_of(label_noise)`` gives another start (e.g. a small ``m0`` for the ``σ_ε = 0`` collapse).

    The engine derives a replica's noise from its member index only, so combinations share their random draws
    (common random numbers): rows of different ``σ_ε`` are correlated with each other, never within a row.

    Returns ``(runs, t, info)``: ``runs[(lr, label_noise)] = m`` of shape ``(replicas, n_records)``, the record
    times ``t``, and ``info`` (thinning and burn-in in steps per ``lr``, ``h``, diverged count)."""
    lrs, label_noises = [float(x) for x in lrs], [float(x) for x in label_noises]
    rate = depth * input_variance * s ** (2.0 - 2.0 / depth)  # h / η
    thin_t = thin_h / rate
    n_burn = math.ceil(burn_h / thin_h)
    n_rec = max(n_burn + n_per, math.ceil(t_min / thin_t))
    t_max = n_rec * thin_t
    cfg = Config.from_dict({
        "teacher": {"d_in": 1, "d_out": 1, "singular_values": [float(s)], "input_variance": float(input_variance),
                    "label_noise": label_noises, "basis": "identity"},
        "network": {"depth": int(depth), "width": 1},
        "init": {"kind": "aligned", "scale": float(s)},
        "dynamics": {"kind": "sgd", "lr": lrs, "batch_size": int(batch_size), "t_max": t_max},
        "record": {"n_times": n_rec + 1, "spacing": "linear", "observables": ["mode_strength"], "chunks": 4},
        "ensemble": {"replicas": int(replicas), "seed": int(seed)},
    })
    starts = np.array([float(s) if m0_of is None else float(m0_of(row.get("teacher.label_noise", label_noises[0])))
                       for row in cfg.replica_grid()])
    a0 = starts ** (1.0 / depth)
    weights = tuple(a0[:, None, None] for _ in range(depth))
    ds = simulate(cfg, weights=weights, progress=False)
    m = ds.mode_strength.values[:, :, 0]
    if not np.allclose(m[:, 0], starts, rtol=1e-12):
        raise RuntimeError("initial weights were not applied per replica")
    lr_r, se_r = ds["lr"].values, ds["label_noise"].values
    steps = ds["step"].values  # (replica, t), or (t,) when every replica has the same η
    if steps.ndim == 1:
        steps = np.broadcast_to(steps, m.shape)
    runs = {(lr, se): m[(lr_r == lr) & (se_r == se)] for lr in lrs for se in label_noises}
    thin_steps = {lr: np.unique(np.diff(steps[lr_r == lr], axis=1)).tolist() for lr in lrs}
    info = {"thin_steps": thin_steps, "burn_steps": {lr: int(steps[lr_r == lr][0, n_rec - n_per]) for lr in lrs},
            "h": {lr: lr * rate for lr in lrs}, "diverged": int(ds.attrs["n_diverged"]), "n_per": n_per,
            "t_max": t_max}
    return runs, ds.t.values, info


def ks_lattice(samples, cdf, grid):
    """KS distance of samples that live on a time ``grid`` (first-hit record times; NaN = never, as ``inf``)
    against a continuous ``cdf``, compared on the grid only: ``max_j |F_emp(t_j) − F(t_j)|`` with ``F_emp``
    over *all* samples. (Comparing at left limits would add one grid cell's probability to the statistic.)"""
    x = np.sort(np.asarray(samples, np.float64))
    F_emp = np.searchsorted(x, grid, side="right") / x.size
    return float(np.max(np.abs(F_emp - cdf(grid))))


def row_stats(x, depth, s, input_variance, label_noise, lr, batch_size):
    """The statistics of checks.md S8 for stationary samples ``x`` (shape ``(replicas, n_per)``; rows are
    independent replicas) of one setting. Returns a dict of measured values, exact values and bounds."""
    law = st.stationary_law(depth, s, input_variance, label_noise, lr=lr, batch_size=batch_size)
    T = lr / (2 * batch_size)
    h = step_ratio(lr, depth, input_variance, s)
    flat = x.ravel()
    n = flat.size
    out = {"depth": depth, "s": s, "input_variance": input_variance, "label_noise": label_noise, "lr": lr,
           "batch_size": batch_size, "h": h, "n": n, "replicas": x.shape[0], "samples": x, "law": law,
           "finite": bool(np.all(np.isfinite(flat)))}
    grid = law.grid(4000, 1e-7, 1 - 1e-7)
    out["ks"] = float(stats.kstest(flat, law.cdf).statistic)
    out["ks_bound"] = KS_C / math.sqrt(n) + KS_H * h
    out["mean"], out["mean_se"] = float(flat.mean()), group_estimate(x).se
    out["mean_exact"] = law.mean()
    out["shift"] = s - out["mean"]
    out["shift_theory"] = stf.mean_shift(depth, s, label_noise, T)
    out["var"] = float(flat.var())
    out["var_exact"] = law.var()
    out["var_rel_se"] = group_estimate(x, lambda g: g.var()).se / out["var"]
    g = stf.boltzmann_law(depth, s, input_variance, label_noise, T)
    out["ks_gauss_sgd"] = float(stats.kstest(flat, g.cdf).statistic)
    out["ks_gauss_exact"] = st.ks_between(law.cdf, g.cdf, grid)
    if depth == 2:
        lab = stf.gamma_law(s, label_noise, T)
    else:
        lab = st.stationary_law(depth, s, input_variance, label_noise, T, noise="label")
    out["ks_label_sgd"] = float(stats.kstest(flat, lab.cdf).statistic)
    out["ks_label_exact"] = st.ks_between(law.cdf, lab.cdf, grid)
    return out


# ---------------------------------------------------------------------------------------------------------
# stationary


def _row_claims(r):
    tag = f"L={r['depth']}, s={r['s']:g}, λ={r['input_variance']:g}, σ_ε={r['label_noise']:g}, η={r['lr']:g}, B={r['batch_size']}"
    n, h = r["n"], r["h"]
    claims = [
        Claim("C", "With label noise the per-mode SGD stationary law is the zero-flux law of the SDE", "stationary",
              f"KS(SGD, exact law) [{tag}; n={n}, h={h:.3g}]", 0.0, r["ks"], KS_SD / math.sqrt(n),
              f"<= 1.95/sqrt(n) + 0.3h = {r['ks_bound']:.4f}", verdict(r["ks"] <= r["ks_bound"])),
        Claim("C", "The SGD stationary mean equals the exact law's mean", "stationary",
              f"mean of m [{tag}]", r["mean_exact"], r["mean"], r["mean_se"], "within 4 group-SE",
              verdict(abs(r["mean"] - r["mean_exact"]) <= 4 * r["mean_se"])),
        Claim("C", "Itô correction: the stationary mean sits below s by (L−1) T_ε s^{1−2/L}", "stationary",
              f"s − mean [{tag}]", r["shift_theory"], r["shift"], r["mean_se"], "within 4 group-SE",
              verdict(abs(r["shift"] - r["shift_theory"]) <= 4 * r["mean_se"])),
        Claim("C", "The SGD stationary variance equals the exact law's variance up to the O(h) SGD bias",
              "stationary", f"Var m [{tag}]", r["var_exact"], r["var"], r["var_rel_se"] * r["var"],
              "|var/exact − 1| <= 4 SE_rel + 0.7h",
              verdict(abs(r["var"] / r["var_exact"] - 1) <= 4 * r["var_rel_se"] + 0.7 * h)),
        Claim("C", "The law is approximately Boltzmann (Gaussian N(s, L s^{2−2/L} T_ε))", "stationary",
              f"KS(SGD, Gauss) [{tag}]", r["ks_gauss_exact"], r["ks_gauss_sgd"], KS_SD / math.sqrt(n),
              "within ±(1.95/sqrt(n) + 0.3h) of KS(exact, Gauss)",
              verdict(abs(r["ks_gauss_sgd"] - r["ks_gauss_exact"]) <= r["ks_bound"])),
        Claim("C", "The law is close to the label-noise-dominated law (§9.4: D ≡ λσ_ε²; Gamma for L = 2) no farther "
              "than the exact law is", "stationary",
              f"KS(SGD, label-dominated law) [{tag}; n={n}, h={h:.3g}]", r["ks_label_exact"], r["ks_label_sgd"],
              KS_SD / math.sqrt(n), "<= KS(exact, label law) + 1.95/sqrt(n) + 0.3h (checks.md S8; "
              "tests/test_stationary.py::test_s8_stationary_law_with_label_noise)",
              verdict(r["ks_label_sgd"] <= r["ks_label_exact"] + r["ks_bound"])),
    ]
    return claims


# (s, λ, σ_ε, T) of the [C] = [Z] bridge: checks.md S9's first three settings and test_bridge_to_per_mode_law's
BRIDGE_SETTINGS = [(1.0, 1.0, 0.5, 0.005), (1.0, 1.0, 0.5, 0.01), (2.0, 0.5, 1.0, 0.005), (1.0, 1.0, 0.5, 0.02)]


def _bridge_claims(depths):
    """§9.1 / checks.md S9, Z17: the per-mode stationary law (:mod:`dlnlab.theory.mode_stationary`, panel quadrature)
    equals [Z]'s depth-L law with one path (:func:`dlnlab.theory.diagonal_stationary_forms.log_density_general`, one
    ``quad`` per point) with the single-mode data constants ``β₁ = λ, β₂ = λs, α₁ = 2λ², α₂ = 2λ²s,
    α₃ = 2λ²s² + λσ_ε²`` (``g = D``): the log-densities differ by a constant on ``[0.3s, 2.5s]``."""
    import warnings

    from scipy.integrate import IntegrationWarning

    from ..theory.balance import DataConstants
    from ..theory.diagonal_stationary_forms import log_density_general

    claims = []
    for L in depths:
        L, ptps = int(L), []
        for s, lam, se, T in BRIDGE_SETTINGS:
            m = np.linspace(0.3 * s, 2.5 * s, 23)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IntegrationWarning)
                z = log_density_general(m, L, T, DataConstants.single_mode(lam, s, se))
            c = np.asarray(st.log_density_unnormalised(m, L, s, lam, se, temperature=T))
            ptps.append(float(np.ptp(z - c)))
        worst = float(np.max(ptps))  # nan propagates
        claims.append(Claim(
            "C", "The per-mode stationary law of [C] is [Z]'s depth-L law with one path (d = 1) and the single-mode "
                 "data constants (§9.1, §9.2; checks.md S9, Z17)", "stationary",
            f"max over (s, λ, σ_ε, T) in {BRIDGE_SETTINGS} of ptp(ln p_C − ln p_Z) on 23 points of [0.3s, 2.5s], "
            f"L={L} (deterministic: two independent quadratures)", 0.0, worst, 0.0, "< 1e-10",
            verdict(bool(np.isfinite(worst)) and worst < 1e-10)))
    return claims


@register("stationary", paper="C", cost="~30 s",
          claim="With label noise a mode's SGD stationary law is the zero-flux law (≈ Boltzmann at small T_ε); "
                "without it SGD converges to the GF fixed point δ(m − s)",
          quick={"groups": [[2, 1.0, 1.0, 1, [0.01, 0.02], [0.5, 1.0], 60.0], [3, 1.0, 1.0, 1, [0.01], [0.5], 120.0]],
                 "m0": 0.01, "replicas": 800, "n_per": 20, "burn_h": 30.0, "thin_h": 10.0, "seed": 0,
                 "table_depths": [2, 3, 4], "table_label_noise": 0.5,
                 "table_T": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]},
          full={"groups": [[2, 1.0, 1.0, 1, [0.005, 0.01, 0.02], [0.5, 1.0], 60.0],
                           [3, 1.0, 1.0, 1, [0.005, 0.01], [0.5], 120.0], [4, 1.0, 1.0, 2, [0.01], [0.3], 120.0],
                           [3, 2.0, 0.5, 1, [0.01], [0.5], 120.0], [2, 2.0, 0.5, 4, [0.02], [1.0], 60.0]],
                "m0": 0.01, "replicas": 20000, "n_per": 10, "burn_h": 30.0, "thin_h": 10.0, "seed": 0,
                "table_depths": [2, 3, 4, 6], "table_label_noise": 0.5,
                "table_T": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]})
def stationary(p, out):
    """Each group ``[L, s, λ, B, lrs, σ_εs, t_min]`` is one engine call stacking ``lrs × (σ_εs + [0])``: the
    ``σ_ε > 0`` runs start at ``m = s`` and give the stationary rows, the ``σ_ε = 0`` runs start at ``m0`` and
    show the collapse onto ``s``."""
    claims, figs = [], []
    rows, collapse = [], []
    for k, (L, s, lam, B, lrs, ses, t_min) in enumerate(p["groups"]):
        L, B = int(L), int(B)
        runs, t, info = stationary_runs(L, s, lam, B, lrs, list(ses) + [0.0],
                                        m0_of=lambda se, s=s: s if se > 0 else p["m0"], replicas=p["replicas"],
                                        n_per=p["n_per"], burn_h=p["burn_h"], thin_h=p["thin_h"], t_min=t_min,
                                        seed=p["seed"] + k)
        for lr in lrs:
            for se in ses:
                r = row_stats(runs[(float(lr), float(se))][:, -p["n_per"]:], L, s, lam, se, lr, B)
                r.update(thin=info["thin_steps"][float(lr)], burn=info["burn_steps"][float(lr)],
                         diverged=info["diverged"])
                rows.append(r)
                claims += _row_claims(r)
            m = runs[(float(lr), 0.0)]
            collapse.append((L, float(s), float(lr), t, m))
    with open(out / "stationary_rows.csv", "w", newline="") as fh:
        keys = ["depth", "s", "input_variance", "label_noise", "lr", "batch_size", "h", "n", "replicas", "burn", "thin",
                "ks", "ks_bound", "mean", "mean_se", "mean_exact", "shift", "shift_theory", "var", "var_exact",
                "var_rel_se", "ks_gauss_sgd", "ks_gauss_exact", "ks_label_sgd", "ks_label_exact"]
        w = csv.writer(fh)
        w.writerow(keys)
        for r in rows:
            w.writerow([r[k] for k in keys])

    # Figure 1: histograms against the exact, label-dominated and Boltzmann laws
    ncol = min(len(rows), 3)
    nrow = -(-len(rows) // ncol)
    fig, axes = figures.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
    for ax, r in zip(axes.ravel(), rows):
        law, x = r["law"], r["samples"].ravel()
        T = r["lr"] / (2 * r["batch_size"])
        lo, hi = law.ppf(np.array([1e-4, 1 - 1e-4]))
        grid = np.linspace(lo, hi, 400)
        ax.hist(x, bins=np.linspace(lo, hi, 70), density=True, color="0.75", label=f"SGD (n={r['n']})")
        ax.plot(grid, law.pdf(grid), "k", lw=1.6, label="exact (§9.1)")
        if r["depth"] == 2:
            ax.plot(grid, stf.gamma_law(r["s"], r["label_noise"], T).pdf(grid), "C0--", lw=1.2,
                    label="label-dominated (Gamma)")
        else:
            lab = st.stationary_law(r["depth"], r["s"], r["input_variance"], r["label_noise"], T, noise="label")
            ax.plot(grid, lab.pdf(grid), "C0--", lw=1.2, label="label-dominated (§9.4)")
        ax.plot(grid, stf.boltzmann_law(r["depth"], r["s"], r["input_variance"], r["label_noise"], T).pdf(grid), "C3:",
                lw=1.4, label="Boltzmann")
        ax.axvline(r["s"], color="0.4", lw=0.6)
        ax.set(title=f"L={r['depth']} s={r['s']:g} λ={r['input_variance']:g} σε={r['label_noise']:g} η={r['lr']:g} "
                     f"B={r['batch_size']}\nKS(SGD,exact)={r['ks']:.4f} (bound {r['ks_bound']:.4f})",
               xlabel="m")
        ax.title.set_fontsize(8)
    for ax in axes.ravel()[len(rows):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    figs.append(Figure(figures.save(fig, out, "stationary_histograms"),
                       "Long-run per-mode SGD (histograms; burn-in 30/h, thinning 10/h steps) against the exact "
                       "zero-flux law (black), the label-noise-dominated law (blue dashed) and the Boltzmann "
                       "Gaussian N(s, L s^{2−2/L} T_ε) (red dotted). The exact law fits within the KS bound; the "
                       "Boltzmann law misses the downward mean shift (vertical line: s) and the skew."))

    # Boltzmann error against temperature (deterministic: quadrature)
    table = []
    for L in p["table_depths"]:
        for T in p["table_T"]:
            table.append(st.boltzmann_error(int(L), 1.0, 1.0, p["table_label_noise"], T))
    cols = ["depth", "T", "T_eps", "T_eff", "h", "mean", "var", "ks_gauss", "ks_gauss_shifted", "mean_err",
            "mean_err_shift", "mean_err_order2", "var_rel_err", "var_rel_err2", "ks_gamma", "ks_label"]
    with open(out / "boltzmann_error.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in table:
            w.writerow([r.get(c, "") for c in cols])
    fig, axes = figures.subplots(1, 3, figsize=(12.5, 3.5))
    for i, L in enumerate(p["table_depths"]):
        rr = [r for r in table if r["depth"] == L]
        Te = np.array([r["T_eps"] for r in rr])
        c = f"C{i}"
        axes[0].loglog(Te, [r["ks_gauss"] for r in rr], "o-", color=c, label=f"L={L}: Gauss N(s, Ls^q T_ε)")
        axes[0].loglog(Te, [r["ks_gauss_shifted"] for r in rr], "s--", color=c, ms=3, label=f"L={L}: shifted")
        axes[1].loglog(Te, [abs(r["mean_err"]) for r in rr], "o-", color=c, label=f"L={L}: |E m − s|")
        axes[1].loglog(Te, [abs(r["mean_err_shift"]) for r in rr], "s--", color=c, ms=3,
                       label=f"L={L}: after the §9.6 shift")
        axes[2].loglog(Te, [abs(r["var_rel_err"]) for r in rr], "o-", color=c, label=f"L={L}")
    Te_all = np.array(sorted({r["T_eps"] for r in table}))
    axes[0].loglog(Te_all, 0.5 * np.sqrt(Te_all), "k:", lw=0.8, label="∝ √T_ε")
    axes[1].loglog(Te_all, Te_all, "k:", lw=0.8, label="∝ T_ε")
    axes[1].loglog(Te_all, 4 * Te_all**2, "k-.", lw=0.8, label="∝ T_ε²")
    axes[2].loglog(Te_all, 10 * Te_all, "k:", lw=0.8, label="∝ T_ε")
    axes[0].set(xlabel="T_ε = σ_ε² η/(2B)", ylabel="KS(exact, approximation)", title="Boltzmann law: KS distance")
    axes[1].set(xlabel="T_ε", ylabel="mean error", title="mean: Boltzmann (s) vs §9.6 shift")
    axes[2].set(xlabel="T_ε", ylabel="|Var/(L s^q T_ε) − 1|", title="variance error of the Boltzmann law")
    for ax in axes:
        ax.legend(fontsize=6)
    figs.append(Figure(figures.save(fig, out, "boltzmann_error"),
                       "Error of the Boltzmann approximation as a function of the label-noise temperature T_ε "
                       "(exact law by quadrature; s = λ = 1, σ_ε = 0.5). KS(exact, Gauss) ∝ √T_ε (the law's "
                       "skewness is O(√T_ε)); the mean error is O(T_ε) and the §9.6 shift removes it to O(T_ε²); "
                       "the variance is right to relative O(T_ε). Table: boltzmann_error.csv."))
    for L in p["table_depths"]:
        rr = [r for r in table if r["depth"] == L]
        Te = np.log([r["T_eps"] for r in rr])
        slope = np.polyfit(Te[:3], np.log([r["ks_gauss"] for r in rr[:3]]), 1)[0]
        claims.append(Claim("C", "The Boltzmann law is the small-T_ε limit: its KS error vanishes like √T_ε",
                            "stationary", f"log–log slope of KS(exact, Gauss) vs T_ε, L={L} (3 smallest T)", 0.5,
                            float(slope), 0.0, "within ±0.05 of 1/2", verdict(abs(slope - 0.5) <= 0.05)))
        ratio = abs(rr[0]["mean_err_shift"]) / abs(rr[0]["mean_err"])
        claims.append(Claim("C", "The §9.6 mean shift captures the O(T_ε) mean error the Boltzmann law misses",
                            "stationary", f"|E m − (s − shift)| / |E m − s| at T_ε={rr[0]['T_eps']:.2g}, L={L}",
                            0.0, float(ratio), 0.0, "< 0.01 (the remainder is O(T_ε); tests/test_stationary.py)",
                            verdict(ratio < 0.01)))

    claims += _bridge_claims(p["table_depths"])

    # No label noise: collapse to δ(m − s)
    fig, ax = figures.subplots(1, 1, figsize=(5.5, 3.5))
    for i, (L, s, lr, t, m) in enumerate(collapse):
        dev = np.abs(m - s)
        ax.semilogy(t, np.maximum(dev.max(axis=0), 1e-17), color=f"C{i}", label=f"L={L}, s={s:g}, η={lr:g}: max")
        ax.semilogy(t, np.maximum(np.median(dev, axis=0), 1e-17), "--", color=f"C{i}", label="median")
        worst = float(dev[:, -1].max())
        ok = bool(np.all(np.isfinite(m)))
        claims.append(Claim("C", "Without label noise the stationary marginal is the GF fixed point δ(m − s)",
                            "stationary", f"max_r |m − s| at t={t[-1]:.4g}, L={L}, s={s:g}, η={lr:g}, m0={p['m0']:g}, "
                            f"R={m.shape[0]}", 0.0, worst, 0.0, "<= 1e-6 (checks.md S7)",
                            verdict(ok and worst <= 1e-6)))
    ax.set(xlabel="t", ylabel="|m − s|", title="σ_ε = 0: SGD collapses onto m = s")
    ax.legend(fontsize=6)
    figs.append(Figure(figures.save(fig, out, "no_label_noise_collapse"),
                       f"Without label noise (σ_ε = 0; per-mode SGD from m₀ = {p['m0']:g}) the noise vanishes at "
                       "m = s and every replica converges to s to float64 precision: the stationary law is "
                       "δ(m − s), the gradient-flow fixed point (§9.3)."))
    return ExperimentResult("stationary", claims=claims, figures=figs)


# ---------------------------------------------------------------------------------------------------------
# fokker_planck


def _fp_setting(p):
    L, s, lam, se, lr, B = p["setting"]
    return int(L), float(s), float(lam), float(se), float(lr), int(B)


def _escape_claims(p, s, lam, se, lr, B):
    """§8 (checks.md S6): leaving the saddle with noise, L = 2. Near ``m = 0`` the SDE of ``a`` (Euler–Maruyama in
    ``a``, the per-mode simulator's ``sde`` scheme; not discrete SGD, which adds O(η) corrections of the same order)
    gives log-growth rates of ``m = a²``: ``E ln m`` at ``2λs − (η/B)D(0)``, ``Var ln m`` at ``4(η/B)D(0)`` and
    ``ln E m`` at ``2λs + (η/B)D(0)`` (:func:`dlnlab.theory.mode_sde.escape_rates`). Slopes between the two
    ``escape_times``; uncertainties are group SEs (20 groups of replicas). With fewer replicas than S6's 2e4 the
    relative tolerances of S6 (≈ 3 SE there) are widened to 4 group SE where that is larger."""
    from ..theory import mode_sde as tm

    t1, t2 = (float(x) for x in p["escape_times"])
    R, dt, m0 = int(p["escape_replicas"]), float(p["escape_dt"]), float(p["escape_m0"])
    cfg = mode_config([s], depth=2, lr=lr, batch_size=B, label_noise=se, input_variance=lam, m0=m0, kind="sde",
                      dt=dt, times=[0.0, t1, t2], replicas=R, seed=int(p["seed"]) + 7)
    ds = simulate(cfg, progress=False)
    t, m = ds.t.values, ds.mode_strength.values[:, :, 0]
    i1, i2 = int(np.argmin(np.abs(t - t1))), int(np.argmin(np.abs(t - t2)))
    dT = float(t[i2] - t[i1])
    ok = np.all(np.isfinite(m[:, [i1, i2]]) & (m[:, [i1, i2]] > 0), axis=1)
    m = m[ok]
    lm = np.log(m[:, [i1, i2]])
    rates = tm.escape_rates(s, lam, se, lr, B)
    slope = (lm[:, 1] - lm[:, 0]) / dT
    med, med_se = float(slope.mean()), group_estimate(slope).se
    var_rate = float((lm[:, 1].var() - lm[:, 0].var()) / dT)
    var_se = group_estimate(lm, lambda g: (g[:, 1].var() - g[:, 0].var()) / dT).se
    mm = m[:, [i1, i2]]
    mean_rate = float(np.log(mm[:, 1].mean() / mm[:, 0].mean()) / dT)
    mean_se = group_estimate(mm, lambda g: np.log(g[:, 1].mean() / g[:, 0].mean()) / dT).se
    tag = (f"L=2, s={s:g}, λ={lam:g}, σ_ε={se:g}, η/B={lr / B:g}, SDE Δt={dt:g}, m0={m0:g}, R={R} "
           f"({R - int(ok.sum())} dropped), slope between t={t[i1]:g} and {t[i2]:g}")
    claims = [Claim("C", "Leaving the saddle with noise (L = 2): E ln m grows at 2λs − (η/B)D(0) (§8)",
                    "fokker_planck", f"slope of the ensemble mean of ln m ({tag})", rates["median"], med, med_se,
                    "within 4 group SE (checks.md S6)", verdict(abs(med - rates["median"]) <= 4 * med_se))]
    for name, what, val, se_, rel in (("var", "Var ln m grows at 4(η/B)D(0)", var_rate, var_se, 0.05),
                                      ("mean", "ln E m grows at 2λs + (η/B)D(0)", mean_rate, mean_se, 0.02)):
        tol = max(rel * rates[name], 4 * se_)
        claims.append(Claim("C", f"Leaving the saddle with noise (L = 2): {what} (§8)", "fokker_planck",
                            f"slope of {'Var ln m' if name == 'var' else 'ln E m'} ({tag})", rates[name], val, se_,
                            f"within max({100 * rel:g} % (checks.md S6, at R = 2e4), 4 group SE) = {tol:.4f}",
                            verdict(abs(val - rates[name]) <= tol)))
    return claims


@register("fokker_planck", paper="C", cost="~25 s",
          claim="(beyond the paper) The time-dependent Fokker–Planck solution of the per-mode SDE predicts the "
                "density of m(t) and the distribution of learning times of SDE and SGD ensembles",
          quick={"setting": [2, 1.0, 1.0, 0.5, 0.05, 1], "m0": 0.01, "times": [1.0, 2.0, 3.0, 5.0],
                 "targets": [0.5, 0.99], "t_max": 6.0, "replicas": 6000, "sde_dt": 2e-3, "record_dt": 0.01,
                 "sgd_lrs": [0.05, 0.02, 0.01], "sgd_times": [2.0, 3.0, 4.0],
                 "sgd_replicas": 6000, "n_cells": 2000, "fp_dt": 2e-3, "seed": 0,
                 "escape_m0": 1e-8, "escape_dt": 1e-3, "escape_times": [1.0, 4.0], "escape_replicas": 10000},
          full={"setting": [2, 1.0, 1.0, 0.5, 0.05, 1], "m0": 0.01, "times": [1.0, 2.0, 2.5, 3.0, 4.0, 6.0],
                "targets": [0.5, 0.9, 0.99], "t_max": 8.0, "replicas": 40000, "sde_dt": 1e-3, "record_dt": 0.005,
                "sgd_lrs": [0.05, 0.02, 0.01, 0.005], "sgd_times": [2.0, 3.0, 4.0, 6.0],
                "sgd_replicas": 40000, "n_cells": 4000, "fp_dt": 1e-3, "seed": 0,
                "escape_m0": 1e-8, "escape_dt": 1e-3, "escape_times": [1.0, 4.0], "escape_replicas": 20000})
def fokker_planck(p, out):
    L, s, lam, se, lr, B = _fp_setting(p)
    T = lr / (2 * B)
    m0, times, t_max = p["m0"], list(p["times"]), p["t_max"]
    claims, figs = [], []
    law = st.stationary_law(L, s, lam, se, T)
    m_hi = float(law.ppf(1 - 1e-12)) * 2 if isinstance(law, st.StationaryLaw) else s * 5
    fp = fpk.ModeFokkerPlanck(L, s, lam, se, T, m_min=m0 * math.exp(-14), m_max=m_hi, n_cells=p["n_cells"])
    sol = fp.solve(m0, times + [60.0], dt=p["fp_dt"])
    mass_err = float(np.max(np.abs(sol.total_mass() - 1)))
    claims.append(Claim("C", "The finite-volume FP solver conserves probability", "fokker_planck",
                        "max_t |Σ P(t) − 1|", 0.0, mass_err, 0.0, "<= 1e-10", verdict(mass_err <= 1e-10)))
    if isinstance(law, st.StationaryLaw):
        grid = np.exp(fp.edges)
        ks_inf = float(np.max(np.abs(sol.cdf(grid, len(times)) - law.cdf(grid))))
        h_cell = float(np.max(np.diff(fp.edges)))
        claims.append(Claim("C", "The FP solution relaxes to the exact stationary law (§9.1)", "fokker_planck",
                            f"KS(FP at t=60, exact law), cell width {h_cell:.3g} in ln m", 0.0, ks_inf, 0.0,
                            "<= 1e-3 (second-order grid error)", verdict(ks_inf <= 1e-3)))

    # SDE ensemble: histograms and first passage
    dt, rec = p["sde_dt"], p["record_dt"]
    every = round(rec / dt)
    n_rec = round(t_max / rec) + 1
    t, _, m, div = run_mode(depth=L, s=s, input_variance=lam, label_noise=se, lr=lr, batch_size=B, m0=m0,
                            steps=(n_rec - 1) * every, replicas=p["replicas"], n_times=n_rec, kind="sde", dt=dt,
                            seed=p["seed"])
    R = m.shape[0]
    h_dt = step_ratio(dt, L, lam, s)
    bound = KS_C / math.sqrt(R) + KS_H * h_dt
    ks_sde = []
    for k, tk in enumerate(times):
        j = int(np.argmin(np.abs(t - tk)))
        ks = float(stats.kstest(m[:, j], lambda v, k=k: sol.cdf(v, k)).statistic)
        ks_sde.append(ks)
        claims.append(Claim("C", "The FP density of m(t) matches the per-mode SDE ensemble", "fokker_planck",
                            f"KS(SDE m(t), FP) at t={tk:g} (R={R}, Δt={dt:g}, diverged={div})", 0.0, ks,
                            KS_SD / math.sqrt(R), f"<= 1.95/sqrt(R) + 0.3 h_Δt = {bound:.4f}", verdict(ks <= bound)))

    # SGD ensembles: one engine call stacking the step sizes (B fixed, so T = η/(2B) varies with η and each
    # η is compared with the FP solution at its own T)
    sgd_lrs = [float(x) for x in p["sgd_lrs"]]
    sgd_times = [float(x) for x in p["sgd_times"]]
    rec_t = 0.5
    cfg = Config.from_dict({
        "teacher": {"d_in": 1, "d_out": 1, "singular_values": [s], "input_variance": lam, "label_noise": se,
                    "basis": "identity"},
        "network": {"depth": L, "width": 1},
        "init": {"kind": "aligned", "scale": m0},
        "dynamics": {"kind": "sgd", "lr": sgd_lrs, "batch_size": B, "t_max": max(sgd_times)},
        "record": {"n_times": round(max(sgd_times) / rec_t) + 1, "spacing": "linear",
                   "observables": ["mode_strength"], "chunks": 2},
        "ensemble": {"replicas": p["sgd_replicas"], "seed": p["seed"] + 1},
    })
    ds = simulate(cfg, progress=False)
    ms_all, lr_r = ds.mode_strength.values[:, :, 0], ds["lr"].values
    steps = ds["step"].values
    sgd, sgd_ks, sgd_sol = {}, {}, {}
    for lr_k in sgd_lrs:
        sel = lr_r == lr_k
        ts = steps[sel][0] * lr_k  # actual times step·η of this η
        ms = ms_all[sel]
        T_k = lr_k / (2 * B)
        fp_k = fpk.ModeFokkerPlanck(L, s, lam, se, T_k, m_min=m0 * math.exp(-14), m_max=m_hi, n_cells=p["n_cells"])
        sol_k = fp_k.solve(m0, sgd_times, dt=p["fp_dt"])
        h_k = step_ratio(lr_k, L, lam, s)
        row = []
        for k, tk in enumerate(sgd_times):
            j = int(np.argmin(np.abs(ts - tk)))
            row.append(float(stats.kstest(ms[:, j], lambda v, k=k, sol_k=sol_k: sol_k.cdf(v, k)).statistic))
        dv = int(np.sum(~np.all(np.isfinite(ms), axis=1)))
        sgd[lr_k], sgd_ks[lr_k], sgd_sol[lr_k] = (ts, ms), (h_k, row, dv), sol_k
        n_sgd = ms.shape[0]
        b_k = KS_C / math.sqrt(n_sgd) + KS_H * h_k
        worst = max(row)
        claims.append(Claim("C", "Per-mode SGD follows the SDE's FP density up to its O(h) discretisation bias",
                            "fokker_planck", f"max over t={sgd_times} of KS(SGD m(t), FP at T={T_k:g}), η={lr_k:g}, "
                            f"B={B}, h={h_k:.3g}, diverged={dv}", 0.0, worst, KS_SD / math.sqrt(n_sgd),
                            f"<= 1.95/sqrt(R) + 0.3h = {b_k:.4f} (S8 budget; not validated in the transient)",
                            verdict(worst <= b_k)))
    ks_by_h = sorted((sgd_ks[q][0], max(sgd_ks[q][1])) for q in sgd_lrs)
    if len(ks_by_h) >= 2:
        claims.append(Claim("C", "SGD approaches the SDE law as h → 0", "fokker_planck",
                            "max_t KS(SGD, FP): largest h minus smallest h", 0.0,
                            float(ks_by_h[-1][1] - ks_by_h[0][1]), KS_SD / math.sqrt(p["sgd_replicas"]),
                            "> 0 (the KS distance decreases with h)", verdict(ks_by_h[-1][1] > ks_by_h[0][1])))

    if L == 2:
        claims += _escape_claims(p, s, lam, se, lr, B)

    # densities figure
    fig, axes = figures.subplots(1, len(times), figsize=(3.2 * len(times), 3.2), sharey=False)
    for k, (ax, tk) in enumerate(zip(np.atleast_1d(axes), times)):
        j = int(np.argmin(np.abs(t - tk)))
        x = np.log(np.maximum(m[:, j], 1e-300))
        lo, hi = np.quantile(x, [0.001, 0.999])
        bins = np.linspace(lo - 0.2, hi + 0.2, 60)
        ax.hist(x, bins=bins, density=True, color="0.75", label=f"SDE (R={R})")
        if lr in sgd and tk in sgd_times:
            ts, ms = sgd[lr]
            jj = int(np.argmin(np.abs(ts - tk)))
            ax.hist(np.log(np.maximum(ms[:, jj], 1e-300)), bins=bins, density=True, histtype="step", color="C1",
                    label=f"SGD η={lr:g}, B={B}")
        yc = sol.centres
        ax.plot(yc, sol.density_y(k), "k", lw=1.4, label="Fokker–Planck")
        ax.set(xlim=(bins[0], bins[-1]), xlabel="ln m", title=f"t = {tk:g}  KS(SDE,FP)={ks_sde[k]:.3f}")
        ax.title.set_fontsize(8)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    figs.append(Figure(figures.save(fig, out, "fp_density_over_time"),
                       f"Density of ln m(t) for one mode (L={L}, s={s:g}, λ={lam:g}, σ_ε={se:g}, T=η/(2B)={T:g}, "
                       f"m₀={m0:g}) from the Fokker–Planck solver (black) against the per-mode SDE ensemble (grey) "
                       "and SGD at the same T (orange): the noise spreads the escape from the saddle over a range "
                       "of times, then the law settles on the stationary law near ln s = 0."))

    # first passage
    fig, axes = figures.subplots(1, 2, figsize=(10, 3.5))
    for i, theta in enumerate(p["targets"]):
        target = theta * s
        tg = np.linspace(0.0, t_max, round(t_max / 0.005) + 1)
        res = fpk.first_passage_law(L, s, lam, se, T, m0=m0, target=target, times=tg, n_cells=p["n_cells"],
                                dt=p["fp_dt"], monitor_dt=rec)
        res0 = fpk.first_passage_law(L, s, lam, se, T, m0=m0, target=target, times=tg, n_cells=p["n_cells"],
                                 dt=p["fp_dt"])
        tau = first_hit_time(t, m, target).time  # NaN: never reached within the run
        F = lambda v, res=res: np.interp(v, res["times"], res["cdf"])
        ks = ks_lattice(tau, F, t)
        ks0 = ks_lattice(tau, lambda v, r=res0: np.interp(v, r["times"], r["cdf"]), t)
        claims.append(Claim("C", "The FP first-passage law gives the distribution of the time to learn a mode",
                            "fokker_planck", f"KS(SDE τ, FP) for m ≥ {theta:g}s, records every {rec:g} "
                            f"(continuity-corrected; uncorrected KS {ks0:.4f})", 0.0, ks, KS_SD / math.sqrt(R),
                            f"<= 1.95/sqrt(R) + 0.3 h_Δt = {bound:.4f}", verdict(ks <= bound)))
        med = bootstrap_quantile(tau, censored=True)  # never-hit paths are censored at the horizon
        claims.append(Claim("C", "Median learning time from the FP first-passage law", "fokker_planck",
                            f"median τ(m ≥ {theta:g}s)", res["median"], med.value, med.se,
                            "within 4 SE + one record interval",
                            verdict(abs(med.value - res["median"]) <= 4 * med.se + rec)))
        c = f"C{i}"
        axes[0].plot(res["times"], res["cdf"], color=c, lw=1.5, label=f"FP, m ≥ {theta:g}s")
        axes[0].step(t, np.searchsorted(np.sort(tau), t, side="right") / R, where="post", color=c, lw=0.8,
                     ls="--", label=f"SDE, m ≥ {theta:g}s")
        axes[1].plot(res["times"], res["density"], color=c, lw=1.5, label=f"FP density, m ≥ {theta:g}s")
        fin = tau[np.isfinite(tau)]
        bw = 0.1
        axes[1].hist(fin, bins=np.arange(0, t_max + bw, bw), weights=np.full(fin.size, 1.0 / (R * bw)),
                     histtype="step", color=c, alpha=0.8)
    axes[0].set(xlabel="t", ylabel="P(τ ≤ t)", title="learning-time CDF")
    axes[1].set(xlabel="t", ylabel="density of τ", title="learning-time density (FP) and SDE histogram")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    figs.append(Figure(figures.save(fig, out, "fp_first_passage"),
                       "Distribution of the time τ for the mode to reach θs (θ = " + ", ".join(
                           f"{x:g}" for x in p["targets"]) + "): absorbing-boundary Fokker–Planck (solid; with the "
                       "Broadie–Glasserman continuity correction for paths recorded every "
                       f"{rec:g}) against the first record time of the SDE ensemble (dashed / histograms). The "
                       "learning-time spread comes from the multiplicative noise during the escape from the saddle."))

    # SGD KS vs h
    fig, ax = figures.subplots(1, 1, figsize=(5, 3.4))
    hh = [sgd_ks[q][0] for q in sgd_lrs]
    for k, tk in enumerate(sgd_times):
        ax.plot(hh, [sgd_ks[q][1][k] for q in sgd_lrs], "o-", label=f"t={tk:g}")
    ax.axhline(KS_C / math.sqrt(p["sgd_replicas"]), color="k", ls=":", lw=0.8, label="1.95/√R")
    ax.plot(hh, [KS_C / math.sqrt(p["sgd_replicas"]) + KS_H * x for x in hh], "k--", lw=0.8, label="+ 0.3h")
    ax.set(xlabel="h = ηLλs^{2−2/L}", ylabel="KS(SGD m(t), FP at T = η/(2B))", title="per-mode SGD vs Fokker–Planck")
    ax.legend(fontsize=7)
    figs.append(Figure(figures.save(fig, out, "fp_sgd_vs_h"),
                       f"KS distance between per-mode SGD (B = {B}, m₀ = {m0:g}) and the FP density at the same "
                       "T = η/(2B), at several times during learning, against the step ratio h. SGD lags the SDE "
                       "during the escape by GD's O(η) correction to the log-growth rate (−ηλ²s²/2 in ln a, §8), "
                       "which is large next to the O(√(ηt)) noise spread: the transient bias exceeds the 0.3h "
                       "budget validated for the stationary law."))
    return ExperimentResult("fokker_planck", claims=claims, figures=figs)
