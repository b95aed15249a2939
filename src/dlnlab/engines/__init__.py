"""The simulators, on one engine core (:mod:`._core`): the deep linear network (:mod:`.network`), its per-mode
reduction (:mod:`.modes`), [Z]'s diagonal network (:mod:`.diagonal`), the two-layer ReLU network (:mod:`.relu`) and
the diagonal network for sparse regression (:mod:`.regression`). Each is configured by a
:class:`~dlnlab.config.Config` whose model section names it.

Public API::

    ds = simulate(config)                 # run any config: xarray.Dataset (replica, t, ...)
    program = build(config)               # its compiled Program: init() -> State, step(state), run(state, records)
    state = program.init()
    state, obs = program.run(state, np.arange(1, len(program.grid.t)))   # a RunResult(state, observations)
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from .. import conventions, runtime  # noqa: F401  (first: the JAX set-up, see dlnlab/__init__)
from ..config import Config
from ..errors import ConfigError, Interrupted
from ..model.observables import Observable
from . import diagonal, modes, network, regression, relu
from ._core import (
    Program,
    ProgressMeter,
    RecordGrid,
    Replicas,
    RunResult,
    TqdmProgress,
    chunks,
    execute,
    keep_runs,
    nominal_times,
    provenance,
    record_grid,
    total_time,
)
from ._flow import FlowState, StiffFlowState
from .diagonal import DiagonalState, diagonal_config, simulate_diagonal
from .modes import ModesState, as_network, mode_config, reduce_to_modes, simulate_modes
from .network import DiscreteState, make_step
from .regression import RegressionState, regression_config, simulate_regression
from .relu import ReluState, relu_config, simulate_relu

_BUILDERS = {"network": network.build, "modes": modes.build, "diagonal": diagonal.build, "relu": relu.build,
             "regression": regression.build}


def build(config: Config, observables: list[Observable] | None = None, weights=None) -> Program:
    """The compiled :class:`Program` of ``config`` (any model). ``observables``: extra user observables (network
    model only); ``weights``: an explicit initial state replacing the config's (network: ``(W_1, …, W_L)``;
    modes: per-layer values ``(L, n_modes)``; diagonal: factors ``(n_paths, depth)``; relu: ``(W₁, W₂)``;
    regression: factors ``(2, d)``; each
    either shared or with a leading replica axis)."""
    if not isinstance(config, Config):
        raise ConfigError("config", config, "a dlnlab.Config (Config.from_dict, Config.of or load_config)")
    if observables and config.model != "network":
        raise ConfigError("observables", [o.name for o in observables],
                          f"none for the {config.model} simulator (it records a fixed set of variables)")
    if config.model == "network":
        return network.build(config, observables, weights)
    return _BUILDERS[config.model](config, weights)


def simulate(config: Config, *, observables: list[Observable] | None = None, weights=None, progress=None,
             checkpoint: str | Path | None = None, checkpoint_every: float = 60.0) -> xr.Dataset:
    """Run the ensemble described by ``config`` (any simulator) and return its recorded variables.

    Parameters
    ----------
    config : a validated :class:`~dlnlab.config.Config`; its model section chooses the simulator.
    observables : extra user :class:`~dlnlab.model.observables.Observable` objects, recorded beside
        ``config.record.observables`` (network model).
    weights : an explicit initial state replacing the config's (see :func:`build`).
    progress : ``True``, ``False``, ``None`` (a progress bar when stderr is a terminal) or a
        :class:`ProgressMeter` (``start(total, description)``, ``update(n)``, ``close()``).
    checkpoint : path of a checkpoint file (``.npz``, see :mod:`dlnlab.checkpoint`). After a compiled chunk
        (``record.chunks``), at most every ``checkpoint_every`` seconds (``0``: after every chunk), and on
        ``KeyboardInterrupt``, the state and the records so far are written there atomically. If the
        file exists when ``simulate`` starts, the run resumes from it, skipping the completed chunks: random
        numbers are drawn per step (``fold_in(key, step)``), so the result is bitwise identical to an
        uninterrupted run (same machine and JAX version; wall-time attrs aside). A checkpoint of another
        run (config, recorded variables, initial state) raises :class:`~dlnlab.errors.CheckpointError`.
        ``simulate`` leaves the file in place: delete it (:func:`dlnlab.checkpoint.remove`) once the
        result is saved, as ``dlnlab train`` does.

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t`` (continuous time; ``step`` coordinate) and the
    simulator's own (network: ``mode``, ``sv``, ``layer``, ``layer_pair``); replica coordinates for every
    hyper-parameter; the resolved config, seed and versions in ``attrs``. On ``KeyboardInterrupt`` it
    raises :class:`~dlnlab.errors.Interrupted`, whose ``.partial`` dataset holds every record completed so far.
    """
    program = build(config, observables, weights)
    return execute(program, progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                   weights=weights)


__all__ = [
    "DiagonalState", "DiscreteState", "FlowState", "Interrupted", "ModesState", "Program", "ProgressMeter",
    "RecordGrid", "RegressionState", "ReluState", "Replicas", "RunResult", "StiffFlowState", "TqdmProgress",
    "as_network", "build", "chunks", "diagonal_config", "execute", "keep_runs", "make_step", "mode_config", "nominal_times", "provenance", "record_grid",
    "reduce_to_modes", "regression_config", "relu_config", "simulate", "simulate_diagonal", "simulate_modes",
    "simulate_regression", "simulate_relu", "total_time",
]
