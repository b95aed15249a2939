"""Issue 19 item 1 (size before work): the memory model of :mod:`dlnlab.engines.budget`, the refusal of a run that
cannot fit (from the config alone, before anything is allocated, and from the built program before its first
step) and the exactness of the measured sizes against the dataset a run returns.

The estimate against the measured peak resident memory at three sizes is ``benchmarks/memory_estimate.py`` (its
output committed beside it); :func:`test_estimate_within_25_percent_of_peak_rss` re-measures the smallest size
(slow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import pytest

import dlnlab
from dlnlab.engines import budget, build, execute
from dlnlab.errors import DlnlabError, InsufficientMemoryError

BASE = {
    "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0]},
    "network": {"depth": 2, "width": 6},
    "init": {"kind": "gaussian", "gamma": 2.0},
    "dynamics": {"kind": "sgd", "lr": 0.01, "batch_size": 2, "steps": 400},
    "record": {"n_times": 401, "spacing": "linear", "chunks": 4},
    "ensemble": {"replicas": 40, "seed": 1},
}


def _config(**sections):
    return dlnlab.Config.from_dict({**BASE, **{k: {**BASE.get(k, {}), **v} for k, v in sections.items()}})


def test_extra_zero_on_replicas_is_refused_before_anything_is_allocated(monkeypatch):
    cfg = _config(ensemble={"replicas": 100_000_000})
    monkeypatch.setattr(dlnlab.Config, "replica_grid", lambda self: pytest.fail("the replica table was built"))
    monkeypatch.setenv("DLNLAB_MEMORY_LIMIT", "4G")
    with pytest.raises(InsufficientMemoryError) as info:
        dlnlab.simulate(cfg, progress=False)
    msg = str(info.value)
    assert isinstance(info.value, DlnlabError)
    assert "ensemble.replicas = " in msg and "(now 100000000)" in msg and "4 GiB available" in msg
    fit = int(msg.split("ensemble.replicas = ")[1].split()[0])
    assert 0 < fit < 100_000_000
    # the size it names fits, and one replica-combination more does not (the floor is linear in replicas)
    budget.config_floor(_config(ensemble={"replicas": fit})).check(4 * 2**30)
    with pytest.raises(InsufficientMemoryError):
        budget.config_floor(_config(ensemble={"replicas": fit + 1})).check(4 * 2**30)


def test_width_is_named_when_the_weights_do_not_fit(monkeypatch):
    cfg = _config(network={"depth": 3, "width": 200_000}, ensemble={"replicas": 1})
    monkeypatch.setenv("DLNLAB_MEMORY_LIMIT", "2G")
    with pytest.raises(InsufficientMemoryError) as info:
        budget.check_config(cfg)
    msg = str(info.value)
    assert "network.width = " in msg and "(now 200000)" in msg
    fit = int(msg.split("network.width = ")[1].split()[0])
    budget.config_floor(_config(network={"depth": 3, "width": fit}, ensemble={"replicas": 1})).check(2 * 2**30)
    with pytest.raises(InsufficientMemoryError):
        budget.config_floor(_config(network={"depth": 3, "width": fit + 2}, ensemble={"replicas": 1})).check(2 * 2**30)


def test_measured_sizes_are_those_of_the_dataset_and_a_run_too_large_for_its_records_is_refused(monkeypatch):
    cfg = _config()
    program = build(cfg)
    state = program.init()
    obs0 = program.observe(state)
    fp = budget.measured(cfg, program.R, len(program.grid.t), 100, jax.tree_util.tree_leaves(state), obs0)
    ds = execute(program, progress=False)
    recorded = sum(ds[v].nbytes for v in ds.data_vars if ds[v].dims[:2] == ("replica", "t"))
    assert fp.records == ds.sizes["t"] == 401
    assert fp.record * fp.replicas * fp.records == recorded
    weights = sum(w.nbytes for w in state.weights)
    assert weights < fp.state * fp.replicas < weights + 64 * program.R  # weights and per-replica counters
    # the floor passes (its one number per record), the built program's records do not
    limit = fp.runtime + (fp.peak - fp.held - fp.runtime) // 2  # room for half the run's arrays
    monkeypatch.setenv("DLNLAB_MEMORY_LIMIT", str(limit))
    budget.check_config(cfg)
    with pytest.raises(InsufficientMemoryError) as info:
        dlnlab.simulate(cfg, progress=False)
    msg = str(info.value)
    assert "record.n_times = " in msg and "ensemble.replicas = " in msg
    n_fit = int(msg.split("record.n_times = ")[1].split()[0])
    assert 2 <= n_fit < 401


def test_available_memory_and_bytes():
    assert budget.parse_bytes("512M") == 512 * 2**20 and budget.parse_bytes("1.5G") == int(1.5 * 2**30)
    assert budget.parse_bytes("1000") == 1000 and budget.parse_bytes("4GiB") == 4 * 2**30
    with pytest.raises(DlnlabError):
        budget.parse_bytes("lots")
    assert 0 < budget.available_memory() and 0 < budget.resident_memory()


@pytest.mark.slow
def test_estimate_within_25_percent_of_peak_rss(tmp_path):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_estimate.py"
    spec = importlib.util.spec_from_file_location("memory_estimate", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.measure(bench.SIZES[0], tmp_path)
    assert abs(row["ratio"] - 1) <= 0.25, row
