"""The memory estimate of ``dlnlab train --dry-run`` against the measured peak resident memory (issue 19).

For three sizes of one compute-light, record-heavy SGD config (``ensemble.replicas`` = 4000, 10000, 25000; 201
records of the default observables), each in a fresh process: the dry-run estimate (``estimate_run``, as
``dlnlab train CONFIG --dry-run`` prints it), then ``dlnlab train CONFIG`` itself, whose peak resident memory
(``ru_maxrss`` of the child, from ``os.wait4``) is the measurement. Writes ``benchmarks/memory_estimate.json``
and ``.md``: estimate, peak, their ratio, and the run's own part (estimate and peak above what the process
holds besides, ``held``). The acceptance is |estimate / peak − 1| ≤ 25 % (tests/engines/test_budget.py checks
the committed table).

Run: ``python benchmarks/memory_estimate.py`` (a few minutes; timings and memory on a loaded shared machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DLNLAB = str(Path(sys.executable).with_name("dlnlab"))
SIZES = (4000, 10000, 25000)
TOML = """
[teacher]
d_in = 5
d_out = 5
singular_values = [3.0, 2.0, 1.0]
[network]
depth = 2
width = 8
[init]
kind = "gaussian"
gamma = 1.0
[dynamics]
kind = "sgd"
lr = 0.01
batch_size = 2
steps = 200
[record]
n_times = 201
spacing = "linear"
chunks = 4
[ensemble]
replicas = {replicas}
seed = 0
"""
ESTIMATE = """
import json, sys
from dlnlab.config import load_config
from dlnlab.engines.dryrun import estimate_run
e = estimate_run(load_config(sys.argv[1]))
print(json.dumps({"peak": e.footprint.peak, "held": e.footprint.held, **e.footprint.parts()}))
"""


def peak_rss(cmd: list[str]) -> int:
    """The peak resident memory (bytes) of running ``cmd`` to completion."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed: {err[-2000:]}")
    return usage.ru_maxrss * 1024


def measure(replicas: int, work: Path) -> dict:
    cfg = work / f"r{replicas}.toml"
    cfg.write_text(TOML.format(replicas=replicas))
    est = json.loads(subprocess.run([sys.executable, "-c", ESTIMATE, str(cfg)], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1])
    peak = peak_rss([DLNLAB, "train", str(cfg), "--out", str(work / f"out{replicas}"), "--no-progress"])
    return {"replicas": replicas, "estimate": est["peak"], "held": est["held"], "peak_rss": peak,
            "ratio": est["peak"] / peak, "run_estimate": est["peak"] - est["held"], "run_measured": peak - est["held"],
            "parts": {k: est[k] for k in ("state", "records", "chunk")}}


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in SIZES:
            rows.append(measure(r, Path(tmp)))
            print(rows[-1], flush=True)
    (HERE / "memory_estimate.json").write_text(json.dumps(rows, indent=1))
    gib = 2 ** 30
    lines = ["| replicas | estimate (GiB) | peak RSS (GiB) | estimate / peak | run part: estimate / measured (GiB) |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['replicas']} | {r['estimate'] / gib:.3f} | {r['peak_rss'] / gib:.3f} | {r['ratio']:.3f} | "
              f"{r['run_estimate'] / gib:.3f} / {r['run_measured'] / gib:.3f} |" for r in rows]
    (HERE / "memory_estimate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
