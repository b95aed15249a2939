"""``infinite_depth`` (``dlnlab.experiments.ziyin.infinite_depth``): the infinite-depth law's mean, against an
independent adaptive quadrature, and its dependence on ``(d/L)/T`` only."""

import numpy as np
from scipy import integrate

from dlnlab.experiments.ziyin.infinite_depth import infinite_depth_mean
from dlnlab.theory.balance import DataConstants
from dlnlab.theory.diagonal_stationary_forms import log_density_infinite_depth

REF = DataConstants.reference()


def test_infinite_depth_mean():
    """The trapezoid mean on the ``ln v`` grid equals scipy ``quad``'s (in ``v``, density scaled by its value at the
    mode region) to 1e-6 relative at (d/L)/T = 2 and 5; the mean at (r, T) and (2r, 2T) agree to 1e-12."""
    for T, r in ((0.5, 1.0), (0.2, 1.0)):
        shift = log_density_infinite_depth(np.array([0.5]), T, REF, r)[0]
        p = lambda v: np.exp(log_density_infinite_depth(np.array([v]), T, REF, r)[0] - shift)  # noqa: B023
        z = integrate.quad(p, 0, np.inf, limit=500, epsrel=1e-11)[0]
        m = integrate.quad(lambda v: v * p(v), 0, np.inf, limit=500, epsrel=1e-11)[0] / z  # noqa: B023
        assert abs(infinite_depth_mean(T, r) / m - 1) < 1e-6, (T, r, infinite_depth_mean(T, r), m)
        assert abs(infinite_depth_mean(2 * T, 2 * r) - infinite_depth_mean(T, r)) < 1e-12
