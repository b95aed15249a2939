"""[C] ``diffusion_peak``: the diffusion along a mode is largest before the mode is learned, in saddle order; and
SGD keeps the gradient-flow saddle sequence (``sgd_noise.md`` §§7, 10 E2/E4; checks.md S4, S10).

Simulate. Full-matrix online SGD (``d = len(s)``, random teacher basis, ``B``, ``η``, ``σ_ε``) for ``L = 2, 3, 4``
from two starts: **aligned and balanced** (``m_α(0) = m0``, random hidden bases, width ``d``) and **random small**
(Gaussian, width ``random_width``, per-layer scale ``m0^{1/L}/√w``). Every ``record_every`` steps the observable
:func:`~dlnlab.model.observables.sampled_noise` measures the *empirical* minibatch gradient noise at the recorded
weights: the per-sample gradients of ``n_samples`` fresh samples (closed form ``W_{>l}ᵀ r xᵀ W_{<l}ᵀ``), their
variance along each teacher mode in function space (``⟨∇m_α, ∇ℓ⟩``, ``p = 4 − 4/L``) and along each layer's mode
direction in parameter space (mean over layers, ``p = 2 − 2/L``). No closed form enters the measurement.

Estimate. Per replica and mode, ``t_peak`` is the maximum of a cubic fitted to the log of the measured noise over
the records around its (moving-average) maximum where it exceeds ``peak_frac`` of it — the fit averages the
per-record sampling noise, ``≈ √(14/n)`` relative for ``σ_ε = 0``; on the exact curve its bias is ≤ 0.5 % in ``m``
— and ``m(t_peak)`` is the recorded ``m_α`` interpolated there; ``t_0.99`` is the first record with
``m_α ≥ 0.99 s_α``. Medians over replicas with percentile-bootstrap intervals (never-learned replicas censored).

Claims (theory: the closed forms of §7 evaluated on gradient flow, against which the measurement is held):

* ``m_peak`` (aligned start) — median ``m(t_peak)`` against ``m* = ps/(p + 2)`` (§7.2; ``m_−`` with label noise,
  §7.3): below ``0.99 s``, so the peak precedes learning;
* ``t_peak`` (aligned start) — median ``t_peak`` against the gradient-flow ``t*`` from ``m0``, within SGD's O(h)
  delay: the peaks come in saddle order, at the predicted times;
* ``peak_before_learning``, ``peak_order`` (random start; ``kind = "beyond"``: [C] claims only qualitative
  agreement without alignment, so the aligned closed forms, quoted in the notes, are not held against it) — the
  median ``t_0.99 − t_peak`` and the differences of peak times between consecutive modes are positive;
* ``plateau_loss`` — from a much smaller random start (``sequence_m0``, flat plateaus; no noise observable) the
  loss on the ``k``-th plateau (``analysis.plateau_table``, median over replicas) against the saddle loss
  ``½ Σ_{α>k} λ s_α²``: SGD keeps the GF saddle sequence, levels and order (another order would put plateau
  ``k`` at another level).

Power: ``perturb = {s = 1.1}`` evaluates every closed form at ``1.1 s``.
"""

from __future__ import annotations

import math

import numpy as np

from ... import figures
from ...analysis import stats
from ...analysis.saddles import plateau_table
from ...conventions import step_ratio
from ...engines import simulate
from ...model.observables import sampled_noise
from ...theory import mode_sde as tm
from ...theory import saddle_sequence as ss
from ..base import ExperimentResult, Figure, Perturbation, register
from ..claims import Tolerance, setting
from ._common import factor, network_config, row

NAME = "diffusion_peak"
INPUTS = ("s",)
KINDS = ("parameter", "function")


def run(p, depth, start, *, m0=None, replicas=None, record_every=None, noise=True, t_factor=None):
    """One ensemble: full-network SGD from the ``aligned`` or ``random`` start (per-layer scale ``m0^{1/L}/√w``),
    with the measured noise (``noise``)."""
    s = np.asarray(p["s"], np.float64)
    m0 = float(p["m0"] if m0 is None else m0)
    width = len(s) if start == "aligned" else int(p["random_width"])
    m_eff = m0 if start == "aligned" else m0 / math.sqrt(width)
    dt_rec = p["lr"] * (p["record_every"] if record_every is None else record_every)
    t_max = (p["t_factor"] if t_factor is None else t_factor) * tm.learning_time(m_eff, float(s.min()), 1.0, depth)
    n_rec = math.ceil(t_max / dt_rec)
    init = ({"kind": "aligned", "scale": m0, "hidden_basis": "random"} if start == "aligned" else
            {"kind": "gaussian", "scale": m0 ** (1.0 / depth) / math.sqrt(width)})
    cfg = network_config(s=s, depth=depth, width=width, label_noise=p["label_noise"], lr=p["lr"],
                         batch_size=p["batch_size"], t_max=n_rec * dt_rec, n_times=n_rec + 1,
                         replicas=p["replicas"] if replicas is None else replicas,
                         seed=100 * int(p["seed"]) + 10 * depth + (start == "random") + 5 * (not noise), init=init,
                         observables=("mode_strength", "singular_values", "loss"))
    extra = [sampled_noise(int(p["n_samples"]), int(p["seed"]))] if noise else None
    return simulate(cfg, observables=extra, progress=False)


def peak_time(t, y, frac, window):
    """The time of the maximum of ``y`` (positive, noisy): a cubic fitted to ``log y`` on the records around the
    maximum of its ``window``-record moving average where that average is ≥ ``frac`` of its maximum."""
    sm = np.convolve(y, np.ones(window) / window, mode="same")
    sm[: window // 2] = sm[len(y) - window // 2:] = -np.inf  # edges: incomplete windows
    i0 = int(np.argmax(sm))
    above = sm >= frac * sm[i0]
    lo = i0 - int(np.argmin(above[i0::-1])) + 1 if not above[: i0 + 1].all() else 0
    hi = i0 + int(np.argmin(above[i0:])) - 1 if not above[i0:].all() else len(y) - 1
    if hi - lo < 4:
        return float(t[i0])
    x = t[lo:hi + 1] - t[i0]
    c = np.polyfit(x, np.log(np.maximum(y[lo:hi + 1], np.finfo(float).tiny)), 3)
    r = np.roots(np.polyder(c))
    r = r[np.isreal(r)].real
    r = r[(r >= x[0]) & (r <= x[-1]) & (np.polyval(np.polyder(c, 2), r) < 0)]
    return float(t[i0] + (r[np.argmin(np.abs(r))] if r.size else 0.0))


def peaks(ds, p, kind):
    """``(t_peak, m_peak, t_learned)`` per replica and mode, searched from the first record with
    ``m ≥ search_from · s`` (before that, the layer direction of a mode that has not escaped is dominated by the other
    modes' gradients, leaking through the off-diagonal weights SGD creates, §6) to the first with ``m`` at the
    pre-learning level (``(1 − ε)s``; with label noise the local minimum ``m_+`` of ``m^p D(m)``, §7.3)."""
    s = np.asarray(p["s"], np.float64)
    t, m = ds.t.values, ds.mode_strength.values
    y = ds.sampled_noise_power.values if kind == "function" else ds.sampled_layer_noise.values.mean(axis=2)
    level = 0.99 * s
    if p["label_noise"] > 0:
        plus = np.array([tm.peak_roots(x, 1.0, p["label_noise"], tm.peak_exponent(ds.sizes["layer"], kind))[1]
                         for x in s])
        level = np.where(np.isfinite(plus), np.minimum(plus, level), level)
    learned = stats.first_hit_time(t, m, 0.99 * s).time
    begin = stats.first_hit_time(t, m, p["search_from"] * s).time
    end = stats.first_hit_time(t, m, level).time
    R, k = m.shape[0], len(s)
    tp, mp = np.full((R, k), np.nan), np.full((R, k), np.nan)
    for r in range(R):
        for j in range(k):
            a = 0 if np.isnan(begin[r, j]) else int(np.searchsorted(t, begin[r, j]))
            n = len(t) if np.isnan(end[r, j]) else int(np.searchsorted(t, end[r, j])) + 1
            if n - a > 2 * p["peak_window"] and np.all(np.isfinite(y[r, a:n, j])):
                tp[r, j] = peak_time(t[a:n], y[r, a:n, j], p["peak_frac"], p["peak_window"])
                mp[r, j] = np.interp(tp[r, j], t, m[r, :, j])
    return tp, mp, learned


def _median(x, seed, censored=False):
    x = np.asarray(x, np.float64)
    return stats.bootstrap_quantile(x if censored else x[np.isfinite(x)], censored=censored, seed=seed)


def peak_claims(ds, p, depth, start, fs):
    """Aligned start: ``m_peak`` and ``t_peak`` against the closed forms (measured). Random start: the peak comes
    before learning and in saddle order ([C]: qualitatively; ``beyond``: the aligned closed forms make no
    quantitative claim there, their values are in the notes)."""
    s, m0, sig = np.asarray(p["s"], np.float64), float(p["m0"]), float(p["label_noise"])
    rows, rec = [], p["lr"] * p["record_every"]
    for kind in KINDS:
        tp, mp, learned = peaks(ds, p, kind)
        pe = tm.peak_exponent(depth, kind)
        for j, sj in enumerate(s):
            tag = setting(start=start, L=depth, kind=kind, mode=j + 1)
            mstar = tm.peak_strength(sj * fs, depth, kind, 1.0, sig)
            note = (f"s = {sj:g}, p = {pe:.3g}, σ_ε = {sig:g}, η = {p['lr']:g}, B = {p['batch_size']}, "
                    f"{tp.shape[0]} replicas ({int(np.isfinite(tp[:, j]).sum())} with a peak fit, "
                    f"{int(np.isnan(learned[:, j]).sum())} never learned), noise from {p['n_samples']} fresh samples "
                    f"every {rec:g}; median m(t_peak) = {np.nanmedian(mp[:, j]):.4g} (m* = {mstar:.4g})")
            if start == "random":
                rows.append(row(NAME, "peak_before_learning", tag, "without alignment or balance the diffusion along "
                                "a mode still peaks before the mode is learned (§10 E4)", "median t_0.99 − t_peak",
                                math.nan, _median(learned[:, j] - tp[:, j], p["seed"], censored=True),
                                Tolerance.above(0.0, why="qualitative claim: the peak precedes learning"),
                                kind="beyond", note=note))
                if j:
                    rows.append(row(NAME, "peak_order", tag, "without alignment the peaks come in saddle order",
                                    f"median t_peak(mode {j + 1}) − t_peak(mode {j})", math.nan,
                                    _median(tp[:, j] - tp[:, j - 1], p["seed"]),
                                    Tolerance.above(0.0, why="qualitative claim: the stronger mode peaks first"),
                                    kind="beyond", note=note))
                continue
            h = step_ratio(p["lr"], depth, 1.0, sj)
            rows.append(row(NAME, "m_peak", tag, "the diffusion along a mode peaks at m* = ps/(p+2) (m_− with label "
                            "noise), before the mode is learned (§7.2–7.3)", "median m_α(t_peak) of the measured "
                            "minibatch noise", mstar, _median(mp[:, j], p["seed"]),
                            Tolerance.within(relative=p["peak_tol"], why="cubic-fit bias ≤ 0.5 % on the exact curve "
                                             "and SGD's O(h) effects"), note=note))
            rows.append(row(NAME, "t_peak", tag, "the peaks come at the gradient-flow times t*, in saddle order (§7.2)",
                            "median t_peak", tm.peak_time(m0, sj * fs, 1.0, depth, kind, sig),
                            _median(tp[:, j], p["seed"]),
                            Tolerance.within(absolute=rec, relative=p["time_tol"], why="one record interval, and SGD's "
                                             f"noise-induced delay of the escape, O(h) (h = {h:.3g}; ≈ 1 % measured)"),
                            note=note))
    return rows


def sequence_claims(ds, p, depth, fs):
    """Plateau levels of random-start SGD against the saddle losses (``saddle_to_saddle.md`` §6.2); the run starts
    small enough (``sequence_m0``) for the plateaus to be flat."""
    s = np.asarray(p["s"], np.float64)
    table = plateau_table(ds)
    K = len(s)
    counts = table.groupby("replica").size()
    full = counts.index[counts == K + 1]
    order = table[table.replica.isin(full) & (table.plateau < K)].groupby("replica")["learned_mode"].apply(tuple)
    in_order = int(sum(o == tuple(range(1, K + 1)) for o in order))
    note = (f"{len(full)} of {ds.sizes['replica']} replicas with {K + 1} plateaus ({in_order} learning the modes in "
            f"GF order 1..{K}); plateau loss: median over its core")
    rows = []
    for k in range(K):
        loss = table[table.replica.isin(full) & (table.plateau == k)]["loss"].to_numpy()
        rows.append(row(NAME, "plateau_loss", setting(start="random", L=depth, plateau=k), "SGD keeps the GF saddle "
                        "sequence: its k-th plateau is the saddle with the k strongest modes learned",
                        f"loss on plateau {k}", ss.saddle_loss(k, s * fs, 1.0, p["label_noise"]),
                        _median(loss, p["seed"]),
                        Tolerance.within(relative=p["plateau_tol"], why="the unlearned modes grow from their finite "
                                         "init during a plateau (Errata 10), and SGD's fluctuations"), note=note))
    return rows


def _figure(out, p, runs):
    fig, axes = figures.subplots(2, len(runs) // 2, figsize=(3.6 * (len(runs) // 2), 5.6), squeeze=False)
    for i, ((L, start), ds) in enumerate(sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0]))):
        ax, t = axes[i // (len(runs) // 2), i % (len(runs) // 2)], ds.t.values
        y = ds.sampled_noise_power.values
        for j, sj in enumerate(p["s"]):
            med = np.median(y[:, :, j], axis=0)
            ax.plot(t, med / med.max(), color=f"C{j}", lw=1.0, label=f"s = {sj:g}")
            ax.plot(t, np.median(ds.mode_strength.values[:, :, j], axis=0) / sj, color=f"C{j}", ls=":", lw=0.8)
            ax.axvline(tm.peak_time(p["m0"], sj, 1.0, L, "function"), color=f"C{j}", ls="--", lw=0.6)
        ax.set(title=f"{start} start, L = {L}", xlabel="t", xlim=(0, t[-1]))
    axes[0, 0].legend(fontsize=7)
    return Figure(figures.save(fig, out, "diffusion_peak"),
                  "Measured function-space minibatch noise along each teacher mode (median over replicas, normalised; "
                  "solid) and m_α/s_α (dotted), for the aligned-balanced (top) and random small (bottom) starts; "
                  "dashed: the gradient-flow t* of the aligned start. Each mode's noise peaks before the mode is "
                  "learned, in saddle order.")


@register(NAME, paper="C", cost="~1.5 min",
          claim="The diffusion along a mode, measured from the minibatch gradient noise of full-network SGD, is "
                "largest before that mode is learned (at m* = ps/(p+2)), in saddle order, from aligned and from "
                "random small starts; SGD keeps the gradient-flow saddle sequence",
          quick={"depths": [2, 3, 4], "s": [3.0, 2.0, 1.0], "m0": 0.01, "lr": 0.002, "batch_size": 4,
                 "label_noise": 0.0, "replicas": 96, "random_width": 6, "record_every": 8, "n_samples": 1024,
                 "t_factor": 1.3, "search_from": 0.05, "peak_frac": 0.6, "peak_window": 7, "peak_tol": 0.04, "time_tol": 0.03,
                 "sequence_depths": [3], "sequence_m0": [1e-4], "sequence_replicas": 96,
                 "sequence_record_every": 20, "plateau_tol": 0.03, "seed": 0},
          full={"depths": [2, 3, 4], "s": [3.0, 2.0, 1.0], "m0": 0.01, "lr": 0.002, "batch_size": 4,
                "label_noise": 0.0, "replicas": 256, "random_width": 6, "record_every": 4, "n_samples": 2048,
                "t_factor": 1.3, "search_from": 0.05, "peak_frac": 0.6, "peak_window": 11, "peak_tol": 0.03, "time_tol": 0.02,
                "sequence_depths": [3, 4], "sequence_m0": [1e-4, 1e-3], "sequence_replicas": 256,
                "sequence_record_every": 10, "plateau_tol": 0.03, "seed": 0},
          smoke={"depths": [2, 3], "sequence_depths": [3], "sequence_m0": [1e-4]},
          perturbations=(Perturbation("s", 1.1, "teacher singular values × 1.1 in every closed form"),))
def diffusion_peak(p, out):
    fs = factor(p, "s", INPUTS)
    claims, runs = [], {}
    for start in ("aligned", "random"):
        for L in (int(x) for x in p["depths"]):
            runs[(L, start)] = ds = run(p, L, start)
            claims += peak_claims(ds, p, L, start, fs)
    for L, m0 in zip(p["sequence_depths"], p["sequence_m0"], strict=True):
        ds = run(p, int(L), "random", m0=m0, replicas=p["sequence_replicas"], record_every=p["sequence_record_every"],
                 noise=False, t_factor=1.5)
        claims += sequence_claims(ds, p, int(L), fs)
    return ExperimentResult(NAME, claims=claims, figures=[_figure(out, p, runs)])
