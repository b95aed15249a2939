"""Registered experiments (``dlnlab list`` / ``dlnlab run NAME``)."""

from .base import PAPERS, REGISTRY, Claim, Experiment, ExperimentResult, Figure, get, register, verdict

__all__ = ["PAPERS", "REGISTRY", "Claim", "Experiment", "ExperimentResult", "Figure", "get", "register", "verdict"]

from . import saxe  # noqa: E402,F401  (registers the experiment)
from . import stationary  # noqa: E402,F401  (registers "stationary" and "fokker_planck")
from . import noise_balance  # noqa: E402,F401  (registers the [Z] experiments: law_of_balance, …, infinite_depth)
from . import saddle_to_saddle  # noqa: E402,F401  (registers the [J] experiments: staircase, …, escape_directions)
from . import sgd_noise  # noqa: E402,F401  (registers mode_agreement, diffusion_peak, unaligned)
