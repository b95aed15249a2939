"""Crash-safe checkpoints of a running simulation: ``simulate(config, checkpoint=PATH)``.

A checkpoint is one ``.npz`` file holding only plain arrays and one JSON string (it is read with
``allow_pickle=False``: loading it never executes code):

* ``meta`` — JSON: format version, the *run hash* (below), the number of completed chunks;
* ``state_0, state_1, …`` — the leaves of the runner's carry after the last completed chunk (weights, step
  counter and divergence state for discrete dynamics; weights and accumulated solver statistics for flow);
* ``rec_NAME`` — every record of the completed chunks, ``(replica, t, …)``.

It is written atomically (a temporary file in the same directory, ``fsync``, ``os.replace``, ``fsync`` of the
directory), so a ``kill -9`` or a power cut leaves either the previous checkpoint or the new one, never half of
one. The run hash covers the resolved config (TOML), the names and dims of the recorded variables and any
explicit initial state; a checkpoint with another hash is an error (:class:`CheckpointError`), never
silently discarded or used.

Caveats: a user observable is identified by its name and dims only (a changed function with the same name is
not detected); bitwise identity of a resumed run with an uninterrupted one holds on the same machine, JAX
version and device — elsewhere the continuation is still a valid run of the same config.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import CheckpointError

FORMAT = 2


def run_hash(config_toml: str, variables: dict, weights=None) -> str:
    """Hash identifying a run: resolved config, recorded variables (name -> dims), explicit initial weights."""
    h = hashlib.sha256(f"dlnlab-checkpoint-{FORMAT}\n".encode())
    h.update(config_toml.encode())
    h.update(json.dumps({name: list(dims) for name, dims in variables.items()}, sort_keys=True).encode())
    if weights is not None:
        for w in weights:
            a = np.ascontiguousarray(np.asarray(w, dtype=np.float64))
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def write(path: str | Path, hash_: str, chunks_done: int, state: list, records: dict) -> None:
    """Atomically write the carry leaves ``state`` and the ``records`` of ``chunks_done`` completed chunks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "run_hash": hash_, "chunks_done": int(chunks_done), "n_state": len(state),
            "records": sorted(records)}
    arrays = {"meta": np.array(json.dumps(meta))}
    arrays.update({f"state_{i}": np.asarray(x) for i, x in enumerate(state)})
    arrays.update({f"rec_{name}": np.asarray(a) for name, a in records.items()})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read(path: str | Path, hash_: str) -> dict | None:
    """The checkpoint at ``path`` as ``{"chunks_done", "state", "records"}``, or ``None`` if there is none.

    Raises :class:`CheckpointError` if it cannot be read or belongs to another run."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            if meta.get("format") != FORMAT:
                raise CheckpointError(path, f"format {meta.get('format')!r}, expected {FORMAT}")
            if meta["run_hash"] != hash_:
                raise CheckpointError(path, "written by a different run (config, observables or initial weights "
                                            "differ); delete it to start afresh, or write elsewhere")
            state = [z[f"state_{i}"] for i in range(meta["n_state"])]
            records = {name: z[f"rec_{name}"] for name in meta["records"]}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported as such, with its path
        raise CheckpointError(path, f"unreadable ({type(exc).__name__}: {exc}); delete it to start afresh") from None
    return {"chunks_done": int(meta["chunks_done"]), "state": state, "records": records}


def peek(path: str | Path) -> int | None:
    """The number of completed chunks in the checkpoint at ``path``; ``None`` if there is none or it is
    unreadable (:func:`read` then says why)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(json.loads(str(z["meta"][()]))["chunks_done"])
    except Exception:  # noqa: BLE001
        return None


def remove(path: str | Path) -> None:
    """Delete the checkpoint at ``path`` and any temporary file a killed writer left beside it."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # not supported on this platform / filesystem
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
