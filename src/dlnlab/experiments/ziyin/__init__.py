"""[Z] Ziyin, Li & Ueda — noise balance and stationary distributions of SGD (``noise_balance.md``): one module per
registered experiment, each simulate → estimate → claims → figures; shared pieces in :mod:`._common`."""

from . import (
    diagonal_stationary,  # noqa: F401
    discrete_collapse,  # noqa: F401
    fluctuation_inversion,  # noqa: F401
    infinite_depth,  # noqa: F401
    law_of_balance,  # noqa: F401
    noise_balance_dln,  # noqa: F401
    phase_diagram,  # noqa: F401
    power_law_tails,  # noqa: F401
    relu_balance,  # noqa: F401
    sign_selection,  # noqa: F401
    width_independence,  # noqa: F401
)
