"""The engine core (``dlnlab.engines._core``) as every simulator uses it: the record grid always starts at step 0 as
record 0 (the ``simulate_modes(config, times=...)`` defect of issue 13 cannot recur), the public program API
(``build`` -> ``init``/``step``/``run``), interrupt and bitwise resume for every simulator, and the errors a user
gets for bad arguments. Exact checks (bitwise where the same compiled operations run), small sizes."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
import xarray as xr

import dlnlab
from dlnlab import checkpoint
from dlnlab.engines import RunResult, build, diagonal_config, mode_config, relu_config
from dlnlab.errors import ConfigError
from dlnlab.model import DiagonalModel, ReluTask


def _run_length(kw, steps=40):
    """The run given by ``times`` if present, else ``steps`` steps and 5 records, 2 chunks."""
    base = {"chunks": 2} | ({} if "times" in kw else {"steps": steps, "n_times": 5})
    return base | kw


def network(**kw):
    kw = _run_length(kw)
    dynamics = {"kind": "sgd", "lr": 0.05, "batch_size": 2} | ({"steps": kw.pop("steps")} if "steps" in kw else {})
    record = {"observables": ["loss", "mode_strength"]} | kw
    return dlnlab.Config.from_dict({
        "teacher": {"d_in": 3, "d_out": 2, "singular_values": [1.5, 0.5], "label_noise": 0.2},
        "network": {"depth": 2, "width": 4}, "init": {"kind": "gaussian", "gamma": 1.0},
        "dynamics": dynamics, "record": record, "ensemble": {"replicas": 3, "seed": 4}})


def modes(**kw):
    return mode_config([2.0, 1.0], depth=2, lr=0.05, batch_size=2, label_noise=0.3, m0=0.1, replicas=3, seed=4,
                       **_run_length(kw))


def diagonal(**kw):
    return diagonal_config(DiagonalModel(depth=2, n_paths=2, label_noise=0.5), v0=[0.3, 0.1], lr=0.05, replicas=3,
                           seed=4, **({"kind": "sgd"} | _run_length(kw)))


def relu(**kw):
    return relu_config(ReluTask(d=2, hidden=3, label_noise=0.5), lr=0.05, replicas=2, seed=4, n_mc=100,
                       n_bound_records=1, **_run_length(kw, steps=20))


MAKERS = {"network": network, "modes": modes, "diagonal": diagonal, "relu": relu}
KEY = {"network": "mode_strength", "modes": "mode_strength", "diagonal": "output", "relu": "sq_norm"}


@pytest.mark.parametrize("model", sorted(MAKERS))
def test_record_zero_is_step_zero_whatever_the_times(model):
    """Issue 13 defect: with ``record.times`` not starting at 0 every engine records step 0 as record 0, labelled
    t = 0, and the later records are the states at their own steps: bitwise those of a run whose times include 0
    and more records (per-step keys: the record schedule does not change a trajectory)."""
    make = MAKERS[model]
    late = dlnlab.simulate(make(times=[1.0, 2.0]), progress=False)
    dense = dlnlab.simulate(make(times=[0.0, 0.5, 1.0, 1.5, 2.0]), progress=False)
    assert late.t.values.tolist() == [0.0, 1.0, 2.0]
    assert late.step.values.tolist() == [0, 20, 40]
    np.testing.assert_array_equal(late[KEY[model]].values, dense[KEY[model]].values[:, [0, 2, 4]])


def test_modes_late_samples_are_late_states():
    """The reported defect itself: ``simulate_modes`` asked for late-time samples only returned the initial state
    labelled ``times[0]``. Now ``t[1:]`` hold the states at those times (equal to a run recording every step)."""
    late = dlnlab.simulate(modes(kind="sde", dt=0.01, times=[0.3, 0.4]), progress=False)
    every = dlnlab.simulate(modes(kind="sde", dt=0.01, times=list(np.arange(1, 41) * 0.01)), progress=False)
    assert late.t.values[0] == 0.0 and late.step.values.tolist() == [0, 30, 40]
    np.testing.assert_array_equal(late.mode_strength.values[:, 1:], every.mode_strength.values[:, [30, 40]])
    assert not np.array_equal(late.mode_strength.values[:, 1], late.mode_strength.values[:, 0])


@pytest.mark.parametrize("model", sorted(MAKERS))
def test_program_step_and_run_agree(model):
    """``build(config)``: ``init()`` is the state at step 0 (its ``observe`` is record 0 of ``simulate``), ``step``
    applied k times reaches the state ``run`` reaches at a record k steps in (to 1e-12 relative: the same
    arithmetic, possibly vectorised differently), ``run`` leaves the state it is given alive, and ``run`` over every record reproduces ``simulate``'s records
    bitwise."""
    cfg = MAKERS[model]()
    program = build(cfg)
    ds = dlnlab.simulate(cfg, progress=False)
    state = program.init()
    np.testing.assert_array_equal(program.observe(state)[KEY[model]], ds[KEY[model]].values[:, 0])
    k = int(program.grid.steps[1])
    stepped = state
    for _ in range(k):
        stepped = program.step(stepped)
    ran, _ = program.run(state, np.array([1]))
    # the argument stays usable (the chunk loop checkpoints it and an interrupt returns it): an engine that donates
    # its state to the compiled program (the network engine) runs a copy
    assert not any(leaf.is_deleted() for leaf in jax.tree_util.tree_leaves(state) if isinstance(leaf, jax.Array))
    for a, b in zip(jax.tree_util.tree_leaves(stepped[0]), jax.tree_util.tree_leaves(ran[0]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-15)
    result = program.run(state, np.arange(1, len(program.grid.t)))
    assert isinstance(result, RunResult) and result.state is result[0] and result.observations is result[1]
    np.testing.assert_array_equal(result.observations[KEY[model]], ds[KEY[model]].values[:, 1:])


def test_flow_program_has_no_step():
    program = build(network().with_overrides(["dynamics.kind=flow", "init.gamma=0.5"]))
    assert program.step is None and program.grid.steps is None


@pytest.mark.parametrize("model", ["modes", "diagonal", "relu"])
def test_every_simulator_resumes_bitwise(model, tmp_path, interrupt_after):
    """Checkpoint/resume is the core's, so it holds for every simulator: interrupted after 2 chunks (the
    checkpoint keeps the first), resumed, the dataset equals an uninterrupted run bitwise."""
    cfg = MAKERS[model](n_times=7, chunks=3)
    full = dlnlab.simulate(cfg, progress=False)
    ck = tmp_path / "ck.npz"
    with pytest.raises(dlnlab.Interrupted) as info:
        dlnlab.simulate(cfg, progress=interrupt_after(2), checkpoint=ck, checkpoint_every=1e9)
    assert info.value.partial.sizes["t"] == 5 and info.value.partial.attrs["complete"] == 0
    assert checkpoint.peek(ck) == 1
    resumed = dlnlab.simulate(cfg, progress=False, checkpoint=ck, checkpoint_every=0)
    for name in full.data_vars:
        np.testing.assert_array_equal(resumed[name].values, full[name].values, err_msg=name)


@pytest.mark.parametrize("model", sorted(MAKERS))
def test_run_cache_returns_the_kept_run_and_keys_on_the_run(model, tmp_path, monkeypatch):
    """With ``DLNLAB_RUN_CACHE`` a complete run is kept and a second run of the same config is read back, equal to
    it (values, dtypes, coordinates, attrs) without running; another seed is another run."""
    from dlnlab.engines import _core

    monkeypatch.setenv(_core.RUN_CACHE_ENV, str(tmp_path))
    cfg = MAKERS[model]()
    first = dlnlab.simulate(cfg, progress=False)
    assert len(list(tmp_path.glob("*.nc"))) == 1
    monkeypatch.setattr(_core, "_execute", lambda *a: pytest.fail("a kept run was run again"))
    again = dlnlab.simulate(cfg, progress=False)
    xr.testing.assert_identical(again, first)
    monkeypatch.undo()
    monkeypatch.setenv(_core.RUN_CACHE_ENV, str(tmp_path))
    other = dlnlab.simulate(dataclasses.replace(cfg, ensemble=dataclasses.replace(cfg.ensemble, seed=5)),
                            progress=False)
    assert len(list(tmp_path.glob("*.nc"))) == 2
    assert not np.array_equal(other[KEY[model]].values, first[KEY[model]].values)


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError) as info:
        build({"dynamics": {}})
    assert info.value.field == "config"
    with pytest.raises(ConfigError) as info:
        dlnlab.simulate(modes(), observables=[dlnlab.model.MODE_IMBALANCE])
    assert info.value.field == "observables"
    with pytest.raises(ConfigError) as info:
        dlnlab.simulate(modes(), progress="yes")
    assert info.value.field == "progress"
    with pytest.raises(ConfigError) as info:
        dlnlab.simulate(diagonal(), checkpoint="unused.npz", checkpoint_every=-1.0)
    assert info.value.field == "checkpoint_every"
    with pytest.raises(ConfigError) as info:  # the diagonal start is the config's or the caller's
        dlnlab.simulate(diagonal_config(DiagonalModel(), kind="sgd", lr=0.05, steps=10))
    assert info.value.field == "diagonal.v0"
    with pytest.raises(ConfigError) as info:  # log coordinates need a positive start
        dlnlab.simulate(modes(kind="sde", scheme="log"), weights=[[0.3, -0.1], [0.3, 0.1]])
    assert info.value.field == "weights"


def test_errors_form_one_hierarchy():
    from dlnlab.errors import CheckpointError, CorruptDatasetError, DlnlabError

    for cls in (ConfigError, CheckpointError, CorruptDatasetError):
        assert issubclass(cls, DlnlabError) and issubclass(cls, ValueError)
    assert issubclass(dlnlab.Interrupted, KeyboardInterrupt)


def test_interval_calls_split_long_intervals_and_keep_record_ends():
    """Exact: intervals of 3, 10, 0, 4 steps under a cap of 4 steps per call and 3 intervals per call: the pieces
    sum to each interval, no call exceeds the cap or the size, and the record ends are the last piece of each
    interval, in order; per-replica increments split by their largest; without a cap one call, padded."""
    from dlnlab.engines._core import interval_calls

    incs = np.array([3, 10, 0, 4])
    calls = interval_calls(incs, 3, 4)
    for inc, ends in calls:
        assert inc.shape == (3,) and ends.shape == (3,) and inc.sum() <= 4
    flat = np.concatenate([inc[: len(inc)] for inc, _ in calls])
    ends = np.concatenate([e for _, e in calls])
    assert ends.sum() == 4
    pieces_per_record = np.split(flat, np.flatnonzero(ends) + 1)[:4]
    assert [int(p.sum()) for p in pieces_per_record] == [3, 10, 0, 4]
    per_replica = np.array([[3, 10], [1, 2]])
    calls = interval_calls(per_replica, 2, 4)
    total = sum(inc for inc, _ in calls).sum(axis=1)
    np.testing.assert_array_equal(total, per_replica.sum(axis=1))
    [(inc, ends)] = interval_calls(incs, 6, None)
    np.testing.assert_array_equal(inc, [3, 10, 0, 4, 0, 0])
    np.testing.assert_array_equal(ends, [True] * 4 + [False] * 2)
