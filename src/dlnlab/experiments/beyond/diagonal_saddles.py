"""``diagonal_saddles``: saddle to saddle in diagonal linear networks on sparse regression (issue 16 part 2).

Simulate. Per instance (a Gaussian design ``n × d``, a sparse target, ``regression.seed`` = ``10·seed`` + the
instance; the rows name the instance, so that a row has the same id at every ``seed``), gradient
flow on ``β = u ⊙ v`` (:mod:`dlnlab.engines.regression`, float64, Dopri5 at ``rtol``) from init scales

* ``staircase_alphas`` (the last two are the extrapolation pair ``α``, ``α²``), records log-spaced over the
  staircase, then a few late records up to ``2κ(α_min)t̃_K + 300`` (the last jump ``t̃_K`` of the oracle);
* ``sweep_alphas`` (intermediate scales), run to ``t_sweep``;
* ``large_alphas`` ``a`` (one run each, of the scales ``a·(0.5 … 1)``, as many as the other runs so that one
  compiled program serves all, to ``40/(2(a/2)²λ_min(XXᵀ/n))``: 40 e-folds of the slowest direction).

* gradient descent (``dynamics.kind = "gd"``, the same engine) at the step sizes ``gd_lrs`` = (η, η/2) from the
  extrapolation pair ``α``, ``α²``, on a finer log grid (``gd_n_times`` records over the staircase).

* stochastic gradient descent (``"sgd"``, ``sgd_batch`` of the ``n`` rows per step, ``sgd_replicas`` runs per
  step size, on the first ``sgd_instances`` instances and only when the smaller step needs at most
  ``sgd_max_steps`` steps) at ``sgd_lrs`` = (η, η/2) from ``α``, ``α²``, ``sgd_n_times`` log-spaced records over the
  staircase.

The record grids come from the true oracle only (a perturbed theory never changes a simulation).

Estimate and claims (paper ``PF``: Pesme & Flammarion 2023; ``W``: Woodworth et al. 2020; the oracle
:func:`~dlnlab.theory.sparse_regression.saddle_to_saddle` is our implementation of their α → 0 limit, derived from
the mirror form: see that module):

* ``jump_times`` (PF) — the half-value crossings (:func:`~dlnlab.analysis.regression.jump_times`) rescaled by
  ``κ = ln(1/α)``, extrapolated as the tests do, ``2t̃(α²) − t̃(α)`` (removes the leading ``c/κ`` bias), against
  the oracle's jump times: the largest relative deviation over the jumps, ``at_most`` 2 % (the ``c₂/κ²``
  remainder; measured ≤ 0.8 % over instances 0–11 at α = 1e−24, α² = 1e−48, where 1e−12, 1e−24 left 2.4 %).
  Its error bound is the record bracket of each crossing (the crossing lies inside it), combined as the
  extrapolation combines the times;
* ``gd_jump_times`` (PF; for GD derived) — GD's jump times extrapolated in α as above, then in the step size,
  ``2t̃(η/2) − t̃(η)`` (GD's times move by O(η): 0.3–1.7 % at η = 0.01 alone), against the oracle's, ``at_most``
  2 %; measured ≤ 0.4 % over instances 0–5 and ≤ 0.08 % at the quick preset's seeds 0, 1; its error bound the
  record brackets, combined as the two extrapolations combine the times;
* ``sgd_jump_times`` (PF; for SGD derived) — per run pair (the two step sizes, paired by member) the jump times
  extrapolated in α and then in η, relative to the oracle's, averaged over the runs: ``|mean|`` at the worst jump
  (largest ``|mean| + 2·se``), Student-t with ``R − 1`` degrees of freedom (the record brackets added to the standard
  error in quadrature), ``at_most`` 2 %. Measured with 128 runs of batch 4: |mean| 0.02–0.21 % (se 0.31–0.50 %) on
  instances 0, 3, 20, 30, 40; with 64 runs on 0, 1, 3, 4: 0.36–0.45 % (se 0.27–0.68 %; instance 3 then
  inconclusive); instances 2, 5, 10 not run (2·10⁵ steps exceeded); SGD at η = 0.01 alone is off by 0.7–1.5 %.
  A missed jump makes it (and ``jump_times``, ``gd_jump_times``) fail;
* ``plateau_iterates`` (PF) — the run at the smallest α reaches each saddle ``β_k`` of the oracle between its
  measured jumps ``k`` and ``k + 1``: ``max_k min_t ‖β(t) − β_k‖_∞`` (support and values), ``at_most`` 1e−2 (a
  coordinate leaving the support starts with a zero gradient and decays algebraically at first: 3.3e−3 measured
  at α = 1e−48, instance 10), over the plateaus of rescaled length ≥ ``min_plateau`` = 0.3 (≈ 30/κ): on shorter
  ones the run has no time to settle at finite α (instance 22's plateau of length 0.029: 6.2e−2 at α = 1e−24,
  1.4e−2 at 1e−48; instance 12's of 0.145: 7.6e−2 → 2.9e−2 — shrinking towards the limit); the supports at the
  plateau midpoints
  (:func:`~dlnlab.analysis.regression.plateau_supports`) in the note;
* ``l1_limit`` (W) — ``‖β(∞) − β_ℓ₁‖_∞`` at the smallest α against the LP solution, on the instances whose last
  jump adds a coordinate (dual margin :func:`final_margin` ≥ ``MARGIN``): when it drops one, that coordinate's
  dual stays at ±1 with a zero gradient and it decays algebraically (instance 10: 2.7e−3 at t = 1e5, falling
  like 1/t), so no finite run reaches 1e−6 — the row is then ``not applicable`` (the margin is in the notes);
  ``l2_limit`` (W) — at the
  largest α against ``X⁺y``; ``implicit_bias`` (W) — at the ``bias_alphas`` against ``argmin φ_α`` s.t. ``Xβ = y``
  (:func:`~dlnlab.theory.sparse_regression.implicit_bias_solution`): each ``at_most`` 1e−6 (the issue's bar).
  Their error bound: the last record-to-record motion (the remaining convergence) plus the solver's tolerance.

Figures: the staircase (training loss against ``t/κ`` at each α, with the oracle's plateaus), the support sequence
(``|β_i|`` against ``t/κ`` and the oracle's jumps) and the test error ``½‖β(∞) − β*‖²`` against α (with the
ℓ₁ and ℓ₂ interpolators' errors).

Power: ``perturb = {y = 1.05}`` computes every theory value from labels × 1.05 (jump times / 1.05, saddles and
limits × 1.05 for the LP and least-norm solutions).
"""

from __future__ import annotations

import itertools

import numpy as np

from ... import figures
from ...analysis.regression import jump_times, plateau_supports
from ...analysis.stats import Estimate
from ...engines import regression_config, simulate
from ...model.regression import RegressionTask
from ...theory import sparse_regression as sr
from ..base import ExperimentResult, Figure, Perturbation, register, theory_factors
from ..claims import Tolerance
from ._common import row

NAME = "diagonal_saddles"
INPUTS = ("y",)
#: the smallest dual margin (:func:`final_margin`) at which the ℓ₁ limit is held to 1e−6 at the last record
MARGIN = 0.02
LIMIT_BUDGET = Tolerance.at_most(absolute=1e-6, why="the issue's bar for the limit solutions (their own error is "
                                 "α-dependent: off the ℓ₁ support ~α^{2(1−|ŝ_i|)}, ℓ₂ deviation O(α^−4))")


def _task(p, instance):
    return RegressionTask(n_samples=int(p["n"]), d=int(p["d"]), sparsity=len(p["target"]),
                          target=tuple(float(x) for x in p["target"]), seed=int(instance))


def _flow(task, alphas, times, p):
    cfg = regression_config(task, init_scale=[float(a) for a in alphas], times=[float(x) for x in times],
                            rtol=float(p["rtol"]))
    return simulate(cfg, progress=False)


def _sgd_runs(task, p, t0, t_end):
    """SGD at each of ``sgd_lrs`` from the extrapolation pair ``α``, ``α²`` (``sgd_replicas`` runs each), recorded at
    ``sgd_n_times`` log-spaced times over the staircase; ``{}`` when the smaller step would need more than
    ``sgd_max_steps`` steps (the row is then not applicable)."""
    if t_end / min(p["sgd_lrs"]) > float(p["sgd_max_steps"]):
        return {}
    alphas = [float(a) for a in p["staircase_alphas"][-2:]]
    times = [float(x) for x in np.geomspace(t0, t_end, int(p["sgd_n_times"]))]
    return {float(lr): simulate(regression_config(task, dynamics="sgd", init_scale=alphas, lr=float(lr),
                                                  batch_size=int(p["sgd_batch"]), replicas=int(p["sgd_replicas"]),
                                                  times=times, **{"ensemble.seed": task.seed}), progress=False)
            for lr in p["sgd_lrs"]}


def simulate_instance(task, p, with_sgd=True):
    """The flow, GD and SGD runs of one instance and its true oracle (which sets their record grids)."""
    data = task.data()
    seq = sr.saddle_to_saddle(data.X, data.y)
    alphas = np.asarray(p["staircase_alphas"], np.float64)
    kap = sr.time_scale(alphas)
    n = int(p["n_times"])
    t_end = float(kap.max() * seq.times[-1] * 1.3 + 30)
    times = np.geomspace(0.5 * kap.min() * seq.times[1], t_end, n - 4)
    late = np.geomspace(t_end * 1.2, 2 * kap.max() * seq.times[-1] + 300, 4)
    stair = _flow(task, alphas, np.concatenate([times, late]), p)
    gd_times = np.concatenate([np.geomspace(times[0], times[-1], int(p["gd_n_times"])), late])  # finer brackets
    gd = {float(lr): simulate(regression_config(task, dynamics="gd", init_scale=[float(a) for a in alphas[-2:]],
                                                lr=float(lr), times=[float(x) for x in gd_times]), progress=False)
          for lr in p["gd_lrs"]}
    sgd = _sgd_runs(task, p, times[0], t_end) if with_sgd else {}
    sweep = _flow(task, p["sweep_alphas"], np.geomspace(1e-2, float(p["t_sweep"]), n), p)
    rate = float(np.linalg.eigvalsh(data.X @ data.X.T / task.n_samples).min())
    spread = np.geomspace(0.5, 1.0, len(alphas))  # as many replicas as the other runs: one compiled program
    large = [_flow(task, a * spread, np.geomspace(1e-6, 40 / (2 * (0.5 * a) ** 2 * rate), n), p)
             for a in p["large_alphas"]]
    return {"task": task, "data": data, "seq": seq, "stair": stair, "gd": gd, "sgd": sgd, "sweep": sweep,
            "large": large}


def _limit_estimate(ds, r, target, rtol):
    """``‖β(end) − target‖_∞`` with the last record-to-record motion plus ``10·rtol·‖β‖_∞`` as its error bound."""
    b = ds.beta.values[r]
    moved = float(np.abs(b[-1] - b[-2]).max())
    return Estimate.exact(float(np.abs(b[-1] - target).max()), moved + 10 * rtol * float(np.abs(b[-1]).max()))


def extrapolated_jumps(ds, rows, alphas, seq):
    """The rescaled jump times ``t̃`` of the runs ``rows = (r₁, r₂)`` of ``ds`` (init scales ``α``, ``α²``),
    extrapolated ``2t̃(α²) − t̃(α)`` (removes the leading ``c/κ`` bias), with the error bound of each: the record
    bracket of every crossing, combined as the extrapolation combines the times. Also ``t̃(α²)``."""
    t = ds.t.values
    kap = sr.time_scale(np.asarray(alphas, np.float64))
    j1, j2 = (jump_times(t, ds.beta.values[r], seq, k) for r, k in zip(rows, kap, strict=True))
    width = lambda tj, k: np.diff(t)[np.clip(np.searchsorted(t, tj * k) - 1, 0, len(t) - 2)] / k
    return 2 * j2 - j1, 2 * width(j2, kap[1]) + width(j1, kap[0]), j2


def _worst(times, bound, seq):
    """``max_k |times_k/t̃_k − 1|`` over the oracle's jumps (infinite if a jump was missed: the row fails) and its
    error bound."""
    rel = np.abs(times / seq.times[1:] - 1)
    worst = int(np.nanargmax(rel)) if np.any(np.isfinite(rel)) else 0
    value = float(np.nanmax(rel)) if np.all(np.isfinite(rel)) else np.inf
    return value, float(bound[worst] / seq.times[1:][worst])


def _staircase_claims(sim, p, fy, inst):
    data, seq_true, ds = sim["data"], sim["seq"], sim["stair"]
    seq = sr.saddle_to_saddle(data.X, fy * data.y)
    alphas = np.asarray(p["staircase_alphas"], np.float64)
    kap = sr.time_scale(alphas)
    t = ds.t.values
    (r1, a1), (r2, a2) = [(len(alphas) - 2, alphas[-2]), (len(alphas) - 1, alphas[-1])]
    extrap, bound, j2 = extrapolated_jumps(ds, (r1, r2), alphas[-2:], seq)
    value, err = _worst(extrap, bound, seq)
    rows = [row(NAME, "jump_times", paper="PF", claim="the jump times of gradient flow from α → 0, rescaled by "
                "ln(1/α), are the incremental algorithm's (Pesme & Flammarion 2023)",
                quantity="max over jumps of |(2t̃(α²) − t̃(α))/t̃_k − 1|", theory=0.0,
                estimate=Estimate.exact(value, err),
                tolerance=Tolerance.at_most(absolute=0.02, why="the O(1/ln²(1/α)) remainder of the extrapolation "
                                            "(measured ≤ 0.8 % on instances 0–11)"),
                note=f"α = {a1:g}, α² = {a2:g}; {len(seq.times) - 1} jumps at t̃ = "
                     f"{', '.join(f'{x:.4g}' for x in seq.times[1:])}; raw deviation at α² "
                     f"{np.nanmax(np.abs(j2 / seq.times[1:] - 1)):.2%}; final dual margin {final_margin(seq_true):.3g} "
                     f"(l1_limit row when ≥ {MARGIN:g}); oracle: the algorithm as implemented (derived from the "
                     "mirror form)", instance=inst)]
    b = ds.beta.values[r2]
    edges = np.concatenate([[0.0], kap[r2] * np.nan_to_num(j2, nan=np.inf)])
    long = np.diff(seq.times) >= float(p["min_plateau"])
    dist = max(float(np.abs(b[(t >= lo) & (t <= hi)] - seq.iterates[k]).max(axis=1).min(initial=np.inf))
               for k, (lo, hi) in enumerate(itertools.pairwise(edges)) if long[k])
    supp = plateau_supports(t, b, seq_true, kap[r2])
    same = sum(np.array_equal(a, c) for a, c in zip(supp, seq_true.supports[:-1]))
    rows.append(row(NAME, "plateau_iterates", paper="PF", claim="between jumps the flow sits at the algorithm's "
                    "saddles: the same supports and values (Pesme & Flammarion 2023)",
                    quantity="max over plateaus k of min over the run between jumps k and k + 1 of ‖β − β_k‖_∞",
                    theory=0.0, estimate=Estimate.exact(dist, 10 * float(p["rtol"]) * float(np.abs(b).max())),
                    tolerance=Tolerance.at_most(absolute=1e-2, why="finite-α remainder: a coordinate leaving the "
                                                "support decays algebraically at first (its gradient starts at 0; "
                                                "measured up to 3.5e−3 at α = 1e−48 on instance 10)"),
                    note=f"α = {a2:g}; {int((~long).sum())} plateaus shorter than t̃ = {p['min_plateau']:g} "
                         f"left out; supports at the plateau midpoints equal to the oracle's at {same} of "
                         f"{len(supp)} plateaus; "
                         f"supports: {[list(map(int, s)) for s in seq_true.supports]}", instance=inst))
    return rows


def _gd_claims(sim, p, fy, inst):
    """Gradient descent at the step sizes ``gd_lrs = (η, η/2)`` from ``α``, ``α²``: the α-extrapolated jump times,
    extrapolated again in η (``2t̃(η/2) − t̃(η)``: GD's jump times move by O(η)) against the oracle's."""
    seq = sr.saddle_to_saddle(sim["data"].X, fy * sim["data"].y)
    alphas = np.asarray(p["staircase_alphas"], np.float64)[-2:]
    (eta, ds), (half, ds2) = sorted(sim["gd"].items(), reverse=True)
    (e1, b1, _), (e2, b2, _) = (extrapolated_jumps(d, (0, 1), alphas, seq) for d in (ds, ds2))
    value, err = _worst(2 * e2 - e1, 2 * b2 + b1, seq)
    raw, _ = _worst(e2, b2, seq)
    return [row(NAME, "gd_jump_times", paper="PF", claim="gradient descent goes through the same saddles at the same "
                "rescaled times as the flow: its jump times, extrapolated in α and then in the step size, are the "
                "incremental algorithm's (Pesme & Flammarion 2023; GD: derived)",
                quantity="max over jumps of |(2t̃(η/2) − t̃(η))/t̃_k − 1|, each t̃ extrapolated in α as jump_times",
                theory=0.0, estimate=Estimate.exact(value, err),
                tolerance=Tolerance.at_most(absolute=0.02, why="jump_times' budget (the η extrapolation removes "
                                            "GD's O(η) shift: measured ≤ 0.4 % on instances 0–5)"),
                note=f"η = {eta:g}, {half:g}; α = {alphas[0]:g}, {alphas[1]:g}; at η = {half:g} alone the deviation is "
                     f"{raw:.2%}", instance=inst)]


def _sgd_claims(sim, p, fy, inst):
    """SGD (``sgd_batch`` of the ``n`` rows per step, ``sgd_replicas`` runs per step size) at ``sgd_lrs = (η, η/2)``
    from ``α``, ``α²``: each run pair's α-extrapolated jump times, extrapolated in η by pairing the runs of the two
    step sizes by member (``2t̃(η/2) − t̃(η)``: the mean shift is O(η), as GD's), relative to the oracle's; the mean
    over the pairs with its Student-t error (``R − 1`` degrees of freedom; the record brackets added to the standard
    error in quadrature, as a one-sigma term) at the jump with the largest ``|mean| + 2·se``."""
    seq = sr.saddle_to_saddle(sim["data"].X, fy * sim["data"].y)
    alphas = np.asarray(p["staircase_alphas"], np.float64)[-2:]
    if not sim["sgd"]:
        return [_sgd_row(Estimate.exact(np.nan), p, inst, f"not applicable: not run (η = {min(p['sgd_lrs']):g} "
                         f"would need more than {p['sgd_max_steps']:g} steps)")]
    per_lr = {}
    for lr, ds in sim["sgd"].items():
        scale, member = ds.init_scale.values, ds.member.values
        pairs = [extrapolated_jumps(ds, tuple(int(np.flatnonzero((member == m) & (scale == a))[0]) for a in alphas),
                                    alphas, seq) for m in np.unique(member)]
        per_lr[lr] = np.array([e for e, _, _ in pairs]), np.array([b for _, b, _ in pairs])
    (eta, (e1, b1)), (half, (e2, b2)) = sorted(per_lr.items(), reverse=True)
    rel = (2 * e2 - e1) / seq.times[1:] - 1  # (pairs, jumps)
    n = rel.shape[0]
    if np.all(np.isfinite(rel)):
        mean = rel.mean(axis=0)
        se = np.hypot(rel.std(axis=0, ddof=1) / np.sqrt(n), (2 * b2 + b1).max(axis=0) / seq.times[1:])
        k = int(np.argmax(np.abs(mean) + 2 * se))
        estimate, raw = Estimate.student(abs(mean[k]), se[k], n - 1, n=n), np.abs(e2.mean(axis=0) / seq.times[1:] - 1)
        detail = f"worst at jump {k + 1} (mean {mean[k]:+.2%}); at η = {half:g} alone up to {raw.max():.2%}"
    else:
        missed = int((~np.isfinite(rel)).any(axis=1).sum())
        estimate, detail = Estimate.exact(np.inf), f"{missed} of {n} pairs missed a jump (the row fails)"
    return [_sgd_row(estimate, p, inst, f"η = {eta:g}, {half:g}; α = {alphas[0]:g}, {alphas[1]:g}; {detail}")]


def _sgd_row(estimate, p, inst, note):
    return row(NAME, "sgd_jump_times", paper="PF", claim="stochastic gradient descent goes through the same saddles "
                "at the same rescaled times as the flow: its jump times, extrapolated in α and in the step size and "
                "averaged over runs, are the incremental algorithm's (Pesme & Flammarion 2023; SGD: derived)",
                quantity="|mean over runs of (2t̃(η/2) − t̃(η))/t̃_k − 1| at the worst jump k, each t̃ extrapolated in "
                         "α as jump_times", theory=0.0, estimate=estimate,
                tolerance=Tolerance.at_most(absolute=0.02, why="jump_times' budget (the η extrapolation removes the "
                                            "O(η) mean shift of SGD's jumps)"),
                note=f"batch {p['sgd_batch']} of n = {p['n']}; {p['sgd_replicas']} runs per step size; {note}",
                instance=inst)


def final_margin(seq) -> float:
    """``1 − max |s̃_i|`` off the support of the algorithm's last saddle: 0 when its last jump dropped a coordinate
    (whose dual stays at ±1 with a zero gradient, so at finite α it decays algebraically, not exponentially)."""
    off = np.setdiff1d(np.arange(seq.iterates.shape[1]), seq.supports[-1])
    return float(1 - np.abs(seq.duals[-1][off]).max()) if len(off) else 1.0


def _limit_claims(sim, p, fy, inst):
    data, rtol = sim["data"], float(p["rtol"])
    y = fy * data.y
    alphas, ds = p["staircase_alphas"], sim["stair"]
    rows, margin = [], final_margin(sim["seq"])
    if margin >= MARGIN:
        l1 = _limit_estimate(ds, len(alphas) - 1, sr.min_l1_interpolator(data.X, y), rtol)
        why = f"dual margin {margin:.3g}"
    else:  # the row exists at every draw (a stable id), not applicable at this one
        l1 = Estimate.exact(np.nan)
        why = (f"not applicable: dual margin {margin:.3g} < {MARGIN:g} (the last jump drops a coordinate, which "
               "then decays algebraically: the limit is not reached within the run)")
    rows.append(row(NAME, "l1_limit", paper="W", claim="as α → 0 the flow's limit is the minimum-ℓ₁ "
                    "interpolator (Woodworth et al. 2020)", quantity="‖β(∞) − argmin{‖β‖₁ : Xβ = y}‖_∞ (LP)",
                    theory=0.0, estimate=l1, tolerance=LIMIT_BUDGET,
                    note=f"α = {alphas[-1]:g}, t = {ds.t.values[-1]:.4g}; {why}", instance=inst))
    big = sim["large"][-1]
    rows.append(row(NAME, "l2_limit", paper="W", claim="as α → ∞ the flow's limit is the minimum-ℓ₂ interpolator "
                    "(Woodworth et al. 2020)", quantity="‖β(∞) − X⁺y‖_∞", theory=0.0,
                    estimate=_limit_estimate(big, -1, sr.min_l2_interpolator(data.X, y), rtol),
                    tolerance=LIMIT_BUDGET, note=f"α = {p['large_alphas'][-1]:g}, t = {big.t.values[-1]:.4g}",
                    instance=inst))
    for a in p["bias_alphas"]:
        r = list(p["sweep_alphas"]).index(a)
        target = sr.implicit_bias_solution(data.X, y, float(a))
        rows.append(row(NAME, "implicit_bias", paper="W", claim="at every α the flow's limit minimises Woodworth's "
                        "φ_α among the interpolators (Woodworth et al. 2020)",
                        quantity="‖β(∞) − argmin{φ_α(β) : Xβ = y}‖_∞", theory=0.0,
                        estimate=_limit_estimate(sim["sweep"], r, target, rtol), tolerance=LIMIT_BUDGET,
                        note=f"t = {sim['sweep'].t.values[-1]:.4g}", instance=inst, alpha=float(a)))
    return rows


def _test_errors(sim):
    """``(α, ½‖β(end) − β*‖²)`` over every run of the instance, sorted by α."""
    pairs = []
    for ds in [sim["stair"], sim["sweep"], *sim["large"]]:
        err = 0.5 * np.sum((ds.beta.values[:, -1] - ds.beta_star.values) ** 2, axis=1)
        pairs += list(zip(ds.init_scale.values, err))
    return np.array(sorted(pairs))


def _figure(out, p, sim):
    data, seq, ds = sim["data"], sim["seq"], sim["stair"]
    alphas = np.asarray(p["staircase_alphas"], np.float64)
    kap = sr.time_scale(alphas)
    fig, ax = figures.subplots(1, 3, figsize=(13.0, 3.6))
    t = ds.t.values
    for r, a in enumerate(alphas):
        ax[0].semilogy(t / kap[r], ds.train_loss.values[r], color=f"C{r}", label=f"α = {a:g}")
    ax[0].step(np.append(seq.times, seq.times[-1] * 1.3), np.append(seq.losses, seq.losses[-1]) + 1e-300,
               "k--", where="post", lw=0.9, label="α → 0 algorithm")
    ax[0].set(xlim=(0, 1.3 * seq.times[-1]), ylim=(1e-8, None), xlabel="t / ln(1/α)", ylabel="training loss",
              title="staircase")
    ax[0].legend(fontsize=7)
    b = np.abs(ds.beta.values[-1])
    for i in range(b.shape[1]):
        ax[1].semilogy(t / kap[-1], b[:, i] + 1e-300, lw=1.0, label=f"β_{i}" if b[-1, i] > 1e-6 else None)
    for tj in seq.times[1:]:
        ax[1].axvline(tj, color="k", ls=":", lw=0.7)
    ax[1].set(xlim=(0, 1.3 * seq.times[-1]), ylim=(1e-12, 10), xlabel="t / ln(1/α)", ylabel="|β_i|",
              title=f"support sequence, α = {alphas[-1]:g}")
    ax[1].legend(fontsize=7)
    errs = _test_errors(sim)
    ax[2].loglog(errs[:, 0], errs[:, 1], "o-")
    for sol, name, c in ((sr.min_l1_interpolator(data.X, data.y), "min-ℓ₁ (LP)", "C1"),
                         (sr.min_l2_interpolator(data.X, data.y), "min-ℓ₂", "C2")):
        ax[2].axhline(0.5 * np.sum((sol - data.beta_star) ** 2) + 1e-300, color=c, ls="--", label=name)
    ax[2].set(xlabel="init scale α", ylabel="test error ½‖β(∞) − β*‖²", title="test error vs α")
    ax[2].legend(fontsize=7)
    return Figure(figures.save(fig, out, "diagonal_saddles"),
                  f"Diagonal network β = u ⊙ v on sparse regression (n = {p['n']}, d = {p['d']}, data seed "
                  f"{sim['task'].seed}): training loss against t/ln(1/α) approaching the α → 0 algorithm's staircase; "
                  "the coordinates entering and leaving the support at the algorithm's jumps (dotted); the test error "
                  "of the limit falls from the min-ℓ₂ interpolator's (large α) to the min-ℓ₁ one's (α → 0).")


def instances(p):
    """The instance seeds of a preset: ``instances`` shifted by ``10·seed``."""
    return [10 * int(p["seed"]) + int(i) for i in p["instances"]]


_BASE = {"n": 5, "d": 8, "target": [1.5, -1.0], "staircase_alphas": [1e-3, 1e-6, 1e-24, 1e-48],
         "sweep_alphas": [0.03, 0.1, 0.3, 1.0], "bias_alphas": [0.3, 1.0], "large_alphas": [3.0, 100.0],
         "t_sweep": 3000.0, "n_times": 2000, "min_plateau": 0.3, "rtol": 1e-10, "gd_lrs": [0.02, 0.01], "gd_n_times": 12000,
         "sgd_lrs": [0.02, 0.01], "sgd_batch": 4, "sgd_replicas": 128, "sgd_n_times": 24000,
         "sgd_max_steps": 200_000, "sgd_instances": 1, "seed": 0}


@register(NAME, paper="PF", cost="40–90 s under load (quick, 3 instances)",
          claim="Diagonal networks on sparse regression go saddle to saddle as α → 0 (jump times and saddles of the "
                "incremental algorithm), and their limit moves from the min-ℓ₂ to the min-ℓ₁ interpolator",
          quick={**_BASE, "instances": [0, 1, 2]}, full={**_BASE, "instances": list(range(8)), "n_times": 4000, "sgd_instances": 8},
          smoke={"instances": [0]},
          perturbations=(Perturbation("y", 1.05, "labels × 1.05 in the algorithm and the limit solutions"),))
def diagonal_saddles(p, out):
    fy = theory_factors(p, INPUTS)["y"]
    claims, first = [], None
    for i, inst in zip(p["instances"], instances(p), strict=True):  # rows name the preset's instance, not its seed
        with_sgd = int(i) < int(p["sgd_instances"])
        sim = simulate_instance(_task(p, inst), p, with_sgd)
        first = first or sim
        claims += [*_staircase_claims(sim, p, fy, int(i)), *_gd_claims(sim, p, fy, int(i)),
                   *(_sgd_claims(sim, p, fy, int(i)) if with_sgd else []), *_limit_claims(sim, p, fy, int(i))]
    return ExperimentResult(NAME, claims=claims, figures=[_figure(out, p, first)])

