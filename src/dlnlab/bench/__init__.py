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
  :func:`dlnlab.engines.simulate_modes`): against vectorised NumPy EM and against diffrax ``Euler`` with an
  ``UnsafeBrownianPath``. Target ≥ 1× both.
* **B4** gradient flow through every plateau (4 modes) from m₀ = 1e-8 at L = 3 and 4 (issue 15): the default
  ``auto`` solver (Dopri5 switching to Rodas5P on the exact Hessian) against the explicit Dopri5 solver of earlier
  versions at the same ``rtol``, as gradient / Hessian evaluations and wall time, with each one's error against
  the closed form; the explicit run is capped and extrapolated from its measured step rate (stated in the result;
  :mod:`._gradient_flow`). Targets ≥ 1× (L = 3) and ≥ 10× (L = 4) in wall time.
* **B5** memory: 10⁶ steps × 1024 replicas × 10 modes with observables at 200 log-spaced times, peak RSS
  measured in a subprocess at two step counts. Target < 1 GiB and no growth with the number of steps.
* **B6** wall time of ``dlnlab reproduce --quick`` in a subprocess. Target < 10 minutes.
* **B8** scaling (issue 18 item 2, which names it B7): SGD cost per replica-step over width, replicas and depth
  against hand-batched NumPy (stacked matmul) and batched PyTorch (bmm) at every point, with fitted exponents and
  the fraction of the GEMM rate (:mod:`._scaling`); the alternatives also include batched PyTorch with autograd and
  under ``torch.compile`` and JAX written the obvious way (one replica's jitted step in a Python loop). Targets ≥ 1×
  the fastest alternative at every point, ≥ 1.5× at the median. With it, every stepping engine's cost over R
  (:mod:`._replica_scan`): the exponent of the total cost in R, target < 1.15 (flat per replica-step).
* **B9** long runs (issue 18 item 3, which names it B8): 10⁶ online-SGD steps × 256 replicas at w = 100 with 200
  records and checkpoints, against a short run of the same configuration: late throughput ≥ 0.9 of the short run's,
  peak RSS growth < 5 % (:mod:`._long_runs`). The full suite runs it only when named (``--only B9``: hours on 2
  cores); ``--quick`` runs it at 10⁵ steps × 64 replicas.

PyTorch (and diffrax) comparisons need the optional ``bench`` extra; when a package is missing the
comparison is reported as skipped (``"skipped": "<reason>"``, value ``None``), never estimated. dlnlab's engines
shard replicas over every CPU core (:mod:`dlnlab.runtime`); the alternatives run as a user would run them, so the
ratios compare what each achieves on the whole machine (the CPU-time ratios compare the work done).
``dlnlab bench --markdown`` prints the README's table of the results (``python -m dlnlab.bench RESULT.json``
prints it for a saved result).

Modules: :mod:`._spec` (schema, targets, sizes), :mod:`._machine` (machine, versions, timing), :mod:`._engine`
(the engine's compiled programs), :mod:`._baselines` (the hand-written alternatives), :mod:`._flops` (FLOP
counts and rates), :mod:`._workloads` (B1–B3, B5, B6), :mod:`._gradient_flow` (B4), :mod:`._scaling` and :mod:`._replica_scan` (B8), :mod:`._long_runs` (B9), :mod:`._suite` (:func:`run_suite`) and :mod:`._report` (tables).
"""

from ._baselines import (
    diffrax_mode_em,
    jax_per_replica_sgd,
    numpy_batched_sgd,
    numpy_mode_em,
    population_loss_np,
    torch_batched_sgd,
    torch_loop_sgd,
)
from ._figure import scaling_figure
from ._flops import gemm_rate, product_ceiling, product_flops, sgd_step_flops, sgd_step_products
from ._gradient_flow import B4_M0, B4_S, b4_config, b4_flow_solvers
from ._long_runs import b9_child, b9_config, b9_long_runs
from ._machine import have, machine_info, timed, versions
from ._replica_scan import ENGINES, engine_scan
from ._report import UNITS, format_table, markdown_table, write_json
from ._scaling import b8_config, b8_point, b8_scaling, b8_steps
from ._spec import SCHEMA, SIZES, TARGETS, check
from ._suite import GPU_WORKLOADS, gpu_devices, run_suite
from ._workloads import (
    WORKLOADS,
    b1_small_sgd,
    b2_compute_bound,
    b3_mode_sde,
    b5_child,
    b5_memory,
    b6_reproduce,
)

__all__ = [
    "B4_M0",
    "B4_S",
    "ENGINES",
    "GPU_WORKLOADS",
    "SCHEMA",
    "SIZES",
    "TARGETS",
    "UNITS",
    "WORKLOADS",
    "b1_small_sgd",
    "b2_compute_bound",
    "b3_mode_sde",
    "b4_config",
    "b4_flow_solvers",
    "b5_child",
    "b5_memory",
    "b6_reproduce",
    "b8_config",
    "b8_point",
    "b8_scaling",
    "b8_steps",
    "b9_child",
    "b9_config",
    "b9_long_runs",
    "check",
    "diffrax_mode_em",
    "engine_scan",
    "format_table",
    "gemm_rate",
    "gpu_devices",
    "have",
    "jax_per_replica_sgd",
    "machine_info",
    "markdown_table",
    "numpy_batched_sgd",
    "numpy_mode_em",
    "population_loss_np",
    "product_ceiling",
    "product_flops",
    "run_suite",
    "scaling_figure",
    "sgd_step_flops",
    "sgd_step_products",
    "timed",
    "torch_batched_sgd",
    "torch_loop_sgd",
    "versions",
    "write_json",
]
