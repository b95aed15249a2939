"""Registered experiments (``dlnlab list`` / ``dlnlab run NAME``).

The package is light: its names load on first use, and :data:`REGISTRY` imports the experiment modules (those of
``_builtin.py``, then the plugins of the entry-point group ``dlnlab.experiments``, see ``docs/plugins.md``) the
first time it is read. :mod:`dlnlab.experiments.index` lists them without importing them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: every public name and the module it comes from
_EXPORTS = {
    "PAPERS": "claims", "VERDICTS": "claims",
    "ENTRY_POINTS": "base", "REGISTRY": "base", "Claim": "base", "Experiment": "base", "ExperimentResult": "base",
    "Figure": "base", "Perturbation": "base", "Registry": "base", "get": "base", "register": "base",
    "register_paper": "base", "verdict": "base",
}

if TYPE_CHECKING:  # the same names for static tools (type checkers, the API reference)
    from .base import (
        ENTRY_POINTS,
        REGISTRY,
        Claim,
        Experiment,
        ExperimentResult,
        Figure,
        Perturbation,
        Registry,
        get,
        register,
        register_paper,
        verdict,
    )
    from .claims import PAPERS, VERDICTS

__all__ = ["ENTRY_POINTS", "PAPERS", "REGISTRY", "VERDICTS", "Claim", "Experiment", "ExperimentResult", "Figure",
           "Perturbation", "Registry", "get", "register", "register_paper", "verdict"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dlnlab.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
