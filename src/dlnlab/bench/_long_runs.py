"""B9 long runs (issue 18 item 3, which calls it B8): online SGD (L = 3, d = width = 100, B = 1) for 10⁶ steps × 256
replicas with 200 linearly spaced records in ``b9_chunks`` compiled chunks, checkpointed as ``dlnlab train`` does
(every 60 s; :func:`dlnlab.simulate` with ``checkpoint=``), each run in a fresh subprocess.

Measured: wall time; the seconds per replica-step of every chunk (a :class:`~dlnlab.engines.ProgressMeter` clocks the
chunks; the first, which compiles, is left out); peak RSS (VmHWM) of the long run and of a short run of the same
configuration at ``b9_short_steps``. Checks: the late throughput (median chunk rate over the last half of the long
run) against the short run's (median over its chunks after the first), ≥ 0.9 (within 10 %: no slowdown from
recording or checkpointing), and the long run's peak RSS over the short run's, growth < 5 %.

Found by this workload (2026-12-07, README "Honest limits"): on two CPU devices XLA kept ~7.5 KB per step-loop
iteration of each vmapped block until a compiled call returned, so peak RSS grew with the steps of a chunk (the full
size was killed for memory at 24 GB); the network engine now caps the iterations of a call. The peak that remained
came from the call boundaries: each call allocated a second copy of the state (and a whole-ensemble select of the
frozen replicas) while the first was alive, a transient whose highest value over the run grows with the number of
calls; the state is now donated to the program and the select done block by block. The chunks are kept as a user
would set them (20), so that the check measures what a user gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._machine import proc_status_bytes
from ._spec import TARGETS, check

B9_DEPTH, B9_BATCH = 3, 1


def b9_config(width: int, replicas: int, steps: int, chunks: int):
    """Online SGD, d = width, B = 1, lr 0.2 / (L w), 200 linearly spaced records (fewer when ``steps`` < 200)."""
    from ..config import Config

    return Config.from_dict({
        "teacher": {"d_in": width, "d_out": width, "spectrum": "geometric", "rank": min(width, 10), "s_max": 3.0,
                    "ratio": 0.7},
        "network": {"depth": B9_DEPTH, "width": width},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.2 / (B9_DEPTH * width), "batch_size": B9_BATCH, "steps": steps},
        "record": {"n_times": min(201, steps + 1), "spacing": "linear", "observables": ["loss"], "chunks": chunks},
        "ensemble": {"replicas": replicas, "seed": 0},
    })


class _ChunkClock:
    """A :class:`~dlnlab.engines.ProgressMeter` that keeps the wall-clock time at which each chunk ends."""

    def __init__(self):
        self.marks: list[float] = []

    def start(self, total: int, description: str) -> None:
        self.marks = [time.perf_counter()]

    def update(self, n: int) -> None:
        self.marks.extend([time.perf_counter()] * n)

    def close(self) -> None:
        pass


def b9_child(width: int, replicas: int, steps: int, chunks: int, checkpoint_every: float) -> None:
    """Run one B9 configuration and print one JSON line (``python -c`` entry point)."""
    from ..engines import chunks as record_chunks
    from ..engines import simulate

    cfg = b9_config(width, replicas, steps, chunks)
    clock = _ChunkClock()
    with tempfile.TemporaryDirectory(prefix="dlnlab-b9-") as tmp:
        t0 = time.perf_counter()
        ds = simulate(cfg, progress=clock, checkpoint=Path(tmp) / "checkpoint.npz", checkpoint_every=checkpoint_every)
        wall = time.perf_counter() - t0
    step = np.asarray(ds["step"].values).ravel()
    parts = record_chunks(len(step), cfg.record.chunks)
    print(json.dumps({"width": width, "replicas": replicas, "steps": steps, "chunks": len(parts), "wall_s": wall,
                      "chunk_ends_s": [m - clock.marks[0] for m in clock.marks[1:]],
                      "chunk_steps": [int(step[p[-1]] - step[p[0] - 1]) for p in parts], "records": len(step),
                      "final_loss_mean": float(np.nanmean(ds["loss"].values[:, -1])),
                      "peak_rss_bytes": proc_status_bytes("VmHWM:")}))


def _chunk_rates(run: dict, replicas: int) -> list[float]:
    """Seconds per replica-step of each chunk after the first (which compiles)."""
    dts = np.diff(np.asarray(run["chunk_ends_s"]))
    return [float(dt / (n * replicas)) for dt, n in zip(dts, run["chunk_steps"][1:], strict=True)]


def _run_child(width, replicas, steps, chunks, every) -> dict:
    code = (f"from dlnlab.bench._long_runs import b9_child; "
            f"b9_child({int(width)}, {int(replicas)}, {int(steps)}, {int(chunks)}, {float(every)})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=6 * 3600, check=False)
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or [""]
        raise RuntimeError(f"B9 subprocess exited with {proc.returncode}: {last[0].strip()[:300]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def b9_long_runs(size: dict) -> dict:
    width, replicas, chunks, every = size["b9_width"], size["b9_replicas"], size["b9_chunks"], size["b9_checkpoint_every"]
    short = _run_child(width, replicas, size["b9_short_steps"], chunks, every)
    long = _run_child(width, replicas, size["b9_steps"], chunks, every)
    for run in (short, long):
        run["chunk_s_per_replica_step"] = _chunk_rates(run, replicas)
    late = long["chunk_s_per_replica_step"][len(long["chunk_s_per_replica_step"]) // 2:]
    ratio = float(np.median(short["chunk_s_per_replica_step"]) / np.median(late))
    growth = long["peak_rss_bytes"] / short["peak_rss_bytes"] - 1.0
    return {"params": {"depth": B9_DEPTH, "d": width, "width": width, "batch_size": B9_BATCH, "replicas": replicas,
                       "steps": [size["b9_short_steps"], size["b9_steps"]], "records": long["records"],
                       "chunks": chunks, "checkpoint_every_s": every, "precision": "float64",
                       "measure": "chunk wall times by a ProgressMeter; peak RSS (VmHWM) of a fresh subprocess"},
            "runs": {"short": short, "long": long},
            "late_s_per_replica_step": float(np.median(late)),
            "checks": {"throughput_vs_short": check(ratio, TARGETS["B9"]["throughput_vs_short"]),
                       "rss_growth": check(growth, TARGETS["B9"]["rss_growth"])}}
