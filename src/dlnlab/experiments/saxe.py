"""Saxe, McClelland & Ganguli (2014): mode-by-mode sigmoidal learning under gradient flow.

Every row is a computed :class:`~dlnlab.experiments.claims.Claim` (``kind = "measured"`` unless stated; the
L = 2 sigmoid is Saxe et al.'s, ``source = "paper"``; the L ≥ 3 rows are [J]'s hypergeometric time, our derivation,
``source = "derived"``). Two checks of the closed form ``m(t) = s / (1 + (s/m₀ − 1) e^{−2λst})`` (L = 2; hypergeometric time for
L ≥ 3, ``saddle_to_saddle.md`` §3):

* **exact**: from an aligned, balanced init every mode follows its closed form (max relative error);
* **random init**: from a small random Gaussian init the modes decouple approximately; each mode's
  10 %→90 % rise time (independent of m₀ for L = 2: ``ln 81 / (2λs)``) is compared with theory, and the
  modes are learned in order of ``λ_α s_α``.

A second aligned run at depth ``deep_depth`` (3) checks the hypergeometric closed form for L ≥ 3 (checks.md G1),
and both aligned runs' measured half-times ``t_α`` (``m_α = s_α/2``) are held against the exact §3/§6.3 plateau
times (:func:`dlnlab.theory.saddle_sequence.plateau_times`, checks.md G9 [A]) and, for L ≥ 3, against the small-``m₀``
expansion with the constant ``c_L`` (checks.md G2). The learning order from random init is a ``beyond`` row (a
qualitative statement: no theory input to perturb). Perturbation (power test): the teacher spectrum ``s`` × 1.1 in
every closed form (the simulations unchanged).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BarycentricInterpolator
from scipy.optimize import brentq

from .. import figures
from ..analysis import stats
from ..config import Config
from ..engines import simulate
from ..storage import save
from ..theory import mode_flow_fn
from ..theory import saddle_sequence as th
from .base import ExperimentResult, Figure, Perturbation, register, theory_factors
from .claims import Claim, Tolerance, setting


def _rise_times(t, m, s):
    """First times m/s crosses 0.1 and 0.9 (linear interpolation), for arrays m of shape (R, T, K)."""
    x = m / s
    out = np.full((2, *x.shape[::2]), np.nan)
    for j, level in enumerate((0.1, 0.9)):
        above = x >= level
        first = np.argmax(above, axis=1)  # (R, K)
        for r, k in np.ndindex(first.shape):
            i = first[r, k]
            if above[r, i, k] and i > 0:
                x0, x1 = x[r, i - 1, k], x[r, i, k]
                out[j, r, k] = t[i - 1] + (level - x0) / (x1 - x0) * (t[i] - t[i - 1])
    return out[1] - out[0], out[0]


def _half_times(t, m, s, npts=8):
    """Measured half-times: first time each ``m[:, α]`` reaches ``s_α/2``, from a degree-(npts−1) polynomial
    through the ``npts`` records around the crossing (of ``ln(m/s)``, smooth there), root by Brent. NaN if the mode
    never reaches ``s_α/2``. ``m``: ``(T, K)``."""
    out = np.full(m.shape[1], np.nan)
    for a in range(m.shape[1]):
        above = m[:, a] >= s[a] / 2
        i = int(np.argmax(above))
        if not above[i] or i == 0 or np.any(m[:, a] <= 0):
            continue
        lo = min(max(0, i - npts // 2), len(t) - npts)
        P = BarycentricInterpolator(t[lo:lo + npts], np.log(m[lo:lo + npts, a] / s[a]))
        out[a] = brentq(lambda x, P=P: float(P(x)) - np.log(0.5), t[i - 1], t[i], xtol=1e-14, rtol=1e-15)
    return out


NAME = "saxe"
CLOSED_FORM_TOL = Tolerance.at_most(absolute=1e-6, why="adaptive GF at rtol 1e-10: global error ~10 rtol (checks.md G1)")


def _row(key, L, claim, quantity, theory, estimate, tolerance, *, kind="measured", note="", **where):
    """A claims row of this experiment: Saxe et al. at L = 2 (``paper``), [J]'s closed forms at L ≥ 3 (``derived``)."""
    return Claim(experiment=NAME, key=key, setting=setting(L=L, **where), paper="S" if L == 2 else "J",
                 claim=claim, quantity=quantity, theory=float(theory), estimate=estimate, tolerance=tolerance,
                 kind=kind, source="paper" if L == 2 else "derived", note=note)


def _closed_form_row(L, t, m, m0, s_th, k):
    """Every record of an aligned run against the closed form (the theory spectrum ``s_th``); the relative error
    carries its float64 round-off as the error bound."""
    theory = mode_flow_fn([m0] * k, s_th, 1.0, L)(t)
    rel = float(np.max(np.abs(m - theory) / theory))
    what = "sigmoid" if L == 2 else "hypergeometric closed form t(m) = F(m/s) − F(m₀/s) (§3)"
    return _row("closed_form", L, f"L={L}: from aligned balanced init each mode follows the {what}",
                f"max relative error of m_α(t) against the closed form, {k} modes, m₀={m0:g}, {len(t)} records to "
                f"t={t[-1]:g}", 0.0, stats.Estimate.exact(rel, 1e-14), CLOSED_FORM_TOL)


def _half_time_rows(L, t, m, m0, s, s_th):
    """Measured half-times t_α (m_α = s_α/2) against the exact §3 plateau times (checks.md G9 [A]) and, for L ≥ 3,
    against the small-m₀ expansion with c_L (checks.md G2); the error bound of a measured half-time is the
    interpolation's error on the closed form itself."""
    k = len(s)
    order = th.learning_order(s)
    exact = th.plateau_times(s_th, m0, L)
    meas = _half_times(t, m, s)[order]
    interp = _half_times(t, mode_flow_fn([m0] * k, s, 1.0, L)(t), s)[order]
    ie = np.abs(interp / th.plateau_times(s, m0, L) - 1)
    rows = []
    for j, a in enumerate(order):
        est = stats.Estimate.exact(meas[j], max(float(ie[j]), 1e-15) * abs(meas[j]))
        rows.append(_row("half_time", L, f"L={L}: aligned half-times t_α (m_α = s_α/2) equal the §3 closed form "
                         "(plateau times, §6.3)", f"measured t_{a + 1} (m₀={m0:g}; degree-7 interpolation of the "
                         f"records, error {ie[j]:.1g} on the closed form itself)", exact[j], est,
                         Tolerance.within(relative=1e-6, why="ODE rtol 1e-10 (checks.md G9 [A])"), mode=a + 1))
        if L >= 3:
            frac = m0 / s[a]
            asym = th.escape_time_asymptotic(s_th[a], m0, L)
            rows.append(_row("c_L", L, f"L={L}: the half-time follows t_1/2 ≈ [L/(L−2)(m₀/s)^(2/L−1) + c_L]/(Lλs^(2−2/L)) "
                             f"with c_{L} = {th.c_L(L):.4f} (§3)", f"measured t_{a + 1}, m₀/s = {frac:.2g}", asym, est,
                             Tolerance.within(relative=3 * frac, why="the expansion's O(m₀/s) remainder: ≤ 3 m₀/s "
                                              "(checks.md G2 [V], observed ≤ 2 m₀/s)"), mode=a + 1))
    return rows


def _random_rows(L, t, m_rand, s, s_th):
    """From small random init: each mode's 10→90 % rise time against ln81/(2λs) (L = 2; batch means over the
    replicas), and the learning order (``beyond``: qualitative)."""
    k = len(s)
    rise, t10 = _rise_times(t, np.abs(m_rand), s)
    rows = []
    if L == 2:
        R = rise.shape[0]
        for a in range(k):
            rows.append(_row("rise_time", L, "From small random init each mode rises along a sigmoid of width "
                             "ln81/(2λs)", f"10→90 % rise time of mode {a + 1}, mean over {R} replicas",
                             np.log(81.0) / (2 * s_th[a]), stats.group_estimate(rise[:, a], groups=R),
                             Tolerance.within(relative=0.03, why="model error: from random init the modes decouple "
                                              "only approximately (measured ≤ 1 % at σ = 1e-3)"), mode=a + 1))
    first = np.argsort(t10, axis=1)
    right = int(np.sum(np.all(first == np.arange(k), axis=1)))
    rows.append(_row("order", L, "Modes are learned one at a time, in decreasing order of λs",
                     f"fraction of the {first.shape[0]} random-init replicas whose 10 %-crossings come in λs order",
                     1.0, stats.wilson(right, first.shape[0]),
                     Tolerance.above(0.5, why="qualitative: most replicas (8 replicas cannot resolve 0.9 at α = 0.01)"),
                     kind="beyond"))
    return rows


def _deep_run(p, base, out, k):
    """One aligned gradient-flow run at depth ``deep_depth`` (checks.md G1, G2, G9)."""
    Ld, m0d = int(p["deep_depth"]), float(p["deep_m0"])
    deep = simulate(Config.from_dict({
        **base, "network": {"depth": Ld, "width": p["width"]},
        "dynamics": {"kind": "flow", "t_max": float(p["deep_t_max"])},
        "record": {"n_times": int(p["deep_n_times"]), "spacing": "linear", "observables": ["mode_strength"]},
        "ensemble": {"replicas": 1, "seed": p["seed"]}, "init": {"kind": "aligned", "strength": [m0d] * k}}),
        progress=False)
    save(deep, out / f"aligned_depth{Ld}.zarr")
    return deep.t.values, deep.mode_strength.values[0, :, :k]


@register("saxe", paper="S", cost="~25 s",
          claim="Gradient flow learns each mode along a sigmoid, mode by mode in order of λs (closed form)",
          quick={"depth": 2, "d": 6, "width": 12, "s": [3.0, 2.0, 1.0, 0.5], "m0": 1e-4, "sigma": 1e-3,
                 "replicas": 8, "t_max": 20.0, "n_times": 500, "seed": 0,
                 "deep_depth": 3, "deep_m0": 1e-3, "deep_t_max": 25.0, "deep_n_times": 1000},
          full={"depth": 2, "d": 8, "width": 32, "s": [4.0, 3.0, 2.0, 1.0, 0.5], "m0": 1e-6, "sigma": 1e-4,
                "replicas": 64, "t_max": 30.0, "n_times": 1500, "seed": 0,
                "deep_depth": 3, "deep_m0": 1e-4, "deep_t_max": 60.0, "deep_n_times": 2400},
          smoke={},  # the quick preset (declared: its verdicts are the stable ones)
          perturbations=(Perturbation("s", 1.1, "teacher singular values × 1.1 in every closed form"),))
def saxe(p, out):
    L, s = p["depth"], np.asarray(p["s"], float)
    s_th = s * _factor(p)
    k = len(s)
    base = {
        "teacher": {"d_in": p["d"], "d_out": p["d"], "singular_values": list(s), "basis": "random"},
        "network": {"depth": L, "width": p["width"]},
        "dynamics": {"kind": "flow", "t_max": p["t_max"]},
        "record": {"n_times": p["n_times"], "spacing": "linear", "observables": ["mode_strength", "loss"]},
        "ensemble": {"replicas": p["replicas"], "seed": p["seed"]},
    }
    aligned = simulate(Config.from_dict({**base, "init": {"kind": "aligned", "strength": [p["m0"]] * k}}))
    rand = simulate(Config.from_dict({**base, "init": {"kind": "gaussian", "scale": p["sigma"]}}))
    save(aligned, out / "aligned.zarr")
    save(rand, out / "random_init.zarr")
    t = aligned.t.values
    m_al = aligned.mode_strength.values[:, :, :k]
    m_rand = rand.mode_strength.values[:, :, :k]
    td, md = _deep_run(p, base, out, k)
    Ld, m0, m0d = int(p["deep_depth"]), float(p["m0"]), float(p["deep_m0"])
    claims = [_closed_form_row(L, t, m_al[0], m0, s_th, k), _closed_form_row(Ld, td, md, m0d, s_th, k)]
    claims += _half_time_rows(L, t, m_al[0], m0, s, s_th) + _half_time_rows(Ld, td, md, m0d, s, s_th)
    claims += _random_rows(L, t, m_rand, s, s_th)
    return ExperimentResult(NAME, claims=claims, figures=[_figure(p, t, m_al, m_rand, s, k, out)])


def _factor(p) -> float:
    """The power-test factor of the teacher spectrum in the closed forms (``perturb = {s = f}``)."""
    return theory_factors(p, ("s",))["s"]


def _figure(p, t, m_al, m_rand, s, k, out):
    theory = mode_flow_fn([p["m0"]] * k, s, 1.0, p["depth"])(t)
    fig, axes = figures.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    colors = [f"C{i}" for i in range(k)]
    for a in range(k):
        axes[0].plot(t, m_al[0, :, a] / s[a], color=colors[a], lw=2, alpha=0.6, label=f"s={s[a]:g} (GF)")
        axes[0].plot(t, theory[:, a] / s[a], "k--", lw=0.8)
        for r in range(min(8, m_rand.shape[0])):
            axes[1].plot(t, np.abs(m_rand[r, :, a]) / s[a], color=colors[a], lw=0.8, alpha=0.5)
        axes[1].plot(t, theory[:, a] / s[a], "k--", lw=0.8)
    axes[0].set(title="aligned balanced init (exact)", xlabel="time t", ylabel="m_α(t) / s_α")
    axes[1].set(title=f"random init σ={p['sigma']:g} (approximate)", xlabel="time t")
    axes[0].legend(fontsize=8)
    name = figures.save(fig, out, "saxe_modes")
    return Figure(name, "Mode strengths m_α(t)/s_α under gradient flow (colours) against the closed-form sigmoid "
                        "(dashed; m₀ of the aligned run). Left: exact agreement from aligned init. Right: from small "
                        "random init the same sigmoids appear, shifted in time, learned one mode at a time.")
