"""Benchmark suite (``dlnlab bench``): dlnlab against what a researcher would use instead, side by side.

Every comparison is run in the same process and reported as a *ratio* (machines are noisy and absolute
times are not comparable between runs). Timings exclude compilation: each program is compiled and run
once (warm-up), then timed over a few repeats, and the best time is kept. Workloads and targets:

* **B1** small ensemble SGD (L = 3, d = 10, width 50, B = 1, 256 replicas, 2000 steps, online data): the
  dlnlab engine against a per-replica PyTorch loop (``nn.Linear`` + ``torch.optim.SGD``) and against
  hand-batched NumPy with closed-form gradients. Targets: ≥ 100× the PyTorch loop, ≥ 1× NumPy.
* **B2** compute-bound ensemble SGD (L = 4, width 100, B = 32, 256 replicas): achieved FLOP/s as a fraction
  of the machine's float64 GEMM rate, measured in the same run. Target ≥ 70 %.
* **B3** per-mode SDE ensemble (10 modes × 1024 replicas × 10⁴ Euler–Maruyama steps,
  :func:`dlnlab.modes.simulate_modes`): against vectorised NumPy EM and against diffrax ``Euler`` with an
  ``UnsafeBrownianPath``. Target ≥ 1× both.
* **B4** gradient flow through 4 plateaus from m₀ = 1e-6 (L = 3): gradient evaluations and wall time of the
  adaptive Dopri5 engine against fixed-step Euler on the same population gradient, with its step chosen to
  just reach the same maximum error (1e-4) on the mode strengths against the closed form. Target ≥ 50×
  fewer evaluations.
* **B5** memory: 10⁶ steps × 1024 replicas × 10 modes with observables at 200 log-spaced times, peak RSS
  measured in a subprocess at two step counts. Target < 1 GiB and no growth with the number of steps.
* **B6** wall time of ``dlnlab reproduce --quick`` in a subprocess. Target < 10 minutes.

PyTorch (and diffrax) comparisons need the optional ``bench`` extra; when a package is missing the
comparison is reported as skipped (``"skipped": "<reason>"``, value ``None``), never estimated. dlnlab's engines
shard replicas over every CPU core (:mod:`dlnlab.runtime`); the alternatives run as a user would run them, so the
ratios compare what each achieves on the whole machine (the CPU-time ratios compare the work done).
``dlnlab bench --markdown`` prints the README's table of the results (``python -m dlnlab.bench RESULT.json``
prints it for a saved result).

The discrete and flow engines are timed through their compiled programs (``dlnlab.dynamics`` internals) so
that compilation can be excluded; the per-mode engine caches its programs, so :func:`simulate_modes` is
timed directly.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCHEMA = "dlnlab-bench/1"

TARGETS = {
    "B1": {"vs_torch_loop": (">=", 100.0), "vs_numpy_batched": (">=", 1.0)},
    "B2": {"fraction_of_gemm": (">=", 0.70)},
    "B3": {"vs_numpy_em": (">=", 1.0), "vs_diffrax_euler": (">=", 1.0)},
    "B4": {"fewer_evaluations": (">=", 50.0)},
    "B5": {"peak_rss_gib": ("<", 1.0), "rss_growth": ("<", 0.05)},
    "B6": {"wall_minutes": ("<", 10.0)},
}

#: Workload sizes. ``full`` is the issue's specification; ``quick`` keeps the ratios meaningful at a fraction of
#: the cost; ``tiny`` only exercises the code (tests).
SIZES = {
    "full": {"repeats": 3, "b1_replicas": 256, "b1_steps": 2000, "b1_torch_replicas": 8, "b1_numpy_repeats": 2,
             "b2_replicas": 256, "b2_steps": 50, "b2_gemm_n": 1024, "b2_blocks": (1, 4, 8, 16),
             "b3_replicas": 1024, "b3_steps": 10_000, "b3_modes": 10,
             "b4_tol": 1e-4, "b4_points": 2000, "b4_rtols": (1e-5, 1e-6, 1e-7, 1e-8),
             "b5_replicas": 1024, "b5_steps": (100_000, 1_000_000), "b6": True},
    "quick": {"repeats": 2, "b1_replicas": 256, "b1_steps": 500, "b1_torch_replicas": 2, "b1_numpy_repeats": 1,
             "b2_replicas": 64, "b2_steps": 10, "b2_gemm_n": 1024, "b2_blocks": (4, 8),
             "b3_replicas": 256, "b3_steps": 2000, "b3_modes": 10,
             "b4_tol": 1e-3, "b4_points": 1000, "b4_rtols": (),
             "b5_replicas": 1024, "b5_steps": (10_000, 100_000), "b6": False},
    "tiny": {"repeats": 1, "b1_replicas": 4, "b1_steps": 30, "b1_torch_replicas": 1, "b1_numpy_repeats": 1,
             "b2_replicas": 2, "b2_steps": 2, "b2_gemm_n": 128, "b2_blocks": (1,),
             "b3_replicas": 8, "b3_steps": 50, "b3_modes": 3,
             "b4_tol": 3e-2, "b4_points": 100, "b4_rtols": (),
             "b5_replicas": 8, "b5_steps": (100, 1000), "b6": False},
}


# ---------------------------------------------------------------------------------------------------------
# Machine, versions, timing helpers


def machine_info() -> dict:
    """CPU model, cores, memory, platform, load, JAX backend and devices."""
    import jax

    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    simd = [f for f in ("avx512f", "avx2", "fma") if f" {f}" in flags]
    return {
        "cpu": cpu,
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "simd": simd,
        "memory_gib": None if mem is None else round(mem / 2**30, 2),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def versions() -> dict:
    import importlib.metadata as md

    from .dynamics import package_versions

    out = package_versions()
    for pkg in ("torch", "equinox", "lineax"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _block(x):
    import jax

    return jax.block_until_ready(x)


def timed(fn, repeats: int = 3, warmup: int = 1):
    """Run ``fn`` ``warmup`` times untimed (compilation), then ``repeats`` times.

    Returns ``({"best_s", "times_s", "cpu_s", "warmup_s"}, last value)``: wall times, the best process CPU
    time (all threads; less sensitive than wall time to other jobs on the machine) and the warm-up time
    (which includes compilation)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        _block(fn())
    warm = time.perf_counter() - t0
    times, cpus, value = [], [], None
    for _ in range(max(1, repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        value = _block(fn())
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"best_s": min(times), "times_s": times, "cpu_s": min(cpus), "warmup_s": warm}, value


def _check(value, target, skipped=None, cpu_value=None) -> dict:
    """A figure against its target. ``cpu_value``: the same ratio from process CPU times (informative)."""
    op, thr = target
    if skipped is not None or value is None or not math.isfinite(value):
        return {"value": None, "target": thr, "op": op, "passed": None, "skipped": skipped or "no value"}
    passed = value >= thr if op == ">=" else value < thr
    out = {"value": float(value), "target": thr, "op": op, "passed": bool(passed), "skipped": None}
    if cpu_value is not None:
        out["cpu_value"] = float(cpu_value)
    return out


# ---------------------------------------------------------------------------------------------------------
# Access to the compiled engine programs (so that compilation can be excluded from timings)


def _discrete_engine(config):
    """``(run, ens, steps)``: ``run()`` executes the whole discrete run of ``config`` (one chunk) with the
    engine's compiled program and returns ``(state, observables)``; ``steps`` are the record steps."""
    import jax.numpy as jnp

    from . import dynamics as dyn
    from .observables import observe_fn, resolve

    ens = dyn._Ensemble(config)
    unit = ens.unit
    if not np.all(unit == unit[0]):
        raise ValueError("bench engine runs need a single step size")
    t = dyn.record_times(config, float(unit[0]))
    steps = np.unique(np.rint(t / unit[0]).astype(np.int64))
    incs = jnp.asarray(np.diff(steps))
    observe = observe_fn(resolve(config.record.observables))
    prog = dyn._discrete_program(config, observe, False)
    R = ens.R
    state = (ens.weights0, jnp.zeros(R, jnp.int64), jnp.full(R, -1, jnp.int64), jnp.zeros(R, jnp.int32))

    def run():
        return prog(state, ens.dyn_keys, ens.params, incs, ens.problem)

    return run, ens, steps


def _flow_engine(config):
    """``(run, ens, t)``: ``run()`` integrates the whole flow of ``config`` in one solve with the engine's
    compiled program and returns ``(last, num_steps, ok, observables)`` (observables at ``t[1:]``)."""
    import jax.numpy as jnp

    from . import dynamics as dyn
    from .observables import observe_fn, resolve

    ens = dyn._Ensemble(config)
    R, dy = ens.R, config.dynamics
    t = dyn.record_times(config, None)
    prog = dyn._flow_program(observe_fn(resolve(config.record.observables)), dy.rtol)
    if dy.atol is not None:
        atol = jnp.full((R,), dy.atol, ens.dtype)
    else:  # as the engine: rtol·1e-3 times the largest initial entry
        atol = dy.rtol * 1e-3 * jnp.stack([jnp.max(jnp.abs(w.reshape(R, -1)), axis=1) for w in ens.weights0]).max(0)
    ts = jnp.asarray(t[1:], ens.dtype)

    def run():
        return prog(ens.weights0, 0.0, ts, ens.params, atol, ens.problem)

    return run, ens, t


# ---------------------------------------------------------------------------------------------------------
# B1: small ensemble SGD


def _b1_config(replicas, steps, seed=0):
    from .config import Config

    return Config.from_dict({
        "teacher": {"d_in": 10, "d_out": 10, "spectrum": "geometric", "rank": 10, "s_max": 3.0, "ratio": 0.7},
        "network": {"depth": 3, "width": 50},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.01, "batch_size": 1, "steps": steps},
        "record": {"n_times": 20, "spacing": "log", "observables": ["loss"]},
        "ensemble": {"replicas": replicas, "seed": seed},
    })


def _population_loss_np(weights, M, S):
    """½ tr(E Σ Eᵀ) per replica, ``weights`` with a leading replica axis."""
    W = weights[0]
    for Wl in weights[1:]:
        W = np.matmul(Wl, W)
    E = W - M
    return 0.5 * np.einsum("rij,jk,rik->r", E, S, E)


def numpy_batched_sgd(weights0, M, S_half, lr, batch_size, steps, record_steps, seed=0):
    """Online SGD of every replica at once in NumPy with closed-form (backprop) gradients.

    ``weights0``: list of ``(R, d_l, d_{l-1})`` arrays. Each step draws ``x = Σ^{1/2} z`` for ``B`` samples per
    replica, ``y = M x``, and applies ``W_l ← W_l − η δ_lᵀ a_{l−1} / B``. Returns the population loss at
    ``record_steps`` (shape ``(R, n_records)``)."""
    rng = np.random.default_rng(seed)
    W = [np.array(w, np.float64, copy=True) for w in weights0]
    R, d_in, B, L = W[0].shape[0], W[0].shape[2], batch_size, len(W)
    S = S_half @ S_half.T
    rec = {int(s) for s in record_steps}
    losses = []
    if 0 in rec:
        losses.append(_population_loss_np(W, M, S))
    for k in range(1, int(max(record_steps)) + 1):
        X = rng.standard_normal((R, B, d_in)) @ S_half.T
        Y = X @ M.T
        acts = [X]
        for Wl in W:
            acts.append(np.einsum("rbj,rij->rbi", acts[-1], Wl))
        delta = (acts[-1] - Y) / B
        for l in range(L - 1, -1, -1):
            g = np.einsum("rbi,rbj->rij", delta, acts[l])
            if l:
                delta = np.einsum("rbi,rij->rbj", delta, W[l])
            W[l] -= lr * g
        if k in rec:
            losses.append(_population_loss_np(W, M, S))
    return np.stack(losses, axis=1)


def torch_loop_sgd(weights0, M, S_half, lr, batch_size, steps, record_steps, replicas, seed=0):
    """Online SGD replica after replica, as a researcher writes it in PyTorch: ``nn.Linear`` layers without
    bias, ``torch.optim.SGD``, a fresh batch ``x = Σ^{1/2} z``, ``y = M x`` each step, loss ``½‖f(x) − y‖²``
    averaged over the batch; the population loss is evaluated at ``record_steps``. float64."""
    import torch
    from torch import nn

    dt = torch.float64
    Mt, Sh = torch.tensor(np.array(M), dtype=dt), torch.tensor(np.array(S_half), dtype=dt)
    S = Sh @ Sh.T
    rec = {int(s) for s in record_steps}
    out = []
    for r in range(replicas):
        torch.manual_seed(seed + r)
        layers = []
        for W in weights0:
            lin = nn.Linear(W.shape[2], W.shape[1], bias=False, dtype=dt)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(np.array(W[r]), dtype=dt))
            layers.append(lin)
        model = nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        d_in = weights0[0].shape[2]
        losses = []

        def pop_loss(model=model):
            with torch.no_grad():
                E = model[-1].weight
                for lin in reversed(list(model)[:-1]):
                    E = E @ lin.weight
                E = E - Mt
                return float(0.5 * torch.trace(E @ S @ E.T))

        if 0 in rec:
            losses.append(pop_loss())
        for k in range(1, int(max(record_steps)) + 1):
            x = torch.randn(batch_size, d_in, dtype=dt) @ Sh.T
            y = x @ Mt.T
            loss = 0.5 * ((model(x) - y) ** 2).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k in rec:
                losses.append(pop_loss())
        out.append(losses)
    return np.asarray(out)


def b1_small_sgd(size: dict) -> dict:
    replicas, steps, reps = size["b1_replicas"], size["b1_steps"], size["repeats"]
    cfg = _b1_config(replicas, steps)
    run, ens, rec_steps = _discrete_engine(cfg)
    t_dln, (_, obs) = timed(run, reps)
    loss_dln = np.asarray(obs["loss"])[:, -1]
    w0 = [np.asarray(w) for w in ens.weights0]
    M, S_half = np.asarray(ens.problem.M), np.asarray(ens.problem.input_cov_sqrt)
    lr, B = cfg.dynamics.lr, cfg.dynamics.batch_size
    rec = rec_steps.tolist()
    res = {"params": {"depth": 3, "d": 10, "width": 50, "batch_size": B, "replicas": replicas, "steps": steps,
                      "lr": lr, "precision": "float64", "record": "population loss at 20 log-spaced steps"},
           "dlnlab": {**t_dln, "replica_steps_per_s": replicas * steps / t_dln["best_s"],
                      "final_loss_mean": float(np.mean(loss_dln))}}
    # hand-batched NumPy
    numpy_batched_sgd(w0, M, S_half, lr, B, 2, [0, 2])  # warm-up
    t_np, loss_np = timed(lambda: numpy_batched_sgd(w0, M, S_half, lr, B, steps, rec), size["b1_numpy_repeats"], 0)
    res["numpy_batched"] = {**t_np, "final_loss_mean": float(np.mean(loss_np[:, -1]))}
    # per-replica PyTorch loop, measured on a few replicas and scaled to the ensemble (it is sequential)
    if _have("torch"):
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
        res["checks"] = {"vs_torch_loop": _check(res["torch_loop"]["best_s"] / t_dln["best_s"],
                                                 TARGETS["B1"]["vs_torch_loop"],
                                                 cpu_value=res["torch_loop"]["cpu_s"] / t_dln["cpu_s"])}
    else:
        res["torch_loop"] = {"skipped": "torch not installed (pip install 'dlnlab[bench]')"}
        res["checks"] = {"vs_torch_loop": _check(None, TARGETS["B1"]["vs_torch_loop"], "torch not installed")}
    res["checks"]["vs_numpy_batched"] = _check(t_np["best_s"] / t_dln["best_s"], TARGETS["B1"]["vs_numpy_batched"],
                                               cpu_value=t_np["cpu_s"] / t_dln["cpu_s"])
    return res


# ---------------------------------------------------------------------------------------------------------
# B2: compute-bound ensemble SGD against the machine's GEMM rate


def gemm_rate(n: int = 1024, repeats: int = 3) -> dict:
    """float64 GEMM rate (FLOP/s) of this machine, the best of: one ``n × n`` product with JAX (XLA, which may
    use several threads) and with NumPy (BLAS), and one ``n × n`` product per JAX device at once (every core,
    as dlnlab's sharded engines use them)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec

    from .runtime import replica_devices

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    mm = jax.jit(jnp.matmul)
    devices = replica_devices(len(jax.devices()))
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    per_device = jax.jit(jax.shard_map(jnp.matmul, mesh=mesh, in_specs=PartitionSpec("replica"),
                                       out_specs=PartitionSpec("replica")))
    sa, sb = jnp.stack([ja] * len(devices)), jnp.stack([jb] * len(devices))
    runs = {"jax": (mm, (ja, jb), 1), "numpy": (lambda x, y: x @ y, (a, b), 1),
            "jax_per_device": (per_device, (sa, sb), len(devices))}
    rates, timing = {}, {}
    for name, (fn, args, count) in runs.items():
        timing[name], _ = timed(lambda fn=fn, args=args: fn(*args), repeats)
        rates[name] = count * 2.0 * n**3 / timing[name]["best_s"]
    source = max(rates, key=rates.get)
    best = timing[source]
    return {"n": n, "dtype": "float64", "jax_flops": rates["jax"], "numpy_flops": rates["numpy"],
            "jax_per_device_flops": rates["jax_per_device"], "devices": len(devices), "flops": rates[source],
            "source": source, "flops_per_cpu_s": runs[source][2] * 2.0 * n**3 / best["cpu_s"],
            "threads_used": best["cpu_s"] / best["best_s"]}


def sgd_step_products(dims, batch_size) -> list[tuple[str, str, tuple, tuple, bool]]:
    """The matrix products of one online-SGD step of one replica — sampling ``X = Z Σ^{1/2}`` and ``Y = X Mᵀ``,
    forward ``a_l = a_{l−1} W_lᵀ``, weight gradients ``δ_lᵀ a_{l−1}`` and back-propagation ``δ_l W_l`` (l ≥ 2) — as
    ``(name, einsum, lhs shape, rhs shape, shared)`` (``shared``: the right operand is the teacher's, the same for
    every replica)."""
    B, L = batch_size, len(dims) - 1
    out = [("sample X = Z Σ^½", "bi,ij->bj", (B, dims[0]), (dims[0], dims[0]), True),
           ("teacher Y = X Mᵀ", "bi,oi->bo", (B, dims[0]), (dims[-1], dims[0]), True)]
    for l in range(L):
        n_in, n_out = dims[l], dims[l + 1]
        out.append((f"forward {l + 1} (a Wᵀ)", "bi,oi->bo", (B, n_in), (n_out, n_in), False))
        out.append((f"weight gradient {l + 1} (δᵀ a)", "bo,bi->oi", (B, n_out), (B, n_in), False))
        if l > 0:
            out.append((f"back-propagation {l + 1} (δ W)", "bo,oi->bi", (B, n_out), (n_out, n_in), False))
    return out


def _product_flops(spec: str, lhs, rhs) -> float:
    """FLOPs of one two-operand einsum ``spec`` (two-letter operands), 2 per multiply-add."""
    return 2.0 * math.prod((dict(zip(spec[:2], lhs)) | dict(zip(spec[3:5], rhs))).values())


def sgd_step_flops(dims, batch_size) -> float:
    """Matrix-product FLOPs of one online-SGD step of one replica (:func:`sgd_step_products`; the update and
    elementwise work are not counted)."""
    return sum(_product_flops(spec, lhs, rhs) for _, spec, lhs, rhs, _ in sgd_step_products(dims, batch_size))


def product_ceiling(dims, batch_size: int, replica_steps: int, blocks, repeats: int) -> dict:
    """An upper bound for the FLOP rate of an SGD step: each of its matrix products (:func:`sgd_step_products`)
    timed *alone*, batched over a block of replicas per device (sharded as the engine is), repeated inside one
    compiled loop for ``replica_steps`` replica-steps in all; each product keeps its best rate over the block sizes
    ``blocks`` (replicas per device: small blocks keep the operands in cache). ``mix_rate`` is the step's total
    product FLOPs ÷ the sum of the per-product times at those rates — what the step would achieve if sampling,
    updates and copies cost nothing. To keep XLA from hoisting a product out of the loop its left operand takes a
    data dependence on the previous result (an add of 1e-300 × one entry: one elementwise pass, counted in the
    product's time)."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.sharding import PartitionSpec

    from .runtime import replica_devices

    devices = replica_devices(2 ** 31)
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    rep = PartitionSpec("replica")
    rng = np.random.default_rng(0)
    tiny = jnp.asarray(1e-300)
    rows = []
    for name, spec, lhs, rhs, shared in sgd_step_products(dims, batch_size):
        bspec = "r" + spec.replace(",", "," if shared else ",r").replace("->", "->r")
        flops = _product_flops(spec, lhs, rhs)
        best = None
        for block in blocks:
            n = block * len(devices)
            iters = max(1, math.ceil(replica_steps / n))
            x = jnp.asarray(rng.standard_normal((n, *lhs)))
            w = jnp.asarray(rng.standard_normal(rhs if shared else (n, *rhs)))

            def loop(x, w, tiny, bspec=bspec, iters=iters):
                def body(_, carry):
                    x, acc = carry
                    return x, acc + jnp.einsum(bspec, x + tiny * acc[:, None, None], w)[:, 0, 0]
                return lax.fori_loop(0, iters, body, (x, jnp.zeros_like(x[:, 0, 0])))[1]

            fn = jax.jit(jax.shard_map(loop, mesh=mesh, in_specs=(rep, PartitionSpec() if shared else rep,
                                                                    PartitionSpec()), out_specs=rep))
            t, _ = timed(lambda fn=fn, x=x, w=w: fn(x, w, tiny), repeats)
            rate = n * iters * flops / t["best_s"]
            if best is None or rate > best["rate"]:
                best = {"product": name, "lhs": list(lhs), "rhs": list(rhs), "flops": flops, "block": block, "rate": rate}
        rows.append(best)
    total = sum(r["flops"] for r in rows)
    return {"blocks": list(blocks), "devices": len(devices), "products": rows,
            "mix_rate": total / sum(r["flops"] / r["rate"] for r in rows)}


def b2_compute_bound(size: dict) -> dict:
    from .config import Config

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
    run, _ens, _ = _discrete_engine(cfg)
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
            "checks": {"fraction_of_gemm": _check(frac, TARGETS["B2"]["fraction_of_gemm"],
                                                  cpu_value=per_cpu / gemm["flops_per_cpu_s"])}}


# ---------------------------------------------------------------------------------------------------------
# B3: per-mode SDE ensemble


def _b3_setup(n_modes, replicas, steps):
    s = np.geomspace(2.0, 0.2, n_modes)
    return {"s": s, "lam": np.ones(n_modes), "depth": 3, "lr": 0.01, "batch_size": 1, "label_noise": 0.1, "m0": 0.01,
                "replicas": replicas, "steps": steps, "n_times": 100}


def _mode_products_np(a):
    """``m = Π_l a_l`` and ``π_l = Π_{j≠l} a_j`` for ``a`` of shape ``(..., L, n)``."""
    L = a.shape[-2]
    pre, suf = [np.ones_like(a[..., 0, :])], [np.ones_like(a[..., 0, :])]
    for l in range(L - 1):
        pre.append(pre[-1] * a[..., l, :])
        suf.append(suf[-1] * a[..., L - 1 - l, :])
    suf = suf[::-1]
    return pre[-1] * a[..., L - 1, :], np.stack([pre[l] * suf[l] for l in range(L)], axis=-2)


def numpy_mode_em(a0, s, lam, label_noise, lr, batch_size, dt, steps, record_steps, seed=0):
    """Vectorised NumPy Euler–Maruyama of the per-layer mode SDE (every replica and mode at once):
    ``a_l ← a_l + Δt λ π_l (s − m) + sqrt(Δt η/B) π_l sqrt(D(m)) ξ``, ``D = 2λ²(m − s)² + λσ_ε²``, one ``ξ`` per
    mode and step. ``a0``: ``(R, L, n)``. Returns ``m`` at ``record_steps``: ``(R, n_records, n)``."""
    rng = np.random.default_rng(seed)
    a = np.array(a0, np.float64, copy=True)
    R, n = a.shape[0], a.shape[-1]
    amp = math.sqrt(dt * lr / batch_size)
    rec = {int(k) for k in record_steps}
    out = []
    if 0 in rec:
        out.append(_mode_products_np(a)[0])
    for k in range(1, int(max(record_steps)) + 1):
        m, pi = _mode_products_np(a)
        D = 2.0 * lam**2 * (m - s) ** 2 + lam * label_noise**2
        xi = rng.standard_normal((R, n))
        a += pi * (dt * lam * (s - m) + amp * np.sqrt(D) * xi)[:, None, :]
        if k in rec:
            out.append(_mode_products_np(a)[0])
    return np.stack(out, axis=1)


def diffrax_mode_em(a0, s, lam, label_noise, lr, batch_size, dt, steps, record_times, seed=0):
    """The same SDE with diffrax: ``MultiTerm(ODETerm(drift), ControlTerm(diffusion, UnsafeBrownianPath))``,
    ``Euler`` at constant step ``dt``, one Brownian motion per mode (the diffusion is a lineax operator
    ``dW ↦ sqrt(η/B) π sqrt(D) dW`` broadcast over layers), vmapped over replicas. Returns ``run()`` giving
    ``m`` at ``record_times`` (``(R, n_records, n)``)."""
    import diffrax
    import jax
    import jax.numpy as jnp
    import lineax as lx

    a0 = jnp.asarray(a0)
    n, dtype = a0.shape[-1], a0.dtype
    s_, lam_ = jnp.asarray(s, dtype), jnp.asarray(lam, dtype)
    c = lr / batch_size

    def products(a):
        L = a.shape[0]
        pre, suf = [jnp.ones_like(a[0])], [jnp.ones_like(a[0])]
        for l in range(L - 1):
            pre.append(pre[-1] * a[l])
            suf.append(suf[-1] * a[L - 1 - l])
        suf = suf[::-1]
        return pre[-1] * a[-1], jnp.stack([pre[l] * suf[l] for l in range(L)])

    def drift(t, a, args):
        m, pi = products(a)
        return lam_ * pi * (s_ - m)

    def diffusion(t, a, args):
        m, pi = products(a)
        g = jnp.sqrt(c) * pi * jnp.sqrt(2.0 * lam_**2 * (m - s_) ** 2 + lam_ * label_noise**2)
        return lx.FunctionLinearOperator(lambda w: g * w, jax.ShapeDtypeStruct((n,), dtype))

    ts = jnp.asarray(record_times, dtype)
    t1 = float(steps * dt)

    def solve(a, key):
        bm = diffrax.UnsafeBrownianPath(shape=(n,), key=key)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, dt, a, saveat=diffrax.SaveAt(ts=ts),
                                  stepsize_controller=diffrax.ConstantStepSize(), max_steps=steps + 16,
                                  adjoint=diffrax.ForwardMode())
        return jnp.prod(sol.ys, axis=1)

    keys = jax.random.split(jax.random.PRNGKey(seed), a0.shape[0])
    prog = jax.jit(jax.vmap(solve))
    return lambda: prog(a0, keys)


def b3_mode_sde(size: dict) -> dict:
    from .modes import mode_config, simulate_modes

    p = _b3_setup(size["b3_modes"], size["b3_replicas"], size["b3_steps"])
    reps = size["repeats"]
    cfg = mode_config(p["s"].tolist(), depth=p["depth"], lr=p["lr"], batch_size=p["batch_size"],
                      label_noise=p["label_noise"], m0=p["m0"], kind="sde", steps=p["steps"], n_times=p["n_times"],
                      spacing="log", replicas=p["replicas"], noise="exact")
    t_dln, ds = timed(lambda: simulate_modes(cfg, scheme="em", progress=False), reps)
    rec_steps = ds["step"].values
    dt = p["lr"]
    m_dln = ds["mode_strength"].values
    a0 = np.full((p["replicas"], p["depth"], len(p["s"])), p["m0"] ** (1.0 / p["depth"]))
    args = (a0, p["s"], p["lam"], p["label_noise"], p["lr"], p["batch_size"], dt, p["steps"])
    res = {"params": {**{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in p.items()},
                      "scheme": "Euler-Maruyama (per-layer mode SDE)", "record": f"{p['n_times']} log-spaced times",
                      "precision": "float64"},
           "dlnlab": {**t_dln, "engine": "dlnlab.modes.simulate_modes(scheme='em')",
                      "mode_steps_per_s": p["replicas"] * len(p["s"]) * p["steps"] / t_dln["best_s"],
                      "final_m_mean": np.nanmean(m_dln[:, -1], axis=0).tolist(),
                      "n_diverged": int(ds.attrs.get("n_diverged", 0))}}
    numpy_mode_em(*args[:-1], 2, [0, 2])  # warm-up
    t_np, m_np = timed(lambda: numpy_mode_em(*args, rec_steps), reps, 0)
    res["numpy_em"] = {**t_np, "final_m_mean": np.nanmean(m_np[:, -1], axis=0).tolist()}
    checks = {"vs_numpy_em": _check(t_np["best_s"] / t_dln["best_s"], TARGETS["B3"]["vs_numpy_em"],
                                    cpu_value=t_np["cpu_s"] / t_dln["cpu_s"])}
    if _have("diffrax") and _have("lineax"):
        run = diffrax_mode_em(*args, rec_steps * dt)
        t_dx, m_dx = timed(run, reps)
        m_dx = np.asarray(m_dx)
        res["diffrax_euler"] = {**t_dx, "final_m_mean": np.nanmean(m_dx[:, -1], axis=0).tolist()}
        checks["vs_diffrax_euler"] = _check(t_dx["best_s"] / t_dln["best_s"], TARGETS["B3"]["vs_diffrax_euler"],
                                            cpu_value=t_dx["cpu_s"] / t_dln["cpu_s"])
    else:
        res["diffrax_euler"] = {"skipped": "diffrax not installed"}
        checks["vs_diffrax_euler"] = _check(None, TARGETS["B3"]["vs_diffrax_euler"], "diffrax not installed")
    res["checks"] = checks
    return res


# ---------------------------------------------------------------------------------------------------------
# B4: adaptive gradient flow against fixed-step Euler at the same accuracy

B4_S = (1.0, 0.5, 0.25, 0.125)
B4_M0 = 1e-6
B4_DEPTH = 3
#: Gradient evaluations of one diffrax Dopri5 solve: 6 per attempted (accepted or rejected) step (7 stages,
#: first-same-as-last) plus 1 initial evaluation. Checked by counting vector-field calls (``jax.debug.callback``)
#: on the B4 problem at rtol 1e-6 with diffrax 0.7.2: 6457 calls for 1076 steps.
DOPRI5_EVALS_PER_STEP, DOPRI5_EVALS_PER_SOLVE = 6, 1


def _b4_config(points, rtol=None):
    from .config import Config
    from .theory import mode_time

    t_max = 1.2 * mode_time(0.999 * B4_S[-1], B4_M0, B4_S[-1], 1.0, B4_DEPTH)
    k = len(B4_S)
    dyn = {"kind": "flow", "t_max": float(t_max)}
    if rtol is not None:
        dyn["rtol"] = rtol
    return Config.from_dict({
        "teacher": {"d_in": k, "d_out": k, "singular_values": list(B4_S), "basis": "identity"},
        "network": {"depth": B4_DEPTH, "width": k},
        "init": {"kind": "aligned", "scale": B4_M0, "hidden_basis": "identity"},
        "dynamics": dyn,
        "record": {"n_times": points + 1, "spacing": "linear", "observables": ["mode_strength"], "chunks": 1},
        "ensemble": {"replicas": 1},
    })


def _euler_program(problem, n_records):
    """Fixed-step Euler of population gradient flow, ``θ ← θ − h ∇𝓛(θ)`` (the engine's ``full_gradient``),
    recording the mode strengths every ``k`` steps: ``prog(w0, h, k) -> (n_records, n_modes)``."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from .gradients import full_gradient
    from .network import end_to_end

    @jax.jit
    def prog(w0, h, k):
        def interval(w, _):
            w = lax.fori_loop(0, k, lambda _, w: tuple(a - h * g for a, g in zip(w, full_gradient(w, problem))), w)
            return w, jnp.diagonal(problem.U_k.T @ end_to_end(w) @ problem.V_k)

        return lax.scan(interval, w0, None, length=n_records)[1]

    return prog


def b4_flow_vs_euler(size: dict) -> dict:
    from .theory import mode_flow_fn

    tol, points, reps = size["b4_tol"], size["b4_points"], size["repeats"]
    cfg = _b4_config(points)
    run, ens, t = _flow_engine(cfg)
    t_flow, (_, nsteps, ok, obs) = timed(run, reps)
    ref = mode_flow_fn([B4_M0] * len(B4_S), list(B4_S), 1.0, B4_DEPTH)(t[1:])
    err_flow = float(np.max(np.abs(np.asarray(obs["mode_strength"])[0] - ref)))
    n_steps = int(np.asarray(nsteps)[0])
    evals_flow = DOPRI5_EVALS_PER_STEP * n_steps + DOPRI5_EVALS_PER_SOLVE
    res = {"params": {"s": list(B4_S), "m0": B4_M0, "depth": B4_DEPTH, "t_max": float(t[-1]), "tol": tol,
                      "error": f"max |m - closed form| over modes and {points} equally spaced times",
                      "rtol": cfg.dynamics.rtol},
           "dlnlab_flow": {**t_flow, "solver_steps": n_steps, "gradient_evaluations": evals_flow,
                           "max_error": err_flow, "ok": bool(np.asarray(ok)[0]),
                           "evaluation_count": f"{DOPRI5_EVALS_PER_STEP}·steps + {DOPRI5_EVALS_PER_SOLVE} (Dopri5, FSAL)"}}
    ladder = []
    for rtol in size["b4_rtols"]:  # the loosest tolerance that still reaches the error target
        r2, _, _t2 = _flow_engine(_b4_config(points, rtol))
        tb, (_, ns2, _, ob2) = timed(r2, reps)
        e2 = float(np.max(np.abs(np.asarray(ob2["mode_strength"])[0] - ref)))
        ladder.append({"rtol": rtol, "solver_steps": int(np.asarray(ns2)[0]), "max_error": e2, "best_s": tb["best_s"],
                       "gradient_evaluations": DOPRI5_EVALS_PER_STEP * int(np.asarray(ns2)[0]) + DOPRI5_EVALS_PER_SOLVE})
    res["dlnlab_flow_rtol_ladder"] = ladder
    # fixed-step Euler: k steps per record interval, h = t_max / (points k)
    import jax

    w0 = tuple(w[0] for w in ens.weights0)
    prog = _euler_program(ens.problem, points)
    T = float(t[-1])

    def euler_error(k):
        c0, t0 = time.process_time(), time.perf_counter()
        m = np.asarray(_block(prog(w0, T / (points * k), k)))
        return float(np.max(np.abs(m - ref))), time.perf_counter() - t0, time.process_time() - c0

    jax.block_until_ready(prog(w0, T / points, 1))  # compile
    history = []

    def trial(k):
        err, wall, cpu = euler_error(k)
        history.append({"steps_per_record": k, "steps": points * k, "max_error": err if math.isfinite(err) else math.inf,
                        "wall_s": wall, "cpu_s": cpu})
        return history[-1]["max_error"]

    k = 1
    while True:  # ×4 until the target is reached or first-order convergence (error ∝ h) is visible
        err = trial(k)
        if err <= tol:
            break
        if len(history) >= 2 and 3.0 < history[-2]["max_error"] / err < 5.0 and err < 100 * tol:
            break
        if points * k > 2**34:
            break
        k *= 4
    for _ in range(4):  # first-order step from the largest failing k towards the target; verify
        fail = [h for h in history if h["max_error"] > tol]
        good = [h for h in history if h["max_error"] <= tol]
        if not fail:
            break
        lo = max(fail, key=lambda h: h["steps"])
        hi = min(good, key=lambda h: h["steps"]) if good else None
        cand = math.ceil(lo["steps_per_record"] * lo["max_error"] / tol * 1.02)
        if hi is not None and (cand >= hi["steps_per_record"] or hi["steps"] <= 1.1 * lo["steps"]):
            break
        trial(max(cand, lo["steps_per_record"] + 1))
    good = [h for h in history if h["max_error"] <= tol]
    best = min(good, key=lambda h: h["steps"]) if good else None
    res["euler"] = {"history": history, "evaluation_count": "1 per step"}
    if best is None:
        res["euler"]["skipped"] = "did not reach the error target"
        res["checks"] = {"fewer_evaluations": _check(None, TARGETS["B4"]["fewer_evaluations"], "Euler did not converge")}
        return res
    tighter = [h for h in history if h["max_error"] > tol and h["steps"] < best["steps"]]
    res["euler"].update({"steps": best["steps"], "gradient_evaluations": best["steps"], "max_error": best["max_error"],
                         "step": T / best["steps"], "wall_s": best["wall_s"], "cpu_s": best["cpu_s"],
                         "largest_failing_steps": max((h["steps"] for h in tighter), default=None)})
    res["wall_ratio"] = best["wall_s"] / t_flow["best_s"]
    res["cpu_ratio"] = best["cpu_s"] / t_flow["cpu_s"]
    meeting = [x for x in ladder if x["max_error"] <= tol]
    if meeting:  # informative: the adaptive solver at the loosest listed rtol that still meets the tolerance
        loose = max(meeting, key=lambda x: x["rtol"])
        res["loosest_rtol"] = {**loose, "fewer_evaluations": best["steps"] / loose["gradient_evaluations"],
                               "wall_ratio": best["wall_s"] / loose["best_s"]}
    res["checks"] = {"fewer_evaluations": _check(best["steps"] / evals_flow, TARGETS["B4"]["fewer_evaluations"])}
    return res


# ---------------------------------------------------------------------------------------------------------
# B5: memory (peak RSS in a subprocess, at two step counts)


def _b5_child(steps: int, replicas: int, n_modes: int = 10, n_times: int = 200) -> None:
    """Run the B5 workload and print one JSON line with the peak RSS (``python -c`` entry point)."""
    import resource

    from .modes import mode_config, simulate_modes

    def vm(key):
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    rss_imports = vm("VmRSS:")

    s = np.geomspace(2.0, 0.2, n_modes).tolist()
    cfg = mode_config(s, depth=3, lr=0.01, batch_size=1, label_noise=0.1, m0=0.01, kind="sde", steps=steps,
                      n_times=n_times, spacing="log", replicas=replicas, noise="exact")
    t0 = time.perf_counter()
    ds = simulate_modes(cfg, scheme="em", progress=False)
    wall = time.perf_counter() - t0
    hwm = vm("VmHWM:")
    # VmHWM is this process's own peak; ru_maxrss survives exec (it can be the forking parent's peak)
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(json.dumps({"steps": steps, "replicas": replicas, "n_modes": n_modes, "n_times": int(ds.sizes["t"]),
                      "peak_rss_bytes": hwm if hwm is not None else ru, "ru_maxrss_bytes": ru, "vm_hwm_bytes": hwm,
                      "rss_after_imports_bytes": rss_imports, "dataset_bytes": int(ds.nbytes), "wall_s": wall}))


def b5_memory(size: dict) -> dict:
    replicas, runs = size["b5_replicas"], []
    for steps in size["b5_steps"]:
        code = f"from dlnlab.bench import _b5_child; _b5_child({int(steps)}, {int(replicas)})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode != 0:
            last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [""]
            raise RuntimeError(f"B5 subprocess exited with {proc.returncode}: {last[0].strip()[:300]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    peak = max(r["peak_rss_bytes"] for r in runs) / 2**30
    growth = runs[-1]["peak_rss_bytes"] / runs[0]["peak_rss_bytes"] - 1.0
    return {"params": {"replicas": replicas, "n_modes": 10, "n_times": 200, "steps": list(size["b5_steps"]),
                       "engine": "dlnlab.modes.simulate_modes(scheme='em')", "measure": "peak RSS (VmHWM; ru_maxrss where /proc is absent) of a fresh subprocess"},
            "runs": runs,
            "checks": {"peak_rss_gib": _check(peak, TARGETS["B5"]["peak_rss_gib"]),
                       "rss_growth": _check(growth, TARGETS["B5"]["rss_growth"])}}


# ---------------------------------------------------------------------------------------------------------
# B6: the main job


def b6_reproduce(size: dict) -> dict:
    if not size["b6"]:
        return {"params": {}, "skipped": "not run with --quick: measured by the full benchmark",
                "checks": {"wall_minutes": _check(None, TARGETS["B6"]["wall_minutes"], "quick mode")}}
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
            "checks": {"wall_minutes": _check(wall / 60.0, TARGETS["B6"]["wall_minutes"])}}


# ---------------------------------------------------------------------------------------------------------
# Suite

WORKLOADS = {
    "B1": ("small ensemble SGD vs PyTorch loop and batched NumPy", b1_small_sgd),
    "B2": ("compute-bound ensemble SGD vs machine GEMM rate", b2_compute_bound),
    "B3": ("per-mode SDE ensemble vs NumPy EM and diffrax Euler", b3_mode_sde),
    "B4": ("gradient flow: adaptive Dopri5 vs fixed-step Euler", b4_flow_vs_euler),
    "B5": ("memory: peak RSS at two step counts", b5_memory),
    "B6": ("main job: dlnlab reproduce --quick", b6_reproduce),
}


def run_suite(mode: str = "full", only: list[str] | None = None, log=None) -> dict:
    """Run the selected workloads (``mode``: full | quick | tiny); return the JSON-ready result."""
    from . import conventions  # noqa: F401  (float64)

    size = SIZES[mode]
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    machine = machine_info()
    out = {"schema": SCHEMA, "mode": mode, "created": started, "machine": machine, "versions": versions(),
           "backend": machine["backend"], "targets": {k: {n: list(v) for n, v in t.items()} for k, t in TARGETS.items()},
           "method": "ratios of best-of-repeats wall times measured in this run, after a warm-up (compilation "
                     "excluded); alternative / dlnlab > 1 means dlnlab is faster",
           "workloads": {}}
    for wid, (title, fn) in WORKLOADS.items():
        if only and wid not in only:
            continue
        if log:
            log(f"{wid}: {title} ...")
        t0 = time.perf_counter()
        try:
            res = fn(size)
            res["status"] = "skipped" if "skipped" in res else "ok"
        except Exception as exc:  # noqa: BLE001  (a failing workload is reported, the suite goes on)
            res = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "checks": {}}
        res["title"] = title
        res["workload_wall_s"] = time.perf_counter() - t0
        out["workloads"][wid] = res
        if log:
            log(format_table({"workloads": {wid: res}}, header=False))
    out["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return out


def _fmt(v):
    if v is None:
        return "—"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


UNITS = {"vs_torch_loop": "×", "vs_numpy_batched": "×", "fraction_of_gemm": "", "vs_numpy_em": "×",
         "vs_diffrax_euler": "×", "fewer_evaluations": "×", "peak_rss_gib": " GiB", "rss_growth": "",
         "wall_minutes": " min"}


def format_table(result: dict, header: bool = True) -> str:
    """A plain-text table: workload, figure, value (wall-time based), the same from CPU times, target, verdict."""
    cols = ("id", "figure", "value", "cpu-time value", "target", "verdict")
    rows = []
    for wid, res in result["workloads"].items():
        if res.get("status") == "error":
            rows.append((wid, "error", res["error"][:70], "", "", "ERROR"))
            continue
        for name, c in res.get("checks", {}).items():
            unit = UNITS.get(name, "")
            target = f"{c['op']} {c['target']:g}{unit}"
            if c["skipped"]:
                rows.append((wid, name, "skipped", "", target, f"skip ({c['skipped']})"))
            else:
                cpu = c.get("cpu_value")
                rows.append((wid, name, f"{_fmt(c['value'])}{unit}", "" if cpu is None else f"{_fmt(cpu)}{unit}",
                             target, "pass" if c["passed"] else "FAIL"))
    widths = [max(len(str(r[i])) for r in [*rows, cols]) for i in range(len(cols))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(cols, widths))] if header else []
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def write_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    return path


# ---------------------------------------------------------------------------------------------------------
# The README table (``dlnlab bench --markdown``, or ``python -m dlnlab.bench RESULT.json``)


def _num(x, unit=""):
    """3 significant digits; thousands separated by spaces."""
    if x is None:
        return "—"
    text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return text.replace(",", " ") + unit


def _sci(x, digits=1):
    """``1e-6``, ``4.4e-5``: scientific notation without exponent padding."""
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _cells(check, unit="×"):
    """(ratio (from CPU times), verdict) cells of a check."""
    if check is None or check.get("skipped"):
        return "skipped" if check else "—", "—"
    cpu = check.get("cpu_value")
    ratio = _num(check["value"], unit) + ("" if cpu is None else f" ({_num(cpu, unit)})")
    return ratio, "met" if check["passed"] else "not met"


def _target(wid, name):
    op, thr = TARGETS[wid][name]
    return f"{'≥' if op == '>=' else '<'} {thr:g}{UNITS.get(name, '')}"


def markdown_table(result: dict) -> str:
    """The README's benchmark table for ``result`` (:func:`run_suite`'s output), preceded by its machine line."""
    m, v = result["machine"], result["versions"]
    load = f"load average {m.get('load_average')} → {m.get('load_average_end')} (1, 5, 15 min)"
    machine = (f"Machine: {m['cpu']}, {m['cores_usable']} cores, {m['memory_gib']} GiB; {m['platform']}; CPython "
               f"{v['python']}; JAX/jaxlib {v['jax']}/{v['jaxlib']} ({m['backend']}, {len(m['devices'])} devices), "
               f"float64; NumPy {v['numpy']}; torch {v.get('torch')}; diffrax {v.get('diffrax')}; {load}; "
               f"`dlnlab bench{' --quick' if result['mode'] == 'quick' else ''}`, {result['created']}.")
    lines = [machine, "", "| | workload | dlnlab | alternative | ratio (from CPU times) | target | |",
             "|---|---|---|---|---|---|---|"]

    def row(wid, name, workload, ours, alternative, unit="×"):  # a continuation row has workload None
        ratio, verdict = _cells(w[wid].get("checks", {}).get(name), unit)
        cells = ("", "", "") if workload is None else (wid, workload, ours)
        lines.append(f"| {' | '.join(cells)} | {alternative} | {ratio} | {_target(wid, name)} | {verdict} |")

    w = result["workloads"]
    for wid, res in w.items():
        if res.get("status") == "error":
            lines.append(f"| {wid} | {res['title']} | error: {res['error'][:120]} | | | | — |")
            continue
        p = res.get("params", {})
        if wid == "B1":
            tl, npb = res["torch_loop"], res["numpy_batched"]
            torch = (f"PyTorch loop, replica after replica: {_num(tl['best_s'], ' s')} ({tl['measured_replicas']} "
                     f"replicas timed, × {_num(p['replicas'] / tl['measured_replicas'])})" if "best_s" in tl
                     else f"PyTorch loop: {tl['skipped']}")
            row(wid, "vs_torch_loop", f"SGD, L = 3, d = 10, width 50, B = 1, {p['replicas']} replicas × "
                f"{_num(p['steps'])} steps", _num(res["dlnlab"]["best_s"], " s"), torch)
            row(wid, "vs_numpy_batched", None, None,
                f"hand-batched NumPy, closed-form gradients: {_num(npb['best_s'], ' s')}")
        elif wid == "B2":
            g = res["gemm"]
            row(wid, "fraction_of_gemm", f"SGD, L = 4, width 100, B = 32, {p['replicas']} replicas × {p['steps']} steps",
                _num(res["dlnlab"]["achieved_flops"] / 1e9, " GFLOP/s"),
                f"float64 GEMM ({g['n']}², best of JAX, NumPy, one per device): {_num(g['flops'] / 1e9, ' GFLOP/s')}",
                "")
            if "product_ceiling" in res:
                c = res["product_ceiling"]
                lines.append(f"| | ceiling: the step's matrix products alone, each at its best isolated rate | "
                             f"{_num(c['mix_rate'] / 1e9, ' GFLOP/s')} | | {_num(c['fraction_of_gemm'])} of GEMM | | |")
        elif wid == "B3":
            dx = res["diffrax_euler"]
            row(wid, "vs_numpy_em", f"per-mode Euler–Maruyama, {len(p['s'])} modes × {p['replicas']} replicas × "
                f"{_num(p['steps'])} steps", _num(res["dlnlab"]["best_s"], " s"),
                f"vectorised NumPy EM: {_num(res['numpy_em']['best_s'], ' s')}")
            row(wid, "vs_diffrax_euler", None, None, f"diffrax `Euler` + `UnsafeBrownianPath`: {_num(dx['best_s'], ' s')}"
                if "best_s" in dx else f"diffrax: {dx['skipped']}")
        elif wid == "B4":
            fl, eu = res["dlnlab_flow"], res["euler"]
            euler = (f"fixed-step Euler (h = {_sci(eu['step'], 2)}): {_num(eu['gradient_evaluations'])} evaluations, "
                     f"{_num(eu['wall_s'], ' s')}" if "step" in eu else f"fixed-step Euler: {eu.get('skipped')}")
            check = res["checks"]["fewer_evaluations"]
            ratio = "—" if check.get("skipped") else (f"{_num(check['value'], '×')} fewer evaluations "
                                                       f"({_num(res['wall_ratio'], '×')} less time)")
            verdict = "—" if check.get("skipped") else ("met" if check["passed"] else "not met")
            lines.append(f"| B4 | gradient flow through 4 plateaus from m₀ = {_sci(p['m0'])}, L = {p['depth']}, max "
                         f"error {_sci(p['tol'])} on m_α | Dopri5: {_num(fl['gradient_evaluations'])} gradient evaluations, "
                         f"{_num(fl['best_s'], ' s')} | {euler} | {ratio} | {_target('B4', 'fewer_evaluations')} | "
                         f"{verdict} |")
        elif wid == "B5":
            runs = res["runs"]
            small, big = runs[0], runs[-1]
            gib = lambda b: _num(b / 2**30, " GiB")
            ours = (f"peak RSS {gib(big['peak_rss_bytes'])} ({gib(small['peak_rss_bytes'])} at {_num(small['steps'])} "
                    f"steps; imports alone {gib(big['rss_after_imports_bytes'])})")
            c = res["checks"]
            verdict = "met" if c["peak_rss_gib"]["passed"] and c["rss_growth"]["passed"] else "not met"
            lines.append(f"| B5 | {_num(big['steps'])} steps × {p['replicas']} replicas × 10 modes, 200 log-spaced "
                         f"records | {ours} | | growth {100 * c['rss_growth']['value']:+.1f} % | < 1 GiB, no growth | "
                         f"{verdict} |")
        elif wid == "B6":
            c = res["checks"]["wall_minutes"]
            ours = "not run (quick mode)" if c.get("skipped") else _num(c["value"], " min")
            verdict = "—" if c.get("skipped") else ("met" if c["passed"] else "not met")
            lines.append(f"| B6 | `dlnlab reproduce --quick` | {ours} | | | < 10 min | {verdict} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m dlnlab.bench RESULT.json: the README table of a saved result
    print(markdown_table(json.loads(Path(sys.argv[1]).read_text())))
