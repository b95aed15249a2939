"""B8 (issue 18 item 2, which calls it B7; B7 is the CLI start-up workload of issue 17): the cost of an online-SGD
step per replica-step across sizes — width w (L = 3, B = 32, d = w), replicas R (w = 30) and depth L (w = 30) — for dlnlab and, at every point, hand-batched NumPy (stacked
``np.matmul``; :func:`~._baselines.numpy_batched_sgd`) and batched PyTorch (one ``bmm`` chain;
:func:`~._baselines.torch_batched_sgd`, when torch is installed).

Reported per point: seconds per replica-step of each, the ratio fastest alternative ÷ dlnlab, and dlnlab's FLOP
rate (:func:`~._flops.sgd_step_flops`) as a fraction of the machine's float64 GEMM rate (:func:`~._flops.gemm_rate`).
Fitted: the exponent of the per-step cost in w over the widths ≥ ``b8_fit_width`` (2 once GEMM-bound) and of the
total cost in R over R ≥ ``b8_fit_replicas`` (1 past cache), by least squares on the logs. Checks: the smallest
and the median ratio over every point (targets ≥ 1× and ≥ 1.5×), and the largest exponent in R of the engine scan
(:mod:`._replica_scan`; target < 1.15: cost per replica-step flat in R).

Alternatives (``_alternatives``): stacked-matmul NumPy; JAX written the obvious way (one replica's jitted step
in a Python loop over replicas and steps; the size's ``b8_jax_loop``); batched PyTorch with closed-form gradients
(``bmm`` chain), with autograd, and the closed-form step under ``torch.compile`` (``b8_torch_compile``; compilation
is in the warm-up, reported as ``warmup_s``).
"""

from __future__ import annotations

import numpy as np

from ._baselines import jax_per_replica_sgd, numpy_batched_sgd, population_loss_np, torch_batched_sgd
from ._engine import whole_run
from ._flops import gemm_rate, sgd_step_flops
from ._machine import blas_threads, have, timed_together
from ._replica_scan import engine_scan, log_slope
from ._spec import TARGETS, check

B8_BATCH, B8_DEPTH, B8_WIDTH = 32, 3, 30


def b8_config(width: int, replicas: int, depth: int, steps: int, precision: str = "float64"):
    """Online SGD, d = width, B = 32, a random teacher of rank min(d, 10), lr 0.2 / (L w) (stable), no observable
    recorded (the steps alone are timed; :func:`b8_point`)."""
    from ..config import Config

    return Config.from_dict({
        "teacher": {"d_in": width, "d_out": width, "spectrum": "geometric", "rank": min(width, 10), "s_max": 3.0,
                    "ratio": 0.7},
        "network": {"depth": depth, "width": width},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.2 / (depth * width), "batch_size": B8_BATCH, "steps": steps,
                     "precision": precision},
        "record": {"n_times": 2, "spacing": "linear", "observables": []},
        "ensemble": {"replicas": replicas, "seed": 0},
    })


def _alternatives(size: dict) -> dict:
    """Name → ``(run(w0, M, S_half, lr, steps), max_replicas)``: ``run`` returns the final weights;
    ``max_replicas`` (None: all) caps the replicas a sequential alternative is timed on, its time then scaled to
    the ensemble. For the alternatives this size runs, in its ``precision``: stacked-matmul NumPy always (on the
    CPU); JAX per replica (``b8_jax_loop``; JAX's default device; a loop over replicas, timed on at most
    ``b8_jax_loop_replicas``); batched PyTorch eager with closed-form and autograd gradients, and compiled
    (``b8_torch_compile``), when torch is installed (on CUDA when ``size["device"]`` is ``"gpu"``)."""
    B, dt = B8_BATCH, size.get("precision", "float64")
    alts = {"numpy_matmul": (lambda w0, M, S, lr, n: numpy_batched_sgd(w0, M, S, lr, B, n, dtype=dt)[1], None)}
    if size["b8_jax_loop"]:
        alts["jax_per_replica"] = (lambda w0, M, S, lr, n: jax_per_replica_sgd(w0, M, S, lr, B, n, dtype=dt),
                                   size["b8_jax_loop_replicas"])
    if have("torch"):
        tk = {"dtype": dt, "device": "cuda" if size.get("device") == "gpu" else "cpu"}
        alts["torch_bmm"] = (lambda w0, M, S, lr, n: torch_batched_sgd(w0, M, S, lr, B, n, **tk), None)
        alts["torch_autograd"] = (lambda w0, M, S, lr, n: torch_batched_sgd(w0, M, S, lr, B, n, gradients="autograd",
                                                                            **tk), None)
        if size["b8_torch_compile"]:
            alts["torch_compile"] = (lambda w0, M, S, lr, n: torch_batched_sgd(w0, M, S, lr, B, n, compiled=True, **tk),
                                     None)
    return alts


def b8_steps(width: int, replicas: int, depth: int, size: dict) -> int:
    """Steps of a point: enough for ``b8_work_flops`` of work per timed run (so that a run's fixed costs — dispatch,
    the copy of the initial state — are amortised as in a real run), between ``b8_steps`` and ``b8_max_steps``."""
    flops = sgd_step_flops([width] * (depth + 1), B8_BATCH)
    return int(np.clip(np.ceil(size["b8_work_flops"] / (replicas * flops)), size["b8_steps"], size["b8_max_steps"]))


def b8_point(width: int, replicas: int, depth: int, steps: int, repeats: int, alternatives: dict,
             precision: str = "float64") -> dict:
    """One point: seconds per replica-step of dlnlab and each alternative (best of ``repeats`` rounds, each round
    running every one in turn: :func:`~._machine.timed_together`), and the final population losses (all finite).

    Only the steps are timed: no implementation evaluates the population loss inside its timed run; each one's is
    computed afterwards from its final weights by one function (:func:`~._baselines.population_loss_np`). At the
    wide points a run has few steps (``b8_steps``) and the loss costs ``O(L w³)`` against a step's ``O(L B w²)``:
    timed inside the run (as before 2026-12-08), it was ~10 steps' worth at w = 1000 — half the measured time."""
    from ..model import Teacher

    cfg = b8_config(width, replicas, depth, steps, precision)
    run, program = whole_run(cfg)
    w0 = [np.asarray(w) for w in program.init().weights]
    teacher = Teacher.from_config(cfg)
    M, S_half, lr = teacher.M, teacher.input_cov_sqrt, cfg.dynamics.lr
    measured = {name: replicas if cap is None else min(replicas, cap) for name, (_, cap) in alternatives.items()}
    fns = {"dlnlab": run} | {name: (lambda alt=alt, wk=[w[:measured[name]] for w in w0]: alt(wk, M, S_half, lr, steps))
                             for name, (alt, _) in alternatives.items()}
    timings = timed_together(fns, repeats)
    final_loss = lambda weights: float(np.mean(population_loss_np(weights, M, teacher.input_cov)))
    t_dln, (state, _) = timings.pop("dlnlab")
    out = {"width": width, "replicas": replicas, "depth": depth, "steps": steps,
           "flops_per_replica_step": sgd_step_flops(cfg.layer_dims, B8_BATCH),
           "dlnlab": {"s_per_replica_step": t_dln["best_s"] / (replicas * steps), "cpu_s": t_dln["cpu_s"],
                      "final_loss_mean": final_loss(state.weights)}, "alternatives": {}}
    for name, (t, weights) in timings.items():
        out["alternatives"][name] = {"s_per_replica_step": t["best_s"] / (measured[name] * steps), "cpu_s": t["cpu_s"],
                                     "warmup_s": t["warmup_s"], "measured_replicas": measured[name],
                                     "final_loss_mean": final_loss(weights)}
    fastest = min(out["alternatives"], key=lambda k: out["alternatives"][k]["s_per_replica_step"])
    out["fastest_alternative"] = fastest
    out["ratio"] = out["alternatives"][fastest]["s_per_replica_step"] / out["dlnlab"]["s_per_replica_step"]
    return out


def _fits(points, size) -> dict:
    wide = [p for p in points["width"] if p["width"] >= size["b8_fit_width"]]
    many = [p for p in points["replicas"] if p["replicas"] >= size["b8_fit_replicas"]]
    return {
        "width_exponent": {"over_widths": [p["width"] for p in wide], "expected": 2.0,
                           "dlnlab": log_slope([p["width"] for p in wide],
                                            [p["dlnlab"]["s_per_replica_step"] for p in wide])},
        "replica_exponent": {"over_replicas": [p["replicas"] for p in many], "expected": 1.0,
                             "dlnlab": log_slope([p["replicas"] for p in many],
                                              [p["dlnlab"]["s_per_replica_step"] * p["replicas"] for p in many])},
    }


def _torch_threads():
    if not have("torch"):
        return None
    import torch

    return torch.get_num_threads()


def b8_scaling(size: dict) -> dict:
    reps, prec = size["b8_repeats"], size.get("precision", "float64")
    gemm = gemm_rate(size["b2_gemm_n"], size["repeats"])
    alts = _alternatives(size)
    R = size["b8_width_replicas"]

    def point(w, r, L):
        return b8_point(w, r, L, b8_steps(w, r, L, size), reps, alts, prec)

    points = {"width": [point(w, R, B8_DEPTH) for w in size["b8_widths"]],
              "replicas": [point(B8_WIDTH, r, B8_DEPTH) for r in size["b8_replicas"]],
              "depth": [point(B8_WIDTH, R, L) for L in size["b8_depths"]]}
    for p in (p for group in points.values() for p in group):
        p["fraction_of_gemm"] = p["flops_per_replica_step"] / p["dlnlab"]["s_per_replica_step"] / gemm["flops"]
    ratios = [p["ratio"] for group in points.values() for p in group]
    engines = (engine_scan(size["b8_engine_replicas"], size["b8_engine_steps"], size["b8_fit_replicas"], size["repeats"])
               if prec == "float64" else {})
    exponents = {k: v["replica_exponent"] for k, v in engines.items()}
    target = TARGETS["B8"]["engine_replica_exponent_max"]
    return {"params": {"batch_size": B8_BATCH, "depth": B8_DEPTH, "width_for_R_and_L_scans": B8_WIDTH,
                       "replicas_for_width_and_depth_scans": size["b8_width_replicas"],
                       "timing": f"best of {reps} rounds, each running dlnlab and every alternative in turn; the "
                                 "steps only (each one's final population loss computed after its timed runs)",
                       "steps": f"per point (b8_steps): {size['b8_work_flops']:.3g} FLOP of work, between "
                                f"{size['b8_steps']} and {size['b8_max_steps']}",
                       "alternatives": list(alts), "precision": prec,
                       "fraction_of_gemm": "of the float64 GEMM rate",
                       "threads": {"numpy": blas_threads(), "torch": _torch_threads(),
                                   "jax_per_replica": "one JAX device (the default), XLA's intra-op threads",
                                   "dlnlab": "one JAX CPU device per core"},
                       "engine_scan": {"replicas": list(size["b8_engine_replicas"]), "steps": size["b8_engine_steps"]}},
            "gemm": gemm, "points": points, "fits": _fits(points, size), "engines": engines,
            "checks": {"vs_fastest_min": check(min(ratios), TARGETS["B8"]["vs_fastest_min"]),
                       "vs_fastest_median": check(float(np.median(ratios)), TARGETS["B8"]["vs_fastest_median"]),
                       "engine_replica_exponent_max": check(max(exponents.values()), target) if exponents else
                       check(None, target, "the engine scan runs in float64 only")}}
