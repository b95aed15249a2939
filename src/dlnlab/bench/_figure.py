"""The scaling figure of B8 (issue 18 item 6): seconds per replica-step of dlnlab and of each alternative over width,
replicas and depth (log-log), and every engine's cost per replica-step over the number of replicas."""

from __future__ import annotations

from pathlib import Path

from .. import figures

_SCANS = (("width", "width w (L = 3, B = 32, d = w, 16 replicas)"),
          ("replicas", "replicas R (w = 30, L = 3, B = 32)"),
          ("depth", "depth L (w = 30, B = 32, 16 replicas)"))


def scaling_figure(b8: dict, out: str | Path, name: str = "bench-scaling") -> str:
    """Write ``name.png`` and ``.pdf`` into ``out`` from a B8 result (``result["workloads"]["B8"]``); return the
    PNG's file name."""
    fig, axes = figures.subplots(1, 4, figsize=(15, 3.6))
    for ax, (scan, label) in zip(axes, _SCANS, strict=False):
        points = b8["points"][scan]
        x = [p[scan] for p in points]
        ax.plot(x, [p["dlnlab"]["s_per_replica_step"] for p in points], "o-", color="black", lw=2, label="dlnlab")
        for alt in points[0]["alternatives"]:
            ax.plot(x, [p["alternatives"][alt]["s_per_replica_step"] for p in points], ".--", label=alt)
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="s per replica-step")
    axes[0].legend(fontsize=8)
    ax = axes[3]
    for engine, e in b8.get("engines", {}).items():
        ax.plot([p["replicas"] for p in e["points"]], [p["s_per_replica_step"] for p in e["points"]], "o-",
                label=f"{engine} (R^{e['replica_exponent']:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="replicas R", ylabel="s per replica-step",
           title="every engine: flat = linear in R")
    ax.legend(fontsize=7)
    return figures.save(fig, out, name)
