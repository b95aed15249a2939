"""Network gradient flow (issue 15): the solvers of :mod:`dlnlab.engines._flow` through :func:`dlnlab.simulate`.

* The two integrators of :mod:`dlnlab.engines._rosenbrock` are 5th order (fixed-step convergence), so their
  tableaux are the published ones.
* ``solver = "auto"`` (the default) agrees with ``"explicit"`` (diffrax Dopri5, the golden case's solver) to the
  accuracy contract on the golden flow case.
* ``t_max = "auto"``: records by decades, replicas stopped and held, the run ending with the decade where the last
  replica stopped; resumed bitwise from a checkpoint.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab
from dlnlab.engines import _rosenbrock as rb

# ---------------------------------------------------------------------------------------------------------
# The integrators


def _fixed_step_error(step, n):
    """Global error at t = 2 of ``n`` fixed steps of y' = (y₁(1 − y₁), sin y₁ − y₂) from (0.1, 1)."""
    from scipy.integrate import solve_ivp

    fun = lambda y: jnp.stack([y[0] * (1 - y[0]), jnp.sin(y[0]) - y[1]])
    ref = solve_ivp(lambda t, y: [y[0] * (1 - y[0]), np.sin(y[0]) - y[1]], (0, 2), [0.1, 1.0], method="DOP853",
                    rtol=1e-13, atol=1e-14).y[:, -1]
    y = jnp.array([0.1, 1.0])
    for _ in range(n):
        y = step(fun, y, 2.0 / n)
    return float(np.max(np.abs(np.asarray(y) - ref)))


@pytest.mark.parametrize("method", ["rodas5p", "dopri5"])
def test_integrators_are_fifth_order(method):
    """Halving the step divides the global error by 2⁵ = 32 (measured 32.1–32.8 for both): the tableaux are
    order 5 (a wrong coefficient drops the order; Rodas5P without its last stage is order 4, ratio 16)."""
    v = jnp.array([1.0, 0.0])
    if method == "rodas5p":
        step = lambda fun, y, h: rb._rodas_attempt(fun, jax.jacfwd(fun), y, fun(y), h, v)[0]
    else:
        step = lambda fun, y, h: rb._dopri_attempt(fun, y, fun(y), h, v)[0]
    errs = [_fixed_step_error(step, n) for n in (20, 40, 80)]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 28) & (ratios < 37)), f"error ratios {ratios} (errors {errs})"


# ---------------------------------------------------------------------------------------------------------
# The engine's solvers


def _golden_flow(**dynamics):
    """The golden flow case (tests/golden/cases.py): L = 3, d 4 → 3, width 5, σ = 0.1, 3 replicas, t_max = 3."""
    return dlnlab.simulate(dlnlab.Config.from_dict({
        "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "label_noise": 0.3},
        "network": {"depth": 3, "width": 5},
        "init": {"kind": "gaussian", "scale": 0.1},
        "dynamics": {"kind": "flow", "t_max": 3.0, "rtol": 1e-8, **dynamics},
        "record": {"n_times": 7, "chunks": 3},
        "ensemble": {"replicas": 3, "seed": 11},
    }), progress=False)


def test_auto_agrees_with_explicit_on_the_golden_case():
    """The default solver changed from diffrax's Dopri5 (now ``"explicit"``) to ``"auto"``: on the golden case
    (rtol 1e-8, every record, every weight-derived observable) they agree to the accuracy contract. Measured:
    relative ≤ 4e-8 over the loss and the singular values (a few rtol of global error each; both solvers
    control the same per-entry error)."""
    auto, explicit = _golden_flow(), _golden_flow(solver="explicit")
    assert auto.attrs["config"] != explicit.attrs["config"]
    np.testing.assert_array_equal(auto.t, explicit.t)
    assert bool(auto.solver_ok.all()) and bool(explicit.solver_ok.all())
    for name in ("loss", "singular_values", "mode_strength", "layer_norm"):
        a, e = auto[name].values, explicit[name].values
        scale = np.max(np.abs(e), axis=tuple(range(1, e.ndim)), keepdims=True)  # per replica
        assert np.max(np.abs(a - e) / scale) < 1e-6, name


def _auto_run(checkpoint=None, progress=False, **record):
    """L = 3 from two init scales (σ = 1e-2 and 1e-1 per entry, so products 1e-6 and 1e-3): ``t_max = "auto"``."""
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 4, "d_out": 4, "singular_values": [2.0, 1.0]},
        "network": {"depth": 3, "width": 4},
        "init": {"kind": "gaussian", "scale": [0.01, 0.1]},
        "dynamics": {"kind": "flow", "t_max": "auto"},
        "record": {"observables": ["loss", "singular_values"], **record},
    })
    return dlnlab.simulate(cfg, progress=progress, checkpoint=checkpoint, checkpoint_every=0)


@pytest.fixture(scope="module")
def auto_run():
    return _auto_run()


def test_auto_duration_stops_and_holds(auto_run):
    """Records on the decade grid (20 per decade from t_min). The replicas stop at their own times, decades apart
    (σ = 0.1 leaves its zero-teacher directions at ~1e-3, whose power-law decay runs until the loss has settled
    to rtol·𝓛(θ₀)), the first is held (its records after its stop repeat its final state), and the dataset ends
    with the decade where the last one stopped, every loss converged."""
    ds = auto_run
    t = ds.t.values
    assert t[0] == 0 and np.allclose(np.diff(np.log10(t[1:])), 1 / 20)
    assert (ds.sizes["t"] - 1) % 20 == 0
    t_stop = ds.t_stop.values
    first = np.argmin(t_stop)
    assert np.all(np.isfinite(t_stop)) and t_stop.max() == t[-1] and 10 * t_stop[first] <= t_stop.max()
    after = t > t_stop[first]
    assert after.sum() >= 20
    held = ds.singular_values.values[first, after]
    np.testing.assert_array_equal(held, np.broadcast_to(held[0], held.shape))
    assert np.all(ds.loss.values[:, -1] < 1e-9) and bool(ds.solver_ok.all())
    assert np.all(ds.hessian_evaluations.values > 0)  # the stiff part ran implicit


def test_auto_duration_resumes_bitwise(auto_run, tmp_path, interrupt_after):
    """Interrupted after 5 decades with a checkpoint, then rerun: the dataset of the uninterrupted run."""
    ck = tmp_path / "ck.npz"
    with pytest.raises(dlnlab.Interrupted):
        _auto_run(checkpoint=ck, progress=interrupt_after(5))
    resumed = _auto_run(checkpoint=ck)
    for name in auto_run.variables:
        np.testing.assert_array_equal(resumed[name].values, auto_run[name].values, err_msg=name)
