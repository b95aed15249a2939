"""``theory.saddle_sequence.regularised_singular_values`` (§7, derived): the per-mode minimiser of
``½(a − s)² + (ρL/2) a^{2/L}`` — against a brute-force grid minimisation, and its closed form at L = 2."""

from __future__ import annotations

import numpy as np

from dlnlab.theory import saddle_sequence as th


def test_l2_is_the_soft_threshold():
    np.testing.assert_allclose(th.regularised_singular_values([4.0, 2.0, 0.05], 0.1, 2), [3.9, 1.9, 0.0])


def test_deeper_minimiser_against_a_grid():
    for L in (3, 4):
        for rho in (0.05, 0.3):
            s = np.array([4.0, 1.0, 0.5, 0.2])
            a = th.regularised_singular_values(s, rho, L)
            grid = np.linspace(0.0, 4.5, 450001)
            for si, ai in zip(s, a, strict=True):
                f = 0.5 * (grid - si) ** 2 + 0.5 * rho * L * grid ** (2.0 / L)
                assert abs(grid[np.argmin(f)] - ai) < 2e-5, (L, rho, si, ai, grid[np.argmin(f)])
            nz = a > 0
            np.testing.assert_allclose(a[nz] + rho * a[nz] ** (2.0 / L - 1) - s[nz], 0.0, atol=1e-12)
