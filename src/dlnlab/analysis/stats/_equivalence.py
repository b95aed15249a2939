"""Equivalence: does an estimate agree with a theory value within a tolerance band — the one verdict rule."""

from __future__ import annotations

import math
from typing import NamedTuple

from ...errors import ConfigError
from ._estimate import ALPHA, Estimate, RecordedLaw

VERDICTS = ("holds", "fails", "inconclusive", "not applicable")


class Evidence(NamedTuple):
    """What a verdict is computed from. ``lower``/``upper``: one-sided ``1 − α`` confidence bounds of the estimand;
    ``sdd_lower``/``sdd_upper``: the smallest detectable difference below/above the theory value at false-fail rate
    ``α`` (``nan`` where the band has no edge on that side)."""

    lower: float
    upper: float
    sdd_lower: float
    sdd_upper: float


def evidence(estimate: Estimate, band: tuple[float, float], alpha: float) -> Evidence:
    """Bounds and smallest detectable differences of ``estimate`` for a tolerance ``band = (lo, hi)`` (edges may be
    ``∓inf``) at false-fail rate ``alpha``.

    With ``ℓ(a), u(a)`` the one-sided ``1 − a`` bounds, the hold test uses ``ℓ(α), u(α)``. If the estimand equals the
    theory value ``θ``, the estimate errs downward by more than ``value − ℓ(a)`` with probability ``≤ a``, so
    ``u(α) > θ + δ`` (a fail through the upper edge) has probability ``≤ a`` once ``δ ≥ u(α) − ℓ(a)``::

        sdd_upper = u(α) − ℓ(α_s),   sdd_lower = u(α_s) − ℓ(α),   α_s = α/2 (two edges) or α (one edge)

    (for a t-law both are ``(t_{1−α} + t_{1−α_s})·SE``; for a one-sample KS distance, exactly ``2·kstwo.isf(α, n)``;
    for Wilson and bootstrap laws the widths at the estimate stand in for those at ``θ``, a plug-in)."""
    if isinstance(estimate.law, RecordedLaw):
        if estimate.law.alpha != alpha:
            raise ConfigError("alpha", alpha, f"the recorded estimate's alpha = {estimate.law.alpha!r} (it keeps "
                                              "only the evidence it was judged on)")
        return Evidence(*estimate.law.evidence)
    lo_edge, hi_edge = band
    alpha_side = alpha / 2.0 if math.isfinite(lo_edge) and math.isfinite(hi_edge) else alpha
    lo, hi = estimate.bounds(alpha)
    lo_s, hi_s = estimate.bounds(alpha_side)
    return Evidence(lo, hi, hi_s - lo if math.isfinite(lo_edge) else math.nan,
                    hi - lo_s if math.isfinite(hi_edge) else math.nan)


def decide(value: float, theory: float, band: tuple[float, float], ev: Evidence) -> str:
    """The verdict of an estimate against a tolerance band (TOST-style equivalence; one rule for every claim).

    1. ``not applicable`` — no estimate (``value`` is NaN) or no band (a theory-relative band with ``θ`` NaN).
    2. ``holds`` — the whole confidence interval lies in the band: ``lo ≤ ℓ(α)`` and ``u(α) ≤ hi``. Two one-sided
       tests at level ``α``: if the estimand lies outside the band, ``holds`` has probability ``≤ α``.
    3. ``fails`` — the interval lies wholly outside the band (``u(α) < lo`` or ``ℓ(α) > hi``: a violation shown at
       level ``α``, whatever the truth inside the band), or the run *resolves* its tolerance — every finite edge is
       at least the smallest detectable difference away from ``θ`` (``θ − lo ≥ sdd_lower``, ``hi − θ ≥ sdd_upper``) —
       and 2 did not hold. Either way an estimand equal to ``θ`` fails with probability ``≤ α``.
    4. ``inconclusive`` — otherwise: the interval straddles an edge and the run is too noisy for its tolerance
       (or the claim has no theory value, only a threshold), so a fail would not be a controlled statement.

    A zero-width tolerance (a pure test of ``θ``) can give ``fails`` or ``inconclusive``, never ``holds``:
    not rejecting is not agreeing."""
    lo_edge, hi_edge = band
    if math.isnan(value) or math.isnan(lo_edge) or math.isnan(hi_edge):
        return "not applicable"
    if lo_edge <= ev.lower and ev.upper <= hi_edge:
        return "holds"
    if ev.upper < lo_edge or ev.lower > hi_edge:
        return "fails"
    resolved = (math.isfinite(theory) and (lo_edge == -math.inf or theory - lo_edge >= ev.sdd_lower)
                and (hi_edge == math.inf or hi_edge - theory >= ev.sdd_upper))
    return "fails" if resolved else "inconclusive"


def equivalence(estimate: Estimate, theory: float, band: tuple[float, float], alpha: float):
    """``(verdict, evidence)`` of ``estimate`` against ``theory`` within ``band`` at false-fail rate ``alpha``
    (:func:`evidence`, then :func:`decide`)."""
    lo_edge, hi_edge = band
    if lo_edge > hi_edge or (lo_edge == -math.inf and hi_edge == math.inf):
        raise ConfigError("band", band, "(lo, hi) with lo ≤ hi, not both infinite")
    alpha = ALPHA.check("alpha", alpha)
    ev = evidence(estimate, band, alpha) if not math.isnan(estimate.value) else Evidence(*(math.nan,) * 4)
    return decide(estimate.value, theory, band, ev), ev
