"""Requirement (e): as η → 0 the online-SGD ensemble mean approaches gradient flow, with an error that
shrinks about linearly in η; and GD → GF at first order (checks.md C3).

SGD setting. L = 2, d_in = d_out = w = 2, random teacher and hidden bases, s = (1, 0.5), λ = 1, no label
noise, B = 1, aligned balanced init m_α(0) = m0 = 0.05 for both modes. Gradient flow of this init stays
aligned and balanced, so m_GF,α(t) is the logistic of ``dlnlab.theory.mode_flow_fn``. The stacked step sizes
η = 0.04, 0.02, 0.01 share t_max = 6 and the record grid Δt = 0.12 (a multiple of every η, and the actual
time step·η is used anyway). Error e(η) = sup over recorded t and both modes of |mean_R m_α(t) − m_GF,α(t)|.

Why m0 = 0.05: the O(η) bias comes from GD discretisation and from the noise-induced spread of escape
times (checks.md S3), Var ln m ≈ 4(η/B)D(0) t with D(0) = 2λ²s² (README item 7). At m0 = 0.05 the escape
takes t ≈ 1.5, so the spread stays small next to the logistic time scale 1/(2λs) and the O(η²) remainder is
small; at m0 = 1e-3 (S3) the spread is larger and the ratios drift further from 2.

Statistics. R = 40000 replicas per η. The standard error of the mean at the sup is the group SE of
checks.md §0 (G = 20 groups of replicas): observed 4.6–7.3e-4, 3.5–6.6e-4, 3.2–3.4e-4 for η = 0.04, 0.02,
0.01 against biases 0.032, 0.017, 0.0084 (the smallest bias is ≥ 24 SE). Validated with exactly this
setting at seeds 1 (the test's), 2 and 3: slopes 0.968, 0.959, 0.950; ratios e(2η)/e(η) 1.87–2.00.
"""

from __future__ import annotations

import numpy as np
import pytest

import dlnlab
from dlnlab.theory import mode_flow_fn

ETAS = [0.04, 0.02, 0.01]
M0, S = 0.05, np.array([1.0, 0.5])
R, G = 40_000, 20


def _gf(m0, s, t):
    return mode_flow_fn(np.full(len(s), m0), s, 1.0, 2)(t)


def _grid_config(kind, etas, t_max, n_times, replicas, d, s, m0, seed):
    return dlnlab.Config.from_dict({
        "teacher": {"d_in": d, "d_out": d, "singular_values": list(s), "basis": "random", "seed": 3},
        "network": {"depth": 2, "width": d},
        "init": {"kind": "aligned", "scale": m0},
        "dynamics": {"kind": kind, "lr": etas, "batch_size": 1, "t_max": t_max},
        "record": {"n_times": n_times, "spacing": "linear", "observables": ["mode_strength"]},
        "ensemble": {"replicas": replicas, "seed": seed},
    })


def _errors_vs_gf(ds, m0, s):
    """Per η: (sup error, group SE at the sup) of the ensemble mean of m_α against gradient flow, at the
    actual times step·η of each replica."""
    out = {}
    for eta in np.unique(ds["lr"].values):
        sel = ds["lr"].values == eta
        steps = ds["step"].values[sel]  # (replica, t): stacked step sizes
        assert (steps == steps[0]).all()
        t = steps[0] * eta
        m = ds["mode_strength"].values[sel]  # (replica, t, mode)
        gap = np.abs(m.mean(axis=0) - _gf(m0, s, t))
        it, ia = np.unravel_index(np.argmax(gap), gap.shape)
        groups = m[:, it, ia].reshape(G, -1).mean(axis=1)
        out[float(eta)] = (float(gap[it, ia]), float(groups.std(ddof=1) / np.sqrt(G)))
    return out


@pytest.fixture(scope="module")
def sgd_errors():
    cfg = _grid_config("sgd", ETAS, 6.0, 51, R, 2, S, M0, seed=1)
    ds = dlnlab.simulate(cfg, progress=False)
    assert bool(ds["finite"].all())
    return _errors_vs_gf(ds, M0, S)


def test_sgd_bias_is_resolved(sgd_errors):
    # Design check: every measured error is a bias, not sampling noise — at least 10 SE (group SE at the
    # sup; the sup over 51 times × 2 modes of a pure-noise curve would be ≈ 3 SE).
    for eta, (err, se) in sgd_errors.items():
        assert err >= 10 * se, (eta, err, se)


def test_sgd_mean_error_linear_in_eta(sgd_errors):
    errs = np.array([sgd_errors[eta][0] for eta in ETAS])
    ses = np.array([sgd_errors[eta][1] for eta in ETAS])
    # Log-log slope in [0.7, 1.3] (requirement e). Its SE, from the relative SEs of the endpoints
    # (≈ 0.04 at η = 0.01, ≈ 0.02 at η = 0.04), is ≈ 0.045/ln 4 ≈ 0.03; observed 0.95–0.97, so each edge of
    # the band is ≥ 7 SE away.
    slope = np.polyfit(np.log(ETAS), np.log(errs), 1)[0]
    assert 0.7 <= slope <= 1.3, (slope, errs)
    # Consecutive ratios (η halves) in [1.5, 2.5]: first order predicts 2; the O(η²) remainder lowers the
    # observed ratios to 1.87–2.00, and the SE of a ratio is ≈ 2·sqrt(Σ(SE/e)²) ≈ 0.1, so the band edges
    # are ≥ 3.5 SE from every observed value.
    ratios = errs[:-1] / errs[1:]
    assert np.all((ratios >= 1.5) & (ratios <= 2.5)), (ratios, errs, ses)
    # And the mean is close to gradient flow at the smallest η: within 0.015 (observed 0.0084, SE 3.4e-4, so
    # ≥ 19 SE of margin; same scale as checks.md S3's 0.02 at η = 0.005 from the harder m0 = 1e-3).
    assert errs[-1] <= 0.015


def test_gd_first_order_c3():
    # checks.md C3 [V]: L = 2, λ = s = 1, m0 = 1e-2, aligned balanced, |m_GD(4) − m_GF(4)| halves when η
    # halves; ratio in [1.8, 2.2] (deterministic; observed errors 7.2, 3.6, 1.8e-4 and ratios 2.01).
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 1, "d_out": 1, "singular_values": [1.0], "basis": "identity"},
        "network": {"depth": 2, "width": 1},
        "init": {"kind": "aligned", "scale": 1e-2, "hidden_basis": "identity"},
        "dynamics": {"kind": "gd", "lr": [0.02, 0.01, 0.005], "t_max": 4.0},
        "record": {"n_times": 2, "spacing": "linear", "observables": ["mode_strength"]},
    })
    ds = dlnlab.simulate(cfg, progress=False)
    steps = ds["step"].values[:, -1]
    np.testing.assert_array_equal(steps, [200, 400, 800])
    err = np.abs(ds["mode_strength"].values[:, -1, 0] - _gf(1e-2, np.array([1.0]), [4.0])[0, 0])
    np.testing.assert_allclose(err, [7.2e-4, 3.6e-4, 1.8e-4], rtol=0.05)  # C3 quotes two digits
    ratios = err[:-1] / err[1:]
    assert np.all((ratios >= 1.8) & (ratios <= 2.2)), ratios
