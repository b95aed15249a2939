"""The suite: every workload run in turn, a failing one reported and the others still run; ``device = "gpu"`` runs
the GPU workloads (:data:`GPU_WORKLOADS`) on a CUDA device (:func:`gpu_devices`)."""

from __future__ import annotations

import datetime
import os
import time

from ._machine import machine_info, versions
from ._report import format_table
from ._spec import SCHEMA, SIZES, TARGETS, check
from ._workloads import WORKLOADS

#: The workloads ``dlnlab bench --device gpu`` runs (issue 18 item 4) in float64, and those it runs again in float32
#: (dlnlab and every alternative in float32; reported as ``"B8:float32"``).
GPU_WORKLOADS = ("B1", "B2", "B3", "B8")
GPU_FLOAT32_WORKLOADS = ("B8",)

#: Workloads the full suite runs only when named (``--only``): their full size takes too long for the default run.
NAMED_ONLY = {"B9": "full size (10^6 steps x 256 replicas: ~1 h on 2 cores, and over 24 GB of memory on 2 CPU devices, "
                    "README Honest limits): run with --only B9; --quick runs it at 10^5 steps x 64 replicas"}


def gpu_devices() -> list:
    """JAX's CUDA devices (empty without one, or without a CUDA jaxlib: ``pip install 'dlnlab[gpu]'``)."""
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:
        return []


def _run_workload(key, title, fn, size, log) -> dict:
    """One workload, timed; a failing one is reported (``status = "error"``) and the suite goes on."""
    if log:
        log(f"{key}: {title} ...")
    t0 = time.perf_counter()
    try:
        res = fn(size)
        res["status"] = "skipped" if "skipped" in res else "ok"
    except Exception as exc:  # noqa: BLE001  (a failing workload is reported, the suite goes on)
        res = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "checks": {}}
    res["title"] = title
    res["workload_wall_s"] = time.perf_counter() - t0
    if log:
        log(format_table({"workloads": {key: res}}, header=False))
    return res


def run_suite(mode: str = "full", only: list[str] | None = None, log=None, device: str = "cpu") -> dict:
    """Run the selected workloads (``mode``: full | quick | tiny); return the JSON-ready result. ``device = "gpu"``:
    the :data:`GPU_WORKLOADS` (or those of ``only``) on the CUDA device in float64, then the
    :data:`GPU_FLOAT32_WORKLOADS` in float32 (``"B8:float32"``), at the ``gpu`` sizes with ``quick``; the JSON names
    the device (the caller checks :func:`gpu_devices` first)."""
    from .. import conventions  # noqa: F401  (float64)

    passes = [("float64", only)]
    if device == "gpu":
        only = [w for w in (only or GPU_WORKLOADS) if w in GPU_WORKLOADS]
        passes = [("float64", only), ("float32", [w for w in only if w in GPU_FLOAT32_WORKLOADS])]
    size = SIZES["gpu" if device == "gpu" and mode == "quick" else mode] | {"device": device}
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    machine = machine_info()
    out = {"schema": SCHEMA, "mode": mode, "created": started, "machine": machine, "versions": versions(),
           "backend": machine["backend"], "targets": {k: {n: list(v) for n, v in t.items()} for k, t in TARGETS.items()},
           "method": "ratios of best-of-repeats wall times measured in this run, after a warm-up (compilation "
                     "excluded); alternative / dlnlab > 1 means dlnlab is faster",
           "device": {"kind": device, "devices": [str(d) for d in gpu_devices()] if device == "gpu" else
                      machine["devices"]}, "workloads": {}}
    for precision, selected in passes:
        for wid, (title, fn) in WORKLOADS.items():
            if (precision != "float64" and not selected) or (selected and wid not in selected):
                continue
            key = wid if precision == "float64" else f"{wid}:{precision}"
            if mode == "full" and wid in NAMED_ONLY and not selected:
                out["workloads"][key] = {"title": title, "status": "skipped", "skipped": NAMED_ONLY[wid],
                                         "checks": {n: check(None, t, NAMED_ONLY[wid]) for n, t in TARGETS[wid].items()}}
                continue
            out["workloads"][key] = _run_workload(key, title, fn, size | {"precision": precision}, log)
    out["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return out

