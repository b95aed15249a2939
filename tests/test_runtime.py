"""dlnlab.runtime: ``shard_replicas`` with ``block_bytes`` runs a large ensemble as consecutive blocks and changes no
result (bitwise), for the function itself and for the per-mode engine that uses it (``modes.BLOCK_BYTES``); with
``donate_state`` the state's buffers go to the outputs and no result changes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnlab.engines import mode_config, modes, simulate_modes
from dlnlab.runtime import shard_replicas


def _fn(x, k, w):
    """Replicas independent; ``w`` shared (not a replica argument)."""
    return jax.vmap(lambda xi, ki: (jnp.tanh(xi @ w) * ki, jnp.sum(xi**2) + ki))(x, k)


@pytest.mark.parametrize("R", [1, 7, 13, 40])
def test_blocks_change_no_result(R):
    """Blocks of 2 per device (16-byte rows), the last one ragged: every output equals the unblocked call's."""
    rng = np.random.default_rng(0)
    x, k, w = rng.standard_normal((R, 2)), rng.standard_normal(R), rng.standard_normal((2, 3))
    whole = shard_replicas(_fn, (0, 1))(x, k, w)
    blocked = shard_replicas(_fn, (0, 1), block_bytes=32)(x, k, w)
    for a, b in zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(blocked)):
        assert a.shape[0] == R
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _modes_run(cfg, block_bytes, monkeypatch):
    """The per-mode engine with ``modes.BLOCK_BYTES = block_bytes`` (its compiled programs are cached: rebuilt)."""
    monkeypatch.setattr(modes, "BLOCK_BYTES", block_bytes)
    modes._program.cache_clear()
    try:
        return simulate_modes(cfg, progress=False)
    finally:
        modes._program.cache_clear()


@pytest.mark.parametrize("scheme", ["implicit", "em"])
def test_mode_engine_blocks_change_no_result(scheme, monkeypatch):
    """150 replicas of 3 modes at L = 3 (72 state bytes each) in blocks of 2 KiB (28 replicas per device: 3 blocks
    on 2 cores, 6 on 1, the last ragged) against one call: every recorded variable bitwise equal, diverged
    replicas included (lr 0.2)."""
    cfg = mode_config([2.0, 1.0, 0.5], depth=3, lr=0.2, batch_size=1, label_noise=0.3, m0=0.05, kind="sde",
                      steps=40, n_times=5, spacing="linear", replicas=150, noise="exact", scheme=scheme)
    blocked, whole = _modes_run(cfg, 2048, monkeypatch), _modes_run(cfg, None, monkeypatch)
    assert blocked.attrs["n_diverged"] == whole.attrs["n_diverged"]
    for name in whole.data_vars:
        np.testing.assert_array_equal(blocked[name].values, whole[name].values, err_msg=name)


def _step(x, k, w):
    """A chunk-like program: its first output has the layout of its first input (fed back in a loop)."""
    out, _ = _fn(x, k, w)
    return out[:, :2], k


@pytest.mark.parametrize("R", [4, 7])
@pytest.mark.parametrize("max_devices", [None, 1])
def test_a_loop_feeding_outputs_back_compiles_once(R, max_devices, caplog):
    """Host arrays first, then the program's own (sharded) outputs: one compilation, not one per input layout
    (the chunked loop of every engine; it compiled twice before the replica arguments were placed)."""
    import logging

    rng = np.random.default_rng(1)
    x, k, w = rng.standard_normal((R, 2)), rng.standard_normal(R), rng.standard_normal((2, 3))
    run = shard_replicas(_step, (0, 1), max_devices=max_devices)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
        for _ in range(3):
            x, k = run(x, k, w)
            jax.block_until_ready(x)
    compiled = [r.getMessage() for r in caplog.records if "XLA compilation of jit(_step)" in r.getMessage()]
    assert len(compiled) == 1, compiled


@pytest.mark.parametrize("max_devices", [None, 1])
def test_donated_state_is_consumed_and_changes_no_result(max_devices):
    """``donate_state=True``: the outputs equal the undonated call's (bitwise), the state passed in is deleted (its
    buffers were handed to the outputs), the other replica argument and the shared one are not."""
    rng = np.random.default_rng(2)
    x, k, w = rng.standard_normal((6, 2)), rng.standard_normal(6), jnp.asarray(rng.standard_normal((2, 3)))
    plain = shard_replicas(_step, (0, 1), max_devices=max_devices)
    x1, k1 = plain(x, k, w)  # placed as the program's outputs, so that the next call takes them as they are
    expected = plain(x1, k1, w)
    out = shard_replicas(_step, (0, 1), max_devices=max_devices, donate_state=True)(x1, k1, w)
    assert x1.is_deleted() and not k1.is_deleted() and not w.is_deleted()
    for a, b in zip(out, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("R", [6, 7])
@pytest.mark.parametrize("max_devices", [None, 1])
def test_fresh_copy_survives_donation(R, max_devices):
    """``run.fresh(state)``: passing it to a donating call leaves the caller's state alive and unchanged and gives the
    outputs of the undonated call (bitwise). Where the call would consume the arrays it is given (no padding) it is a
    copy, consumed by the call, with the outputs' sharding on several devices (so the call does not copy it again);
    where the call pads (R = 7 on 2 devices) it is the state itself, which the call does not consume."""
    rng = np.random.default_rng(3)
    x, k, w = rng.standard_normal((R, 2)), rng.standard_normal(R), jnp.asarray(rng.standard_normal((2, 3)))
    plain = shard_replicas(_step, (0, 1), max_devices=max_devices)
    x1, k1 = plain(x, k, w)
    kept = np.asarray(x1)
    expected = plain(x1, k1, w)
    run = shard_replicas(_step, (0, 1), max_devices=max_devices, donate_state=True)
    copy = run.fresh(x1)
    n_dev = 1 if max_devices == 1 else min(len(jax.devices()), R)
    padded = R % n_dev != 0
    assert (copy is x1) if padded else (copy is not x1 and copy.sharding == x1.sharding)
    out = run(copy, k1, w)
    assert copy.is_deleted() != padded and not x1.is_deleted()
    np.testing.assert_array_equal(np.asarray(x1), kept)
    for a, b in zip(out, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
