"""The modules that register the built-in experiments, imported when the registry is first used
(:meth:`dlnlab.experiments.base.Registry.load`). A new experiment module is added here."""

from . import (
    beyond,  # noqa: F401  (registers the experiments past the three papers, issue 16: diagonal_saddles, …)
    corlouer,  # noqa: F401  (registers the [C] experiments: mode_agreement, …, fokker_planck)
    jacot,  # noqa: F401  (registers the [J] experiments: staircase, phase_transition, …, escape_directions)
    saxe,  # noqa: F401  (registers the experiment)
    ziyin,  # noqa: F401  (registers the [Z] experiments: law_of_balance, …, infinite_depth)
)
