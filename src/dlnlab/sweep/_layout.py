"""The sweep's output directory: atomic JSON files and the status of a run read from what is on disk
(``runs/ID/run.json`` marks a complete run, ``failed/ID.json`` a failed one, ``attempts/ID/*.json`` open attempts)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def is_done(out: Path, rid: str) -> bool:
    return (Path(out) / "runs" / rid / "run.json").is_file()


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_status(out: Path, rid: str) -> str:
    if is_done(out, rid):
        return "done"
    if (out / "failed" / f"{rid}.json").is_file():
        return "failed"
    adir = out / "attempts" / rid
    if adir.is_dir() and any(read_json(p).get("ended") is None for p in adir.glob("*.json")):
        return "started"
    return "pending"

