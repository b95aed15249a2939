"""[Z]'s second-order shift of T_c for discrete SGD with B = 1 (``dlnlab.theory.discrete_collapse``,
``dlnlab.experiments.ziyin.discrete_collapse``; ``checks.md`` Z16).

The collapse criterion of discrete SGD at L = 2 is the sign of ``Λ(η) = 2E ln|1 + ηxy|`` (per-step growth of ln v
at v → 0). Tested: the quadrature (closed form at a point, the small-η expansion through third order), the
agreement of SGD runs of the network with it, and the two findings of the ``discrete_collapse`` experiment: on the
reference data Λ > 0 at every T (no collapse, so no T_c to shift), and for σ_ε = 10 the threshold lies below the
SDE's β₂/α₃, past [Z]'s β₂/(α₃ + β₂²).
"""

import numpy as np

from dlnlab.experiments.ziyin.discrete_collapse import invasion_rates
from dlnlab.theory.discrete_collapse import discrete_critical_temperature, log_growth_rate, mean_log_abs_normal


def test_mean_log_abs_normal():
    """[A] E ln|Z| = −(γ + ln 2)/2 (1e-12); the noncentral-χ² series and the asymptotic series meet at μ = 30 (1e-9)."""
    assert abs(mean_log_abs_normal(0.0) + (np.euler_gamma + np.log(2)) / 2) < 1e-12
    assert abs(mean_log_abs_normal(30 - 1e-9) - mean_log_abs_normal(30 + 1e-9)) < 1e-9


def test_growth_rate_small_eta_expansion():
    """[A] Λ(η) = 2ηβ₂ − η²(α₃ + β₂²) + (2/3)η³E(xy)³ + O(η⁴); reference data (β₂, α₃) = (1, 3), E(xy)³ = 24, so
    (Λ − 2η)/η² = −4 + 16η + O(η²): at η = 10⁻³ within 10⁻³ of −3.984 (measured −3.98410). The second-order term is
    [Z]'s: its root is T = η/2 = β₂/(α₃ + β₂²) = 0.25."""
    eta = 1e-3
    assert abs((log_growth_rate(eta) - 2 * eta) / eta**2 - (-4 + 16 * eta)) < 1e-3


def test_sgd_growth_rate_matches_quadrature():
    """[V1] SGD of the network from v = 10⁻²⁰⁰ (balanced, linear regime throughout; B = 1), σ_ε = 10, 20000 replicas
    × 200 steps (replicas independent; R = 20000, so the Gaussian reading of 4 SE is accurate): the measured
    per-step rate equals Λ within 4 SE at T = 0.0088 and 0.0100 (measured 0.00150 ± 0.00020 vs 0.00162 and
    −0.00414 ± 0.00023 vs −0.00416)."""
    Ts = (0.0088, 0.0100)
    rates = invasion_rates(10.0, Ts, 20000, 200, seed=1)
    assert rates.shape == (20000, 2)
    for j, T in enumerate(Ts):
        rate, se = rates[:, j].mean(), rates[:, j].std(ddof=1) / np.sqrt(rates.shape[0])
        assert abs(rate - log_growth_rate(2 * T, label_noise=10.0)) < 4 * se


def test_discrete_threshold_findings():
    """[A] (quadrature) Reference data: Λ(2T)/(2T) > 0.5 on T ∈ [0.01, 2/3] — the collapsed state never attracts, so
    [Z]'s second-order T_c = 0.25 does not apply (measured min ≈ 0.75, at T = 2/3). σ_ε = 10: the exact discrete
    threshold 0.009167 lies below both β₂/α₃ = 0.009804 and β₂/(α₃ + β₂²) = 0.009709 — shifted in [Z]'s direction but
    ≈ 7× further (higher cumulants of xy enter at the same order 1/σ_ε⁴)."""
    Ts = np.linspace(0.01, 2 / 3, 25)
    assert min(log_growth_rate(2 * T) / (2 * T) for T in Ts) > 0.5
    assert discrete_critical_temperature() is None
    T_c = discrete_critical_temperature(label_noise=10.0)
    assert abs(T_c - 0.009167) < 5e-6 and T_c < 1 / 103 < 1 / 102
