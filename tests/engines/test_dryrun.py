"""Issue 19 item 1: ``dlnlab train CONFIG --dry-run`` prints the resolved config, replicas × steps × records, the
memory estimate and a time estimate from a timed probe, and runs nothing; the probe config keeps the run's shapes
with fewer replicas."""

from __future__ import annotations

import re

import numpy as np
from typer.testing import CliRunner

import dlnlab
from dlnlab.cli import app
from dlnlab.engines import budget
from dlnlab.engines.dryrun import probe_config, run_steps

TOML = """
[teacher]
d_in = 4
d_out = 3
singular_values = [2.0, 1.0]
[network]
depth = 2
width = 6
[init]
kind = "gaussian"
gamma = [1.0, 2.0]
[dynamics]
kind = "sgd"
lr = 0.01
batch_size = 2
steps = 3000
[record]
n_times = 50
[ensemble]
replicas = 500
seed = 1
"""


def test_probe_config_keeps_shapes_with_fewer_replicas():
    cfg = dlnlab.Config.from_dict({"teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0]},
                                   "network": {"depth": 2, "width": 6}, "init": {"kind": "gaussian", "gamma": [1.0, 2.0]},
                                   "dynamics": {"kind": "sgd", "lr": [0.01, 0.02], "t_max": 1.0},
                                   "ensemble": {"replicas": 1000}})
    assert budget.replica_count(cfg) == 4000 == len(cfg.replica_grid())
    probe = probe_config(cfg, 64)
    assert budget.replica_count(probe) == 64 and probe.stacked() == cfg.stacked()
    tiny = probe_config(cfg, 2)  # fewer than the combinations: every stacked key keeps its first value
    assert budget.replica_count(tiny) == 2 and tiny.dynamics.lr == 0.01 and tiny.init.gamma == 1.0
    assert tiny.layer_dims == cfg.layer_dims and tiny.record == cfg.record
    assert run_steps(cfg) == 100  # the longest replica (the smallest lr) at t_max = 100 · 0.01


def test_cli_dry_run_prints_sizes_and_estimates_and_runs_nothing(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    res = CliRunner().invoke(app, ["train", str(cfg), "--dry-run", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "resolved config:" in out and "[ensemble]" in out and "replicas = 500" in out
    assert re.search(r"run: 1000 replicas × 3000 steps × \d+ records \(network, sgd\)", out), out
    mem = re.search(r"memory: ~([0-9.]+) (MiB|GiB) estimated peak", out)
    assert mem, out
    assert re.search(r"time: ~[0-9.e+]+ s \(compile ~[0-9.e+]+ s \+ 3000 steps × [0-9.e+-]+ s at 1000 replicas; "
                     r"probed at 64 replicas", out), out
    assert not (tmp_path / "out").exists()


def test_flow_probe_subtracts_compilation_and_extrapolates_the_rest_of_the_horizon():
    """A stand-in flow program whose record i costs 0.05 s per unit of simulated time, and whose first calls of
    records 1 and 2 (the two layouts compiled) cost 0.3 s more each: the probe stops at its budget, finds the compilation and
    extrapolates the horizon's 5 s."""
    import time
    from types import SimpleNamespace

    from dlnlab.engines.dryrun import PROBE_BUDGET_S, flow_probe

    calls = []

    def run(state, records):
        (i,) = records
        calls.append(i)
        time.sleep(0.05 * (t[i] - t[i - 1]) + (0.3 if calls.count(i) == 1 and i <= 2 else 0.0))
        return state, None

    t = np.linspace(0.0, 100.0, 101)
    compile_s, work_s, probed_t = flow_probe(SimpleNamespace(grid=SimpleNamespace(t=t), run=run), 0)
    assert 0.5 < compile_s < 0.7 and 4.9 < work_s < 5.6
    assert PROBE_BUDGET_S / 0.05 <= probed_t < 60.0  # stopped at the budget, not at the end
    assert calls[:4] == [1, 1, 2, 2] and calls[4:] == list(range(3, 3 + len(calls) - 4))


def test_cli_dry_run_of_a_flow_estimates_its_time(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML.replace('kind = "sgd"\nlr = 0.01\nbatch_size = 2\nsteps = 3000', 'kind = "flow"\nt_max = 30.0'))
    res = CliRunner().invoke(app, ["train", str(cfg), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert re.search(r"run: 1000 replicas × adaptive steps × \d+ records \(network, flow\)", res.output), res.output
    assert re.search(r"time: ~[0-9.e+]+ s \(compile ~[0-9.e+]+ s \+ gradient flow to t = 30 at 1000 replicas; "
                     r"probed (through the whole run|to t = [0-9.e+-]+ of 30)", res.output), res.output
