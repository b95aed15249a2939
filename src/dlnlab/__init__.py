"""dlnlab: simulate and analyse the training dynamics of deep linear networks.

Public API::

    import dlnlab
    cfg = dlnlab.load_config("run.toml", ["dynamics.lr=0.02"])
    ds = dlnlab.simulate(cfg)                # any simulator: xarray.Dataset (replica, t, mode, ...)
    program = dlnlab.build(cfg)              # its compiled Program: init() / step(state) / run(state, records)
    dlnlab.save(ds, "run.zarr"); ds = dlnlab.load("run.zarr")
"""

from . import runtime  # noqa: F401, I001  (first: JAX set-up before anything initialises its backends)
from . import (
    analysis,  # saddle/plateau analysis of trajectories (creates no JAX arrays at import)
    conventions,  # noqa: F401  (enables float64 before anything else touches JAX)
    theory,
)
from .analysis import accessor  # noqa: F401  (registers the ds.dln accessor)
from .config import Config, ConfigError, load_config
from .engines import build, simulate
from .errors import CheckpointError, CorruptDatasetError, DlnlabError, Interrupted
from .model import Dataset, DiagonalModel, Initializer, Observable, Problem, ReluTask, ReplicaParams, Teacher
from .model.network import balancedness, end_to_end
from .storage import export_netcdf, load, save
from .sweep import sweep, sweep_function

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "CorruptDatasetError",
    "Dataset",
    "DiagonalModel",
    "DlnlabError",
    "Initializer",
    "Interrupted",
    "Observable",
    "Problem",
    "ReluTask",
    "ReplicaParams",
    "Teacher",
    "analysis",
    "balancedness",
    "build",
    "end_to_end",
    "export_netcdf",
    "load",
    "load_config",
    "save",
    "simulate",
    "sweep",
    "sweep_function",
    "theory",
]
