"""[J] Jacot, Ged, Şimşek, Hongler & Gabriel — saddle-to-saddle dynamics of deep linear networks
(``saddle_to_saddle.md``): one module per registered experiment, each simulate → estimate → claims → figures;
shared pieces in :mod:`._common` (every formula beyond the abstract is ours, ``source = "derived"``)."""

from . import (
    escape_directions,  # noqa: F401  (registers "escape_directions")
    escape_times,  # noqa: F401  (registers "escape_times")
    phase_transition,  # noqa: F401  (registers "phase_transition")
    sparsity,  # noqa: F401  (registers "sparsity")
    staircase,  # noqa: F401  (registers "staircase")
)
