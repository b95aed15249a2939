"""[C] Corlouer et al. (2026), SGD in the saddle-to-saddle regime: one module per registered experiment
(``sgd_noise.md``; every formula is our derivation, ``source = "derived"``)."""

from . import (
    diffusion_peak,  # noqa: F401  (registers "diffusion_peak")
    fokker_planck,  # noqa: F401  (registers "fokker_planck")
    mode_agreement,  # noqa: F401  (registers "mode_agreement")
    stationary,  # noqa: F401  (registers "stationary")
    unaligned,  # noqa: F401  (registers "unaligned")
)
