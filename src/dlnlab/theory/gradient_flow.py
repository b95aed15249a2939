"""Gradient flow of one aligned, balanced mode: ``ṁ = L λ m^{2−2/L} (s − m)`` (``saddle_to_saddle.md`` §3).

* ``L = 1``: ``m(t) = s + (m₀ − s) e^{−λt}``;
* ``L = 2`` (logistic): ``m(t) = s / (1 + (s/m₀ − 1) e^{−2λst})``;
* ``L ≥ 3``: ``t(m) = F(m/s) − F(m₀/s)``, ``F(x) = x^{1−q} ₂F₁(1, 1−q; 2−q; x) / ((1−q) L λ s^q)``, ``q = 2 − 2/L``,
  inverted by bracketed root finding (``t(m)`` is monotone).

Valid for ``0 < m₀ < s`` (growth to ``s``) and ``m₀ > s`` (decay to ``s``; by quadrature for ``L ≥ 3``).
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize, special

from ..errors import ConfigError


def _F(x, L, lam, s):
    q = 2.0 - 2.0 / L
    return x ** (1 - q) * special.hyp2f1(1.0, 1 - q, 2 - q, x) / ((1 - q) * L * lam * s**q)


def mode_time(m, m0, s, input_variance=1.0, depth=2):
    """Time for a balanced mode to go from ``m0`` to ``m`` under gradient flow (scalar arguments)."""
    lam, L = input_variance, depth
    for name, v in (("m0", m0), ("s", s), ("input_variance", lam)):
        if not v > 0:
            raise ConfigError(name, v, "a number > 0")
    if (m - m0) * (s - m0) < 0 or (s - m) * (s - m0) <= 0:
        raise ConfigError("m", m, f"a value between m0 = {m0} and the fixed point s = {s} (excluded): the flow "
                                  "from m0 reaches only these")
    if L == 1:
        return np.log1p((m - m0) / (s - m)) / lam  # = ln((s − m0)/(s − m)), accurate for m near m0
    if L == 2:
        return np.log1p(s * (m - m0) / (m0 * (s - m))) / (2 * lam * s)  # = ln(m(s − m0)/(m0(s − m)))
    if m0 < s:
        return _F(m / s, L, lam, s) - _F(m0 / s, L, lam, s)
    q = 2.0 - 2.0 / L
    val, _ = integrate.quad(lambda u: 1.0 / (L * lam * u**q * (s - u)), m0, m, epsabs=0, epsrel=1e-13, limit=200)
    return val


def mode_trajectory(t, m0, s, input_variance=1.0, depth=2):
    """``m(t)`` of a balanced mode under gradient flow, for an array of times ``t ≥ 0``."""
    lam, L = input_variance, depth
    t = np.asarray(t, dtype=np.float64)
    if L == 1:
        return s + (m0 - s) * np.exp(-lam * t)
    if L == 2:
        return s / (1.0 + (s / m0 - 1.0) * np.exp(-2.0 * lam * s * t))
    out = np.empty_like(t)
    for i, ti in np.ndenumerate(t):
        out[i] = _invert(ti, m0, s, lam, L)
    return out


def _invert(t, m0, s, lam, L):
    """Solve ``t(m) = t`` to full relative precision: in ``ln m`` below ``s/2``, in ``ln|s − m|`` above."""
    if t == 0:
        return m0
    if m0 < s / 2 and t <= mode_time(s / 2, m0, s, lam, L):
        lm = optimize.brentq(lambda x: mode_time(np.exp(x), m0, s, lam, L) - t if x > np.log(m0) else -t,
                             np.log(m0), np.log(s / 2), xtol=1e-16, rtol=8.9e-16, maxiter=500)
        return np.exp(lm)
    sign = 1.0 if m0 < s else -1.0
    hi = np.log(min(abs(s - m0), s / 2))
    t_hi = 0.0 if abs(s - m0) <= s / 2 else mode_time(s / 2, m0, s, lam, L)

    def f(log_gap):
        if log_gap >= hi:
            return t_hi - t
        m = s - sign * np.exp(log_gap)
        return 1e300 if m == s else mode_time(m, m0, s, lam, L) - t

    lo = hi - 1.0
    while f(lo) < 0:
        lo = hi - 2.0 * (hi - lo)
        if lo < np.log(s) - 745:
            return s
    log_gap = optimize.brentq(f, lo, hi, xtol=1e-16, rtol=8.9e-16, maxiter=500)
    return s - sign * np.exp(log_gap)


def mode_flow_fn(m0, s, input_variance=1.0, depth=2):
    """``predict_fn(t) -> m(t)`` for every mode at once: ``m0``, ``s``, ``input_variance`` are arrays over modes.

    Returns an array of shape ``(len(t), n_modes)``; modes with ``s = 0`` decay as ``ṁ = −Lλ m^{3−2/L}``
    and are handled only for ``m0 = 0`` (they stay at 0)."""
    L = depth
    m0, s, lam = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, np.float64)) for x in (m0, s, input_variance)))

    def predict(t):
        cols = []
        for a0, sa, la in zip(m0, s, lam):
            if sa == 0:
                if a0 != 0:
                    raise ConfigError("m0", a0, "0 for a mode with s = 0 (only those are handled)")
                cols.append(np.zeros(np.shape(t)))
            else:
                cols.append(mode_trajectory(t, a0, sa, la, L))
        return np.stack(cols, axis=-1)

    return predict
