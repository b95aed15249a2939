"""Results on disk: zarr (native, round-trips exactly) and netCDF export.

Writes are atomic: a dataset is written to a temporary sibling directory and renamed into place, so a
crash never leaves a half-written result under the final name. The last file written into the store,
before the rename, is a manifest (``dlnlab-manifest.json``: the size and SHA-256 of every other file, all
fsync'ed), which is also the completeness marker. :func:`load` checks the store against it and raises
:class:`CorruptDatasetError`, naming the path, for a missing manifest, a missing, extra, truncated or
altered file, or a store zarr cannot read — a damaged result is never loaded silently.

Faults of the output (issue 19):

* :func:`output_error` turns an ``OSError`` of writing (no space left, quota, permission denied, read-only file
  system, a vanished directory) into an :class:`~dlnlab.errors.OutputError`: what failed, the path, what to do;
* :func:`save_or_keep` saves a finished result, and where that fails keeps it in a writable fallback (the user's
  temp dir, else ``~/.cache/dlnlab``) under a key of the run (its resolved config), named in the error;
  :func:`kept_result` finds it again, so that rerunning the same command after freeing space saves it without
  recomputing;
* :func:`output_lock`: one writer per output directory — an ``fcntl.flock`` on ``DIR/.dlnlab.lock``, which holds
  the writer's pid, host, command and start time; a second writer is refused with
  :class:`~dlnlab.errors.OutputLockedError` naming it. The kernel drops the lock when its process dies, so the
  lock file of a dead process is taken over (its contents rewritten).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import warnings
from pathlib import Path

import xarray as xr

from .errors import CorruptDatasetError, OutputError, OutputLockedError

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
    _remove_dead_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent))
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


def _remove_dead_temporaries(path: Path) -> None:
    """Remove the temporary siblings ``.NAME.PID.*`` that :func:`save` left when its process was killed mid-write
    (``kill -9``, a crash): those of a process no longer alive on this host; a live writer's are left alone."""
    for tmp in path.parent.glob(f".{path.name}.*"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def verify_dataset(path: str | Path) -> None:
    """Check the store at ``path`` against its manifest; raise :class:`CorruptDatasetError` if it differs."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no dataset at {path}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        expected = manifest["files"]
    except FileNotFoundError:
        raise CorruptDatasetError(path, f"no {MANIFEST} (the write did not finish, or the store was not written "
                                        "by dlnlab.save; dlnlab.load(path, verify=False) reads it unchecked)") from None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CorruptDatasetError(path, f"unreadable {MANIFEST} ({exc})") from None
    if manifest.get("format") != _FORMAT or not isinstance(expected, dict):
        raise CorruptDatasetError(path, f"unreadable {MANIFEST} (unknown manifest format {manifest.get('format')!r})")
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


# ---------------------------------------------------------------------------------------------------------
# Faults of the output: one clear message, and nothing computed lost

#: What to do, per errno of a failed write.
_ADVICE = {
    errno.ENOSPC: "free space there (or choose another --out) and rerun the same command",
    errno.EDQUOT: "free space within your quota (or choose another --out) and rerun the same command",
    errno.EACCES: "make the directory writable (or choose another --out) and rerun the same command",
    errno.EPERM: "make the directory writable (or choose another --out) and rerun the same command",
    errno.EROFS: "the file system is read-only: choose another --out and rerun the same command",
    errno.ENOENT: "the directory vanished while it was written: rerun the same command",
}
#: The errnos that are faults of the output's file system (not of the program).
IO_FAULTS = frozenset(_ADVICE) | {errno.EIO, errno.ENOTDIR, errno.EISDIR}


def output_error(exc: OSError, what: str, path=None, kept=None) -> OutputError:
    """The :class:`OutputError` of ``exc`` raised while ``what`` (e.g. "writing the dataset") at ``path``."""
    path = path if path is not None else (exc.filename or "?")
    advice = _ADVICE.get(exc.errno, "check the output directory and rerun the same command")
    return OutputError(what, path, exc.strerror or str(exc), advice, kept)


def kept_dir(key: str) -> list[Path]:
    """The fallback directories, in order of preference, of a result keyed by ``key`` (a resolved config)."""
    h = hashlib.sha256(key.encode()).hexdigest()[:16]
    return [Path(tempfile.gettempdir()) / "dlnlab-kept" / h, Path.home() / ".cache" / "dlnlab" / "kept" / h]


def kept_result(key: str) -> Path | None:
    """The kept result of the run ``key`` (a complete store, :func:`verify_dataset`), or ``None``."""
    for d in kept_dir(key):
        try:
            verify_dataset(d / "dataset.zarr")
        except (FileNotFoundError, CorruptDatasetError, OSError):
            continue
        return d / "dataset.zarr"
    return None


def discard_kept(key: str) -> None:
    """Remove the kept result of the run ``key`` (once it is saved where it belongs)."""
    for d in kept_dir(key):
        shutil.rmtree(d, ignore_errors=True)


def save_or_keep(ds: xr.Dataset, path: str | Path, key: str) -> Path:
    """:func:`save` ``ds`` to ``path``; if that fails with an ``OSError``, keep ``ds`` in the first writable fallback
    of :func:`kept_dir` and raise the :class:`OutputError` that names both (``kept=None``: nowhere was writable)."""
    try:
        return save(ds, path)
    except OSError as exc:
        failure = exc
    kept = None
    for d in kept_dir(key):
        try:
            kept = save(ds, d / "dataset.zarr")
            break
        except OSError:
            continue
    err = output_error(failure, "writing the dataset", path, kept)
    if kept is None:
        err = OutputError(err.what, err.path, err.reason, err.advice + " (nowhere else was writable either: the "
                                                                       "result is lost and will be recomputed)")
    raise err from None


# ---------------------------------------------------------------------------------------------------------
# One writer per output directory

LOCK = ".dlnlab.lock"


def _owner(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 1 << 16, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _acquire(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive ``flock`` (retrying if the file was replaced)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise OutputLockedError(path.parent, owner) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # removed by the previous holder between our open and our lock
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def output_lock(directory: str | Path, command: str | None = None):
    """Hold the writer's lock of ``directory`` (created if needed, and removed again if still empty) while the
    block runs; raise
    :class:`OutputLockedError` naming the holder if a live process holds it. A lock left by a dead process is
    free (the kernel released it) and is taken over."""
    d = Path(directory)
    created = not d.exists()
    d.mkdir(parents=True, exist_ok=True)
    path = d / LOCK
    fd = _acquire(path)
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv),
             "started": datetime.datetime.now().isoformat(timespec="seconds")}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        yield owner
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding the lock: a waiting opener then retries on a fresh file
        os.close(fd)
        if created:  # a command refused before it wrote anything leaves no empty directory behind
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def writer(directory: str | Path, command: str | None = None):
    """Be the one writer of ``directory`` (:func:`output_lock`) while the block runs, and turn the ``OSError`` of a
    faulty output (:data:`IO_FAULTS`: disk full, permission denied, read-only, vanished) into an
    :class:`OutputError` naming what failed, the path and what to do."""
    try:
        with output_lock(directory, command):
            yield
    except OSError as exc:
        if exc.errno not in IO_FAULTS:
            raise
        raise output_error(exc, "writing the output", exc.filename or directory) from None
