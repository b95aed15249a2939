"""The results table (``OUT/results.parquet``, one row per grid point, built from the run markers on disk) and the
progress of a sweep directory."""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import uuid
from pathlib import Path

from ..config import STACKABLE, Config
from ._layout import read_json, run_status
from ._plan import Plan, load_plan


def _flat_config(d: dict) -> dict:
    row = {}
    for sec, vals in d.items():
        for k, v in vals.items():
            row[f"{sec}.{k}"] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else v
    return row


def table_rows(out: Path | str, plan: Plan) -> list[dict]:
    """One dict per grid point (see the module docstring), from what is on disk now."""
    out = Path(out)
    rows = []
    for run in plan.runs:
        st = run_status(out, run.id)
        if plan.function is not None:
            flat = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in run.config["params"].items()}
            stacked = {}
        else:
            flat = _flat_config(run.config)
            stacked = Config.from_dict(copy.deepcopy(run.config)).stacked()
        if st == "done":
            marker = read_json(out / "runs" / run.id / "run.json")
            summaries, wall, err = marker.get("rows", []), marker.get("wall_time_s", math.nan), None
        else:
            summaries = [dict(zip(stacked, combo)) for combo in itertools.product(*stacked.values())]
            wall = math.nan
            err = read_json(out / "failed" / f"{run.id}.json").get("error") if st == "failed" else None
        for s in summaries:
            row = {"run_id": run.id, "status": st, "error": err, **flat}
            row.update({k: v for k, v in s.items() if k in STACKABLE})  # the row's own stacked values
            row.update({k: v for k, v in s.items() if k not in STACKABLE})
            row["wall_time_s"] = wall
            rows.append(row)
    return rows


def write_table(out: Path | str, plan: Plan | None = None):
    """(Re)write ``OUT/results.parquet`` from the runs on disk; return it as a pandas DataFrame."""
    import pandas as pd

    out = Path(out)
    plan = plan or load_plan(out)
    df = pd.DataFrame(table_rows(out, plan))
    for col in df.columns:  # a column mixing types (e.g. width 10 and [10, 20]) is stored as JSON text
        if df[col].dtype == object:
            types = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(types) > 1:
                df[col] = [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in df[col]]
    tmp = out / f".results.{uuid.uuid4().hex}.parquet"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, out / "results.parquet")
    return df


def sweep_status(out: Path | str) -> dict:
    """Progress of a sweep directory: counts by status and one entry per run (id, status, point, error)."""
    out = Path(out)
    plan = load_plan(out)
    runs = []
    for r in plan.runs:
        st = run_status(out, r.id)
        err = read_json(out / "failed" / f"{r.id}.json").get("error") if st == "failed" else None
        runs.append({"id": r.id, "status": st, "point": r.point, "stacked": r.stacked, "error": err})
    counts = {k: sum(r["status"] == k for r in runs) for k in ("done", "started", "pending", "failed")}
    return {"out": str(out), "n_runs": len(runs), "n_jobs": len(plan.jobs), "counts": counts, "runs": runs,
            "grid": plan.grid, "vectorised": plan.vectorised}
