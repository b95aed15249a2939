"""Exact λ-balanced two-layer gradient flow (:mod:`dlnlab.theory.lambda_balanced`, issue 16 part 1).

* Against an independent integration of the weight ODE (scipy DOP853, rtol 1e-13, the gradient written here):
  end-to-end map, both layers and both representations to relative 1e-8 at 31 times, λ ∈ {−2, 0, 0.5, 3}, a rank-3
  teacher in d = 6, w = 8, random non-aligned λ-balanced init; rectangular ``d_in ≠ d_out`` over long times.
* Against dlnlab's own ``flow`` engine from the same weights: relative 1e-6 at every recorded time.
* The symmetric gauge ``B^{−1/2}`` reproduces QQᵀ but not the layers (the hidden rotation is path-ordered).
* Limits: aligned inits follow the per-mode closed form; λ → 0 is Saxe's logistic (``O(λ²)``); λ → ±∞ at a fixed
  initial map is the linearised (NTK) flow (``O(λ^−2)``), with a vanishing kernel change.
* The tangent kernel against ``jax.jacfwd`` of the network function.

Tolerances: the reference ODE's global error is ~1e−11 at rtol 1e−13 (measured agreement 1e−13 … 7e−11), so
1e−8 has margin; the engine runs at rtol 1e−10 (dlnlab's flow default), whence 1e−6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, linalg

import dlnlab
from dlnlab.errors import ConfigError
from dlnlab.theory.gradient_flow import mode_trajectory
from dlnlab.theory.lambda_balanced import (
    balance_constant,
    lambda_balanced_factors,
    lambda_balanced_flow_fn,
    lambda_balanced_init,
    lambda_mode_trajectory,
    linearised_flow_fn,
    relative_kernel_change,
    tangent_kernel,
)

D, WIDTH, S_TEACHER = 6, 8, np.array([3.0, 2.0, 1.0])
TIMES = np.concatenate([[0.0], np.geomspace(1e-4, 40.0, 30)])


def _haar(rng, n, k):
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


def _teacher(rng, d_out, d_in, s):
    return (_haar(rng, d_out, len(s)) * s) @ _haar(rng, d_in, len(s)).T


def _reference_flow(W1, W2, M, times):
    """The weight ODE Ẇ₁ = W₂ᵀ(M − W₂W₁), Ẇ₂ = (M − W₂W₁)W₁ᵀ by DOP853 (independent of the module)."""
    w, d_in = W1.shape

    def rhs(t, y):
        A1, A2 = y[: w * d_in].reshape(w, d_in), y[w * d_in:].reshape(-1, w)
        R = M - A2 @ A1
        return np.concatenate([(A2.T @ R).ravel(), (R @ A1.T).ravel()])

    sol = integrate.solve_ivp(rhs, (0, times[-1]), np.concatenate([W1.ravel(), W2.ravel()]), method="DOP853",
                              t_eval=times, rtol=1e-13, atol=1e-16)
    assert sol.success
    return sol.y[: w * d_in].T.reshape(-1, w, d_in), sol.y[w * d_in:].T.reshape(len(times), -1, w)


def _rel(a, b):
    return np.linalg.norm(a - b, axis=(-2, -1)) / np.linalg.norm(b, axis=(-2, -1))


@pytest.mark.parametrize("lam", [-2.0, 0.0, 0.5, 3.0])
def test_matches_ode_square(lam):
    """d = 6, w = 8, rank-3 teacher, random non-aligned init of scale 0.3; t up to 40 (every mode learned).
    Measured: at most 7e−11 (λ = 0), 2e−12 otherwise."""
    rng = np.random.default_rng(1)
    M = _teacher(rng, D, D, S_TEACHER)
    W1, W2 = lambda_balanced_init(rng, D, D, WIDTH, lam, scale=0.3)
    assert abs(balance_constant(W1, W2) - lam) < 1e-12
    R1, R2 = _reference_flow(W1, W2, M, TIMES)
    st = lambda_balanced_flow_fn(W1, W2, M, layers=True)(TIMES)
    assert _rel(st.end_to_end, R2 @ R1).max() < 1e-8
    assert _rel(st.W1, R1).max() < 1e-8 and _rel(st.W2, R2).max() < 1e-8
    assert _rel(st.S1, np.swapaxes(R1, 1, 2) @ R1).max() < 1e-8
    assert _rel(st.S2, R2 @ np.swapaxes(R2, 1, 2)).max() < 1e-8
    assert np.linalg.norm(st.end_to_end[-1] - M) < 0.05 * np.linalg.norm(M)  # it did learn
    imb = st.W1 @ np.swapaxes(st.W1, 1, 2) - np.swapaxes(st.W2, 1, 2) @ st.W2
    assert np.abs(imb - imb[0]).max() < 1e-9  # the balance is conserved along the closed form


@pytest.mark.parametrize("lam", [-2.0, 3.0])
def test_matches_ode_rectangular_long_times(lam):
    """d_in = 7, d_out = 4, w = 5 (λ = 3: C = λI exactly; λ = −2: C = λΠ of rank 4), small init 0.05, t up to 400:
    several restarts of the stable formula (μ_max·t ≈ 1300), the end-to-end map also without layers."""
    rng = np.random.default_rng(2)
    M = _teacher(rng, 4, 7, S_TEACHER)
    W1, W2 = lambda_balanced_init(rng, 7, 4, 5, lam, scale=0.05)
    times = np.concatenate([[0.0], np.geomspace(1e-6, 400.0, 24)])
    R1, R2 = _reference_flow(W1, W2, M, times)
    st = lambda_balanced_flow_fn(W1, W2, M, layers=True)(times)
    assert _rel(st.W1, R1).max() < 1e-8 and _rel(st.W2, R2).max() < 1e-8
    only = lambda_balanced_flow_fn(W1, W2, M)(times)
    assert only.W1 is None and _rel(only.end_to_end, R2 @ R1).max() < 1e-8
    # Shapes follow t: a scalar time and a 2-d array of times.
    assert lambda_balanced_flow_fn(W1, W2, M)(3.0).end_to_end.shape == (4, 7)
    grid = lambda_balanced_flow_fn(W1, W2, M, layers=True)(times[1:25].reshape(4, 6))
    assert grid.W2.shape == (4, 6, 4, 5)
    np.testing.assert_allclose(grid.W2.reshape(24, 4, 5), st.W2[1:25], rtol=0, atol=1e-10)


def test_symmetric_gauge_is_not_the_flow():
    """``e^{At}Q₀B^{−1/2}`` has the right QQᵀ but its layers miss the flow's once the init is not aligned (by 4.9 %
    at t = 2 here, ten orders above the closed form's error): the B(t) do not commute, and the flow's hidden
    rotation is the horizontal one."""
    rng = np.random.default_rng(4)
    M = _teacher(rng, D, D, S_TEACHER)
    lam = 0.5
    W1, W2 = lambda_balanced_init(rng, D, D, WIDTH, lam, scale=0.5)
    t = 2.0
    R1, R2 = _reference_flow(W1, W2, M, np.array([0.0, t]))
    A = np.block([[lam / 2 * np.eye(D), M.T], [M, -lam / 2 * np.eye(D)]])
    G = integrate.quad_vec(lambda s: linalg.expm(2 * A * s), 0, t, epsabs=1e-14, epsrel=1e-13)[0]
    Q0 = np.vstack([W1.T, W2])
    Qsym = linalg.expm(A * t) @ Q0 @ np.real(linalg.inv(linalg.sqrtm(np.eye(WIDTH) + Q0.T @ G @ Q0)))
    Qtrue = np.vstack([R1[1].T, R2[1]])
    assert np.abs(Qsym @ Qsym.T - Qtrue @ Qtrue.T).max() < 1e-9
    assert np.linalg.norm(Qsym - Qtrue) > 0.02 * np.linalg.norm(Qtrue)


@pytest.mark.parametrize("lam", [-1.0, 0.0, 2.0])
def test_aligned_init_follows_mode_closed_form(lam):
    """Aligned init (the teacher's bases, a random hidden frame), d_in = 5, d_out = 4, w = 6: UᵀW(t)V is
    diagonal and its diagonal is :func:`lambda_mode_trajectory` (zero-s modes included, which λ ≠ 0 moves)."""
    rng = np.random.default_rng(5)
    U, V = _haar(rng, 4, 4), _haar(rng, 5, 5)
    s = np.array([2.5, 1.2, 0.6, 0.0])
    M = (U * s) @ V[:, :4].T
    m0 = np.array([0.02, 0.05, 0.3, 0.1])
    W1, W2 = lambda_balanced_factors((U * m0) @ V[:, :4].T, lam, 6, rng)
    t = np.linspace(0, 12, 25)
    modes = U.T @ lambda_balanced_flow_fn(W1, W2, M)(t).end_to_end @ V
    expect = lambda_mode_trajectory(t[:, None], m0, s, lam)
    np.testing.assert_allclose(np.diagonal(modes, axis1=1, axis2=2), expect, rtol=0, atol=1e-11)
    off = modes.copy()
    off[:, np.arange(4), np.arange(4)] = 0.0
    assert np.abs(off).max() < 1e-11


def test_mode_closed_form_and_its_limits():
    """:func:`lambda_mode_trajectory` against DOP853 on ``ṁ = √(4m² + λ²)(s − m)`` (any sign of m₀, λ); equal to Saxe
    at λ = 0; the rich limit is O(λ²) at fixed m₀ (measured ratio 92 per decade at m₀ = 0.01, λ = 1e−2 → 1e−3);
    the lazy limit s + (m₀ − s)e^{−|λ|t} is O(λ^−2) on the time scale 1/|λ| (ratio 97)."""
    t = np.linspace(0, 10, 41)
    for lam in (-1.5, 2.0):
        for m0 in (-0.3, 0.0, 0.5, 3.0):
            sol = integrate.solve_ivp(lambda _, m, lam=lam: np.sqrt(4 * m**2 + lam**2) * (2 - m), (0, 10), [m0],
                                      method="DOP853", t_eval=t, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(lambda_mode_trajectory(t, m0, 2.0, lam), sol.y[0], rtol=0, atol=1e-10)
    saxe = mode_trajectory(t, 0.01, 2.0, 1.0, 2)
    np.testing.assert_allclose(lambda_mode_trajectory(t, 0.01, 2.0, 0.0), saxe, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lambda_mode_trajectory(t, 0.3, 0.0, 0.0), 0.3 / (1 + 0.6 * t), rtol=1e-14)
    rich = [np.abs(lambda_mode_trajectory(t, 0.01, 2.0, lam) - saxe).max() for lam in (1e-2, 1e-3)]
    assert 70 < rich[0] / rich[1] < 130 and rich[1] < 1e-3
    lazy = [np.abs(lambda_mode_trajectory(t / lam, 0.5, 2.0, lam) - (2 - 1.5 * np.exp(-t))).max() for lam in (100, 1000)]
    assert 70 < lazy[0] / lazy[1] < 130 and lazy[1] < 1e-5


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_lazy_limit_is_the_linearised_flow(sign):
    """A fixed random initial map W₀ (scale 0.3, full rank), λ = ±10, ±100, ±1000, times τ/|λ| with τ up to 30:
    sup_t ‖W − W_lin‖ / ‖W₀ − M‖ falls like λ^−2 (measured 1.0e−2, 1.1e−4, 1.1e−6, the same for both signs),
    and so does the kernel change; at λ = 0 from the same map the kernel moves by O(1) (rich)."""
    rng = np.random.default_rng(3)
    M = _teacher(rng, D, D, S_TEACHER)
    W0 = 0.3 * rng.standard_normal((D, D))
    tau = np.geomspace(1e-3, 30, 30)
    dev, dk = [], []
    for lam in (10.0, 100.0, 1000.0):
        W1, W2 = lambda_balanced_factors(W0, sign * lam, WIDTH, rng)
        assert np.abs(W2 @ W1 - W0).max() < 1e-12
        st = lambda_balanced_flow_fn(W1, W2, M)(tau / lam)
        dev.append(np.max(np.linalg.norm(st.end_to_end - linearised_flow_fn(W1, W2, M)(tau / lam), axis=(1, 2))))
        dk.append(relative_kernel_change(st.S1, st.S2, W1.T @ W1, W2 @ W2.T).max())
    dev = np.array(dev) / np.linalg.norm(W0 - M)
    assert np.all(np.diff(np.log10(dev)) < -1.9) and dev[-1] < 2e-6
    assert np.all(np.diff(np.log10(dk)) < -1.9) and dk[-1] < 1e-5
    W1, W2 = lambda_balanced_factors(W0, 0.0, WIDTH, rng)
    st = lambda_balanced_flow_fn(W1, W2, M)(np.array([0.0, 30.0]))
    assert relative_kernel_change(st.S1, st.S2, st.S1[0], st.S2[0])[-1] > 0.5


def test_tangent_kernel_against_jax():
    """Θ(x, x') = J(x)J(x')ᵀ with J the Jacobian of θ ↦ W₂W₁x (jax.jacfwd), and the population kernel = J Jᵀ for
    θ ↦ vec(W₂W₁); :func:`relative_kernel_change` equals the Frobenius ratio of the explicit Kronecker matrices."""
    rng = np.random.default_rng(6)
    W1, W2 = rng.standard_normal((5, 3)), rng.standard_normal((4, 5))
    x1, x2 = rng.standard_normal((3, 3)), rng.standard_normal((2, 3))
    theta = jnp.concatenate([jnp.ravel(W1), jnp.ravel(W2)])

    def f(th, x):
        return th[15:].reshape(4, 5) @ th[:15].reshape(5, 3) @ x

    def jac(x):
        return np.asarray(jax.jacfwd(f)(theta, jnp.asarray(x)))  # (d_out, P)

    expect = np.array([[jac(a) @ jac(b).T for b in x2] for a in x1])
    np.testing.assert_allclose(tangent_kernel(W1, W2, x1, x2), expect, rtol=1e-12, atol=1e-12)
    Jpop = np.asarray(jax.jacfwd(lambda th: f(th, jnp.eye(3)).ravel())(theta))
    np.testing.assert_allclose(tangent_kernel(W1, W2), Jpop @ Jpop.T, rtol=1e-12, atol=1e-12)
    V1, V2 = rng.standard_normal((5, 3)), rng.standard_normal((4, 5))
    K0, K = tangent_kernel(W1, W2), tangent_kernel(V1, V2)
    np.testing.assert_allclose(relative_kernel_change(V1.T @ V1, V2 @ V2.T, W1.T @ W1, W2 @ W2.T),
                               np.linalg.norm(K - K0) / np.linalg.norm(K0), rtol=1e-12)


def _layers(weights, problem=None, params=None):
    return {"W1": weights[0], "W2": weights[1]}


def test_matches_dlnlab_flow():
    """dlnlab's ``flow`` engine (rtol 1e−10, whitened online teacher with a random basis and s = (3, 2, 1)) from the
    same weights, λ ∈ {−2, 0, 0.5, 3} as four replicas of one run: the end-to-end map and both layers at every
    recorded time to relative 1e−6 (measured ≤ 5e−11)."""
    from dlnlab.model.observables import Observable

    lams = [-2.0, 0.0, 0.5, 3.0]
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": D, "d_out": D, "singular_values": S_TEACHER.tolist(), "basis": "random", "seed": 7},
        "network": {"depth": 2, "width": WIDTH},
        "init": {"kind": "gaussian", "scale": 0.3},  # replaced by the explicit weights
        "dynamics": {"kind": "flow", "rtol": 1e-10},
        "record": {"times": np.geomspace(1e-3, 30.0, 20).tolist(), "observables": ["loss", "end_to_end"]},
        "ensemble": {"replicas": len(lams), "seed": 0},
    })
    M = dlnlab.Teacher.from_config(cfg).M
    rng = np.random.default_rng(8)
    pairs = [lambda_balanced_init(rng, D, D, WIDTH, lam, scale=0.3) for lam in lams]
    layers = Observable("layers", _layers, {"W1": ("h_row", "in_col"), "W2": ("out_row", "h_col")})
    ds = dlnlab.simulate(cfg, weights=tuple(np.stack(w) for w in zip(*pairs)), observables=[layers], progress=False)
    for r, (W1, W2) in enumerate(pairs):
        st = lambda_balanced_flow_fn(W1, W2, M, layers=True)(ds["t"].values)
        assert _rel(st.end_to_end, ds["end_to_end"].values[r]).max() < 1e-6
        assert _rel(st.W1, ds["W1"].values[r]).max() < 1e-6 and _rel(st.W2, ds["W2"].values[r]).max() < 1e-6


def test_bad_input_is_rejected():
    rng = np.random.default_rng(9)
    W1, W2 = rng.standard_normal((8, 6)), rng.standard_normal((6, 8))
    with pytest.raises(ConfigError, match="not λ-balanced") as err:  # a ConfigError is also a ValueError
        lambda_balanced_flow_fn(W1, W2, np.eye(6))
    assert err.value.field == "W1_0, W2_0"
    W1, W2 = lambda_balanced_init(rng, 6, 6, 8, 0.5)
    cases = [(lambda: lambda_balanced_flow_fn(W1, W2, np.eye(5)), "M", "finite \\(d_out, d_in\\)"),
             (lambda: lambda_balanced_flow_fn(W1, W2, np.eye(6))(-1.0), "t", ">= 0"),
             (lambda: lambda_balanced_init(rng, 6, 4, 8, -1.0, rank=5), "rank", "in \\[1, 4\\]"),
             (lambda: lambda_balanced_factors(rng.standard_normal((6, 6)), 0.0, 4), "W0", "the active rank 4")]
    for call, field, allowed in cases:
        with pytest.raises(ConfigError, match=allowed) as err:
            call()
        assert err.value.field == field


def test_kernel_change_width_exponent_branches():
    """The derived width exponent: γ − 1 on the rich side, max(γ − 3/2, 2(γ − 1)) on the lazy side (−1 at γ = 1/2,
    where both lazy terms agree), continuous through 0 only in the limit γ → 1; γ = 1 and γ ≤ 0 are refused."""
    import pytest

    from dlnlab.errors import ConfigError
    from dlnlab.theory import kernel_change_width_exponent as e

    assert e(2.0) == 1.0 and e(0.5) == -1.0 and e(0.25) == -1.25 and e(0.75) == -0.5
    assert abs(e(1 + 1e-9)) < 1e-8 and abs(e(1 - 1e-9)) < 1e-8
    for bad in (1.0, 0.0, -1.0, float("inf")):
        with pytest.raises(ConfigError, match="gamma"):
            e(bad)
