"""[J] ``sparsity`` (``experiments/jacot/sparsity.py``): the low-rank bias of small init on matrix completion
(checks.md G13, moved from tests/test_saddles.py), the stable-rank and weight-decay rows on their own data, and the
smoke preset's measured rows (slow)."""

from __future__ import annotations

import numpy as np
import pytest

import dlnlab
from dlnlab.model.teacher import Teacher, completion_mask
from experiments._smoke import run_smoke


def test_completion_small_init_is_low_rank_and_generalises():
    """10 × 10 rank-2 target, 50% observed, L = 3, w = 50 (G13): gradient flow from σ = 1e-2 reaches a lower-rank
    solution with lower error on the unobserved entries than from σ = 0.3, and the error ratio is < 0.5 (G13;
    measured rank 3 vs 10, relative test error 0.63 vs 2.71 on this instance (seed 0), ratio 0.23)."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 10, "d_out": 10, "singular_values": [4.0, 2.0], "basis": "random", "seed": 0},
        "data": {"kind": "completion", "observed_fraction": 0.5, "seed": 0},
        "network": {"depth": 3, "width": 50},
        "init": {"kind": "gaussian", "scale": [1e-2, 0.3]},
        "dynamics": {"kind": "flow", "t_max": 100.0, "rtol": 1e-8},
        "record": {"n_times": 40, "chunks": 1, "observables": ["loss", "singular_values", "end_to_end"]},
    })
    ds = dlnlab.simulate(cfg, progress=False)
    M = Teacher.from_config(cfg).M
    mask = completion_mask(10, 10, 0.5, 0)
    assert mask.sum() == 50
    W = ds.end_to_end.values[:, -1]
    # the training objective is ½‖P_Ω(W − M)‖² and `loss` is the full-matrix error ½‖W − M‖²
    np.testing.assert_allclose(ds.train_loss.values[:, -1], 0.5 * np.sum(mask * (W - M) ** 2, axis=(1, 2)), rtol=1e-10)
    np.testing.assert_allclose(ds.loss.values[:, -1], 0.5 * np.sum((W - M) ** 2, axis=(1, 2)), rtol=1e-10)
    assert np.all(ds.train_loss.values[:, -1] < 1e-3)  # both fit the observed entries
    test = np.linalg.norm((1 - mask) * (W - M), axis=(1, 2)) / np.linalg.norm((1 - mask) * M)
    sv = np.linalg.svd(W, compute_uv=False)
    rank = (sv > 1e-2 * sv[:, :1]).sum(axis=1)
    assert rank[0] < rank[1], rank
    assert test[0] < test[1] and test[0] < 0.5 * test[1], test


@pytest.mark.slow
def test_smoke_rows(tmp_path, tmp_path_factory):
    """At seeds 0 and 1 no measured row of the smoke preset fails and the weight-decay rows hold (measured under
    load: every wd row holds; stable ranks hold but for two inconclusive rows on the final plateau at seed 1, one
    replica not yet converged; the completion fractions of one instance are inconclusive). Seed 0's simulations:
    the smoke run's."""
    for seed in (0, 1):
        res = run_smoke(tmp_path_factory, "sparsity", tmp_path / str(seed), seed)
        measured = {c.id: c.verdict for c in res.claims if c.kind == "measured"}
        bad = {i: v for i, v in measured.items() if v == "fails" or ("/wd_" in i and v != "holds")}
        assert not bad, bad
