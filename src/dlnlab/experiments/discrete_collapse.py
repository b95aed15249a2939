"""[Z]'s second-order shift of T_c for discrete SGD with B = 1 (``noise_balance.md`` §4; ``checks.md`` Z16).

``discrete_collapse`` — the collapsed state ``v = 0`` of the two-layer diagonal path attracts discrete ½-loss SGD
(``B = 1``, ``T = η/2``) exactly when the per-step growth rate ``Λ = 2E ln|1 + ηxy|`` of ``ln v`` at ``v → 0`` is
negative (:mod:`dlnlab.theory.discrete_collapse`). [Z] expands ``Λ`` to second order in ``η`` and predicts
``T_c = β₂/(α₃ + β₂²)`` instead of the SDE's ``β₂/α₃``. Measured here: ``Λ`` from SGD runs of the network started at
``v = 10⁻¹⁵⁰`` (balanced; far inside the linear regime for the whole run), its root ``T_c`` on a grid of T, and the
fate of SGD from ``v = 1`` — on the reference data (``σ_ε = 1``) and on noisy labels (``σ_ε = 10``, where
``η`` at the threshold is small).
"""

from __future__ import annotations

import math

import numpy as np

from .. import figures
from ..analysis.stats import wilson
from ..engines import diagonal_config, simulate_diagonal
from ..model.diagonal import DiagonalModel
from ..theory.balance import DataConstants
from ..theory.discrete_collapse import discrete_critical_temperature, log_growth_rate
from .base import Claim, ExperimentResult, Figure, register, verdict

V0 = 1e-150  # initial v of the invasion runs: v stays < 1e-100 (checked), so ηvx² is negligible in ξ = (vx − y)x


def invasion_rate(model: DiagonalModel, T: float, replicas: int, steps: int, seed: int):
    """Measured per-step growth rate of ``ln v`` of SGD (``B = 1``, ``η = 2T``) from ``v = 10⁻¹⁵⁰``: replica mean of
    ``Δln v/steps`` and its SE (increments are i.i.d. in the linear regime, so replicas × steps samples)."""
    lr = 2 * T
    ds = simulate_diagonal(diagonal_config(model, kind="sgd", lr=lr, times=[0, steps * lr], replicas=replicas, v0=[V0],
                                           seed=seed))
    lv = ds.log_abs_v.values[:, :, 0]
    if lv.max() > np.log(1e-100) or ds.n_diverged:
        raise RuntimeError("invasion run left the linear regime; use fewer steps")
    r = (lv[:, -1] - lv[:, 0]) / steps
    return float(r.mean()), float(r.std(ddof=1) / np.sqrt(r.size))


def _root(Ts, rates, ses):
    """Root of a weighted straight-line fit of ``rates(T)`` and its SE (delta method)."""
    w = 1 / np.asarray(ses) ** 2
    A = np.vstack([np.ones_like(Ts), Ts]).T
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    a, b = cov @ (A.T @ (w * rates))
    root = -a / b
    grad = np.array([-1 / b, a / b**2])
    return float(root), float(np.sqrt(grad @ cov @ grad))


@register("discrete_collapse", paper="Z", cost="~20 s",
          claim="With B=1 the T_c of discrete SGD moves from β₂/α₃ to β₂/(α₃+β₂²) (second order in η): measured",
          quick={"noisy_label_noise": 10.0, "temperatures": [0.0088, 0.0092, 0.0096, 0.0100], "replicas": 40000,
                 "steps": 400, "ref_temperatures": [0.25, 0.3333], "ref_steps": 50, "fate_T": 0.25,
                 "fate_replicas": 500, "fate_steps": 2000, "seed": 0},
          full={"noisy_label_noise": 10.0, "temperatures": [0.0086, 0.0089, 0.0092, 0.0095, 0.0098, 0.0101],
                "replicas": 100000, "steps": 1000, "ref_temperatures": [0.1, 0.2, 0.25, 0.3, 0.3333], "ref_steps": 50,
                "fate_T": 0.25, "fate_replicas": 2000, "fate_steps": 4000, "seed": 0})
def discrete_collapse(p, out):
    name, R = "discrete_collapse", p["replicas"]
    claims = []
    # reference data: no collapse threshold at all
    ref = DiagonalModel(depth=2)
    c = DataConstants.reference()
    grid = np.linspace(0.005, 2 * c.beta2 / c.alpha3, 60)
    lam_ref = np.array([log_growth_rate(2 * T) for T in grid])
    ref_meas = [invasion_rate(ref, T, R // 2, p["ref_steps"], p["seed"] + i) for i, T in
                enumerate(p["ref_temperatures"])]
    T2_ref = c.beta2 / (c.alpha3 + c.beta2**2)
    per_t = [(m / (2 * T), se / (2 * T)) for T, (m, se) in zip(p["ref_temperatures"], ref_meas)]
    lo = min(m - 5 * se for m, se in per_t)
    claims.append(Claim(
        "Z", f"Reference data (σ_ε = 1): discrete SGD with B = 1 collapses above β₂/(α₃+β₂²) = {T2_ref:g}", name,
        "smallest measured growth rate of ln v at v → 0 per unit t, T = " + ", ".join(f"{T:g}" for T in
        p["ref_temperatures"]) + f" (exact Λ/η ≥ {np.min(lam_ref / (2 * grid)):.2f} > 0 on T ∈ [{grid[0]:g}, "
        f"{grid[-1]:.3g}]: no collapse at any T)", 0.0, min(m for m, _ in per_t), max(se for _, se in per_t),
        "collapse needs a rate < 0 (5 SE) above the predicted T_c", verdict(lo < 0)))
    fate = simulate_diagonal(diagonal_config(ref, kind="sgd", lr=2 * p["fate_T"], steps=p["fate_steps"], n_times=2,
                                             replicas=p["fate_replicas"], v0=[1.0], seed=p["seed"] + 10))
    frac_div = float(fate.diverged.values.mean())
    claims.append(Claim(
        "Z", f"…instead, at T = {p['fate_T']:g} SGD from v = 1 diverges (Gaussian x: steps ηx²v ≫ 1)", name,
        f"fraction of {p['fate_replicas']} replicas diverged (|θ| > 1e30) within {p['fate_steps']} steps", 1.0,
        frac_div, wilson(int(fate.diverged.values.sum()), fate.diverged.size).se, "≥ 0.5",
        verdict(frac_div >= 0.5)))

    # noisy labels: a threshold exists; where is it?
    sig = p["noisy_label_noise"]
    noisy = DiagonalModel(depth=2, label_noise=sig)
    cn = noisy.constants
    T_sde, T_2 = cn.beta2 / cn.alpha3, cn.beta2 / (cn.alpha3 + cn.beta2**2)
    T_exact = discrete_critical_temperature(label_noise=sig)
    Ts = np.asarray(p["temperatures"], np.float64)
    meas = np.array([invasion_rate(noisy, T, R, p["steps"], p["seed"] + 20 + i) for i, T in enumerate(Ts)])
    quad = np.array([log_growth_rate(2 * T, label_noise=sig) for T in Ts])
    z = np.abs(meas[:, 0] - quad) / meas[:, 1]
    claims.append(Claim(
        "Z", f"σ_ε = {sig:g}: the measured growth rate of ln v at v → 0 equals 2E ln|1 + ηxy| (quadrature)", name,
        f"max over runs of |measured − exact|/SE (T = {', '.join(f'{T:g}' for T in Ts)})", 0.0, float(z.max()), math.nan,
        "< 4 (4 SE)", verdict(z.max() < 4)))
    T_c, T_c_se = _root(Ts, meas[:, 0], meas[:, 1])
    claims.append(Claim(
        "Z", f"σ_ε = {sig:g}: the T_c of discrete SGD (B = 1) lies below the SDE's β₂/α₃ = {T_sde:.6f}, toward "
        f"β₂/(α₃+β₂²) = {T_2:.6f}", name, f"root of the measured rate (exact discrete root {T_exact:.6f})", T_2, T_c,
        T_c_se, "T_c < β₂/α₃ − 5 SE", verdict(T_c < T_sde - 5 * T_c_se)))
    shift, shift2 = T_c - T_sde, T_2 - T_sde
    claims.append(Claim(
        "Z", f"σ_ε = {sig:g}: …and the second-order formula gives the shift of T_c", name,
        f"measured shift T_c − β₂/α₃ (second order: {shift2:.3g}; the cumulants of xy beyond the second enter at the "
        "same order 1/σ_ε⁴)", shift2, shift, T_c_se, "within 25% of the second-order shift + 5 SE",
        verdict(abs(shift - shift2) < 0.25 * abs(shift2) + 5 * T_c_se)))

    fig, ax = figures.subplots(1, 2, figsize=(11, 3.9))
    tt = np.linspace(grid[0], grid[-1], 200)
    ax[0].plot(grid, lam_ref / (2 * grid), "k", lw=1.5, label="exact discrete, Λ/η")
    ax[0].plot(tt, 2 * c.beta2 - 2 * tt * c.alpha3, "C0--", label="SDE: 2β₂ − 2Tα₃")
    ax[0].plot(tt, 2 * c.beta2 - 2 * tt * (c.alpha3 + c.beta2**2), "C3:", label="second order: 2β₂ − 2T(α₃+β₂²)")
    for T, (m, se) in zip(p["ref_temperatures"], ref_meas):
        ax[0].errorbar(T, m / (2 * T), yerr=5 * se / (2 * T), fmt="o", color="C1", ms=4)
    ax[0].axhline(0, color="0.5", lw=0.8)
    ax[0].set(xlabel="T = η/2", ylabel="growth rate of ln v at v → 0 (per unit t)",
              title="reference data (σ_ε = 1): v = 0 never attracts")
    ax[0].legend(fontsize=7)
    tz = np.linspace(Ts[0], Ts[-1], 50)
    ax[1].plot(tz, [log_growth_rate(2 * T, label_noise=sig) / (2 * T) for T in tz], "k", lw=1.5, label="exact, Λ/η")
    ax[1].errorbar(Ts, meas[:, 0] / (2 * Ts), yerr=5 * meas[:, 1] / (2 * Ts), fmt="o", color="C1", ms=4,
                   label="SGD from v = 1e-150 (±5 SE)")
    ax[1].plot(tz, 2 * cn.beta2 - 2 * tz * cn.alpha3, "C0--", label="SDE")
    ax[1].plot(tz, 2 * cn.beta2 - 2 * tz * (cn.alpha3 + cn.beta2**2), "C3:", label="second order")
    for x, col, lab in ((T_sde, "C0", "β₂/α₃"), (T_2, "C3", "β₂/(α₃+β₂²)"), (T_c, "C1", "measured T_c")):
        ax[1].axvline(x, color=col, lw=0.8, ls="-.", label=lab)
    ax[1].axhline(0, color="0.5", lw=0.8)
    ax[1].set(xlabel="T = η/2", title=f"σ_ε = {sig:g}: collapse threshold of discrete SGD")
    ax[1].legend(fontsize=6)
    f = figures.save(fig, out, "discrete_collapse")
    return ExperimentResult(name, claims=claims, figures=[Figure(
        f, "Growth rate of ln v at v → 0 for ½-loss SGD with B = 1 (L = 2): the collapsed state attracts where it is "
           "negative. Left, reference data: the exact discrete rate (black; SGD points) stays positive at every T — "
           "the heavy-tailed xy makes large |1 + ηxy| frequent once η ≳ 1/sd(xy) — so neither the SDE's T_c = 1/3 nor "
           "the second-order 0.25 applies (SGD diverges there instead). Right, σ_ε = 10: a threshold exists; it lies "
           "below the SDE's, as the second-order formula says, but several times further: the second-order term "
           "is not the leading correction.")])
