"""Shared pieces of the "beyond the papers" experiments (issue 16): claims rows against the cited works' closed
forms (the power-test factors of their theory inputs come from :func:`dlnlab.experiments.base.theory_factors`).

* :func:`row` — one claims row (``paper`` a key of :data:`~dlnlab.experiments.claims.PAPERS`; ``source = "paper"``
  where the cited work states the result, ``"derived"`` for our own derivations);

The experiments multiply a theory input by its factor only where they compute theory values, never in a simulation.
"""

from __future__ import annotations

from ..claims import Claim, setting


def row(exp: str, key: str, *, paper: str, claim: str, quantity: str, theory: float, estimate, tolerance,
        kind: str = "measured", source: str = "paper", note: str = "", **params) -> Claim:
    """One claims row; ``params`` name its setting (``setting(**params)``)."""
    return Claim(experiment=exp, key=key, setting=setting(**params), paper=paper, claim=claim, quantity=quantity,
                 theory=float(theory), estimate=estimate, tolerance=tolerance, kind=kind, source=source, note=note)
