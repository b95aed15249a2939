"""``phase_diagram`` (``dlnlab.experiments.ziyin.phase_diagram``): the (T, L) grid runs through the function sweep
(issue 7 item 5), and its executor parameter (moved from ``tests/test_noise_balance.py``, issue 14)."""

import os

import numpy as np
import pytest

# 20 replicas: one walker per batch-means group; the measured rows only at the grid cells listed as equilibrated
PHASE_TINY = ["temperatures=[0.05, 0.7]", "replicas=20", "t_max=2.0", "dt=0.01", "equilibrated=[[2, 0.05], [3, 0.05]]"]


def _phase_sweep(out):
    import json

    import pandas as pd

    sw = out / "sweep"
    return (json.loads((sw / "manifest.json").read_text()), pd.read_parquet(sw / "results.parquet"),
            {d.name: [json.loads(p.read_text()) for p in d.glob("*.json")] for d in (sw / "attempts").iterdir()})


def test_phase_diagram_runs_through_sweep(tmp_path):
    """Issue 7 item 5: phase_diagram's (T, L) grid is a function sweep of ziyin.phase_diagram.collapse_walkers — one run
    per depth (the temperatures stacked on its replica axis), one done table row per (L, T) — the claims' numbers
    are the table's (phase_grid.npz), and a rerun into the same directory skips the finished runs by id."""
    from dlnlab.experiments import get

    exp = get("phase_diagram")
    res = exp.run("quick", tmp_path, PHASE_TINY)
    manifest, table, attempts = _phase_sweep(tmp_path)
    assert manifest["function"] == "dlnlab.experiments.ziyin.phase_diagram:collapse_walkers"
    assert [r["point"] for r in manifest["runs"]] == [{"depth": 2}, {"depth": 3}]
    assert len(table) == 4 and set(table.status) == {"done"}
    assert list(zip(table.depth, table["T"])) == [(2, 0.05), (2, 0.7), (3, 0.05), (3, 0.7)]
    grid = np.load(tmp_path / "phase_grid.npz")
    for L in (2, 3):
        for k in ("n_collapsed", "walkers", "mean", "se_mean"):
            np.testing.assert_array_equal(grid[f"sim_{k}_L{L}"], table[table.depth == L][k].to_numpy())
    assert {rid: len(a) for rid, a in attempts.items()} == {r["id"]: 1 for r in manifest["runs"]}
    assert all(a[0]["pid"] == os.getpid() for a in attempts.values())  # default executor: serial, in-process
    again = exp.run("quick", tmp_path, PHASE_TINY)
    assert {rid: len(a) for rid, a in _phase_sweep(tmp_path)[2].items()} == {r["id"]: 1 for r in manifest["runs"]}
    assert [c.value for c in again.claims] == [c.value for c in res.claims]


def test_phase_diagram_executor_parameter(tmp_path):
    """``--set phase_diagram.executor=local`` runs the grid on the local process pool (other processes), with the
    same run ids and bitwise the same table as the serial executor; an unknown executor is a ConfigError naming
    --executor, raised before any simulation."""
    from dlnlab.config import ConfigError
    from dlnlab.experiments import get

    exp = get("phase_diagram")
    exp.run("quick", tmp_path / "serial", PHASE_TINY)
    exp.run("quick", tmp_path / "local", [*PHASE_TINY, "executor=local"])
    (m_s, t_s, _), (m_l, t_l, att_l) = _phase_sweep(tmp_path / "serial"), _phase_sweep(tmp_path / "local")
    assert [r["id"] for r in m_s["runs"]] == [r["id"] for r in m_l["runs"]]
    assert all(a[0]["pid"] != os.getpid() for a in att_l.values())
    cols = [c for c in t_s.columns if c != "wall_time_s"]
    assert t_s[cols].equals(t_l[cols])
    with pytest.raises(ConfigError, match="--executor"):
        exp.run("quick", tmp_path / "bad", [*PHASE_TINY, "executor=nosuch"])
    assert not (tmp_path / "bad" / "sweep").exists()

