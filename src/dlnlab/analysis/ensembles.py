"""Measurements on recorded ensembles (NumPy): first passages and diffusion peaks of per-mode runs, stationary
samples and group standard errors (``checks.md`` §0). (The estimators of :mod:`dlnlab.analysis.stats` supersede
``group_se`` and ``first_passage``.)"""

from __future__ import annotations

import numpy as np
import xarray as xr


def first_passage(t, m, level):
    """First recorded time at which ``m ≥ level`` (per replica and mode; ``nan`` if never).

    ``t``: ``(n_t,)``; ``m``: ``(replicas, n_t, modes)``; ``level``: ``(modes,)``."""
    t, m = np.asarray(t), np.asarray(m)
    hit = m >= np.asarray(level)
    idx = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), t[idx], np.nan)


def peak_statistics(t, m, power, s, eps=0.01, pre_level=None):
    """Where the diffusion along each mode peaks, per replica: the argmax over recorded times of ``power``
    (any quantity ``∝ 𝒟_α``, e.g. the ``noise_power`` observable or ``m^p D(m)``) against the learning time.

    Returns a dict of ``(replicas, modes)`` arrays: ``t_peak`` and ``m_peak`` (global argmax over the run),
    ``t_learned`` (first time ``m ≥ (1 − ε)s``), and ``t_peak_pre``/``m_peak_pre``, the argmax restricted to times
    before ``m`` first reaches ``pre_level`` (per mode; default ``(1 − ε)s``). With label noise, pass the local
    minimum ``m_+`` of ``m^p D(m)`` (``theory.mode_sde.peak_roots``) to locate the pre-learning *local* maximum even when
    the stationary phase is noisier than the bump."""
    t, m, power = np.asarray(t), np.asarray(m), np.asarray(power)
    s = np.asarray(s, np.float64)
    i = np.argmax(np.where(np.isfinite(power), power, -np.inf), axis=1)
    t_learned = first_passage(t, m, (1.0 - eps) * s)
    level = (1.0 - eps) * s if pre_level is None else np.asarray(pre_level, np.float64)
    t_end = first_passage(t, m, level)
    pre = np.where(t[None, :, None] <= np.where(np.isnan(t_end), np.inf, t_end)[:, None, :], power, -np.inf)
    j = np.argmax(pre, axis=1)
    take = lambda idx: np.take_along_axis(m, idx[:, None, :], axis=1)[:, 0]
    return {"t_peak": t[i], "m_peak": take(i), "t_learned": t_learned, "t_peak_pre": t[j], "m_peak_pre": take(j)}


def stationary_samples(ds: xr.Dataset, t_burn: float, var: str = "output"):
    """Samples of ``var`` at every record time ``t ≥ t_burn`` (shape ``(replica, n)``), non-diverged replicas only."""
    sel = ds[var].sel(t=ds.t[ds.t >= t_burn])
    keep = ~ds["diverged"].values
    return sel.values[keep]


def group_se(samples, stat, groups: int = 20):
    """Group standard error of ``stat`` over replicas (``checks.md`` §0): replicas (rows) are split into
    ``groups`` groups, ``stat`` is computed per group on all its samples; SE = sd/√groups. Returns
    ``(stat(all), se)``."""
    x = np.asarray(samples)
    parts = np.array_split(np.arange(x.shape[0]), groups)
    per = np.array([stat(x[idx].ravel()) for idx in parts])
    return float(stat(x.ravel())), float(per.std(ddof=1) / np.sqrt(groups))
