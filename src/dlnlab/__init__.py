"""dlnlab: simulate and analyse the training dynamics of deep linear networks.

Public API::

    import dlnlab
    cfg = dlnlab.load_config("run.toml", ["dynamics.lr=0.02"])
    ds = dlnlab.simulate(cfg)                # any simulator: xarray.Dataset (replica, t, mode, ...)
    program = dlnlab.build(cfg)              # its compiled Program: init() / step(state) / run(state, records)
    dlnlab.save(ds, "run.zarr"); ds = dlnlab.load("run.zarr")

``import dlnlab`` is light (the command line answers at once): the names above load on first use, and with them
the JAX set-up (float64, one CPU device per core, see :mod:`dlnlab.runtime`), which every package that uses JAX
also does first when it is imported directly. To have that set-up before touching JAX yourself, use a name of
dlnlab first or ``import dlnlab.runtime``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: every public name and the submodule it comes from (imported on first use of any of them)
_EXPORTS = {
    "analysis": None, "theory": None,  # submodules
    "Config": "config", "ConfigError": "config", "load_config": "config",
    "build": "engines", "simulate": "engines",
    "CheckpointError": "errors", "CorruptDatasetError": "errors", "DlnlabError": "errors", "Interrupted": "errors",
    "Dataset": "model", "DiagonalModel": "model", "Initializer": "model", "Observable": "model", "Problem": "model",
    "ReluTask": "model", "ReplicaParams": "model", "Teacher": "model",
    "balancedness": "model.network", "end_to_end": "model.network",
    "export_netcdf": "storage", "load": "storage", "save": "storage",
    "sweep": "sweep", "sweep_function": "sweep",
}

if TYPE_CHECKING:  # the same names for static tools (type checkers, the API reference)
    from . import analysis, theory
    from .config import Config, ConfigError, load_config
    from .engines import build, simulate
    from .errors import CheckpointError, CorruptDatasetError, DlnlabError, Interrupted
    from .model import Dataset, DiagonalModel, Initializer, Observable, Problem, ReluTask, ReplicaParams, Teacher
    from .model.network import balancedness, end_to_end
    from .storage import export_netcdf, load, save
    from .sweep import sweep, sweep_function

__all__ = [
    "CheckpointError", "Config", "ConfigError", "CorruptDatasetError", "Dataset", "DiagonalModel", "DlnlabError",
    "Initializer", "Interrupted", "Observable", "Problem", "ReluTask", "ReplicaParams", "Teacher", "analysis",
    "balancedness", "build", "end_to_end", "export_netcdf", "load", "load_config", "save", "simulate", "sweep",
    "sweep_function", "theory",
]


def __getattr__(name: str):
    """Load the public API on first use: the JAX set-up first, the ``ds.dln`` accessor, then every name."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dlnlab' has no attribute {name!r}")
    importlib.import_module(".runtime", __name__)
    importlib.import_module(".conventions", __name__)
    importlib.import_module(".analysis.accessor", __name__)  # registers the ds.dln accessor
    for key, module in _EXPORTS.items():
        source = importlib.import_module(f".{module or key}", __name__)
        globals()[key] = source if module is None else getattr(source, key)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _Package(types.ModuleType):
    """``dlnlab`` itself: importing the subpackage ``dlnlab.sweep`` leaves ``dlnlab.sweep`` the function (as
    the eager import did), since the import system would otherwise bind the submodule to the public name."""

    def __setattr__(self, name, value):
        if not (isinstance(value, types.ModuleType) and _EXPORTS.get(name) is not None):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
