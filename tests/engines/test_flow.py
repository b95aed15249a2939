"""Network gradient flow (issue 15): the solvers of :mod:`dlnlab.engines._flow` through :func:`dlnlab.simulate`.

* The two integrators of :mod:`dlnlab.engines._rosenbrock` are 5th order (fixed-step convergence), so their
  tableaux are the published ones.
* ``solver = "auto"`` (the default) agrees with ``"explicit"`` (diffrax Dopri5, the golden case's solver) to the
  accuracy contract on the golden flow case.
* From a tiny random init (σ = 1e-6, not aligned) at L = 3 and 4, ``t_max = "auto"`` runs through every plateau of
  a 3-mode teacher at the saddle levels ½Σ_{i>k} s_i², in order, to a final loss < 1e-10.
* From an aligned balanced init the mode strengths follow the closed form (hypergeometric time) at every record.
* ``t_max = "auto"``: records by decades, replicas stopped and held, the run ending with the decade where the last
  replica stopped; resumed bitwise from a checkpoint; a replica does not depend on the others.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab
from dlnlab import theory
from dlnlab.config import Config
from dlnlab.engines import _rosenbrock as rb

S = (2.5, 1.2, 0.6)
LEVELS = [0.5 * sum(s**2 for s in S[k:]) for k in range(len(S))]  # saddle k (whitened inputs): ½ Σ_{i>k} s_i²

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
        step = lambda fun, y, h: rb._dopri_attempt(fun, fun, y, fun(y), h, v)[0]
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
    (rtol 1e-8, every record) they agree to the accuracy contract. Measured: ≤ 4e-10 relative to each replica's
    largest value over the loss, singular values, mode strengths and layer norms (both solvers control the same
    per-entry error)."""
    auto, explicit = _golden_flow(), _golden_flow(solver="explicit")
    assert auto.attrs["config"] != explicit.attrs["config"]
    np.testing.assert_array_equal(auto.t, explicit.t)
    assert bool(auto.solver_ok.all()) and bool(explicit.solver_ok.all())
    for name in ("loss", "singular_values", "mode_strength", "layer_norm"):
        a, e = auto[name].values, explicit[name].values
        scale = np.max(np.abs(e), axis=tuple(range(1, e.ndim)), keepdims=True)  # per replica
        assert np.max(np.abs(a - e) / scale) < 100 * 1e-8, name  # 100 rtol


def test_auto_above_the_dense_hessian_limit_runs_explicit(monkeypatch):
    """``solver = "auto"`` above ``AUTO_MAX_DENSE_PARAMS`` weights per replica (here the limit lowered below the golden
    case's 60) runs the explicit solver with a warning that names the setting — bitwise the explicit run — and with
    ``t_max = "auto"`` refuses, naming ``dynamics.solver`` and the fix."""
    from dlnlab.engines import _flow

    monkeypatch.setattr(_flow, "AUTO_MAX_DENSE_PARAMS", 50)
    with pytest.warns(UserWarning, match="dynamics.solver = 'auto' at 60 weights"):
        auto = _golden_flow()
    explicit = _golden_flow(solver="explicit")
    np.testing.assert_array_equal(auto.loss.values, explicit.loss.values)
    with pytest.raises(dlnlab.ConfigError, match="dynamics.solver.*'explicit' with a number for dynamics.t_max"):
        _three_modes(3, {"kind": "gaussian", "scale": 0.1}, ["loss"])


def _three_modes(L, init, observables):
    """d = 5 → 5, width 6, teacher ``S`` in a random basis, ``t_max = "auto"`` at the default rtol 1e-10."""
    return dlnlab.simulate(dlnlab.Config.from_dict({
        "teacher": {"d_in": 5, "d_out": 5, "singular_values": list(S), "seed": 3},
        "network": {"depth": L, "width": 6}, "init": init,
        "dynamics": {"kind": "flow", "t_max": "auto"},
        "record": {"observables": list(observables)},
    }), progress=False)


@pytest.mark.parametrize("L", [3, 4])
def test_random_init_crosses_every_plateau(L):
    """σ = 1e-6 Gaussian entries (not aligned): the plateau table (``ds.dln.plateaus()``) has the three saddles and
    the minimum, the modes learned in order, each plateau's loss within 0.5 % of ½Σ_{i>k} s_i² (measured: ≤ 9e-16
    relative), final loss < 1e-10 (measured 6e-32), and the run stops by itself (``t_stop``) within a few decades
    of the last escape (measured: 30× and 15× the start of the last plateau, L = 3 and 4). At L = 4 ``auto`` takes
    the double-double gradient here (max|θ₀|³ < 1e-12), without which the later escape times were set by the
    float64 rounding (:func:`test_double_double_reaches_the_vanishing_init_limit`)."""
    ds = _three_modes(L, {"kind": "gaussian", "scale": 1e-6}, ("loss", "singular_values", "mode_strength"))
    assert bool(ds.solver_ok.all()) and np.isfinite(float(ds.t_stop[0]))
    table = ds.dln.plateaus()
    assert list(table.plateau) == [0, 1, 2, 3] and table.learned_mode[:3].tolist() == [1, 2, 3]
    for k, level in enumerate(LEVELS):
        assert abs(table.loss[k] - level) <= 5e-3 * level, (k, table.loss[k], level)
        assert table.t_start[k] < table.t_end[k]
    assert float(ds.loss[0, -1]) < 1e-10 and table.loss[3] < 1e-10
    assert float(ds.t[-1]) == float(ds.t_stop[0]) <= 1e3 * table.t_start[3]


@pytest.mark.parametrize("L", [3, 4])
def test_aligned_init_follows_the_closed_form(L):
    """Aligned balanced init m_α(0) = 1e-8 (random hidden bases): every mode strength at every record within
    relative 1e-6 of the hypergeometric closed form (``theory.mode_flow_fn``); measured max 8.5e-10 (L = 3) and
    9.7e-10 (L = 4) at rtol 1e-10, i.e. ~10 rtol of global error."""
    m0 = 1e-8
    ds = _three_modes(L, {"kind": "aligned", "scale": m0}, ("loss", "mode_strength"))
    assert bool(ds.solver_ok.all())
    m = ds.mode_strength.values[0, :, : len(S)]
    pred = theory.mode_flow_fn([m0] * len(S), list(S), 1.0, L)(ds.t.values)
    rel = np.abs(m - pred) / np.abs(pred)
    assert rel.max() < 1e-6, f"max relative error {rel.max():.3e} at t = {float(ds.t[np.argmax(rel.max(1))]):.4g}"
    assert np.abs(m[-1] - np.array(S)).max() < 1e-9 * S[0]
    mid = (m[:, 0] > S[0] / 2) & (m[:, 2] < 1e-3 * S[2])  # the comparison covers a plateau
    assert mid.sum() >= 3


def _auto_config(**record):
    """L = 3 from two init scales (σ = 1e-2 and 1e-1 per entry): ``t_max = "auto"``, records from t = 1e-2."""
    return {
        "teacher": {"d_in": 4, "d_out": 4, "singular_values": [2.0, 1.0]},
        "network": {"depth": 3, "width": 4},
        "init": {"kind": "gaussian", "scale": [0.01, 0.1]},
        "dynamics": {"kind": "flow", "t_max": "auto"},
        "record": {"observables": ["loss", "singular_values"], "t_min": 1e-2, **record},
    }


def _auto_run(checkpoint=None, progress=False):
    return dlnlab.simulate(dlnlab.Config.from_dict(_auto_config()), progress=progress, checkpoint=checkpoint,
                           checkpoint_every=0)


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


def test_a_replica_does_not_depend_on_the_others(auto_run):
    """The σ = 1e-2 replica alone follows the trajectory it has beside σ = 1e-1 (each replica takes its own steps and
    methods; the batch only decides which method's batch is computed) and stops at the same time. Not bitwise
    (kernels batched over 1 or 2 replicas round differently): measured ≤ 1.6e-14 absolute, 4e-14 relative on the
    singular values above 1e-3 (the small ones are ~1e-14-level rounding of W once a mode is learned)."""
    cfg = dlnlab.Config.from_dict({**_auto_config(), "init": {"kind": "gaussian", "scale": 0.01}})
    alone = dlnlab.simulate(cfg, progress=False)
    n = alone.sizes["t"]
    np.testing.assert_array_equal(alone.t, auto_run.t[:n])
    np.testing.assert_allclose(alone.singular_values[0], auto_run.singular_values[0, :n], rtol=1e-12, atol=1e-13)
    assert float(alone.t_stop[0]) == float(auto_run.t_stop[0])


def _escape_curve(sigma, arithmetic, c):
    """The loss of the L = 4 flow from σ·θ̄ (one Gaussian draw θ̄, 3-mode teacher s = 4, 2, 1, d = 3, width 4) at the
    times ``c·σ⁻²``."""
    ds = dlnlab.simulate(Config.from_dict({
        "teacher": {"d_in": 3, "d_out": 3, "singular_values": [4.0, 2.0, 1.0], "basis": "random", "seed": 0},
        "network": {"depth": 4, "width": 4}, "init": {"kind": "gaussian", "scale": sigma},
        "dynamics": {"kind": "flow", "rtol": 1e-8, "solver": "auto", "arithmetic": arithmetic},
        "record": {"times": list(c * sigma ** -2.0), "observables": ["loss"]},
        "ensemble": {"replicas": 1, "seed": 0}}), progress=False)
    assert bool(ds.solver_ok.all())
    return ds.loss.values[0, 1:]


def test_double_double_reaches_the_vanishing_init_limit():
    """From a tiny init the flow is homogeneous: the same draw at scale σ runs the same path at time σ^(L−2)·t, up to
    O(σ^(L−2)) (L = 4: 1e-10 here). So the loss at t = c·σ⁻² must not depend on σ. At 300 log-spaced c over the
    three escapes (spacing 1.2 %), the run from σ = 1e-8 (double-double gradient and time, chosen by ``auto``) has
    the loss of the σ = 1e-5 run (float64, forced: ``auto`` would take double-double there too) at every record to
    1e-6 relative: every escape time agrees to within the record spacing. The float64 gradient from σ = 1e-7 misses: its later escapes move (measured: 153 of the 300
    records differ) — the float64 limit the double-double arithmetic removes (issue 15)."""
    c = np.geomspace(0.02, 0.6, 300)
    ref = _escape_curve(1e-5, "float64", c)
    for level in (10.5, 2.5, 0.5):  # ½ Σ_{i>k} s_i²: every plateau is inside the records, and the minimum
        assert np.any(np.abs(ref - level) < 1e-6 * level), level
    assert ref[0] == pytest.approx(10.5, rel=1e-6) and ref[-1] < 1e-10
    deep = _escape_curve(1e-8, "auto", c)
    assert np.all(np.abs(deep - ref) <= 1e-6 * np.abs(ref) + 1e-12), np.max(np.abs(deep - ref) / (np.abs(ref) + 1e-12))
    plain = _escape_curve(1e-7, "float64", c)
    assert (np.abs(plain - ref) > 1e-3 * ref.max()).sum() > 30


@pytest.mark.parametrize("L, scale, want", [(2, 1e-9, False), (3, 1e-5, False), (3, 1e-7, True), (4, 1e-4, False),
                                            (4, 1e-5, True)])
def test_auto_arithmetic_takes_double_double_from_a_tiny_init(L, scale, want):
    """``arithmetic = "auto"``: double-double at L ≥ 3 once max|θ₀|^(L−1) < 1e-12 (``AUTO_COMPENSATED_BELOW``; entries
    of a Gaussian init reach ~3σ), never at L = 2 (its plateaus last ~ln(1/σ))."""
    from dlnlab.engines import _flow
    from dlnlab.engines.network import _ensemble

    cfg = Config.from_dict({"teacher": {"d_in": 3, "d_out": 3, "singular_values": [1.0]},
                            "network": {"depth": L, "width": 4}, "init": {"kind": "gaussian", "scale": scale},
                            "dynamics": {"kind": "flow", "t_max": 1.0}})
    assert _flow.compensated(cfg, _ensemble(cfg)) is want
    stacked = Config.from_dict({**cfg.to_dict(), "init": {"kind": "gaussian", "scale": [1e-2, scale]}})
    assert _flow.compensated(stacked, _ensemble(stacked)) is want  # one replica that needs it is enough


@pytest.mark.parametrize("solver", ["explicit", "implicit"])
def test_double_double_agrees_with_float64_where_float64_is_exact_enough(solver):
    """Away from the float64 limit (σ = 0.1, L = 3, t = 5) the double-double gradient changes nothing the accuracy
    contract resolves: every recorded entry of W within 1e-8 of the float64 run's (rtol 1e-10; both solvers' wiring;
    measured 1e-14 and 2e-14), and not bitwise equal to it (the double-double field is the one used)."""
    def run(arithmetic):
        return dlnlab.simulate(Config.from_dict({
            "teacher": {"d_in": 3, "d_out": 3, "singular_values": [2.0, 1.0], "basis": "random", "seed": 1},
            "network": {"depth": 3, "width": 4}, "init": {"kind": "gaussian", "scale": 0.1},
            "dynamics": {"kind": "flow", "t_max": 5.0, "rtol": 1e-10, "solver": solver, "arithmetic": arithmetic},
            "record": {"n_times": 6, "observables": ["end_to_end"]}, "ensemble": {"replicas": 2, "seed": 0}}),
            progress=False)
    a, b = run("float64"), run("double-double")
    assert bool(a.solver_ok.all()) and bool(b.solver_ok.all())
    assert (a.attrs["flow_arithmetic"], b.attrs["flow_arithmetic"]) == ("float64", "double-double")
    assert 0 < np.abs(a.end_to_end.values - b.end_to_end.values).max() < 1e-8
    assert np.abs(a.end_to_end.values[:, -1]).max() > 0.5  # the run went somewhere
