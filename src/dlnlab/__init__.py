"""dlnlab: simulate and analyse the training dynamics of deep linear networks.

Public API::

    import dlnlab
    cfg = dlnlab.load_config("run.toml", ["dynamics.lr=0.02"])
    ds = dlnlab.simulate(cfg)                # xarray.Dataset (replica, t, mode, ...)
    dlnlab.save(ds, "run.zarr"); ds = dlnlab.load("run.zarr")
"""

from . import runtime  # noqa: F401, I001  (first: JAX set-up before anything initialises its backends)
from . import (
    analysis,  # saddle/plateau analysis of trajectories (creates no JAX arrays at import)
    conventions,  # noqa: F401  (enables float64 before anything else touches JAX)
    theory,
)
from .analysis import accessor  # noqa: F401  (registers the ds.dln accessor)
from .checkpoint import CheckpointError
from .config import Config, ConfigError, load_config
from .dynamics import simulate
from .network import Initializer, balancedness, end_to_end
from .observables import Observable, ReplicaParams
from .problem import Problem
from .storage import CorruptDatasetError, export_netcdf, load, save
from .sweep import sweep, sweep_function
from .teacher import Dataset, Teacher

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "CorruptDatasetError",
    "Dataset",
    "Initializer",
    "Observable",
    "Problem",
    "ReplicaParams",
    "Teacher",
    "analysis",
    "balancedness",
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
