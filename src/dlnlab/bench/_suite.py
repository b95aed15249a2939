"""The suite: every workload run in turn, a failing one reported and the others still run."""

from __future__ import annotations

import datetime
import os
import time

from ._machine import machine_info, versions
from ._report import format_table
from ._spec import SCHEMA, SIZES, TARGETS
from ._workloads import WORKLOADS


def run_suite(mode: str = "full", only: list[str] | None = None, log=None) -> dict:
    """Run the selected workloads (``mode``: full | quick | tiny); return the JSON-ready result."""
    from .. import conventions  # noqa: F401  (float64)

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

