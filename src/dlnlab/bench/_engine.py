"""The engine's compiled programs (:func:`dlnlab.engines.build`), run whole so that compilation can be excluded
from timings. The per-mode engine caches its programs, so :func:`dlnlab.engines.simulate_modes` is timed directly
by the workloads."""

from __future__ import annotations

import numpy as np

from ..engines import build
from ..errors import ConfigError


def whole_run(config):
    """``(run, program)``: ``run()`` advances :meth:`~dlnlab.engines.Program.init`'s state through every record of ``config`` in one
    compiled call and returns ``(state, observations)`` (records after t = 0, ``(replica, record, …)``)."""
    program = build(config)
    if program.grid.per_replica:
        raise ConfigError("dynamics.lr", config.dynamics.lr, "one step size for a bench run")
    state = program.init()
    records = np.arange(1, len(program.grid.t))
    return (lambda: program.run(state, records)), program
