"""Sweeps (issue 7): a real Dask cluster on loopback gives the same results as the local process pool, run by
run and bit for bit; a Dask worker killed mid-job has its job retried and every run completes exactly once;
a sweep interrupted (its driver killed) and rerun skips the runs already finished, by id; a run that raises is
recorded and the sweep goes on; the grid and CLI reject bad input with exit code 2 naming the key; the
submitit path runs for real on submitit's local backend (SLURM itself is not available here).

Tolerances: none. Same config and seed give bitwise-identical datasets whatever the executor (compared with
``xarray.testing.assert_equal``, i.e. exact equality of every variable and coordinate; only the provenance
attrs ``created`` and ``wall_time_s`` differ), and identical summary tables apart from wall times.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
import xarray as xr
from typer.testing import CliRunner

import dlnlab
from dlnlab.cli import app
from dlnlab.config import Config, ConfigError
from dlnlab.sweep import (
    load_plan,
    parse_grid,
    plan_function_sweep,
    plan_sweep,
    run_id,
    sweep,
    sweep_function,
    sweep_status,
)

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("sweep")  # with --dist loadgroup: one cluster, one reference sweep

def _ou(theta, sigma, replicas=4, steps=200, dt=0.01, seed=0):
    """A function sweep's simulator (NumPy only): Euler-Maruyama for dx = -θx dt + σ dW."""
    rng = np.random.default_rng([seed, round(theta * 1000), round(sigma * 1000)])
    x = np.zeros((replicas, steps + 1))
    for k in range(steps):
        x[:, k + 1] = x[:, k] * (1 - theta * dt) + sigma * np.sqrt(dt) * rng.standard_normal(replicas)
    return xr.Dataset({"x": (("replica", "t"), x), "loss": (("replica", "t"), 0.5 * x**2)},
                      coords={"t": dt * np.arange(steps + 1)})


def _late_variance(ds):
    return [{"var_late": float(ds.x.isel(t=slice(100, None)).var())}, {"var_late": math.inf}]


def _final_loss_range(ds, config):
    """A config sweep's summary: per stacked learning rate, the range of its replicas' final losses."""
    grid, last = config.replica_grid(), ds["loss"].values[:, -1]
    return [{"dynamics.lr": lr, "loss_final_min": float(last[sel].min()), "loss_final_max": float(last[sel].max())}
            for lr in config.stacked()["dynamics.lr"] for sel in [np.array([g["dynamics.lr"] == lr for g in grid])]]


BASE = {
    "teacher": {"d_in": 3, "d_out": 3, "singular_values": [2.0, 1.0]},
    "network": {"depth": 2, "width": 4},
    "init": {"kind": "gaussian", "scale": 0.1},
    "dynamics": {"kind": "sgd", "lr": 0.05, "batch_size": 2, "t_max": 20.0},
    "record": {"n_times": 12, "chunks": 1, "observables": ["loss", "singular_values", "mode_strength"]},
    "ensemble": {"replicas": 2, "seed": 0},
}
# lr is vectorised (one compiled run holds both values); width makes separate runs; seeds are grouped per job
GRID = {"dynamics.lr": [0.05, 0.1], "network.width": [3, 4], "ensemble.seed": [0, 1]}
TIMEOUT = 150  # seconds: bound on any one sweep in this file


def _table(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["wall_time_s"]).sort_values(["run_id", "dynamics.lr"]).reset_index(drop=True)


def _attempts(out: Path) -> dict[str, list[dict]]:
    return {d.name: [json.loads(p.read_text()) for p in d.glob("*.json")] for d in (out / "attempts").iterdir()}


def _assert_exactly_once(out: Path, plan) -> None:
    """Every run of the plan is committed once: one complete run directory whose marker names it, one
    attempt with outcome 'committed' (the marker's token), no run directory outside the plan."""
    ids = {r.id for r in plan.runs}
    assert {p.name for p in (out / "runs").iterdir()} == ids
    attempts = _attempts(out)
    for rid in ids:
        marker = json.loads((out / "runs" / rid / "run.json").read_text())
        assert marker["id"] == rid
        committed = [a for a in attempts[rid] if a["outcome"] == "committed"]
        assert len(committed) == 1 and committed[0]["token"] == marker["token"], attempts[rid]
        assert dlnlab.load(out / "runs" / rid / "dataset.zarr").sizes["replica"] == Config.from_dict(
            plan.run(rid).config).ensemble.replicas * math.prod(len(v) for v in plan.run(rid).stacked.values())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One JAX compilation cache for every sweep of this file (programs are identical, results unchanged)."""
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="module")
def client():
    """A real Dask cluster on loopback: a scheduler and 2 worker processes (nannies restart killed ones)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def local_ref(tmp_path_factory, cache):
    """The reference: the default local executor (a spawn process pool of 2)."""
    return sweep(BASE, GRID, executor="local", max_workers=2, out=tmp_path_factory.mktemp("local"),
                 compile_cache=cache, progress=False, timeout=TIMEOUT)


# ---------------------------------------------------------------------------------------------------------
# The plan


def test_grid_expands_to_runs_with_stable_ids():
    plan = plan_sweep(BASE, GRID)
    assert plan.vectorised == ["dynamics.lr"] and plan.job_axes == ["network.width", "ensemble.seed"]
    assert len(plan.runs) == 4 and [len(j) for j in plan.jobs] == [2, 2]  # seeds of one width share a job
    for r in plan.runs:
        cfg = Config.from_dict(r.config)
        assert cfg.dynamics.lr == (0.05, 0.1) and r.id == run_id(cfg)
    # ids depend on the resolved config only: the same run from another grid or spelling has the same id
    same = plan_sweep({**BASE, "network": {"depth": 2, "width": 3}}, ["dynamics.lr=0.05,0.1", "ensemble.seed=1"])
    assert same.runs[0].id in {r.id for r in plan.runs}
    assert parse_grid(["dynamics.lr=5e-2, 1e-1"]) == {"dynamics.lr": [0.05, 0.1]}
    # with dynamics.steps (no common time axis) learning rates are separate runs
    steps = {**BASE, "dynamics": {"kind": "sgd", "lr": 0.05, "batch_size": 2, "steps": 100}}
    assert plan_sweep(steps, {"dynamics.lr": [0.05, 0.1]}).job_axes == ["dynamics.lr"]
    # list values and bare words
    g = parse_grid(["network.width=[3, 4],[4, 3]", "dynamics.kind=sgd,gd"])
    assert g == {"network.width": [[3, 4], [4, 3]], "dynamics.kind": ["sgd", "gd"]}


def test_union_of_grids_and_function_sweep_plans():
    # a range of init scales that depends on the depth: a list of grids is the union of their products
    plan = plan_sweep(BASE, [{"network.depth": [2], "init.scale": [0.1, 0.01]}, {"network.depth": [3], "init.scale": [0.3]}])
    assert [Config.from_dict(r.config).init.scale for r in plan.runs] == [(0.1, 0.01), 0.3]
    assert plan.vectorised == ["init.scale"] and plan.jobs == [[plan.runs[0].id], [plan.runs[1].id]]
    # function sweeps: keywords are checked against the signature, ids hash the name and the keywords
    fp = plan_function_sweep(_ou, {"replicas": 8}, {"theta": [0.5, 2.0], "sigma": [1.0]})
    assert [r.config["params"] for r in fp.runs] == [{"replicas": 8, "theta": 0.5, "sigma": 1.0},
                                                     {"replicas": 8, "theta": 2.0, "sigma": 1.0}]
    assert fp.runs[0].id == plan_function_sweep(_ou, {"sigma": 1.0, "replicas": 8}, ["theta=0.5"]).runs[0].id
    for grid, field in [({"thetaa": [1.0]}, "thetaa"), ({"theta": [1.0]}, "params"), ({"theta": [np.array([1])]}, None)]:
        if field is None:
            plan_function_sweep(_ou, {"sigma": 1.0}, grid)  # numpy values are accepted as JSON
            continue
        with pytest.raises(ConfigError) as exc:
            plan_function_sweep(_ou, {}, grid)
        assert exc.value.field == field


@pytest.mark.parametrize("items, field", [
    (["dynamics.lrr=0.1,0.2"], "dynamics.lrr"),
    (["optimizer.lr=0.1"], "optimizer.lr"),
    (["dynamics.lr"], "--grid"),
    (["lr=0.1"], "--grid"),
    (["dynamics.lr="], "dynamics.lr"),
    (["dynamics.lr=0.1,,0.2"], "dynamics.lr"),
    (["dynamics.lr=0.1,0.1"], "dynamics.lr"),
    (["dynamics.lr=0.1", "dynamics.lr=0.2"], "dynamics.lr"),
    (["network.width=3,-1"], "network.width"),
])
def test_bad_grid_is_rejected_naming_the_key(items, field, tmp_path):
    with pytest.raises(ConfigError) as exc:
        plan_sweep(BASE, items)
    assert exc.value.field == field
    cfg = tmp_path / "c.toml"
    cfg.write_text(tomli_w.dumps(BASE))
    args = ["sweep", str(cfg), *[a for it in items for a in ("--grid", it)], "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and field in res.output
    assert not (tmp_path / "o").exists()


def test_cli_rejects_bad_executor_and_directory(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(tomli_w.dumps(BASE))
    r = CliRunner()
    for args, word in [(["sweep", str(cfg), "--executor", "mpi"], "--executor"),
                       (["sweep", str(cfg), "--address", "tcp://127.0.0.1:1"], "--address"),
                       (["sweep", "status", str(tmp_path)], "DIR"),
                       (["sweep", "status"], "DIR")]:
        res = r.invoke(app, [*args, "--out", str(tmp_path / "o")] if args[1] != "status" else args)
        assert res.exit_code == 2 and word in res.output, res.output
    if not __import__("shutil").which("sbatch"):  # SLURM selected on a machine without it: a clear input error
        res = r.invoke(app, ["sweep", str(cfg), "--executor", "slurm", "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and "SLURM" in res.output
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------------------
# Dask equals local, run by run


def test_dask_cluster_equals_local_executor_run_by_run(client, local_ref, cache, tmp_path):
    assert set(local_ref.status.values()) == {"done"} and sorted(local_ref.executed) == sorted(local_ref.status)
    res = sweep(BASE, GRID, executor=client, out=tmp_path / "dask", compile_cache=cache, progress=False,
                timeout=TIMEOUT)
    assert res.status == local_ref.status and set(res.status.values()) == {"done"}
    # the tasks really ran on the cluster's worker processes
    worker_pids = set(client.run(os.getpid).values())
    for rid in res.status:
        marker = json.loads((res.out / "runs" / rid / "run.json").read_text())
        assert marker["pid"] in worker_pids
        a, b = res.dataset(rid), local_ref.dataset(rid)
        xr.testing.assert_equal(a, b)  # exact
        assert {k: v for k, v in a.attrs.items() if k not in ("created", "wall_time_s")} == \
               {k: v for k, v in b.attrs.items() if k not in ("created", "wall_time_s")}
    pd.testing.assert_frame_equal(_table(res.table), _table(local_ref.table))
    # the table: a row per grid point, ready for pandas
    on_disk = pd.read_parquet(res.out / "results.parquet")
    assert len(on_disk) == 8 and not on_disk.duplicated(["network.width", "ensemble.seed", "dynamics.lr"]).any()
    assert (on_disk["status"] == "done").all() and (on_disk["n_replicas"] == 2).all()
    assert (on_disk["learned_rank_mean"] == 2).all() and (on_disk["escaped_1"] == 1).all()
    assert np.allclose(on_disk["m_median_1"], 2.0, atol=1e-3) and (on_disk["loss_final_mean"] < 1e-3).all()
    for rid in res.status:  # the saddle-to-saddle plateau table of each run, when dlnlab.analysis provides it
        marker = json.loads((res.out / "runs" / rid / "run.json").read_text())
        assert (res.out / "runs" / rid / "plateaus.parquet").exists() == (marker["plateau_table_error"] is None)
    # and the sweep's run is the run dlnlab.simulate gives in this process
    rid = res.plan.runs[0].id
    direct = dlnlab.simulate(Config.from_dict(res.plan.run(rid).config))
    xr.testing.assert_equal(direct, res.dataset(rid))


# ---------------------------------------------------------------------------------------------------------
# Fault tolerance


SLOW_T = 12000.0  # ~2e5 steps: a job that lasts seconds, long enough to be killed while it runs


def test_killed_dask_worker_job_is_retried_every_run_exactly_once(client, local_ref, cache, tmp_path):
    grid = {"dynamics.t_max": [20.0, 30.0, 40.0, SLOW_T], "dynamics.lr": [0.05, 0.1]}
    base = {**BASE, "network": {"depth": 2, "width": 4}}
    plan = plan_sweep(base, grid)
    slow = next(r.id for r in plan.runs if r.point["dynamics.t_max"] == SLOW_T)
    out = tmp_path / "kill"
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("res", sweep(
        base, grid, executor=client, out=out, compile_cache=cache, progress=False, timeout=TIMEOUT)))
    th.start()
    victim = _kill_when_started(out, slow, set(client.run(os.getpid).values()))  # mid-job: the slow run is running
    th.join(TIMEOUT)
    assert not th.is_alive()
    res = box["res"]
    assert set(res.status.values()) == {"done"}
    _assert_exactly_once(out, plan)
    # the killed attempt never finished; the job was retried on another worker process and committed there
    attempts = _attempts(out)[slow]
    killed = [a for a in attempts if a["token"] == victim["token"]]
    assert killed and killed[0]["ended"] is None and not (out / "failed" / f"{slow}.json").exists()
    committed = next(a for a in attempts if a["outcome"] == "committed")
    assert committed["pid"] != victim["pid"]
    # nothing lost or duplicated in the table; runs shared with the reference sweep are identical to it
    t = res.table
    assert len(t) == 8 and not t.duplicated(["dynamics.t_max", "dynamics.lr"]).any() and (t["status"] == "done").all()
    shared = set(res.status) & set(local_ref.status)
    assert shared  # t_max = 20, width 4, seed 0 is a run of GRID too
    for rid in shared:
        xr.testing.assert_equal(res.dataset(rid), local_ref.dataset(rid))
    assert (t.loc[t["dynamics.t_max"] == SLOW_T, "t_final"] == SLOW_T).all()


def _kill_when_started(out: Path, rid: str, worker_pids=None, wait=90.0) -> dict:
    """Wait until run ``rid`` has an open attempt, SIGKILL the worker process running it, return the attempt."""
    deadline, victim = time.monotonic() + wait, None
    while victim is None and time.monotonic() < deadline:
        adir = out / "attempts" / rid
        for p in adir.glob("*.json") if adir.is_dir() else []:
            a = json.loads(p.read_text())
            if a["ended"] is None:
                victim = a
        time.sleep(0.02)
    assert victim is not None and (worker_pids is None or victim["pid"] in worker_pids)
    assert victim["pid"] != os.getpid()
    os.kill(victim["pid"], signal.SIGKILL)
    return victim


@pytest.mark.slow
def test_killed_local_pool_worker_job_is_retried_every_run_exactly_once(cache, tmp_path):
    """The default executor: a killed worker breaks the process pool; it is restarted and the unfinished jobs
    resubmitted."""
    grid = {"dynamics.t_max": [20.0, 30.0, 40.0, SLOW_T], "dynamics.lr": [0.05, 0.1]}
    plan = plan_sweep(BASE, grid)
    slow = next(r.id for r in plan.runs if r.point["dynamics.t_max"] == SLOW_T)
    out, box = tmp_path / "kill-local", {}
    th = threading.Thread(target=lambda: box.setdefault("res", sweep(
        BASE, grid, executor="local", max_workers=2, out=out, compile_cache=cache, progress=False, timeout=TIMEOUT)))
    th.start()
    victim = _kill_when_started(out, slow)
    th.join(TIMEOUT)
    assert not th.is_alive() and set(box["res"].status.values()) == {"done"}
    _assert_exactly_once(out, plan)
    attempts = _attempts(out)[slow]
    assert next(a for a in attempts if a["token"] == victim["token"])["ended"] is None
    assert next(a for a in attempts if a["outcome"] == "committed")["pid"] != victim["pid"]


def test_interrupted_sweep_rerun_skips_finished_runs(client, cache, tmp_path):
    """The CLI driver is killed mid-sweep (SIGKILL); rerunning the same sweep skips the finished runs by id."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(tomli_w.dumps(BASE))
    out = tmp_path / "interrupted"
    grid = ["--grid", "dynamics.t_max=500.0,1000.0,1500.0,2000.0,2500.0,3000.0", "--grid", "dynamics.lr=0.05,0.1"]
    proc = subprocess.Popen([sys.executable, "-m", "dlnlab.cli", "sweep", str(cfg), *grid, "--executor", "dask",
                             "--address", client.scheduler.address, "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list((out / "runs").glob("*/run.json")):
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    plan = load_plan(out)
    # status shows the partial sweep
    res = CliRunner().invoke(app, ["sweep", "status", str(out)])
    assert res.exit_code == 0 and "6 runs" in res.output
    st = sweep_status(out)
    done_before = {r["id"] for r in st["runs"] if r["status"] == "done"}
    assert 1 <= len(done_before) < 6, st["counts"]
    attempts_before = {rid: len(a) for rid, a in _attempts(out).items()}
    # rerun the same sweep (Python API, same config and grid: same ids)
    rerun = sweep(cfg, parse_grid(grid[1::2]), executor=client, out=out, compile_cache=cache, progress=False,
                  timeout=TIMEOUT)
    assert [r.id for r in rerun.plan.runs] == [r.id for r in plan.runs]
    assert set(rerun.status.values()) == {"done"}
    assert done_before <= set(rerun.skipped) and not done_before & set(rerun.executed)
    after = _attempts(out)
    for rid in done_before:  # not simulated again: no new attempt
        assert len(after[rid]) == attempts_before[rid] == 1
    _assert_exactly_once(out, plan)
    # a third run does nothing at all
    again = sweep(cfg, parse_grid(grid[1::2]), executor="local", out=out, progress=False)
    assert again.executed == [] and sorted(again.skipped) == sorted(r.id for r in plan.runs)
    assert len(again.table) == 12


def test_run_that_raises_is_recorded_and_sweep_goes_on(client, cache, tmp_path):
    good = tmp_path / "w.npz"
    rng = np.random.default_rng(0)
    np.savez(good, W1=0.1 * rng.standard_normal((4, 3)), W2=0.1 * rng.standard_normal((3, 4)))
    base = {**BASE, "init": {"kind": "file", "path": str(good)}}
    grid = {"init.path": [str(good), str(tmp_path / "missing.npz")]}
    res = sweep(base, grid, executor=client, out=tmp_path / "f", compile_cache=cache, progress=False,
                timeout=TIMEOUT)
    plan = res.plan
    ok, bad = (r.id for r in plan.runs)
    assert res.status == {ok: "done", bad: "failed"}
    assert "missing.npz" in res.failed[bad] and "init.path" in res.failed[bad]
    err = json.loads((res.out / "failed" / f"{bad}.json").read_text())
    assert "Traceback" in err["traceback"]
    row = res.table.set_index("run_id").loc[bad]
    assert row["status"] == "failed" and "missing.npz" in row["error"]
    # a caller that needs the whole grid (an experiment) gets an error naming the failed run and its error
    with pytest.raises(RuntimeError, match=f"{bad}: failed .*missing.npz"):
        res.raise_unless_done()
    # the CLI reports failed runs with exit code 1 and status names the error
    st = CliRunner().invoke(app, ["sweep", "status", str(res.out)])
    assert st.exit_code == 0 and "failed 1" in st.output and "missing.npz" in st.output


def test_function_sweep_on_dask(client, tmp_path):
    """A simulator that takes no Config, swept on the cluster (pickled by value: it lives in this test module)."""
    import cloudpickle

    grid = {"theta": [0.5, 2.0], "sigma": [0.1, 1.0]}
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        res = sweep_function(_ou, grid, params={"replicas": 8}, summary=_late_variance, executor=client,
                             out=tmp_path / "fn", progress=False, timeout=TIMEOUT)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert set(res.status.values()) == {"done"} and len(res.table) == 8  # 4 runs, 2 summary rows each
    for run in res.plan.runs:
        direct = _ou(**run.config["params"])
        xr.testing.assert_equal(res.dataset(run.id), direct)
        rows = res.table[res.table.run_id == run.id]
        assert rows["var_late"].tolist() == [_late_variance(direct)[0]["var_late"], math.inf]
        assert (rows["theta"] == run.point["theta"]).all() and (rows["replicas"] == 8).all()
    again = sweep_function(_ou, grid, params={"replicas": 8}, summary=_late_variance, executor="serial",
                           out=tmp_path / "fn")
    assert again.executed == [] and len(again.skipped) == 4


def test_config_sweep_summary_makes_the_table_rows(tmp_path):
    """A config sweep's ``summary(ds, config)`` gives the table's rows (one per stacked combination, in place of
    the default summaries): each equals the summary of the run dlnlab.simulate gives in this process."""
    grid = {"dynamics.lr": [0.05, 0.1], "network.width": [3, 4]}
    res = sweep(BASE, grid, summary=_final_loss_range, executor="serial", out=tmp_path / "s", progress=False)
    assert set(res.status.values()) == {"done"} and len(res.table) == 4
    assert "loss_final_mean" not in res.table and "jump_time_1" not in res.table
    for run in res.plan.runs:
        cfg = Config.from_dict(run.config)
        rows = res.table[res.table.run_id == run.id]
        expected = pd.DataFrame(_final_loss_range(dlnlab.simulate(cfg, progress=False), cfg))
        assert rows["dynamics.lr"].tolist() == expected["dynamics.lr"].tolist() == [0.05, 0.1]
        for col in ("loss_final_min", "loss_final_max"):
            assert rows[col].tolist() == expected[col].tolist()
        assert (rows["network.width"] == run.point["network.width"]).all()


def test_sweep_takes_configs_and_sweep_function_functions(tmp_path):
    """``sweep`` is for configs (a function is pointed to ``sweep_function``); a summary is a function; the
    default summary's options are rejected with another summary. Nothing is written."""
    for call, field, word in [(lambda: sweep(_ou, {"theta": [1.0]}, out=tmp_path / "o"), "config", "sweep_function"),
                              (lambda: sweep(BASE, GRID, summary="rows", out=tmp_path / "o"), "summary", "function"),
                              (lambda: sweep(BASE, GRID, summary=_final_loss_range, tail=0.2, out=tmp_path / "o"),
                               "tail", "default summary"),
                              (lambda: sweep(BASE, GRID, summary=_final_loss_range, rank_threshold=0.1,
                                             out=tmp_path / "o"), "rank_threshold", "default summary"),
                              (lambda: sweep_function(_ou, {"theta": [1.0]}, summary=3, out=tmp_path / "o"),
                               "summary", "summary(ds)")]:
        with pytest.raises(ConfigError) as exc:
            call()
        assert exc.value.field == field and word in str(exc.value)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------------------
# submitit (the SLURM path) on submitit's local backend


def test_submitit_executor_runs_jobs_and_matches_local(local_ref, cache, tmp_path):
    submitit = pytest.importorskip("submitit")
    ex = submitit.AutoExecutor(folder=str(tmp_path / "submitit" / "%j"), cluster="local")
    ex.update_parameters(timeout_min=10)
    grid = {"dynamics.lr": [0.05, 0.1], "network.width": [3], "ensemble.seed": [0, 1]}
    res = sweep(BASE, grid, executor=ex, out=tmp_path / "s", compile_cache=cache, progress=False, timeout=TIMEOUT)
    assert set(res.status.values()) == {"done"} and len(res.status) == 2
    for rid in res.status:
        xr.testing.assert_equal(res.dataset(rid), local_ref.dataset(rid))
    assert list((tmp_path / "submitit").glob("*/*_result.pkl"))  # the jobs went through submitit
