"""What the benchmark measures against: the result schema, each workload's targets and the workload sizes,
and the comparison of one figure with its target."""

from __future__ import annotations

import math

SCHEMA = "dlnlab-bench/1"

TARGETS = {
    "B1": {"vs_torch_loop": (">=", 100.0), "vs_numpy_batched": (">=", 1.0)},
    "B2": {"fraction_of_gemm": (">=", 0.70)},
    "B3": {"vs_numpy_em": (">=", 1.0), "vs_diffrax_euler": (">=", 1.0)},
    "B4": {"vs_explicit_L3": (">=", 1.0), "vs_explicit_L4": (">=", 10.0)},
    "B5": {"peak_rss_gib": ("<", 1.0), "rss_growth": ("<", 0.05)},
    "B6": {"wall_minutes": ("<", 10.0)},
    "B7": {"help_vs_import_jax": (">=", 2.4), "list_vs_import_jax": (">=", 2.4), "command_help_vs_import_jax": (">=", 2.4)},
    "B9": {"throughput_vs_short": (">=", 0.9), "rss_growth": ("<", 0.05)},
    "B8": {"vs_fastest_min": (">=", 1.0), "vs_fastest_median": (">=", 1.5), "engine_replica_exponent_max": ("<", 1.15)},
}

#: Workload sizes. ``full`` is the issue's specification; ``quick`` keeps the ratios meaningful at a fraction of
#: the cost; ``tiny`` only exercises the code (tests).
SIZES = {
    "full": {"repeats": 3, "b1_replicas": 256, "b1_steps": 2000, "b1_torch_replicas": 8, "b1_numpy_repeats": 2,
             "b2_replicas": 256, "b2_steps": 50, "b2_gemm_n": 1024, "b2_blocks": (1, 4, 8, 16),
             "b3_replicas": 1024, "b3_steps": 10_000, "b3_modes": 10,
             "b4_depths": (3, 4), "b4_points": 200, "b4_rtol": 1e-8, "b4_explicit_chunks": 20, "b4_explicit_max_steps": None, "b4_repeats": 5,
             "b5_replicas": 1024, "b5_steps": (100_000, 1_000_000), "b6": True,
             "b8_widths": (10, 30, 100, 300, 1000), "b8_width_replicas": 16, "b8_replicas": (1, 16, 256, 4096),
             "b8_depths": (2, 4, 8), "b8_steps": 10, "b8_fit_width": 100, "b8_fit_replicas": 256,
             "b8_jax_loop": True, "b8_jax_loop_replicas": 16, "b8_torch_compile": True, "b8_work_flops": 2e9,
             "b8_max_steps": 1000, "b8_repeats": 5, "b8_engine_replicas": (16, 256, 1024, 4096, 16384),
             "b8_engine_steps": 100,
             "b9_width": 100, "b9_replicas": 256, "b9_steps": 1_000_000, "b9_short_steps": 100_000, "b9_chunks": 20,
             "b9_checkpoint_every": 60.0},
    "quick": {"repeats": 2, "b1_replicas": 256, "b1_steps": 500, "b1_torch_replicas": 2, "b1_numpy_repeats": 1,
             "b2_replicas": 64, "b2_steps": 10, "b2_gemm_n": 1024, "b2_blocks": (4, 8),
             "b3_replicas": 256, "b3_steps": 2000, "b3_modes": 10,
             "b4_depths": (3, 4), "b4_points": 100, "b4_rtol": 1e-8, "b4_explicit_chunks": 20, "b4_explicit_max_steps": 5000, "b4_repeats": 3,
             "b5_replicas": 1024, "b5_steps": (10_000, 100_000), "b6": False,
             "b8_widths": (10, 30, 100, 300), "b8_width_replicas": 16, "b8_replicas": (1, 16, 256, 4096),
             "b8_depths": (2, 4, 8), "b8_steps": 10, "b8_fit_width": 100, "b8_fit_replicas": 256,
             "b8_jax_loop": True, "b8_jax_loop_replicas": 16, "b8_torch_compile": True, "b8_work_flops": 1e9,
             "b8_max_steps": 500, "b8_repeats": 3, "b8_engine_replicas": (16, 256, 1024, 4096),
             "b8_engine_steps": 50,
             "b9_width": 100, "b9_replicas": 64, "b9_steps": 100_000, "b9_short_steps": 10_000, "b9_chunks": 20,
             "b9_checkpoint_every": 10.0},
}
#: ``dlnlab bench --device gpu --quick``: the quick sizes with B8's scans grown to GPU sizes (``torch.compile``
#: left out: its compilations at every shape would not fit the GPU script's 8 minutes).
SIZES["gpu"] = {**SIZES["quick"], "b8_widths": (10, 30, 100, 300, 1000, 3000), "b8_width_replicas": 64,
                "b8_replicas": (1, 16, 256, 4096, 16384), "b8_torch_compile": False, "b8_fit_width": 300,
                "b8_fit_replicas": 4096, "b8_work_flops": 2e10, "b8_engine_replicas": (256, 4096, 16384, 65536),
                "b8_engine_steps": 50}
SIZES |= {
    "tiny": {"repeats": 1, "b1_replicas": 4, "b1_steps": 30, "b1_torch_replicas": 1, "b1_numpy_repeats": 1,
             "b2_replicas": 2, "b2_steps": 2, "b2_gemm_n": 128, "b2_blocks": (1,),
             "b3_replicas": 8, "b3_steps": 50, "b3_modes": 3,
             "b4_depths": (3,), "b4_points": 20, "b4_rtol": 1e-6, "b4_explicit_chunks": 5, "b4_explicit_max_steps": 200, "b4_repeats": 1,
             "b5_replicas": 8, "b5_steps": (100, 1000), "b6": False,
             "b8_widths": (4, 8), "b8_width_replicas": 4, "b8_replicas": (1, 8), "b8_depths": (2, 3), "b8_steps": 3,
             "b8_fit_width": 4, "b8_fit_replicas": 1,
             "b8_jax_loop": True, "b8_jax_loop_replicas": 4, "b8_torch_compile": False, "b8_work_flops": 1e5,
             "b8_max_steps": 5, "b8_repeats": 1, "b8_engine_replicas": (2, 8), "b8_engine_steps": 3,
             "b9_width": 4, "b9_replicas": 2, "b9_steps": 400, "b9_short_steps": 40, "b9_chunks": 4,
             "b9_checkpoint_every": 0.0},
}


def check(value, target, skipped=None, cpu_value=None) -> dict:
    """A figure against its target. ``cpu_value``: the same ratio from process CPU times (informative)."""
    op, thr = target
    if skipped is not None or value is None or not math.isfinite(value):
        return {"value": None, "target": thr, "op": op, "passed": None, "skipped": skipped or "no value"}
    passed = value >= thr if op == ">=" else value < thr
    out = {"value": float(value), "target": thr, "op": op, "passed": bool(passed), "skipped": None}
    if cpu_value is not None:
        out["cpu_value"] = float(cpu_value)
    return out

