"""``dlnlab report RUN_DIR``: one self-contained HTML file (figures embedded, no network).

The page leads with one section per paper — each headline claim of its abstract, the experiments that measure it
and a one-line summary of their measured rows (with links to the rows that fail or are inconclusive), beside the
paper's key figure; then one section per experiment, its figures beside its rows; the theory self-checks and the
inconclusive rows apart; the full table last, filterable by paper, kind, verdict and experiment (inline script).
Counts are by kind: only ``measured`` rows count in "N of M hold", with the expected number of false fails Σα.

Every string from a result directory (claims, captions, parameters, paths) is HTML-escaped; nothing in it is
executed or unpickled (JSON and CSV only).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..experiments import ExperimentResult
from ._headlines import HEADLINES, KEY_FIGURE, PAPER_ORDER, Headline
from ._page import render_page


def _load_results(run_dir: Path) -> list[ExperimentResult]:
    return [ExperimentResult.from_json(f.read_text()) for f in sorted((run_dir / "experiments").glob("*/result.json"))
            if not f.parent.name.startswith(".")]


def render(run_dir: Path | str) -> str:
    """The report of a ``dlnlab reproduce`` directory, as one HTML string."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    return render_page(run_dir, _load_results(run_dir), manifest)


def write_report(run_dir: Path | str) -> Path:
    """Write ``RUN_DIR/report.html`` (atomically) and return its path."""
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(run_dir), encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["HEADLINES", "KEY_FIGURE", "PAPER_ORDER", "Headline", "render", "write_report"]
