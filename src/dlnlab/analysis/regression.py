"""Measurements on diagonal-network regression runs (:mod:`dlnlab.engines.regression`) against the α → 0 oracle
(:func:`dlnlab.theory.sparse_regression.saddle_to_saddle`): when each jump happens and which support each plateau
has.

Both work on one replica's records ``t`` (increasing, ``(T,)``) and ``beta`` (``(T, d)``) and on the oracle's
:class:`~dlnlab.theory.sparse_regression.SaddleSequence`, with times rescaled by ``kappa`` (the run's
:func:`~dlnlab.theory.sparse_regression.time_scale`).
"""

from __future__ import annotations

import numpy as np


def jump_times(t, beta, seq, kappa: float) -> np.ndarray:
    """The rescaled time ``t/κ`` of each jump ``k = 1 … K`` of ``seq`` in the run: the first record time after the
    previous jump at which a coordinate entering the support reaches half its value at the new saddle (for a jump
    that only drops coordinates: the leaving one falls below half its old value), refined by linear interpolation
    of ``ln(|β_i| / target)`` between the two records around the crossing. ``NaN`` from the first jump never seen.

    The half-value crossing lags the α → 0 jump by the O(1) duration of the escape: ``O(1/κ)`` relative, the
    same order as the finite-α bias of the jump itself."""
    t, beta = np.asarray(t, np.float64), np.asarray(beta, np.float64)
    out = np.full(len(seq.times) - 1, np.nan)
    i0 = 0
    for k in range(1, len(seq.times)):
        new = np.setdiff1d(seq.supports[k], seq.supports[k - 1])
        with np.errstate(divide="ignore"):
            if len(new):
                level = np.max(np.log(np.abs(beta[:, new]) / (0.5 * np.abs(seq.iterates[k, new]))), axis=1)
            else:
                old = np.setdiff1d(seq.supports[k - 1], seq.supports[k])
                level = np.max(np.log(0.5 * np.abs(seq.iterates[k - 1, old]) / np.abs(beta[:, old])), axis=1)
        hit = np.flatnonzero((level >= 0) & (np.arange(len(t)) > i0))
        if not len(hit) or hit[0] == 0:
            return out
        i0 = int(hit[0])
        a, b = level[i0 - 1], level[i0]
        frac = -a / (b - a) if np.isfinite(a) and b > a else 1.0
        out[k - 1] = (t[i0 - 1] + frac * (t[i0] - t[i0 - 1])) / kappa
    return out


def plateau_supports(t, beta, seq, kappa: float, relative: float = 0.1) -> list[np.ndarray]:
    """The run's support at the midpoint of each oracle plateau ``[t̃_k, t̃_{k+1})``, ``k = 0 … K − 1`` (linear
    interpolation between records): the coordinates with ``|β_i|`` above ``relative`` times the smallest non-zero
    entry of the saddle ``β_k`` (``k = 0``: above ``relative · 1e−2``)."""
    t, beta = np.asarray(t, np.float64), np.asarray(beta, np.float64)
    out = []
    for k in range(len(seq.times) - 1):
        tk = kappa * 0.5 * (seq.times[k] + seq.times[k + 1])
        b = np.array([np.interp(tk, t, beta[:, i]) for i in range(beta.shape[1])])
        thr = relative * (np.abs(seq.iterates[k, seq.supports[k]]).min() if k else 1e-2)
        out.append(np.flatnonzero(np.abs(b) > thr))
    return out
