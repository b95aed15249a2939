"""Issue 19 item 5: fault injection. Each simulating command is killed (SIGKILL of its whole process group, as a
crash or ``kill -9`` of a job would: its pool workers too) at ``KILLS`` moments drawn at random over the length of
an uninterrupted run of it, then the same command is run again; the result must be the uninterrupted run's and
nothing may be duplicated:

* ``dlnlab train`` (checkpoint after every chunk): the dataset bit for bit, no checkpoint left;
* ``dlnlab run escape_times`` (an experiment whose simulations go through a :func:`dlnlab.sweep`): the claims and
  result (wall time aside), every sweep run committed exactly once, the kept simulations (``OUT/.runs``) gone;
* ``dlnlab sweep`` with the local process pool and on a Dask cluster: the results table, every run committed
  exactly once.

The output faults (disk full, permission denied, read-only or vanished directory) and concurrent writers are
``tests/test_storage.py`` (items 2 and 3). A kill that lands after the command has finished is counted apart: each
test asks that most land mid-run (``MIN_MID_RUN``), so the suite exercises the resume paths and not only reruns.
The outcome of every kill is printed (``pytest -s``: the figures in README's reliability section).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from sweep.test_sweep import BASE, _assert_exactly_once
from test_robustness import KILL_TOML, _assert_same_data

import dlnlab
from dlnlab.sweep import load_plan

pytestmark = pytest.mark.slow

DLNLAB = str(Path(sys.executable).with_name("dlnlab"))
KILLS = 10  # SIGKILLs per command
MIN_MID_RUN = 6  # of them, at least this many land while the command runs
TIMEOUT = 600

# A sweep of 6 separate runs (width and seed are not vectorised), each a few hundred milliseconds.
SWEEP_GRID = ["--grid", "network.width=3,4,5", "--grid", "ensemble.seed=0,1"]
# escape_times at its smoke preset on four σ (a sweep of four flow runs at L = 3)
RUN_SETS = ["--smoke", "--set", "sigmas_3=[0.01, 0.00316, 0.001, 0.000316]"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One persistent JAX compilation cache for every process of this file (the same executables: the same bits)."""
    cache = tmp_path_factory.mktemp("jax-cache")
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _run(cmd, out, env) -> float:
    """Run ``cmd --out OUT`` to the end; its wall time."""
    t0 = time.perf_counter()
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, env=env, timeout=TIMEOUT,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return time.perf_counter() - t0


def _kill_then_rerun(cmd, out, delay, env) -> bool:
    """Start ``cmd --out OUT`` in a session of its own, SIGKILL the session after ``delay`` seconds, run the same
    command again to the end. Whether the kill landed before the first run had finished."""
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        proc.wait(timeout=delay)
        mid_run = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        mid_run = True
    assert proc.returncode in (0, -signal.SIGKILL), proc.returncode
    _run(cmd, out, env)
    return mid_run


def _campaign(name, cmd, tmp_path, env, check, seed):
    """The reference run (it also fills the compilation cache), a second uninterrupted run timed with the cache warm
    as the trials will be, then ``KILLS`` kill-and-rerun trials at moments uniform over (0.05, 0.8) × that wall time
    (seeded; a warm run's length varies by ~20 %, so later moments often miss the run), each checked against the
    reference by ``check(out, ref)``."""
    ref = tmp_path / "ref"
    _run(cmd, ref, env)
    wall = _run(cmd, tmp_path / "timed", env)
    check(tmp_path / "timed", ref)
    moments = np.random.default_rng(seed).uniform(0.05, 0.8, KILLS) * wall
    mid = []
    for k, delay in enumerate(moments):
        out = tmp_path / f"killed-{k}"
        mid.append(_kill_then_rerun(cmd, out, float(delay), env))
        check(out, ref)
    print(f"\n{name}: {KILLS} SIGKILLs at {', '.join(f'{d:.1f}' for d in moments)} s of a {wall:.1f} s run; "
          f"{sum(mid)} mid-run; every rerun identical to the uninterrupted run, nothing duplicated")
    assert sum(mid) >= MIN_MID_RUN, f"only {sum(mid)} of {KILLS} kills landed mid-run"


def test_train_survives_sigkill_at_random_moments(tmp_path, env):
    cfg = tmp_path / "run.toml"
    cfg.write_text(KILL_TOML.replace("steps = 12000", "steps = 6000"))
    cmd = [DLNLAB, "train", str(cfg), "--no-progress", "--checkpoint-every", "0"]

    def check(out, ref):
        assert sorted(p.name for p in out.iterdir()) == ["config.toml", "dataset.zarr"]  # no checkpoint left
        _assert_same_data(dlnlab.load(out / "dataset.zarr"), dlnlab.load(ref / "dataset.zarr"))

    _campaign("dlnlab train", cmd, tmp_path, env, check, seed=1)


def _result(out: Path) -> dict:
    res = json.loads((out / "result.json").read_text())
    res.pop("wall_time_s")
    return res


def test_run_of_an_experiment_with_a_sweep_survives_sigkill(tmp_path, env):
    cmd = [DLNLAB, "run", "escape_times", *RUN_SETS]

    def check(out, ref):
        assert _result(out) == _result(ref)
        assert (out / "claims.csv").read_text() == (ref / "claims.csv").read_text()
        assert not (out / ".runs").exists()
        _assert_exactly_once(out / "sweep", load_plan(out / "sweep"))

    _campaign("dlnlab run escape_times", cmd, tmp_path, env, check, seed=2)


def _sweep_check(out, ref):
    def table(d):
        return pd.read_parquet(d / "results.parquet").drop(columns=["wall_time_s"]).sort_values(
            ["run_id"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(table(out), table(ref))
    _assert_exactly_once(out, load_plan(out))


@pytest.fixture
def sweep_config(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(tomli_w.dumps(BASE))
    return cfg


def test_local_sweep_survives_sigkill(tmp_path, env, sweep_config):
    cmd = [DLNLAB, "sweep", str(sweep_config), *SWEEP_GRID, "--executor", "local", "--workers", "2", "--no-progress"]
    _campaign("dlnlab sweep (local pool)", cmd, tmp_path, env, _sweep_check, seed=3)


def test_dask_sweep_survives_sigkill(tmp_path, env, sweep_config):
    """The driver is killed; the cluster (in this process) lives on, its workers possibly still running the killed
    driver's jobs while the rerun submits them again."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env={k: env[k] for k in env if k.startswith("JAX_")}) as cl, \
            Client(cl):
        cmd = [DLNLAB, "sweep", str(sweep_config), *SWEEP_GRID, "--executor", "dask", "--address",
               cl.scheduler_address, "--no-progress"]
        _campaign("dlnlab sweep (Dask)", cmd, tmp_path, env, _sweep_check, seed=4)
