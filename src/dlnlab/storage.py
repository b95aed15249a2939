"""Results on disk: zarr (native, round-trips exactly) and netCDF export.

Writes are atomic: a dataset is written to a temporary sibling directory and renamed into place, so a
crash never leaves a half-written result under the final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import xarray as xr


def save(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to a zarr store at ``path`` (replacing it atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ds.to_zarr(tmp / "store.zarr", mode="w", consolidated=False)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / "store.zarr", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def load(path: str | Path) -> xr.Dataset:
    """Read a zarr store written by :func:`save` fully into memory."""
    with xr.open_zarr(path, consolidated=False) as ds:
        return ds.load()


def export_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as netCDF-4 (h5netcdf engine); booleans are stored as int8 with a flag attribute."""
    path = Path(path)
    out = ds.copy()
    for name in list(out.variables):
        if out[name].dtype == bool:
            out[name] = out[name].astype("int8").assign_attrs(dlnlab_bool=1)
    out.to_netcdf(path, engine="h5netcdf")
    return path
