"""The models (the layer above :mod:`dlnlab.conventions`, below the engines): teachers and data, deep linear
networks, their gradients, gradient noise and observables; [Z]'s diagonal networks; the two-layer ReLU network.

Pure functions and small frozen objects; no simulation loop (that is :mod:`dlnlab.engines`).
"""

from .. import conventions, runtime  # noqa: F401  (first: the JAX set-up, see dlnlab/__init__)
from .diagonal import DataConstants, DiagonalModel, balanced_factors
from .network import Initializer, balancedness, end_to_end
from .observables import MODE_IMBALANCE, OFFDIAG_MAX, Observable, ReplicaParams
from .problem import Problem
from .relu import ReluTask
from .teacher import Dataset, Teacher, completion_mask

__all__ = [
    "MODE_IMBALANCE", "OFFDIAG_MAX", "DataConstants", "Dataset", "DiagonalModel", "Initializer", "Observable",
    "Problem", "ReluTask", "ReplicaParams", "Teacher", "balanced_factors", "balancedness", "completion_mask",
    "end_to_end",
]
