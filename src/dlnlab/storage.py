"""Results on disk: zarr (native, round-trips exactly) and netCDF export.

Writes are atomic: a dataset is written to a temporary sibling directory and renamed into place, so a
crash never leaves a half-written result under the final name. The last file written into the store,
before the rename, is a manifest (``dlnlab-manifest.json``: the size and SHA-256 of every other file, all
fsync'ed), which is also the completeness marker. :func:`load` checks the store against it and raises
:class:`CorruptDatasetError`, naming the path, for a missing manifest, a missing, extra, truncated or
altered file, or a store zarr cannot read — a damaged result is never loaded silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import xarray as xr

from .errors import CorruptDatasetError

MANIFEST = "dlnlab-manifest.json"
_FORMAT = "dlnlab-zarr-manifest/1"


def _files(store: Path) -> list[str]:
    return sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file() and p.name != MANIFEST)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # directories cannot be fsync'ed on every platform
        pass
    finally:
        os.close(fd)


def _write_manifest(store: Path) -> None:
    files = {}
    for rel in _files(store):
        f = store / rel
        _fsync(f)
        files[rel] = {"size": f.stat().st_size, "sha256": _digest(f)}
    with open(store / MANIFEST, "w") as fh:
        json.dump({"format": _FORMAT, "files": files}, fh, indent=0, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())


def save(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to a zarr store at ``path`` (replacing it atomically), with its manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ds.to_zarr(tmp / "store.zarr", mode="w", consolidated=False)
        _write_manifest(tmp / "store.zarr")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / "store.zarr", path)
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def verify_dataset(path: str | Path) -> None:
    """Check the store at ``path`` against its manifest; raise :class:`CorruptDatasetError` if it differs."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no dataset at {path}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        expected = manifest["files"]
        if manifest.get("format") != _FORMAT or not isinstance(expected, dict):
            raise ValueError(f"unknown manifest format {manifest.get('format')!r}")
    except FileNotFoundError:
        raise CorruptDatasetError(path, f"no {MANIFEST} (the write did not finish, or the store was not written "
                                        "by dlnlab.save; dlnlab.load(path, verify=False) reads it unchecked)") from None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CorruptDatasetError(path, f"unreadable {MANIFEST} ({exc})") from None
    present = _files(path)
    missing = sorted(set(expected) - set(present))
    if missing:
        raise CorruptDatasetError(path, f"missing file(s): {', '.join(missing[:5])}")
    extra = sorted(set(present) - set(expected))
    if extra:
        raise CorruptDatasetError(path, f"file(s) not in the manifest: {', '.join(extra[:5])}")
    for rel, info in expected.items():
        f = path / rel
        if f.stat().st_size != info["size"]:
            raise CorruptDatasetError(path, f"{rel} has {f.stat().st_size} bytes, {info['size']} written (truncated?)")
        if _digest(f) != info["sha256"]:
            raise CorruptDatasetError(path, f"{rel} differs from what was written (checksum mismatch)")


def load(path: str | Path, *, verify: bool = True) -> xr.Dataset:
    """Read a zarr store written by :func:`save` fully into memory.

    With ``verify`` (default) the store is first checked against its manifest (:func:`verify_dataset`); any
    damage, and any store zarr cannot read, raises :class:`CorruptDatasetError` naming ``path``."""
    path = Path(path)
    if verify:
        verify_dataset(path)
    elif not path.is_dir():
        raise FileNotFoundError(f"no dataset at {path}")
    try:
        with warnings.catch_warnings():  # zarr notes the manifest as a file outside its hierarchy
            warnings.filterwarnings("ignore", message=f".*{MANIFEST}.*")
            with xr.open_zarr(path, consolidated=False) as ds:
                return ds.load()
    except Exception as exc:  # whatever zarr raises for a damaged store, report it as such
        raise CorruptDatasetError(path, f"zarr cannot read it ({type(exc).__name__}: {exc})") from exc


def export_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as netCDF-4 (h5netcdf engine); booleans are stored as int8 with a flag attribute."""
    path = Path(path)
    out = ds.copy()
    for name in list(out.variables):
        if out[name].dtype == bool:
            out[name] = out[name].astype("int8").assign_attrs(dlnlab_bool=1)
    out.to_netcdf(path, engine="h5netcdf")
    return path
