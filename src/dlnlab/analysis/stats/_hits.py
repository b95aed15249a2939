"""First-hit times of recorded trajectories, with one convention for "never"."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import ConfigError


class FirstHit(NamedTuple):
    """First-hit times: ``time`` (the first record time at which the level is reached; ``NaN`` if never within the
    record), ``hit`` (bool, same shape) and ``horizon`` (the last record time: a never-hit time is right-censored
    there, known only to exceed it)."""

    time: np.ndarray
    hit: np.ndarray
    horizon: float

    @property
    def n_never(self):
        """Number of never-hit entries along axis 0 (replicas): an integer, or an array over the trailing axes."""
        return (~self.hit).sum(axis=0)


def first_hit_time(t, x, level, *, axis: int = 1, above: bool = True) -> FirstHit:
    """First recorded time at which ``x ≥ level`` (``above=False``: ``x ≤ level``), along the record-time ``axis``
    of ``x`` (default 1: arrays ``(replica, t, …)`` as recorded). ``level`` broadcasts against ``x`` with the time
    axis removed (one level per mode, say). The hit happened in ``(t_{i−1}, t_i]``: resolution is the record
    spacing.

    "Never" is ``NaN`` in ``time`` and ``False`` in ``hit``; count never-hit replicas with ``n_never`` (a fraction:
    ``stats.wilson(n_never, n)``). For their median use ``bootstrap_quantile(time, censored=True)``, which treats
    ``NaN`` as censored at the horizon — never drop them, which biases the median low."""
    t, x = np.asarray(t, np.float64), np.asarray(x)
    axis = axis % x.ndim if x.ndim else 0
    if t.ndim != 1 or x.ndim == 0 or x.shape[axis] != t.size or t.size == 0:
        raise ConfigError("t", f"an array of shape {t.shape}", f"1-D with len(t) = x.shape[axis] ≥ 1 (x has shape "
                                                               f"{x.shape}, axis = {axis})")
    rest = x.shape[:axis] + x.shape[axis + 1:]
    try:
        lev = np.expand_dims(np.broadcast_to(np.asarray(level), rest), axis)
    except ValueError:
        raise ConfigError("level", f"an array of shape {np.shape(level)}", f"broadcastable to x's shape without "
                                                                            f"the time axis, {rest}") from None
    mask = x >= lev if above else x <= lev
    hit = mask.any(axis=axis)
    first = t[mask.argmax(axis=axis)]
    return FirstHit(np.where(hit, first, np.nan), hit, float(t[-1]))
