"""The diagonal-network regression simulator (issue 16 part 2) against the α → 0 oracle and the implicit biases.

Instances: ``n = 5`` rows, ``d = 8``, a 2-sparse target (1.5, −1.0) on a random support (``regression.seed``).
Jump times are the half-value crossings of :func:`dlnlab.analysis.regression.jump_times` on 3000 log-spaced
records, rescaled by the oracle's :func:`~dlnlab.theory.sparse_regression.time_scale`.

* Depth 2 (``β = u ⊙ v``): the finite-α bias of the rescaled times is ``c/ln(1/α)`` (raw, at α = 1e−6: 2–24 %
  on these instances). What is compared to 2 %: the Richardson extrapolation ``2t̃(α²) − t̃(α)`` at α = 1e−12
  (α² = 1e−24), which removes that leading term (measured ≤ 1.0 %; with α = 1e−6 instead the remainder reached
  1.9 %, so the 1e−12 pair is used). The bias model itself is checked: the raw bias halves when ``ln(1/α)``
  doubles.
* Depth 3 (``β = u³ − v³``): the bias is ``O(α)``; raw rescaled times at α = 1e−3 within 2 % (measured ≤ 0.2 %).
* Supports at every plateau midpoint equal the oracle's; limits: α = 1e−30 → the LP (min-ℓ₁) solution, α = 100
  → ``X⁺y`` (min-ℓ₂), both to 1e−6.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dlnlab.analysis.regression import jump_times, plateau_supports
from dlnlab.config import Config
from dlnlab.engines import regression_config, simulate
from dlnlab.errors import ConfigError
from dlnlab.model.regression import RegressionTask
from dlnlab.theory.sparse_regression import min_l1_interpolator, min_l2_interpolator, saddle_to_saddle, time_scale

TASK = RegressionTask(n_samples=5, d=8, sparsity=2, target=(1.5, -1.0))


def _run(task, alphas, t_end, **keys):
    cfg = regression_config(task, init_scale=list(alphas), t_max=float(t_end), n_times=3000, t_min=1e-2, **keys)
    ds = simulate(cfg, progress=False)
    assert bool(ds.solver_ok.all()) and not bool(ds.diverged.any())
    return ds


def _jumps_and_supports(task, alphas):
    data = task.data()
    seq = saddle_to_saddle(data.X, data.y)
    kappa = time_scale(np.asarray(alphas), task.depth, task.kind)
    ds = _run(task, alphas, kappa.max() * seq.times[-1] * 1.3 + 30)
    t = ds.t.values
    rel = [jump_times(t, ds.beta.values[r], seq, kappa[r]) / seq.times[1:] - 1 for r in range(len(alphas))]
    supports = [plateau_supports(t, ds.beta.values[r], seq, kappa[r]) for r in range(len(alphas))]
    return seq, np.array(rel), supports, ds


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_depth2_extrapolated_jump_times_and_supports(seed):
    """Richardson ``2t̃(1e−24) − t̃(1e−12)`` within 2 % of the oracle at every jump; the raw bias halves from
    α = 1e−12 to 1e−24 at leading order (ratio in (1.5, 3) where it exceeds 0.5 %: ``c₁/κ + c₂/κ²`` gives a
    ratio ``2(1 + c₂/c₁κ)/(1 + c₂/2c₁κ)``; measured 1.9–2.6, the 2.6 at seed 4's second jump); supports at the
    plateaus as the oracle's at
    α = 1e−24 (a coordinate about to enter is ``~α^{2(1−|s̃_i|)}``, polynomially small: at 1e−12 the midpoint of
    seed 2's short fourth plateau already shows the next one above the threshold)."""
    seq, rel, supports, _ = _jumps_and_supports(dataclasses.replace(TASK, seed=seed), [1e-12, 1e-24])
    assert np.all(np.isfinite(rel))
    assert np.abs(2 * rel[1] - rel[0]).max() < 0.02, rel
    big = np.abs(rel[0]) > 5e-3
    assert big.any() and np.all((rel[0][big] / rel[1][big] > 1.5) & (rel[0][big] / rel[1][big] < 3.0)), rel
    assert all(np.array_equal(a, b) for a, b in zip(supports[1], seq.supports[:-1])), (supports, seq.supports)


@pytest.mark.parametrize("seed", [1, 3])
def test_depth3_raw_jump_times_and_supports(seed):
    """β = u³ − v³ from α = 1e−3 (κ = α^{−1}/3): raw rescaled times within 2 % of the oracle, supports equal."""
    task = dataclasses.replace(TASK, seed=seed, depth=3, kind="power")
    seq, rel, supports, _ = _jumps_and_supports(task, [1e-3])
    assert np.abs(rel[0]).max() < 0.02, rel
    assert all(np.array_equal(a, b) for a, b in zip(supports[0], seq.supports[:-1]))


def test_limits_are_the_lp_and_least_norm_solutions():
    """GF from α = 1e−30 ends within 1e−6 of the minimum-ℓ₁ interpolator (LP), from α = 100 within 1e−6 of X⁺y.

    Small α: off the ℓ₁ support the flow's limit is ``~α^{2(1−|ŝ_i|)}`` (ŝ the oracle's last dual); seed 1 has
    ``max |ŝ_i| = 0.85`` there, so 1e−9 at α = 1e−30 (measured 1.4e−9 from the LP after ``2κt̃_K + 300``). At
    α = 1e−8 the flow is still 3.5e−4 away at t = 3000: the dual then drifts to the implicit-bias one while the
    residual decays like a power of t (the implicit-bias solution itself is 1.2e−9 from the LP there)."""
    task = dataclasses.replace(TASK, seed=1)
    data = task.data()
    seq = saddle_to_saddle(data.X, data.y)
    ds = _run(task, [1e-30], time_scale(1e-30) * seq.times[-1] * 2 + 300)
    assert np.abs(ds.beta.values[0, -1] - min_l1_interpolator(data.X, data.y)).max() < 1e-6
    rate = np.linalg.eigvalsh(data.X @ data.X.T / task.n_samples).min()
    ds = _run(task, [100.0], 40 / (2 * 100.0**2 * rate))
    assert np.abs(ds.beta.values[0, -1] - min_l2_interpolator(data.X, data.y)).max() < 1e-6


def test_gd_follows_the_flow_and_sgd_interpolates():
    """GD at η = 1e−3 stays within 1e−2 of GF (an O(η) difference, largest at the jumps; measured 4.5e−3) over a
    whole staircase (α = 1e−3); SGD on 2 of the 5 rows per step from α = 1 reaches an interpolant (train loss
    < 1e−20; from α = 0.1 the last phase is slow, 1.6e−5 at the same time) whose population risk is the test error
    ``½‖β − β*‖²``; a replica's SGD trajectory does not depend on how many run beside it."""
    task = dataclasses.replace(TASK, seed=3)
    times = list(np.linspace(2.0, 60.0, 30))
    gf = simulate(regression_config(task, init_scale=1e-3, times=times), progress=False)
    gd = simulate(regression_config(task, "gd", init_scale=1e-3, lr=1e-3, times=times), progress=False)
    assert np.abs(gd.beta.values - gf.beta.values).max() < 1e-2
    sgd = simulate(regression_config(task, "sgd", init_scale=1.0, lr=0.02, batch_size=2, t_max=400.0, n_times=5,
                                     replicas=3), progress=False)
    assert not sgd.diverged.any() and sgd.train_loss.values[:, -1].max() < 1e-20
    risk = 0.5 * np.sum((sgd.beta.values[:, -1] - sgd.beta_star.values) ** 2, axis=1)
    np.testing.assert_allclose(sgd.loss.values[:, -1], risk, rtol=1e-12)
    one = simulate(regression_config(task, "sgd", init_scale=1.0, lr=0.02, batch_size=2, t_max=400.0, n_times=5),
                   progress=False)
    np.testing.assert_allclose(one.beta.values[0], sgd.beta.values[0], rtol=1e-12, atol=1e-15)
    assert np.abs(sgd.beta.values[1] - sgd.beta.values[0]).max() > 0  # other replicas, other minibatches


def test_design_and_diverging_gd():
    """The design is drawn from regression.seed (β* on the recorded support, y = Xβ*); GD at a step past its
    stability bound is frozen and marked diverged at its threshold."""
    data = TASK.data()
    assert np.count_nonzero(data.beta_star) == 2 and np.allclose(data.y, data.X @ data.beta_star)
    ds = simulate(regression_config(TASK, "gd", init_scale=1.0, lr=5.0, steps=50, n_times=5,
                                    divergence_threshold=1e6), progress=False)
    assert bool(ds.diverged.all()) and int(ds.diverged_step[0]) > 0 and np.all(np.isfinite(ds.beta.values))


@pytest.mark.parametrize("keys, field", [
    ({"sparsity": 9}, "regression.sparsity"),
    ({"target": [1.0, 2.0, 3.0]}, "regression.target"),
    ({"depth": 3}, "regression.depth"),
    ({"dynamics": {"kind": "sgd", "batch_size": 6, "steps": 3}}, "dynamics.batch_size"),
    ({"dynamics": {"kind": "gd", "lr": [0.1, 0.2], "t_max": 1.0}}, "dynamics.lr"),
    ({"dynamics": {"kind": "sde", "steps": 3}}, "dynamics.kind"),
    ({"record": {"observables": ["loss"]}}, "record.observables"),
])
def test_bad_configs_name_the_field(keys, field):
    d = {"regression": {"n_samples": 5, "d": 8, "sparsity": 2}, "dynamics": {"kind": "flow", "t_max": 1.0}}
    for sec, val in keys.items():
        if isinstance(val, dict):
            d[sec] = val
        else:
            d["regression"][sec] = val
    with pytest.raises(ConfigError) as info:
        Config.from_dict(d)
    assert info.value.field == field
