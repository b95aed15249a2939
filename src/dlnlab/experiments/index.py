"""The registry's index: the name, paper, claim and cost of every registered experiment (plugins included) and the
papers, without importing the experiment modules, so that ``dlnlab list``, the ``--paper`` check and shell
completion answer at once (importing the registry loads JAX, SciPy and Matplotlib: ~9 s on 2 busy cores).

The index is made by loading the registry (:data:`dlnlab.experiments.REGISTRY`) and cached as JSON in
:func:`cache_dir` under a key (:func:`index_key`) of the size and modification time of every Python file of
``dlnlab.experiments`` (where experiments register) and of each plugin's top-level package (the rule of Python's
own bytecode cache), the plugins' entry points and versions, and the versions of dlnlab and Python: an edit of
an experiment, an install or an upgrade makes a new key, and the first use after it costs one registry import. A cache that cannot be written is skipped (the index is then rebuilt each time).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import dlnlab  # (light: its names load on first use)

#: the entry-point group of plugins (the same as ``dlnlab.experiments.base.ENTRY_POINTS``, which this module does
#: not import: that module loads the registry's dependencies)
GROUP = "dlnlab.experiments"


class Entry(NamedTuple):
    """One registered experiment as ``dlnlab list`` shows it; ``plugin``: its entry point, ``""`` if built in."""

    name: str
    paper: str
    claim: str
    cost: str
    plugin: str


class Index(NamedTuple):
    papers: dict[str, str]  # key -> "authors (year) — title", as experiments.claims.PAPERS after loading
    experiments: tuple[Entry, ...]  # sorted by (paper, name)


def cache_dir() -> Path:
    """``$DLNLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/dlnlab``, else ``~/.cache/dlnlab``."""
    if os.environ.get("DLNLAB_CACHE_DIR"):
        return Path(os.environ["DLNLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlnlab"


def _python_files(package: str) -> list[tuple[str, int, int]]:
    spec = importlib.util.find_spec(package)  # a plugin's top-level name: found, not imported
    if spec is None:
        return [(package, -1, -1)]
    places = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    stats = []
    for place in places:
        if os.path.isfile(place):
            st = os.stat(place)
            stats.append((place, st.st_size, st.st_mtime_ns))
        for folder, dirs, files in os.walk(place):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    st = os.stat(path := os.path.join(folder, f))
                    stats.append((path, st.st_size, st.st_mtime_ns))
    return sorted(stats)


def index_key() -> str:
    """The cache key: a hash of the Python and dlnlab versions, the files (path, size, mtime) of
    ``dlnlab.experiments`` and of each plugin's top-level package, and the plugin entry points with their
    distributions' versions."""
    plugins = sorted((ep.name, ep.value, ep.dist.name if ep.dist else "", ep.dist.version if ep.dist else "")
                     for ep in importlib.metadata.entry_points(group=GROUP))
    roots = sorted({__package__, *(value.split(":")[0].split(".")[0] for _, value, _, _ in plugins)})
    parts = {"python": sys.version, "dlnlab": dlnlab.__version__, "plugins": plugins,
             "files": {root: _python_files(root) for root in roots}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def from_registry() -> Index:
    """The index of the loaded registry (imports every experiment module and plugin)."""
    from .base import REGISTRY
    from .claims import PAPERS

    entries = [Entry(e.name, e.paper, e.claim, e.cost, REGISTRY.plugins.get(e.name, "")) for e in REGISTRY.values()]
    return Index(dict(PAPERS), tuple(sorted(entries, key=lambda e: (e.paper, e.name))))  # PAPERS: after loading


def index() -> Index:
    """The index from the cache when it is current, else :func:`from_registry` (then cached)."""
    path = cache_dir() / f"registry-{index_key()}.json"
    try:
        data = json.loads(path.read_text())
        return Index(data["papers"], tuple(Entry(**e) for e in data["experiments"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    idx = from_registry()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"papers": idx.papers, "experiments": [e._asdict() for e in idx.experiments]}))
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    except OSError:
        pass
    return idx
