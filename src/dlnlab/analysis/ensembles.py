"""Measurements on recorded ensembles (NumPy): stationary samples. (Group standard errors and first-hit times:
:mod:`dlnlab.analysis.stats`.)"""

from __future__ import annotations

import xarray as xr


def stationary_samples(ds: xr.Dataset, t_burn: float, var: str = "output"):
    """Samples of ``var`` at every record time ``t ≥ t_burn`` (shape ``(replica, n)``), non-diverged replicas only."""
    sel = ds[var].sel(t=ds.t[ds.t >= t_burn])
    keep = ~ds["diverged"].values
    return sel.values[keep]

