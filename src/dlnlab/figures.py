"""Figure helpers: one house style, PNG + PDF for every figure (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}


def subplots(*args, **kwargs):
    with plt.rc_context(STYLE):
        return plt.subplots(*args, constrained_layout=True, **kwargs)


def save(fig, out: Path, name: str) -> str:
    """Write ``name.png`` and ``name.pdf`` into ``out``; return the PNG's file name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(STYLE):
        fig.savefig(out / f"{name}.png")
        fig.savefig(out / f"{name}.pdf")
    plt.close(fig)
    return f"{name}.png"
