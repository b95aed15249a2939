"""Analysis of recorded trajectories (``xarray.Dataset`` from :func:`dlnlab.simulate`)."""

from .. import conventions, runtime  # noqa: F401  (first: the JAX set-up, see dlnlab/__init__)
from . import accessor  # noqa: F401  (registers ds.dln wherever the analysis layer is used, not only via dlnlab.X)
from .saddles import (
    crossover,
    escape_vectors,
    fit_escape_law,
    gd_displacement,
    layer_operator_norms,
    minima_distance_bound,
    origin_hessian,
    plateau_table,
    saddle_distance,
    summarize_plateaus,
)

__all__ = [
    "crossover",
    "escape_vectors",
    "fit_escape_law",
    "gd_displacement",
    "layer_operator_norms",
    "minima_distance_bound",
    "origin_hessian",
    "plateau_table",
    "saddle_distance",
    "summarize_plateaus",
]
