"""The workloads B1–B3, B5, B6 (B4: :mod:`._gradient_flow`): each builds its problem, times dlnlab and its alternatives on it, and checks the figures
against their targets (:data:`TARGETS`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._baselines import diffrax_mode_em, numpy_batched_sgd, numpy_mode_em, torch_loop_sgd
from ._engine import whole_run
from ._flops import gemm_rate, product_ceiling, sgd_step_flops
from ._gradient_flow import b4_flow_solvers
from ._long_runs import b9_long_runs
from ._machine import blas_threads, have, machine_info, proc_status_bytes, timed
from ._scaling import b8_scaling
from ._spec import TARGETS, check
from .cli_startup import b7_cli_startup


def _b1_config(replicas, steps, seed=0):
    from ..config import Config

    return Config.from_dict({
        "teacher": {"d_in": 10, "d_out": 10, "spectrum": "geometric", "rank": 10, "s_max": 3.0, "ratio": 0.7},
        "network": {"depth": 3, "width": 50},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.01, "batch_size": 1, "steps": steps},
        "record": {"n_times": 20, "spacing": "log", "observables": ["loss"]},
        "ensemble": {"replicas": replicas, "seed": seed},
    })


def b1_small_sgd(size: dict) -> dict:
    replicas, steps, reps = size["b1_replicas"], size["b1_steps"], size["repeats"]
    cfg = _b1_config(replicas, steps)
    from ..model import Teacher

    run, program = whole_run(cfg)
    t_dln, (_, obs) = timed(run, reps)
    loss_dln = np.asarray(obs["loss"])[:, -1]
    w0 = [np.asarray(w) for w in program.init().weights]
    teacher = Teacher.from_config(cfg)
    M, S_half, rec_steps = teacher.M, teacher.input_cov_sqrt, program.grid.steps
    lr, B = cfg.dynamics.lr, cfg.dynamics.batch_size
    rec = rec_steps.tolist()
    res = {"params": {"depth": 3, "d": 10, "width": 50, "batch_size": B, "replicas": replicas, "steps": steps,
                      "lr": lr, "precision": "float64", "record": "population loss at 20 log-spaced steps"},
           "dlnlab": {**t_dln, "replica_steps_per_s": replicas * steps / t_dln["best_s"],
                      "final_loss_mean": float(np.mean(loss_dln))}}
    # hand-batched NumPy: stacked matmul and einsum, the faster kept
    variants = {}
    for product in ("matmul", "einsum"):
        numpy_batched_sgd(w0, M, S_half, lr, B, 2, [0, 2], product=product)  # warm-up
        t_np, loss_np = timed(lambda p=product: numpy_batched_sgd(w0, M, S_half, lr, B, steps, rec, product=p)[0],
                              size["b1_numpy_repeats"], 0)
        variants[product] = {**t_np, "final_loss_mean": float(np.mean(loss_np[:, -1]))}
    fastest = min(variants, key=lambda p: variants[p]["best_s"])
    t_np = variants[fastest]
    res["numpy_batched"] = {**t_np, "product": fastest, "variants": variants, "threads": blas_threads()}
    # per-replica PyTorch loop, measured on a few replicas and scaled to the ensemble (it is sequential)
    if have("torch"):
        import torch

        k = min(size["b1_torch_replicas"], replicas)
        torch_loop_sgd(w0, M, S_half, lr, B, 5, [0, 5], 1)  # warm-up
        t_tc, loss_tc = timed(lambda: torch_loop_sgd(w0, M, S_half, lr, B, steps, rec, k), reps, 0)
        scale = replicas / k
        res["torch_loop"] = {"best_s": t_tc["best_s"] * scale, "cpu_s": t_tc["cpu_s"] * scale, "measured_replicas": k,
                             "measured_times_s": t_tc["times_s"], "per_replica_s": t_tc["best_s"] / k,
                             "threads": torch.get_num_threads(),
                             "extrapolation": f"sequential loop: time of {k} replicas × {replicas}/{k}",
                             "final_loss_mean": float(np.mean(loss_tc[:, -1]))}
        res["checks"] = {"vs_torch_loop": check(res["torch_loop"]["best_s"] / t_dln["best_s"],
                                                 TARGETS["B1"]["vs_torch_loop"],
                                                 cpu_value=res["torch_loop"]["cpu_s"] / t_dln["cpu_s"])}
    else:
        res["torch_loop"] = {"skipped": "torch not installed (pip install 'dlnlab[bench]')"}
        res["checks"] = {"vs_torch_loop": check(None, TARGETS["B1"]["vs_torch_loop"], "torch not installed")}
    res["checks"]["vs_numpy_batched"] = check(t_np["best_s"] / t_dln["best_s"], TARGETS["B1"]["vs_numpy_batched"],
                                               cpu_value=t_np["cpu_s"] / t_dln["cpu_s"])
    return res


def b2_compute_bound(size: dict) -> dict:
    from ..config import Config

    replicas, steps, reps = size["b2_replicas"], size["b2_steps"], size["repeats"]
    d, width, L, B = 10, 100, 4, 32
    cfg = Config.from_dict({
        "teacher": {"d_in": d, "d_out": d, "spectrum": "geometric", "rank": d, "s_max": 3.0, "ratio": 0.7},
        "network": {"depth": L, "width": width},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.005, "batch_size": B, "steps": steps},
        "record": {"n_times": 5, "spacing": "log", "observables": ["loss"]},
        "ensemble": {"replicas": replicas},
    })
    run, _ = whole_run(cfg)
    t, _ = timed(run, reps)
    flops_step = sgd_step_flops(cfg.layer_dims, B)
    achieved = flops_step * replicas * steps / t["best_s"]
    gemm = gemm_rate(size["b2_gemm_n"], reps)
    frac = achieved / gemm["flops"]
    per_cpu = flops_step * replicas * steps / t["cpu_s"]
    ceiling = product_ceiling(cfg.layer_dims, B, replicas * steps, size["b2_blocks"], reps)
    ceiling["fraction_of_gemm"] = ceiling["mix_rate"] / gemm["flops"]
    for row in ceiling["products"]:
        row["fraction_of_gemm"] = row["rate"] / gemm["flops"]
    return {"params": {"depth": L, "d": d, "width": width, "batch_size": B, "replicas": replicas, "steps": steps,
                       "precision": "float64", "flops": "sgd_step_flops: sampling, forward, weight gradients, "
                                                         "back-propagation (2 per multiply-add)"},
            "dlnlab": {**t, "flops_per_replica_step": flops_step, "achieved_flops": achieved,
                       "flops_per_cpu_s": per_cpu, "threads_used": t["cpu_s"] / t["best_s"]},
            "gemm": gemm, "product_ceiling": ceiling,
            "checks": {"fraction_of_gemm": check(frac, TARGETS["B2"]["fraction_of_gemm"],
                                                  cpu_value=per_cpu / gemm["flops_per_cpu_s"])}}


def _b3_setup(n_modes, replicas, steps):
    s = np.geomspace(2.0, 0.2, n_modes)
    return {"s": s, "lam": np.ones(n_modes), "depth": 3, "lr": 0.01, "batch_size": 1, "label_noise": 0.1, "m0": 0.01,
                "replicas": replicas, "steps": steps, "n_times": 100}


def b3_mode_sde(size: dict) -> dict:
    from ..engines import mode_config, simulate_modes

    p = _b3_setup(size["b3_modes"], size["b3_replicas"], size["b3_steps"])
    reps = size["repeats"]
    cfg = mode_config(p["s"].tolist(), depth=p["depth"], lr=p["lr"], batch_size=p["batch_size"],
                      label_noise=p["label_noise"], m0=p["m0"], kind="sde", steps=p["steps"], n_times=p["n_times"],
                      spacing="log", replicas=p["replicas"], noise="exact", scheme="em")
    t_dln, ds = timed(lambda: simulate_modes(cfg, progress=False), reps)
    rec_steps = ds["step"].values
    dt = p["lr"]
    m_dln = ds["mode_strength"].values
    a0 = np.full((p["replicas"], p["depth"], len(p["s"])), p["m0"] ** (1.0 / p["depth"]))
    args = (a0, p["s"], p["lam"], p["label_noise"], p["lr"], p["batch_size"], dt, p["steps"])
    res = {"params": {**{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in p.items()},
                      "scheme": "Euler-Maruyama (per-layer mode SDE)", "record": f"{p['n_times']} log-spaced times",
                      "precision": "float64"},
           "dlnlab": {**t_dln, "engine": "dlnlab.engines.simulate_modes (dynamics.scheme = 'em')",
                      "mode_steps_per_s": p["replicas"] * len(p["s"]) * p["steps"] / t_dln["best_s"],
                      "final_m_mean": np.nanmean(m_dln[:, -1], axis=0).tolist(),
                      "n_diverged": int(ds.attrs.get("n_diverged", 0))}}
    numpy_mode_em(*args[:-1], 2, [0, 2])  # warm-up
    t_np, m_np = timed(lambda: numpy_mode_em(*args, rec_steps), reps, 0)
    res["numpy_em"] = {**t_np, "final_m_mean": np.nanmean(m_np[:, -1], axis=0).tolist()}
    checks = {"vs_numpy_em": check(t_np["best_s"] / t_dln["best_s"], TARGETS["B3"]["vs_numpy_em"],
                                    cpu_value=t_np["cpu_s"] / t_dln["cpu_s"])}
    if have("diffrax") and have("lineax"):
        run = diffrax_mode_em(*args, rec_steps * dt)
        t_dx, m_dx = timed(run, reps)
        m_dx = np.asarray(m_dx)
        res["diffrax_euler"] = {**t_dx, "final_m_mean": np.nanmean(m_dx[:, -1], axis=0).tolist()}
        checks["vs_diffrax_euler"] = check(t_dx["best_s"] / t_dln["best_s"], TARGETS["B3"]["vs_diffrax_euler"],
                                            cpu_value=t_dx["cpu_s"] / t_dln["cpu_s"])
    else:
        res["diffrax_euler"] = {"skipped": "diffrax not installed"}
        checks["vs_diffrax_euler"] = check(None, TARGETS["B3"]["vs_diffrax_euler"], "diffrax not installed")
    res["checks"] = checks
    return res


# ---------------------------------------------------------------------------------------------------------
# B5: memory (peak RSS in a subprocess, at two step counts)


def b5_child(steps: int, replicas: int, n_modes: int = 10, n_times: int = 200) -> None:
    """Run the B5 workload and print one JSON line with the peak RSS (``python -c`` entry point)."""
    import resource

    from ..engines import mode_config, simulate_modes

    rss_imports = proc_status_bytes("VmRSS:")

    s = np.geomspace(2.0, 0.2, n_modes).tolist()
    cfg = mode_config(s, depth=3, lr=0.01, batch_size=1, label_noise=0.1, m0=0.01, kind="sde", steps=steps,
                      n_times=n_times, spacing="log", replicas=replicas, noise="exact", scheme="em")
    t0 = time.perf_counter()
    ds = simulate_modes(cfg, progress=False)
    wall = time.perf_counter() - t0
    hwm = proc_status_bytes("VmHWM:")
    # VmHWM is this process's own peak; ru_maxrss survives exec (it can be the forking parent's peak)
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(json.dumps({"steps": steps, "replicas": replicas, "n_modes": n_modes, "n_times": int(ds.sizes["t"]),
                      "peak_rss_bytes": hwm if hwm is not None else ru, "ru_maxrss_bytes": ru, "vm_hwm_bytes": hwm,
                      "rss_after_imports_bytes": rss_imports, "dataset_bytes": int(ds.nbytes), "wall_s": wall}))


def b5_memory(size: dict) -> dict:
    replicas, runs = size["b5_replicas"], []
    for steps in size["b5_steps"]:
        code = f"from dlnlab.bench import b5_child; b5_child({int(steps)}, {int(replicas)})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode != 0:
            last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [""]
            raise RuntimeError(f"B5 subprocess exited with {proc.returncode}: {last[0].strip()[:300]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    peak = max(r["peak_rss_bytes"] for r in runs) / 2**30
    growth = runs[-1]["peak_rss_bytes"] / runs[0]["peak_rss_bytes"] - 1.0
    return {"params": {"replicas": replicas, "n_modes": 10, "n_times": 200, "steps": list(size["b5_steps"]),
                       "engine": "dlnlab.engines.simulate_modes (dynamics.scheme = 'em')", "measure": "peak RSS (VmHWM; ru_maxrss where /proc is absent) of a fresh subprocess"},
            "runs": runs,
            "checks": {"peak_rss_gib": check(peak, TARGETS["B5"]["peak_rss_gib"]),
                       "rss_growth": check(growth, TARGETS["B5"]["rss_growth"])}}


# ---------------------------------------------------------------------------------------------------------
# B6: the main job


def b6_reproduce(size: dict) -> dict:
    if not size["b6"]:
        return {"params": {}, "skipped": "not run with --quick: measured by the full benchmark",
                "checks": {"wall_minutes": check(None, TARGETS["B6"]["wall_minutes"], "quick mode")}}
    with tempfile.TemporaryDirectory(prefix="dlnlab-bench-") as tmp:
        cmd = [sys.executable, "-m", "dlnlab.cli", "reproduce", "--quick", "--out", str(Path(tmp) / "out")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=4 * 3600, check=False)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [""]
        raise RuntimeError(f"dlnlab reproduce --quick exited with {proc.returncode}: {last[0].strip()[:300]}")
    return {"params": {"command": "dlnlab reproduce --quick", "cores": machine_info()["cores_usable"]},
            "wall_s": wall, "summary": proc.stdout.strip().splitlines()[:1],
            "checks": {"wall_minutes": check(wall / 60.0, TARGETS["B6"]["wall_minutes"])}}


WORKLOADS = {
    "B1": ("small ensemble SGD vs PyTorch loop and batched NumPy", b1_small_sgd),
    "B2": ("compute-bound ensemble SGD vs machine GEMM rate", b2_compute_bound),
    "B3": ("per-mode SDE ensemble vs NumPy EM and diffrax Euler", b3_mode_sde),
    "B4": ("gradient flow through every plateau from m0 = 1e-8, L = 3, 4: auto vs explicit solver", b4_flow_solvers),
    "B5": ("memory: peak RSS at two step counts", b5_memory),
    "B6": ("main job: dlnlab reproduce --quick", b6_reproduce),
    "B7": ("CLI start-up: dlnlab --help, list, COMMAND --help vs import jax", b7_cli_startup),
    "B8": ("scaling: SGD cost per replica-step over width, replicas, depth vs batched NumPy and PyTorch", b8_scaling),
    "B9": ("long runs: 10^6 SGD steps x 256 replicas, throughput and peak RSS against a short run", b9_long_runs),
}

