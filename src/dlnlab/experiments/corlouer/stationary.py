"""[C] ``stationary``: the stationary law of one mode under SGD (``sgd_noise.md`` §§5.4, 9; checks.md S7–S9).

Simulate. Per-mode SGD (the exact recursion of §5.4, :func:`~dlnlab.engines.simulate_modes`; checks.md S1: it is
online SGD of the ``1 × 1`` network) for each group ``[L, s, λ, B, [η…], [σ_ε…]]`` in one engine call (``η`` and
``σ_ε`` stacked, plus ``σ_ε = 0``), every replica started **far from the target law**, at ``m0 = 0.01 s`` near the
saddle: the run crosses the saddle (gradient-flow learning time), then burns in for ``burn_h/h`` steps, then keeps
``n_per`` records ``thin_h/h`` steps apart (``h = ηLλs^{2−2/L}``; checks.md S8 asks ≥ 10/h and ≥ 5/h).

Estimate and claims, per setting with label noise (KS distances are estimates with exact Kolmogorov bounds; the
row holds when the whole 98 % interval is inside the stated budget):

* ``ks_exact`` — KS(SGD samples, exact zero-flux law §9.1) ≤ 0.3h (SGD's discretisation bias, checks.md §0) +
  ``ks_margin``;
* ``mean`` — the SGD mean against the exact mean, within ``0.5·shift + h·shift`` (the Itô shift
  ``shift = s − E m`` reproduced to 50 %, plus SGD's mean bias ≈ h·shift, Errata 2); the Boltzmann law's mean
  ``s`` lies outside that band;
* ``var`` — the SGD variance against the exact variance, within ``1.5h`` relative (SGD's measured excess
  0.5–0.65h, checks.md §0, up to 0.8h in single runs, with a margin);
* ``ks_boltzmann`` — KS(SGD samples, the Boltzmann law ``N(s, L s^{2−2/L} T_ε)`` §9.5) ≤ ``approx_margin``
  ("approximately Boltzmann"), and ``ks_label`` — KS(SGD samples, the label-dominated law §9.4) ≤ 0.3h +
  ``ks_margin``: the samples are tested against each approximate law directly (so either row can fail on its own);
  the distance between that law and the exact law (quadrature) is stated in the row;
* ``collapse`` (σ_ε = 0, §9.3) — the fraction of replicas with ``|m − s| ≤ 1e-6`` at the end (Wilson), ≥ 0.99.

Each row states its burn-in diagnostic (early vs late half of the kept records). Theory self-checks (``kind =
"theory"``, quadrature): the Boltzmann law's KS error vanishes like ``√T_ε``, the §9.6 shift removes the leading
mean error, and the per-mode law is [Z]'s depth-L law with one path (§9.1, checks.md S9, Z17).

Power: ``perturb = {s = 1.05}`` evaluates every theory value at ``1.05 s``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ... import figures
from ...analysis import stats
from ...conventions import step_ratio
from ...engines import mode_config, simulate_modes
from ...theory import mode_sde as tm
from ...theory import mode_stationary as st
from ...theory import mode_stationary_forms as stf
from ..base import ExperimentResult, Figure, Perturbation, register
from ..claims import Tolerance, setting
from ._common import burn_in, factor, row, write_csv

NAME = "stationary"
INPUTS = ("s",)


def simulate(p, group, seed):
    """One engine call for a group: ``{(η, σ_ε): m (replicas, records)}`` and the number of records before the kept
    ones (the saddle crossing and the burn-in)."""
    L, s, lam, B, lrs, sigs = group
    rate = step_ratio(1.0, L, lam, s)  # h/η: k/h steps last k/rate time units at every η
    thin_t = p["thin_h"] / rate
    t_escape = tm.learning_time(p["m0"] * s, s, lam, L)
    n_skip = math.ceil((t_escape + p["burn_h"] / rate) / thin_t)
    cfg = mode_config([s], depth=L, lr=[float(x) for x in lrs], batch_size=B, input_variance=lam,
                      label_noise=[float(x) for x in sigs] + [0.0], m0=p["m0"] * s, t_max=(n_skip + p["n_per"]) * thin_t,
                      n_times=n_skip + p["n_per"] + 1, replicas=p["replicas"], seed=seed, chunks=4)
    ds = simulate_modes(cfg, progress=False)
    m, lr_r, se_r = ds.mode_strength.values[:, :, 0], ds["lr"].values, ds["label_noise"].values
    runs = {(float(a), float(b)): m[(lr_r == a) & (se_r == b)] for a in lrs for b in list(sigs) + [0.0]}
    return runs, n_skip


def _tag(depth, s, input_variance, sig, lr, B):
    return setting(L=depth, s=float(s), lam=float(input_variance), sigma=float(sig), lr=float(lr), B=B)


def _laws(depth, s, input_variance, sig, T):
    """The exact law and the two approximate laws at the (possibly perturbed) theory inputs."""
    exact = st.stationary_law(depth, s, input_variance, sig, T)
    label = (stf.gamma_law(s, sig, T) if depth == 2
             else st.stationary_law(depth, s, input_variance, sig, T, noise="label"))
    return exact, stf.boltzmann_law(depth, s, input_variance, sig, T), label


def row_claims(x, depth, s, input_variance, sig, lr, B, p, fs):
    """The rows of one setting from its kept samples ``x`` (replicas × records; diverged replicas dropped)."""
    ok = np.all(np.isfinite(x), axis=1)
    x, T, h = x[ok], lr / (2 * B), step_ratio(lr, depth, input_variance, s)
    exact, boltz, label = _laws(depth, s * fs, input_variance, sig, T)
    flat = x.ravel()
    grid = exact.grid(4000, 1e-7, 1 - 1e-7)
    shift = s * fs - exact.mean()
    note = (f"start m0 = {p['m0']:g} s (far below the law); burn-in {p['burn_h']:g}/h steps after the GF learning "
            f"time; {x.shape[0]} replicas × {x.shape[1]} records {p['thin_h']:g}/h steps apart "
            f"({int((~ok).sum())} diverged, dropped); {burn_in(x)}")
    key = _tag(depth, s, input_variance, sig, lr, B)
    ks = lambda law: stats.ks_1samp(flat, law.cdf).distance
    ks_budget = Tolerance.at_most(absolute=0.3 * h + p["ks_margin"], why="0.3h: SGD's KS bias against the SDE law "
                                  f"(checks.md §0), + {p['ks_margin']:g}: the agreement claimed")
    claim_exact = "with label noise the per-mode SGD stationary law is the zero-flux law of the SDE (§9.1)"
    rows = [
        row(NAME, "ks_exact", key, claim_exact, "KS(SGD samples, exact law)", 0.0, ks(exact), ks_budget, note=note),
        row(NAME, "mean", key, "the stationary mean sits below s by the Itô shift (§9.6; exact law's mean)",
            "mean of m", exact.mean(), stats.group_estimate(x),
            Tolerance.within(absolute=(0.5 + h) * abs(shift), why=f"the shift s − E m = {shift:.3g} to 50 %, + SGD's "
                             "mean bias ≈ h·shift (Errata 2)"), note=note),
        row(NAME, "var", key, "the stationary variance is the exact law's up to SGD's O(h) excess", "Var m",
            exact.var(), stats.group_estimate(x, lambda g: float(np.var(g))),
            Tolerance.within(relative=1.5 * h, why="SGD's variance excess, 0.5–0.65h at n = 2e5 (checks.md §0), up to "
                             "0.8h in single runs at n = 1e5, with a margin"),
            note=note),
        row(NAME, "ks_boltzmann", key, "the law is approximately Boltzmann, N(s, L s^{2−2/L} T_ε) (§9.5)",
            f"KS(SGD samples, Boltzmann law); KS(exact, Boltzmann) = {st.ks_between(exact.cdf, boltz.cdf, grid):.4f}",
            0.0, ks(boltz), Tolerance.at_most(absolute=p["approx_margin"], why="'approximately': within "
                                              f"{p['approx_margin']:g} in CDF"), note=note),
        row(NAME, "ks_label", key, "the law is the label-noise-dominated law (D ≈ λσ_ε², §9.4; Gamma for L = 2)",
            f"KS(SGD samples, label-dominated law); KS(exact, label law) = "
            f"{st.ks_between(exact.cdf, label.cdf, grid):.4f}", 0.0, ks(label), ks_budget, note=note),
    ]
    return rows


def collapse_claim(m_end, depth, s, input_variance, lr, B, p, fs):
    """§9.3 / checks.md S7: without label noise every replica converges to ``s`` (δ(m − s), the GF fixed point)."""
    hit = int(np.sum(np.abs(m_end - s * fs) <= 1e-6))
    return row(NAME, "collapse", _tag(depth, s, input_variance, 0.0, lr, B),
               "without label noise the stationary law is the GF fixed point δ(m − s) (§9.3)",
               "fraction of replicas with |m − s| ≤ 1e-6 at the end", 1.0, stats.wilson(hit, m_end.size),
               Tolerance.above(0.99, why="every replica converges (S7: 4e-16); 1 % slack for the interval"),
               note=f"start m0 = {p['m0']:g} s; {m_end.size} replicas")


def theory_claims(depths, label_noise, temperatures):
    """Self-checks of our closed forms by quadrature (kind ``theory``)."""
    from scipy.integrate import IntegrationWarning

    from ...theory.balance import DataConstants
    from ...theory.diagonal_stationary_forms import log_density_general

    rows, table = [], []
    for L in depths:
        rr = [st.boltzmann_error(int(L), 1.0, 1.0, label_noise, T) for T in temperatures]
        table += rr
        slope = float(np.polyfit(np.log([r["T_eps"] for r in rr[:3]]), np.log([r["ks_gauss"] for r in rr[:3]]), 1)[0])
        rows.append(row(NAME, "boltzmann_sqrt_T", setting(L=int(L)), "the Boltzmann law is the small-T_ε limit: "
                        "KS(exact, Boltzmann) ∝ √T_ε", "log–log slope over the 3 smallest T", 0.5,
                        stats.Estimate.exact(slope), Tolerance.within(absolute=0.05, why="O(√T) corrections"),
                        kind="theory"))
        ratio = abs(rr[0]["mean_err_shift"]) / abs(rr[0]["mean_err"])
        rows.append(row(NAME, "shift_captures_mean", setting(L=int(L)), "the §9.6 shift removes the O(T_ε) mean "
                        "error of the Boltzmann law", f"|E m − (s − shift)| / |E m − s| at T_ε = {rr[0]['T_eps']:.2g}",
                        0.0, stats.Estimate.exact(ratio), Tolerance.at_most(absolute=0.01, why="remainder O(T_ε)"),
                        kind="theory"))
        worst = 0.0
        for s, lam, se, T in ((1.0, 1.0, 0.5, 0.005), (2.0, 0.5, 1.0, 0.005), (1.0, 1.0, 0.5, 0.02)):
            m = np.linspace(0.3 * s, 2.5 * s, 23)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IntegrationWarning)
                z = log_density_general(m, int(L), T, DataConstants.single_mode(lam, s, se))
            worst = max(worst, float(np.ptp(z - st.log_density_unnormalised(m, int(L), s, lam, se, temperature=T))))
        rows.append(row(NAME, "bridge_to_Z", setting(L=int(L)), "the per-mode law of [C] is [Z]'s depth-L law with one "
                        "path and the single-mode data constants (§9.1; checks.md S9, Z17)",
                        "max ptp(ln p_C − ln p_Z) on [0.3s, 2.5s] (two independent quadratures)", 0.0,
                        stats.Estimate.exact(worst), Tolerance.at_most(absolute=1e-10, why="quadrature round-off"),
                        kind="theory"))
    return rows, table


def _histograms(out, samples):
    """Figure: kept SGD samples against the exact, label-dominated and Boltzmann laws."""
    ncol = min(len(samples), 3)
    fig, axes = figures.subplots(-(-len(samples) // ncol), ncol, figsize=(4.2 * ncol, 3.2 * -(-len(samples) // ncol)),
                                 squeeze=False)
    for ax, ((L, s, lam, sig, lr, B), x) in zip(axes.ravel(), samples):
        exact, boltz, label = _laws(L, s, lam, sig, lr / (2 * B))
        lo, hi = exact.ppf(np.array([1e-4, 1 - 1e-4]))
        grid = np.linspace(lo, hi, 300)
        ax.hist(x.ravel(), bins=np.linspace(lo, hi, 70), density=True, color="0.75", label=f"SGD (n={x.size})")
        ax.plot(grid, exact.pdf(grid), "k", lw=1.5, label="exact (§9.1)")
        ax.plot(grid, label.pdf(grid), "C0--", lw=1.1, label="label-dominated (§9.4)")
        ax.plot(grid, boltz.pdf(grid), "C3:", lw=1.3, label="Boltzmann (§9.5)")
        ax.axvline(s, color="0.4", lw=0.6)
        ax.set_title(f"L={L} s={s:g} λ={lam:g} σε={sig:g} η={lr:g} B={B}", fontsize=8)
    for ax in axes.ravel()[len(samples):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    return Figure(figures.save(fig, out, "stationary_histograms"),
                  "Per-mode SGD started at m0 = 0.01 s, kept after the saddle crossing and a burn-in of 30/h steps, "
                  "against the exact zero-flux law (black), the label-noise-dominated law (blue) and the Boltzmann "
                  "Gaussian (red); the vertical line is s: the exact law and SGD sit below it by the Itô shift.")


def _boltzmann_figure(out, table, depths):
    fig, axes = figures.subplots(1, 2, figsize=(9.0, 3.4))
    for i, L in enumerate(depths):
        rr = [r for r in table if r["depth"] == L]
        Te = [r["T_eps"] for r in rr]
        axes[0].loglog(Te, [r["ks_gauss"] for r in rr], "o-", color=f"C{i}", label=f"L={L}")
        axes[1].loglog(Te, [abs(r["mean_err"]) for r in rr], "o-", color=f"C{i}", label=f"L={L}: |E m − s|")
        axes[1].loglog(Te, [abs(r["mean_err_shift"]) for r in rr], "s--", color=f"C{i}", ms=3, label="after shift")
    axes[0].set(xlabel="T_ε", ylabel="KS(exact, Boltzmann)")
    axes[1].set(xlabel="T_ε", ylabel="mean error")
    for ax in axes:
        ax.legend(fontsize=7)
    return Figure(figures.save(fig, out, "boltzmann_error"),
                  "Error of the Boltzmann approximation against T_ε (quadrature; s = λ = 1): the KS distance ∝ √T_ε, "
                  "the mean error ∝ T_ε, removed to O(T_ε²) by the §9.6 shift (boltzmann_error.csv).")


@register(NAME, paper="C", cost="~40 s",
          claim="With label noise a mode's SGD stationary law is the zero-flux law (≈ Boltzmann at small T_ε); "
                "without it SGD converges to the GF fixed point δ(m − s)",
          quick={"groups": [[2, 1.0, 1.0, 1, [0.01], [0.5, 1.0]], [3, 1.0, 1.0, 1, [0.01], [0.5]]], "m0": 0.01,
                 "replicas": 5000, "n_per": 20, "burn_h": 30.0, "thin_h": 10.0, "ks_margin": 0.01,
                 "approx_margin": 0.05, "table_depths": [2, 3], "table_label_noise": 0.5,
                 "table_T": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], "seed": 0},
          full={"groups": [[2, 1.0, 1.0, 1, [0.005, 0.01], [0.5, 1.0]], [3, 1.0, 1.0, 1, [0.005, 0.01], [0.5]],
                           [4, 1.0, 1.0, 2, [0.01], [0.3]], [3, 2.0, 0.5, 1, [0.01], [0.5]]], "m0": 0.01,
                "replicas": 20000, "n_per": 20, "burn_h": 30.0, "thin_h": 10.0, "ks_margin": 0.005,
                "approx_margin": 0.05, "table_depths": [2, 3, 4, 6], "table_label_noise": 0.5,
                "table_T": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], "seed": 0},
          smoke={"groups": [[2, 1.0, 1.0, 1, [0.01], [1.0]]], "replicas": 4000, "table_depths": [2],
                 "table_T": [1e-4, 3e-4, 1e-3]},
          perturbations=(Perturbation("s", 1.05, "teacher singular value × 1.05 in every theory law"),))
def stationary(p, out):
    fs = factor(p, "s", INPUTS)
    claims, samples, csv_rows = [], [], []
    for k, (L, s, lam, B, lrs, sigs) in enumerate(p["groups"]):
        runs, n_skip = simulate(p, (int(L), float(s), float(lam), int(B), lrs, sigs), 10 * int(p["seed"]) + k)
        for lr in lrs:
            for sig in sigs:
                x = runs[(float(lr), float(sig))][:, n_skip + 1:]
                rows = row_claims(x, int(L), float(s), float(lam), float(sig), float(lr), int(B), p, fs)
                claims += rows
                samples.append(((int(L), float(s), float(lam), float(sig), float(lr), int(B)), x))
                csv_rows += [{"id": c.id, "value": c.value, "theory": c.theory, "verdict": c.verdict} for c in rows]
            claims.append(collapse_claim(runs[(float(lr), 0.0)][:, -1], int(L), float(s), float(lam), float(lr),
                                         int(B), p, fs))
    theory, table = theory_claims(p["table_depths"], p["table_label_noise"], p["table_T"])
    write_csv(out / "stationary_rows.csv", csv_rows)
    write_csv(out / "boltzmann_error.csv", table)
    figs = [_histograms(out, samples), _boltzmann_figure(out, table, p["table_depths"])]
    return ExperimentResult(NAME, claims=claims + theory, figures=figs)
