"""B8 (issue 18 item 2, which calls it B7; B7 is the CLI start-up workload of issue 17): the cost of an online-SGD
step per replica-step across sizes — width w (L = 3, B = 32, d = w), replicas R (w = 30) and depth L (w = 30) — for dlnlab and, at every point, hand-batched NumPy (stacked
``np.matmul``; :func:`~._baselines.numpy_batched_sgd`) and batched PyTorch (one ``bmm`` chain;
:func:`~._baselines.torch_batched_sgd`, when torch is installed).

Reported per point: seconds per replica-step of each, the ratio fastest alternative ÷ dlnlab, and dlnlab's FLOP
rate (:func:`~._flops.sgd_step_flops`) as a fraction of the machine's float64 GEMM rate (:func:`~._flops.gemm_rate`).
Fitted: the exponent of the per-step cost in w over the widths ≥ ``b8_fit_width`` (2 once GEMM-bound) and of the
total cost in R over R ≥ ``b8_fit_replicas`` (1 past cache), by least squares on the logs. Checks: the smallest
and the median ratio over every point (targets ≥ 1× and ≥ 1.5×). Not measured here (left undone): JAX written the
obvious way and ``torch.compile``.
"""

from __future__ import annotations

import numpy as np

from ._baselines import numpy_batched_sgd, torch_batched_sgd
from ._engine import whole_run
from ._flops import gemm_rate, sgd_step_flops
from ._machine import blas_threads, have, timed
from ._spec import TARGETS, check

B8_BATCH, B8_DEPTH, B8_WIDTH = 32, 3, 30


def b8_config(width: int, replicas: int, depth: int, steps: int):
    """Online SGD, d = width, B = 32, a random teacher of rank min(d, 10), lr 0.2 / (L w) (stable), 2 records."""
    from ..config import Config

    return Config.from_dict({
        "teacher": {"d_in": width, "d_out": width, "spectrum": "geometric", "rank": min(width, 10), "s_max": 3.0,
                    "ratio": 0.7},
        "network": {"depth": depth, "width": width},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.2 / (depth * width), "batch_size": B8_BATCH, "steps": steps},
        "record": {"n_times": 2, "spacing": "linear", "observables": ["loss"]},
        "ensemble": {"replicas": replicas, "seed": 0},
    })


def b8_point(width: int, replicas: int, depth: int, steps: int, repeats: int) -> dict:
    """One point: seconds per replica-step of dlnlab and each alternative, and the final losses (all finite)."""
    from ..model import Teacher

    cfg = b8_config(width, replicas, depth, steps)
    run, program = whole_run(cfg)
    t_dln, (_, obs) = timed(run, repeats)
    work = replicas * steps
    w0 = [np.asarray(w) for w in program.init().weights]
    teacher = Teacher.from_config(cfg)
    M, S_half, lr = teacher.M, teacher.input_cov_sqrt, cfg.dynamics.lr
    out = {"width": width, "replicas": replicas, "depth": depth, "steps": steps,
           "flops_per_replica_step": sgd_step_flops(cfg.layer_dims, B8_BATCH),
           "dlnlab": {"s_per_replica_step": t_dln["best_s"] / work, "cpu_s": t_dln["cpu_s"],
                      "final_loss_mean": float(np.mean(np.asarray(obs["loss"])[:, -1]))}, "alternatives": {}}
    t_np, loss = timed(lambda: numpy_batched_sgd(w0, M, S_half, lr, B8_BATCH, steps, [steps]), repeats)
    out["alternatives"]["numpy_matmul"] = {"s_per_replica_step": t_np["best_s"] / work, "cpu_s": t_np["cpu_s"],
                                           "final_loss_mean": float(np.mean(loss[:, -1]))}
    if have("torch"):
        t_tc, loss = timed(lambda: torch_batched_sgd(w0, M, S_half, lr, B8_BATCH, steps), repeats)
        out["alternatives"]["torch_bmm"] = {"s_per_replica_step": t_tc["best_s"] / work, "cpu_s": t_tc["cpu_s"],
                                            "final_loss_mean": float(np.mean(loss))}
    fastest = min(out["alternatives"], key=lambda k: out["alternatives"][k]["s_per_replica_step"])
    out["fastest_alternative"] = fastest
    out["ratio"] = out["alternatives"][fastest]["s_per_replica_step"] / out["dlnlab"]["s_per_replica_step"]
    return out


def _slope(x, y) -> float | None:
    """Least-squares slope of ln y on ln x (None with fewer than two distinct x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2:
        return None
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _fits(points, size) -> dict:
    wide = [p for p in points["width"] if p["width"] >= size["b8_fit_width"]]
    many = [p for p in points["replicas"] if p["replicas"] >= size["b8_fit_replicas"]]
    return {
        "width_exponent": {"over_widths": [p["width"] for p in wide], "expected": 2.0,
                           "dlnlab": _slope([p["width"] for p in wide],
                                            [p["dlnlab"]["s_per_replica_step"] for p in wide])},
        "replica_exponent": {"over_replicas": [p["replicas"] for p in many], "expected": 1.0,
                             "dlnlab": _slope([p["replicas"] for p in many],
                                              [p["dlnlab"]["s_per_replica_step"] * p["replicas"] for p in many])},
    }


def _torch_threads():
    if not have("torch"):
        return None
    import torch

    return torch.get_num_threads()


def b8_scaling(size: dict) -> dict:
    steps, reps = size["b8_steps"], size["repeats"]
    gemm = gemm_rate(size["b2_gemm_n"], reps)
    points = {"width": [b8_point(w, size["b8_width_replicas"], B8_DEPTH, steps, reps) for w in size["b8_widths"]],
              "replicas": [b8_point(B8_WIDTH, r, B8_DEPTH, steps, reps) for r in size["b8_replicas"]],
              "depth": [b8_point(B8_WIDTH, size["b8_width_replicas"], L, steps, reps) for L in size["b8_depths"]]}
    for p in (p for group in points.values() for p in group):
        p["fraction_of_gemm"] = p["flops_per_replica_step"] / p["dlnlab"]["s_per_replica_step"] / gemm["flops"]
    ratios = [p["ratio"] for group in points.values() for p in group]
    return {"params": {"batch_size": B8_BATCH, "depth": B8_DEPTH, "width_for_R_and_L_scans": B8_WIDTH,
                       "replicas_for_width_and_depth_scans": size["b8_width_replicas"], "steps": steps,
                       "precision": "float64", "threads": {"numpy": blas_threads(),
                                                           "torch": _torch_threads(),
                                                           "dlnlab": "one JAX CPU device per core"}},
            "gemm": gemm, "points": points, "fits": _fits(points, size),
            "checks": {"vs_fastest_min": check(min(ratios), TARGETS["B8"]["vs_fastest_min"]),
                       "vs_fastest_median": check(float(np.median(ratios)), TARGETS["B8"]["vs_fastest_median"])}}
