"""[J] ``staircase`` (``experiments/jacot/staircase.py``): the rows built from a plateau table — the Wilson order
fraction, batch-means plateau losses and jump sizes — on synthetic tables (exact levels, a replica out of order,
the ``s2`` perturbation), and the smoke preset's measured rows (slow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlnlab.experiments.jacot import staircase as st
from dlnlab.theory import saddle_sequence as th
from experiments._smoke import run_smoke

S = np.array([4.0, 2.0, 1.0])
P = {"sigma": 1e-2, "depth": 3, "order_threshold": 0.75, "gf_jump_tol": 0.01, "sgd_jump_tol": 0.03,
     "level_tol": 0.03}


def _table(R, order=(1, 2, 3), jitter=1e-4, seed=0):
    """A plateau table of ``R`` replicas that learn ``order`` (1-based) with levels and jumps of ``S`` (± jitter)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(R):
        learned = []
        for k in range(len(S) + 1):
            unlearned = [a for a in range(len(S)) if a + 1 not in learned]
            mode = order[k] if k < len(S) else pd.NA
            rows.append({"replica": r, "plateau": k, "loss": 0.5 * np.sum(S[unlearned] ** 2) * (1 + jitter * rng.normal()),
                         "rank": k, "learned_mode": mode,
                         "learned_value": S[order[k] - 1] * (1 + jitter * rng.normal()) if k < len(S) else np.nan})
            if k < len(S):
                learned.append(order[k])
    return pd.DataFrame(rows).astype({"learned_mode": "Int64"})


def _by_key(rows):
    return {r.id: r for r in rows}


def test_rows_hold_on_an_exact_staircase():
    rows = _by_key(st.claims_of("gradient flow", _table(20), P, S, 3))
    assert rows["staircase/order/dynamics=gf"].verdict == "holds"
    assert rows["staircase/order/dynamics=gf"].value == 1.0
    for k in range(3):
        assert rows[f"staircase/plateau_loss/dynamics=gf, plateau={k}"].verdict == "holds"
        assert rows[f"staircase/plateau_loss/dynamics=gf, plateau={k}"].theory == th.saddle_loss(k, S)
        assert rows[f"staircase/jump_size/dynamics=gf, jump={k + 1}"].verdict == "holds"
    sgd = _by_key(st.claims_of("SGD", _table(20), P, S, 3))
    assert not any("plateau_loss" in i for i in sgd)  # SGD's levels are [C]'s row (diffusion_peak)


def test_order_fraction_counts_replicas_out_of_order():
    tab = pd.concat([_table(10), _table(10, order=(2, 1, 3)).assign(replica=lambda d: d.replica + 10)])
    order = _by_key(st.claims_of("gradient flow", tab, P, S, 3))["staircase/order/dynamics=gf"]
    assert order.value == 0.5 and order.verdict == "fails"


def test_s2_perturbation_reverses_the_predicted_order():
    s_th = st.perturbed_s(S, {"s": 1.0, "s2": 2.2})
    assert list(th.learning_order(s_th)) == [1, 0, 2]
    rows = _by_key(st.claims_of("gradient flow", _table(20), P, s_th, 3))
    assert rows["staircase/order/dynamics=gf"].verdict == "fails"
    assert rows["staircase/plateau_loss/dynamics=gf, plateau=1"].verdict == "fails"


def test_deep_rows_take_the_solver_error_where_replicas_agree_to_round_off():
    """A vanishing-init run (``deep = (L, σ)``): its rows name ``L`` and ``sigma``, take the deep thresholds, and where
    the replicas agree to round-off (here exactly: no jitter) the plateau losses and jumps carry the solver's error
    ``FLOW_RTOL · value``, never 0 (a measured row with a zero-width interval is refused)."""
    p = {**P, "deep_order_threshold": 0.5, "deep_level_tol": 5e-3}
    rows = _by_key(st.claims_of("gradient flow (L = 3, σ = 1e-08)", _table(8, jitter=0.0), p, S, 3, deep=(3, 1e-8)))
    assert rows["staircase/order/dynamics=gf, L=3, sigma=1e-08"].verdict == "holds"  # 8 of 8, Wilson above 0.5
    for k in range(3):
        level = rows[f"staircase/plateau_loss/dynamics=gf, L=3, sigma=1e-08, plateau={k}"]
        jump = rows[f"staircase/jump_size/dynamics=gf, L=3, sigma=1e-08, jump={k + 1}"]
        for r, value in ((level, th.saddle_loss(k, S)), (jump, S[k])):
            assert r.verdict == "holds" and r.uncertainty == pytest.approx(st.FLOW_RTOL * value)
    with_spread = _by_key(st.claims_of("gradient flow", _table(8, jitter=1e-6), p, S, 3, deep=(3, 1e-8)))
    assert with_spread["staircase/plateau_loss/dynamics=gf, L=3, sigma=1e-08, plateau=0"].uncertainty > 1e-7  # the replicas'


@pytest.mark.slow
def test_smoke_rows_hold(tmp_path, tmp_path_factory):
    """Every measured row of the smoke preset holds at seeds 0 and 1 (measured under load: all hold, 45–90 s a run;
    seed 0's simulations: the smoke run's)."""
    for seed in (0, 1):
        res = run_smoke(tmp_path_factory, "staircase", tmp_path / str(seed), seed)
        bad = [(c.id, c.verdict) for c in res.claims if c.kind == "measured" and c.verdict != "holds"]
        assert not bad, bad
