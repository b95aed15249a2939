"""Shared pieces of the "beyond the papers" experiments (issue 16): claims rows against the cited works' closed
forms, and the power-test factors of their theory inputs.

* :func:`row` — one claims row (``paper`` a key of :data:`~dlnlab.experiments.claims.PAPERS`; ``source = "paper"``
  where the cited work states the result, ``"derived"`` for our own derivations);
* :func:`factors` — the factors of the theory inputs from ``params["perturb"]``: the experiments multiply an input
  by its factor only where they compute theory values, never in a simulation.
"""

from __future__ import annotations

import math

from ...config import ConfigError
from ..claims import Claim, setting


def factors(p: dict, allowed: tuple[str, ...]) -> dict:
    """``{input: factor}`` for every input of ``allowed`` (1 where ``p["perturb"]`` does not name it)."""
    pert = dict(p.get("perturb") or {})
    for name, f in pert.items():
        if name not in allowed:
            raise ConfigError("perturb", pert, "theory inputs among " + ", ".join(allowed))
        if not (isinstance(f, int | float) and math.isfinite(f) and f > 0):
            raise ConfigError(f"perturb.{name}", f, "a factor > 0")
    return {name: float(pert.get(name, 1.0)) for name in allowed}


def row(exp: str, key: str, *, paper: str, claim: str, quantity: str, theory: float, estimate, tolerance,
        kind: str = "measured", source: str = "paper", note: str = "", **params) -> Claim:
    """One claims row; ``params`` name its setting (``setting(**params)``)."""
    return Claim(experiment=exp, key=key, setting=setting(**params), paper=paper, claim=claim, quantity=quantity,
                 theory=float(theory), estimate=estimate, tolerance=tolerance, kind=kind, source=source, note=note)
