"""Past the three papers (issue 16): one module per registered experiment, held against the closed forms of the
cited works (``PAPERS``): saddle to saddle in diagonal networks, the edge of stability, lazy vs rich."""

from . import (
    diagonal_saddles,  # noqa: F401  (registers "diagonal_saddles")
    edge_of_stability,  # noqa: F401  (registers "edge_of_stability")
    lazy_rich,  # noqa: F401  (registers "lazy_rich")
)
