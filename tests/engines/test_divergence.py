"""Divergence isolation: a replica that blows up is frozen where it happens and marked; the others
finish exactly as they would alone."""

import numpy as np

import dlnlab

BASE = {
    "teacher": {"d_in": 3, "d_out": 3, "singular_values": [3.0, 2.0, 1.0]},
    "network": {"depth": 2, "width": 5},
    "init": {"kind": "gaussian", "scale": 0.3},
    "dynamics": {"kind": "sgd", "batch_size": 2, "t_max": 20.0},
    "record": {"n_times": 20, "observables": ["loss", "mode_strength"]},
    "ensemble": {"replicas": 3, "seed": 4},
}


def _run(lr):
    return dlnlab.simulate(dlnlab.Config.from_dict({**BASE, "dynamics": {**BASE["dynamics"], "lr": lr}}),
                           progress=False)


def test_divergent_learning_rate_is_isolated():
    """lr = 0.9 is far beyond GD stability (2/(λ_max) with curvature ~ L·s ≈ 6 at the minimum): those
    replicas must diverge; lr = 0.01 is stable and must be unaffected bit for bit."""
    ds = _run([0.01, 0.9])
    bad = ds["lr"].values == 0.9
    np.testing.assert_array_equal(ds["diverged"].values, bad)  # exactly those replicas are marked
    assert ds.attrs["n_diverged"] == int(bad.sum()) == 3
    assert np.all(ds["diverged_step"].values[bad] > 0) and np.all(ds["diverged_step"].values[~bad] == -1)
    reasons = ds["divergence_reason"].attrs["flag_meanings"].split()
    assert {reasons[r] for r in ds["divergence_reason"].values[bad]} <= {"nonfinite", "threshold"}
    # frozen at the last good weights: every recorded value stays finite and constant after the step
    assert np.all(np.isfinite(ds["loss"].values))
    for r in np.flatnonzero(bad):
        after = ds["step"].values[r] > ds["diverged_step"].values[r]  # step is (replica, t) when lr is stacked
        assert np.all(ds["loss"].values[r, after] == ds["loss"].values[r, after][0])
    # the healthy replicas are exactly those of a run without the divergent learning rate
    alone = _run(0.01)
    for r, member in zip(np.flatnonzero(~bad), ds["member"].values[~bad]):
        steps = ds["step"].values[r]
        keep = np.isin(steps, alone["step"].values)  # stacked runs record on a nominal grid: compare common steps
        ref = alone["mode_strength"].sel(replica=member).values[np.searchsorted(alone["step"].values, steps[keep])]
        # ≤ 1e-12: the stacked program (per-replica step counts) is compiled differently, so results agree
        # to round-off, not bit for bit (as in test_determinism); divergence would be O(1) here
        np.testing.assert_allclose(ds["mode_strength"].values[r, keep], ref, rtol=1e-12, atol=1e-14)
        assert keep.sum() >= 10


def _blocked_and_whole(monkeypatch, config):
    """The run of ``config`` with the replicas stepped in blocks of 3 (one 5 × 3 and one 3 × 5 weight: 240 bytes a
    replica) and in one block."""
    from dlnlab.engines import network

    out = []
    for block_bytes in (3 * 240, 10**9):
        monkeypatch.setattr(network, "BLOCK_BYTES", block_bytes)
        out.append(dlnlab.simulate(dlnlab.Config.from_dict(config), progress=False))
    return out


def test_blocks_replay_alone_and_match_one_block(monkeypatch):
    """Stepped block by block (``network._blockwise``: 7 replicas in blocks of 3 and a last one of 1, on one device;
    4 a shard, a block of 3 and one of 1, on two), a block replays with the per-step guard only when one of its
    replicas left the bounds, from its own start state. Replicas 1 and 6 diverge (the first and last block on one
    device), the others do not, with one learning rate (the same steps for all) and with one per replica (per-replica
    step counts, ``inc_batched``): the same replicas freeze at the same step for the same reason as when all step
    as one block, and every record agrees to round-off (≤ 1e-12: the vmapped step is compiled for another batch
    size; a wrong replay or a replica stepped twice would differ at O(1))."""
    scales = [0.3, 3.0, 0.3, 0.2, 0.3, 0.3, 2.5]
    one_lr = {**BASE, "init": {"kind": "gaussian", "scale": scales},
              "dynamics": {**BASE["dynamics"], "lr": 0.05}, "ensemble": {"replicas": 1, "seed": 4}}
    per_replica_lr = {**BASE, "dynamics": {**BASE["dynamics"], "lr": [0.01, 0.9, 0.02, 0.01, 0.03, 0.015, 0.95]},
                      "ensemble": {"replicas": 1, "seed": 4}}
    for config in (one_lr, per_replica_lr):
        blocked, whole = _blocked_and_whole(monkeypatch, config)
        assert blocked.sizes["replica"] == 7
        np.testing.assert_array_equal(blocked["diverged"].values, [False, True, False, False, False, False, True])
        for name in ("diverged", "diverged_step", "divergence_reason"):
            np.testing.assert_array_equal(blocked[name].values, whole[name].values)
        for name in ("loss", "mode_strength"):
            np.testing.assert_allclose(blocked[name].values, whole[name].values, rtol=1e-12, atol=1e-14)
