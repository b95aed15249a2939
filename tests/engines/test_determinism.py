"""Requirement (d): reproducibility.

* The same config (same seeds) gives bitwise-identical data variables, for SGD, the SDE and GD, with online
  and finite data (with and without replacement).
* A replica's trajectory depends only on ``ensemble.seed`` and its ``member`` index: not on how many
  replicas run beside it, nor on the other stacked hyper-parameters, nor on when observables are recorded.
* Different seeds give different trajectories.

Tolerances. Repeat runs must be bitwise equal (exact). Across different ensemble sizes or stackings the
per-replica arithmetic is the same, but XLA may vectorise a batched matmul/reduction differently for a
different batch size, which changes the last bit; so those checks use 1e-12 relative to the size of each
variable (per replica, max over t and entries), i.e. ~1e4 ulp of headroom over the observed ≤ 2e-15.
Relative-to-entry errors would be meaningless for entries that pass through zero (e.g. an s = 0 mode).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import dlnlab

OBS = ["loss", "mode_strength", "singular_values", "balancedness"]

BASE = {
    "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0], "label_noise": 0.3, "seed": 5},
    "network": {"depth": 3, "width": 5},
    "init": {"kind": "gaussian", "gamma": 1.0},
    "dynamics": {"kind": "sgd", "lr": 0.02, "batch_size": 2, "steps": 150},
    "record": {"n_times": 12, "observables": OBS},
    "ensemble": {"replicas": 7, "seed": 0},
}

CASES = {
    "sgd-online": {},
    "sde-online": {"dynamics": {"kind": "sde"}},
    "gd-online": {"dynamics": {"kind": "gd"}},
    "gd-finite": {"dynamics": {"kind": "gd"}, "data": {"kind": "finite", "n_samples": 16, "seed": 2}},
    "sgd-finite-with-replacement": {"data": {"kind": "finite", "n_samples": 16, "sampling": "with_replacement"}},
    "sgd-finite-without-replacement": {"data": {"kind": "finite", "n_samples": 15,
                                                "sampling": "without_replacement"}},
}


def config(case, **changes):
    """BASE + CASES[case] + ``section=dict`` changes (merged key by key)."""
    d = copy.deepcopy(BASE)
    for patch in (CASES[case], changes):
        for sec, vals in patch.items():
            d.setdefault(sec, {}).update(vals)
    return dlnlab.Config.from_dict(d)


_cache: dict = {}


def run(case, **changes):
    """Simulate once per distinct (case, changes) in this module (each distinct run costs a compile)."""
    key = (case, repr(sorted(changes.items())))
    if key not in _cache:
        _cache[key] = dlnlab.simulate(config(case, **changes), progress=False)
    return _cache[key]


def max_rel_diff(a, b):
    """Per data variable: max over replicas of max|a − b| / max|b| (over t and entries)."""
    out = {}
    for name in b.data_vars:
        x, y = a[name].values.astype(np.float64), b[name].values.astype(np.float64)
        assert x.shape == y.shape, name
        axes = tuple(range(1, x.ndim))
        scale = np.maximum(np.max(np.abs(y), axis=axes), 1e-300)
        out[name] = float(np.max(np.max(np.abs(x - y), axis=axes) / scale))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_bitwise_identical(case):
    # Exact: two runs of one config must agree bit for bit (data variables and coordinates).
    a = run(case)
    b = dlnlab.simulate(config(case), progress=False)
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        assert a[name].dtype == b[name].dtype
        assert a[name].values.tobytes() == b[name].values.tobytes(), f"{case}: {name} differs"
    for name in a.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert bool(a["finite"].all())
    # sanity: the run did move, and its replicas are distinct draws
    ms = a["mode_strength"].values
    assert np.abs(ms[:, -1] - ms[:, 0]).max() > 0.1
    assert np.unique(ms[:, -1, 0]).size == a.sizes["replica"]


@pytest.mark.parametrize("case", ["sgd-online", "sde-online", "sgd-finite-without-replacement"])
def test_replica_independent_of_ensemble_size(case):
    # 1e-12 relative to each variable's scale (module docstring); observed ≤ ~2e-15.
    big = run(case)  # 7 replicas
    small = run(case, ensemble={"replicas": 3})
    np.testing.assert_array_equal(small["member"].values, [0, 1, 2])
    diffs = max_rel_diff(big.isel(replica=slice(0, 3)), small)
    assert max(diffs.values()) <= 1e-12, diffs


@pytest.mark.parametrize("case", ["sgd-online", "sde-online"])
def test_replica_independent_of_stacking(case):
    # Member m with lr = 0.01 in a run stacking lr = [0.01, 0.02] equals member m of an unstacked lr = 0.01
    # run with the same t_max, at every recorded step (1e-12 relative, as above).
    dyn = {"steps": None, "t_max": 1.5}
    stacked = run(case, dynamics={**dyn, "lr": [0.01, 0.02]}, ensemble={"replicas": 3})
    single = run(case, dynamics={**dyn, "lr": 0.01}, ensemble={"replicas": 3})
    part = stacked.isel(replica=stacked["lr"].values == 0.01)
    np.testing.assert_array_equal(part["member"].values, single["member"].values)
    steps_stacked = part["step"].values  # (replica, t): the stacked run keeps one nominal time axis
    assert (steps_stacked == steps_stacked[0]).all()
    common, i_stacked, i_single = np.intersect1d(steps_stacked[0], single["step"].values, return_indices=True)
    assert common[-1] == 150 and len(common) >= 8  # t_max / lr steps, and a good part of the record
    diffs = max_rel_diff(part.isel(t=i_stacked), single.isel(t=i_single))
    assert max(diffs.values()) <= 1e-12, diffs
    # The lr = 0.02 replicas really ran at the other step size (75 steps to t_max).
    other = stacked.isel(replica=stacked["lr"].values == 0.02)
    assert int(other["step"].values[0, -1]) == 75


@pytest.mark.parametrize("case", ["sgd-online", "sde-online", "gd-finite"])
def test_different_seeds_differ(case):
    # A different ensemble seed gives a different draw for every replica (init and, for SGD/SDE, noise).
    a = run(case)
    b = run(case, ensemble={"seed": 1})
    ma, mb = a["mode_strength"].values, b["mode_strength"].values
    per_replica = np.abs(ma - mb).max(axis=(1, 2))
    assert (per_replica > 1e-3).all(), per_replica


def test_noise_depends_on_seed_not_only_init():
    # Same initial weights for every replica and both seeds: SGD trajectories still differ across seeds
    # (fresh samples come from the seed), while GD from the same weights is identical for both seeds (exact).
    W0 = (0.3 * np.eye(5, 4), 0.3 * np.eye(5, 5), 0.3 * np.eye(3, 5))
    out = {}
    for kind in ("sgd", "gd"):
        for seed in (0, 1):
            cfg = config("sgd-online", dynamics={"kind": kind, "steps": 60}, ensemble={"seed": seed, "replicas": 2})
            out[kind, seed] = dlnlab.simulate(cfg, weights=W0, progress=False)["mode_strength"].values
    assert np.abs(out["sgd", 0] - out["sgd", 1]).max(axis=(1, 2)).min() > 1e-3
    assert np.abs(out["sgd", 0][0] - out["sgd", 0][1]).max() > 1e-3  # members differ too
    np.testing.assert_array_equal(out["gd", 0], out["gd", 1])
    np.testing.assert_array_equal(out["gd", 0][0], out["gd", 0][1])


def test_record_times_do_not_change_trajectory():
    # Recording only the endpoints reaches the same final state as recording 12 times (1e-12 relative).
    a = run("sgd-online")
    b = run("sgd-online", record={"n_times": 2})
    assert int(b["step"].values[-1]) == int(a["step"].values[-1]) == 150
    diffs = max_rel_diff(a.isel(t=[-1]), b.isel(t=[-1]))
    assert max(diffs.values()) <= 1e-12, diffs


@pytest.mark.parametrize("spacing", ["log", "linear"])
@pytest.mark.parametrize("n_times", [2, 3, 50])
def test_record_times_span_the_run(spacing, n_times):
    # Exact: the record grid starts at 0 and ends at t_max for every n_times (regression: log spacing with
    # n_times = 2 used to stop after one step), and is strictly increasing.
    from dlnlab.engines import nominal_times

    cfg = config("sgd-online", record={"n_times": n_times, "spacing": spacing})
    t = nominal_times(cfg, 0.02)
    assert len(t) == n_times and t[0] == 0.0 and t[-1] == pytest.approx(150 * 0.02, rel=1e-15)
    assert np.all(np.diff(t) > 0)


def test_stacked_step_sizes_record_exact_times():
    """With stacked learning rates the t axis is nominal; t_exact = lr·step is each replica's real time
    (exact: it is the product that defines time, t = η·step)."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 2, "d_out": 2, "singular_values": [1.0]},
        "network": {"depth": 2, "width": 2}, "init": {"kind": "gaussian", "scale": 0.1},
        "dynamics": {"kind": "gd", "lr": [0.02, 0.05], "t_max": 1.0},
        "record": {"n_times": 8, "observables": ["loss"]},
    })
    ds = dlnlab.simulate(cfg, progress=False)
    np.testing.assert_array_equal(ds["t_exact"].values, ds["step"].values * ds["lr"].values[:, None])
    assert np.all(np.abs(ds["t_exact"] - ds["t"]) <= ds["lr"] / 2 + 1e-15)
    assert float(ds["t_exact"].isel(t=-1).min()) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("case, changes", [
    ("sgd-online", {}),
    ("gd-finite", {"dynamics": {"kind": "gd", "lr": [0.02, 0.05, 0.3], "steps": None, "t_max": 12.0},
                   "record": {"n_times": 5, "spacing": "linear"}}),  # 0.3 diverges at steps 4-7
])
def test_calls_split_by_steps_are_bitwise_the_same(case, changes, monkeypatch):
    """Exact: a run whose compiled calls are capped at 3 steps (every longer interval split,
    :func:`dlnlab.engines._core.interval_calls`; the cap that bounds XLA's per-iteration memory on several CPU
    devices) gives every recorded value, the divergence step and the final state of the uncapped run."""
    from dlnlab.engines import network

    flat = {sec: dict(vals) for sec, vals in changes.items()}
    whole = dlnlab.simulate(config(case, **flat), progress=False)
    monkeypatch.setattr(network, "_max_steps_per_call", lambda config, weights: 3)
    split = dlnlab.simulate(config(case, **flat), progress=False)
    assert set(split.data_vars) == set(whole.data_vars)
    for name in whole.data_vars:
        np.testing.assert_array_equal(split[name].values, whole[name].values, err_msg=name)
    if "lr" in flat.get("dynamics", {}):
        assert int(whole["diverged"].sum()) >= 1 and int(whole["diverged_step"].max()) > 3  # replayed past a split


def test_step_cap_applies_only_when_sharded():
    """The cap is a number of steps when the run is sharded over several CPU devices (then ≥ 1 and at most
    MAX_LOOP_STEPS_PER_CALL / devices), and None on one device."""
    from dlnlab.engines import network
    from dlnlab.runtime import replica_devices

    cfg = config("sgd-online")
    weights = network._ensemble(cfg).weights0
    cap = network._max_steps_per_call(cfg, weights)
    n_dev = len(replica_devices(cfg.ensemble.replicas))
    if n_dev < 2:
        assert cap is None
    else:
        assert 1 <= cap <= network.MAX_LOOP_STEPS_PER_CALL // n_dev
