"""The machine and its software (CPU, cores, memory, load, JAX devices, package versions), optional packages,
and the timing of compiled programs (warm-up excluded, best of a few repeats)."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time


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

    from ..runtime import package_versions

    out = package_versions()
    for pkg in ("torch", "equinox", "lineax"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def blas_threads() -> str:
    """NumPy's BLAS threads as its environment sets them (``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS``; unset:
    the library's default, every core)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            return f"{var}={os.environ[var]}"
    return f"BLAS default (all {os.cpu_count()} logical cores)"


def proc_status_bytes(key: str) -> int | None:
    """A size from ``/proc/self/status`` in bytes (``key``: ``"VmRSS:"``, ``"VmHWM:"``; None where /proc is absent)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def block(x):
    import jax

    return jax.block_until_ready(x)


def timed(fn, repeats: int = 3, warmup: int = 1):
    """Run ``fn`` ``warmup`` times untimed (compilation), then ``repeats`` times.

    Returns ``({"best_s", "times_s", "cpu_s", "warmup_s"}, last value)``: wall times, the best process CPU
    time (all threads; less sensitive than wall time to other jobs on the machine) and the warm-up time
    (which includes compilation)."""
    return timed_together({"": fn}, repeats, warmup)[""]


def timed_once(fn):
    """``(wall seconds, process CPU seconds, value)`` of one ``fn()``, its result waited for."""
    c0, t0 = time.process_time(), time.perf_counter()
    value = block(fn())
    return time.perf_counter() - t0, time.process_time() - c0, value


def timed_together(fns: dict, repeats: int = 3, warmup: int = 1) -> dict:
    """:func:`timed` for several functions whose times are compared, in rounds: each round runs every function once,
    in turn, so that a change of the machine's speed during the measurement (other guests on its host: the
    1024² GEMM rate moved between 70 and 99 GFLOP/s from one second to the next on the benchmark machine) reaches
    them alike instead of deciding their ratio. Returns name → ``(timing, last value)`` as :func:`timed`."""
    warm = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            block(fn())
        warm[name] = time.perf_counter() - t0
    times, cpus, values = ({name: [] for name in fns} for _ in range(3))
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            wall, cpu, values[name] = timed_once(fn)
            times[name].append(wall)
            cpus[name].append(cpu)
    return {name: ({"best_s": min(times[name]), "times_s": times[name], "cpu_s": min(cpus[name]),
                    "warmup_s": warm[name]}, values[name]) for name in fns}

