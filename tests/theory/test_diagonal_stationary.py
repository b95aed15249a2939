"""[Z]'s stationary laws of the diagonal network as closed forms (``dlnlab.theory.diagonal_stationary``,
``diagonal_stationary_forms``; ``noise_balance.md`` §§6–10, ``checks.md`` Z5–Z7, Z10, Z11, Z17): normalisation, T_c,
special cases, tails, moments, fluctuation inversion, mode and T*, infinite depth.

Reference data (checks.md §E): ``x ~ N(0, 1)``, ``y = x + ε``, ``σ_ε = 1`` (moved from ``tests/test_noise_balance.py``,
issue 14).
"""


import numpy as np
import pytest
from scipy import integrate

from dlnlab.theory.balance import (
    DataConstants,
)
from dlnlab.theory.diagonal_stationary import DiagonalStationaryLaw
from dlnlab.theory.diagonal_stationary_forms import (
    critical_temperature,
    exponent_at_zero,
    is_normalisable,
    log_density_depth1,
    log_density_depth2,
    log_density_general,
    log_density_infinite_depth,
    mode_depth2,
    mode_discriminant,
    regime,
    t_star,
)

REF = DataConstants.reference()


@pytest.mark.parametrize("depth,T,kw", [
    (1, 0.2, {}), (1, 0.6, {"weight_decay": 0.2}),
    (2, 0.05, {}), (2, 0.2, {}), (2, 0.32, {}), (2, 0.15, {"weight_decay": 0.3}),
    (3, 0.3, {}), (3, 1.0, {"n_paths": 4}), (5, 0.5, {"n_paths": 2}),
])
def test_density_integrates_to_one(depth, T, kw):
    """∫p = 1 by an independent adaptive quadrature (scipy ``quad`` of the normalised pdf; in ``ln v`` for
    L ≥ 2, down to v = e^{−700}, plus the analytic piece ``p(ε)ε/(e+1)`` below ε at L = 2, where the density
    is ∝ v^e). Tolerance 1e-8 (quad's error estimate is ≤ 1e-10 here; the law's own spectral quadrature is
    at round-off); measured ≤ 9e-16."""
    law = DiagonalStationaryLaw(depth, T, **kw)
    assert not law.collapsed
    if depth == 1:
        total = integrate.quad(lambda v: law.pdf(np.array([v]))[0], -np.inf, np.inf, limit=500, epsabs=0,
                               epsrel=1e-12)[0]
    else:
        f = lambda y: law.pdf(np.array([np.exp(y)]))[0] * np.exp(y)
        pieces = [(-700, -100), (-100, -10), (-10, -1), (-1, 1), (1, 5), (5, 40), (40, 300)]
        total = sum(integrate.quad(f, a, b, limit=500, epsabs=0, epsrel=1e-12)[0] for a, b in pieces)
        if depth == 2:
            e = exponent_at_zero(T, REF, kw.get("weight_decay", 0.0))
            total += f(-700) / (e + 1)
    assert abs(total - 1) < 1e-8, total


def test_normalisable_exactly_below_Tc():
    """Z6 [A]: e(T) = β₂/(2α₃T) − 3/2 is > −1 at T = 0.32 and < −1 at T = 0.34 (T_c = 1/3), checked also
    numerically: ``∫_ε^1 p_unnorm dv`` converges as ε → 0 below T_c (the increments between ε = 1e-100, 1e-200,
    1e-300 shrink geometrically) and grows without bound above T_c (each increment larger than the last).
    The p₋ exponent is < −1 at every T; with weight decay T_c = (β₂ − ρ)/α₃; for L ≥ 3 the law is
    normalisable at every T (no sharp T_c)."""
    assert critical_temperature(2) == pytest.approx(1 / 3, abs=1e-15)
    assert exponent_at_zero(0.32) > -1 > exponent_at_zero(0.34)
    assert is_normalisable(2, 0.3333) and not is_normalisable(2, 1 / 3) and not is_normalisable(2, 0.34)
    assert DiagonalStationaryLaw(2, 0.34).collapsed and not DiagonalStationaryLaw(2, 0.32).collapsed

    def partial(T, eps):  # ∫_eps^1 p(v) dv in y = ln v, unnormalised closed form
        return integrate.quad(lambda y: np.exp(log_density_depth2(np.exp(y), T) + y), np.log(eps), 0,
                              limit=500, epsrel=1e-12)[0]

    for T, converges in ((0.32, True), (0.34, False)):
        I = [partial(T, eps) for eps in (1e-100, 1e-200, 1e-300)]
        inc = np.diff(I)
        if converges:
            assert inc[1] < 0.5 * inc[0] and inc[1] < 1e-2 * I[0]
        else:
            assert inc[1] > inc[0] > I[0]
    for T in (0.01, 0.1, 0.3, 1.0, 10.0):
        assert exponent_at_zero(T, sign=-1) < -1 and not is_normalisable(2, T, sign=-1)
        assert is_normalisable(3, T) and is_normalisable(4, T) and not is_normalisable(3, T, sign=-1)
        assert not DiagonalStationaryLaw(5, T).collapsed
    rho = 0.25
    assert critical_temperature(2, REF, rho) == pytest.approx((1 - rho) / 3, abs=1e-15)
    assert is_normalisable(2, 0.249, REF, rho) and not is_normalisable(2, 0.251, REF, rho)
    # L ≥ 3 with weight decay: the ρ-term makes p blow up like exp(C v^{-(2-4/L)}) at 0⁺ (δ(0) only)
    v = np.geomspace(1e-6, 1e-3, 5)
    lp = log_density_general(v, 3, 0.3, REF, weight_decay=0.05)
    assert np.all(np.diff(lp) < 0) and lp[0] - lp[-1] > 100 and not is_normalisable(3, 0.3, REF, 0.05)


def test_depth1_special_case_equals_general_formula():
    """Z5 [V]: [Z]'s depth-1 (L = 2) closed form equals the general-depth formula at L = 2 up to a constant,
    to 1e-10 on a grid v ∈ [1e-3, 50] (general law by adaptive ``quad`` of the indefinite integral, and by the
    law object's spectral integral), for several T, for d = 5 paths (d enters only as d^{(L−2)/L} = 1) and
    with weight decay (ρ-term of the integral vs. the closed form's β₂ → β₂ − ρ). Measured ≤ 6.2e-15."""
    v = np.geomspace(1e-3, 50, 25)
    for T, d, rho in ((0.05, 1, 0.0), (0.2, 1, 0.0), (0.3, 5, 0.0), (0.1, 2, 0.4)):
        closed = log_density_depth2(v, T, REF, rho)
        general = log_density_general(v, 2, T, REF, n_paths=d, weight_decay=rho)
        assert np.ptp(closed - general) < 1e-10
        spectral = DiagonalStationaryLaw(2, T, n_paths=d, weight_decay=rho, closed_form=False).logpdf(v)
        assert np.max(np.abs(spectral - DiagonalStationaryLaw(2, T, weight_decay=rho).logpdf(v))) < 1e-10
    # the law object's general-L density against the quad reference at L = 3, 4 (different d)
    for L, T, d, rho in ((3, 0.3, 1, 0.0), (4, 0.5, 3, 0.0)):
        law = DiagonalStationaryLaw(L, T, n_paths=d, weight_decay=rho)
        assert np.ptp(law.logpdf(v) - log_density_general(v, L, T, REF, n_paths=d, weight_decay=rho)) < 1e-10


def test_bridge_to_per_mode_law():
    """Z17 [A]: [C]'s per-mode stationary law (``dlnlab.theory.mode_stationary``) equals [Z]'s depth-L law with d = 1
    and the single-mode constants; log-difference constant for L = 2, 3, 4 (checks.md: 1e-12, observed ≤ 5e-14).
    Tolerance 1e-10 here since both implementations integrate numerically; measured 1.2e-14."""
    from dlnlab.theory.mode_stationary import log_density_unnormalised

    s, lam, sig, T = 1.0, 1.0, 0.5, 0.02
    c = DataConstants.single_mode(lam, s, sig)
    m = np.linspace(0.3, 2.5, 23)
    for L in (2, 3, 4):
        ours = log_density_general(m, L, T, c)
        theirs = np.asarray(log_density_unnormalised(m, L, s, lam, sig, temperature=T))
        assert np.ptp(ours - theirs) < 1e-10, (L, np.ptp(ours - theirs))


def test_law_off_its_support():
    """Off the support (``v ≤ 0`` on the positive branch) ``cdf = 0`` and ``sf = 1`` exactly, at every depth: for
    L ≥ 3 there is no analytic piece below the grid (this returned nan before issue 13)."""
    v = np.array([-2.0, -1e-300, 0.0])
    for L in (2, 3, 4):
        law = DiagonalStationaryLaw(L, 0.1)
        assert np.array_equal(law.cdf(v), np.zeros(3)) and np.array_equal(law.sf(v), np.ones(3)), L


def test_tails():
    """Z5 [V]: the fitted slope of ln p against ln v on [10³, 10⁵] is 3/L − 5 within 0.01 for L = 2, 3, 5 at
    T = 0.1 (measured −3.5008, −4.0004, −4.4003, as in checks.md) and −2 − β₁/(Tα₁) = −4.5 for L = 1 at T = 0.2
    (measured −4.5008).
    Moments: E v² < ∞ and E v⁴ = ∞ for L ≥ 2."""
    v = np.geomspace(1e3, 1e5, 40)
    for L in (2, 3, 5):
        law = DiagonalStationaryLaw(L, 0.1)
        slope = np.polyfit(np.log(v), law.logpdf(v), 1)[0]
        assert abs(slope - (3 / L - 5)) < 0.01, (L, slope)
        assert np.isfinite(law.moment(2)) and law.moment(4) == np.inf
    slope1 = np.polyfit(np.log(v), log_density_depth1(v, 0.2), 1)[0]
    assert abs(slope1 + 4.5) < 0.01
    assert DiagonalStationaryLaw(1, 0.6).var == np.inf  # E v² = ∞ for T ≥ β₁/α₁ = 0.5 at L = 1


def test_moment_table():
    """Z7 [A]: the table of noise_balance.md §7 (closed form normalised with the analytic piece at 0⁺), to 1e-3
    absolute, and the 85% mass below 1e-12 at T = 0.33."""
    table = {  # T: (mean, var, median)
        0.01: (0.990, 0.021, 0.983), 0.05: (0.9376, 0.1198, 0.9107), 0.10: (0.845, 0.251, 0.806),
        0.15: (0.726, 0.339, 0.672), 0.20: (0.5809, 0.3721, 0.471), 0.25: (0.404, 0.337, 0.147),
        0.30: (0.1821, 0.1942, None), 0.32: (0.077, 0.090, None), 0.33: (0.020, 0.024, None)}
    for T, (mean, var, med) in table.items():
        law = DiagonalStationaryLaw(2, T)
        assert abs(law.mean - mean) < 1e-3 and abs(law.var - var) < 1e-3, (T, law.mean, law.var)
        if med is not None:
            assert abs(law.median - med) < 1e-3, (T, law.median)
    assert 6.5e-5 < DiagonalStationaryLaw(2, 0.30).median < 8e-5  # "7e-5"
    assert 0.84 < DiagonalStationaryLaw(2, 0.33).mass_below(1e-12) < 0.86


def test_fluctuation_inversion_density():
    """Z7 [A]: Var v is strictly decreasing on [T_peak, 1/3) and → 0 as T → T_c⁻ (below 0.01 at T = 0.3325, mean too).
    The exact peak is at T_peak = 0.20240 (Var 0.372174), slightly above 0.2 (Var 0.372097): "decreasing on
    [0.2, 1/3)" (checks.md Z7, the issue) holds to 2.1e-4 relative — asserted here as such."""
    from scipy.optimize import minimize_scalar

    peak = minimize_scalar(lambda T: -DiagonalStationaryLaw(2, T).var, bounds=(0.15, 0.25), method="bounded",
                           options={"xatol": 1e-7})
    assert 0.2 < peak.x < 0.205
    Ts = np.linspace(peak.x, 0.333, 20)
    var = np.array([DiagonalStationaryLaw(2, T).var for T in Ts])
    assert np.all(np.diff(var) < 0)
    v02 = DiagonalStationaryLaw(2, 0.2).var
    assert v02 < -peak.fun and (-peak.fun - v02) / v02 < 3e-4  # rises by only 2.1e-4 relative from 0.2 to the peak
    assert np.all(np.diff([DiagonalStationaryLaw(2, T).var for T in np.linspace(0.2, 0.333, 20)]) < 0)  # 7e-3 grid
    assert DiagonalStationaryLaw(2, 0.15).var < v02  # it rises before: an inversion, not a monotone law
    near = DiagonalStationaryLaw(2, 0.3325)
    assert near.var < 0.01 and near.mean < 0.01


def test_mode_and_t_star():
    """Z10, Z11 [A]: the corrected root v*(T) equals the numerical argmax of p₊ to 1e-5 (0.97212, 0.88641,
    0.80321 at T = 0.01, 0.05, 0.1); at T = 0.2 the local maximum is 0.571429 (local minimum 0.5); the slope
    (v* − 1)/T at T = 1e-4 is −3 ± 0.01; T* = (4 + √42)/52 with A(T*) = 0 to 1e-12; T* > T_c/3; a non-trivial
    maximum exists iff σ_ε² > 8s²/21 (λ = 1, s = 1)."""
    for T, expected in ((0.01, 0.97212), (0.05, 0.88641), (0.1, 0.80321)):
        law = DiagonalStationaryLaw(2, T)
        assert abs(float(mode_depth2(T)) - expected) < 1e-5
        assert abs(law.mode() - float(mode_depth2(T))) < 1e-5
    assert abs(float(mode_depth2(0.2)) - 4 / 7) < 1e-12  # root of 2.8v² − 3v + 0.8: 4/7 and 1/2
    assert abs(DiagonalStationaryLaw(2, 0.2).local_maximum() - 4 / 7) < 1e-6
    assert regime(0.2) == "IIb" and regime(0.25) == "IIa" and regime(0.05) == "III" and regime(0.4) == "I"
    assert abs((float(mode_depth2(1e-4)) - 1) / 1e-4 + 3) < 0.01
    ts = t_star()
    assert abs(ts - (4 + np.sqrt(42)) / 52) < 1e-12 and abs(mode_discriminant(ts)) < 1e-12 and ts > REF.T_crit() / 3
    # Existence of a non-trivial maximum on (T_c/3, T_c) (λ = s = 1), from the roots and from the numerical
    # argmax: T* exists iff σ² > 8/21, but the maximum disappears (regime IIa) only where T* < T_c, i.e.
    # σ² > 0.6788 — for σ² below that the maximum exists on all of (T_c/3, T_c) (checks.md Z11's "iff σ² > 8/21"
    # is corrected here).
    for sig2, finite_t_star, has_IIa in ((0.3, False, False), (0.5, True, False), (1.0, True, True)):
        c = DataConstants.single_mode(1.0, 1.0, np.sqrt(sig2))
        assert np.isfinite(t_star(c)) == finite_t_star
        Ts = c.T_crit() * np.array([0.34, 0.5, 0.7, 0.9, 0.99])
        regimes = [regime(T, c) for T in Ts]
        assert ("IIa" in regimes) == has_IIa
        for T, reg in zip(Ts, regimes):
            loc = DiagonalStationaryLaw(2, T, c).local_maximum()
            assert (reg == "IIb") == np.isfinite(loc)
            if reg == "IIb":
                assert abs(loc - float(mode_depth2(T, c))) < 1e-5


def test_infinite_depth_scaling():
    """§10 (paper; re-derived): the general-L law with d = rL paths converges to the infinite-depth law as L
    grows (the range of the log-difference on v ∈ [0.05, 5] falls with L, ~ln L/L, below 0.05 at L = 10⁴),
    only r/T matters ((r, T) and (2r, 2T) give the same law to 1e-12), and d = o(L) collapses (mean → 0 as
    r → 0, the law tending to v^{-3}g^{-1})."""
    v = np.geomspace(0.05, 5, 30)
    T, r = 0.5, 1.0
    ref = log_density_infinite_depth(v, T, REF, r)
    spreads = [np.ptp(log_density_general(v, L, T, REF, n_paths=int(r * L)) - ref) for L in (100, 1000, 10000)]
    assert spreads[0] > spreads[1] > spreads[2] and spreads[2] < 0.05, spreads
    assert np.ptp(log_density_infinite_depth(v, 2 * T, REF, 2 * r) - ref) < 1e-12
    means = [DiagonalStationaryLaw(400, T, n_paths=max(1, int(rr * 400))).mean for rr in (1.0, 0.1, 0.01)]
    assert means[0] > means[1] > means[2]

