"""The report's view of a claims row: one flat record for either row type, and the counts by kind and verdict."""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from ..experiments.base import Claim as OldClaim
from ..experiments.claims import KINDS, VERDICTS, Claim, tally

#: the kind shown for an old ``experiments.base.Claim`` row (hand-written verdict; being migrated, never counted)
UNMIGRATED = "unmigrated"
_NOT_ID = re.compile(r"[^A-Za-z0-9_.\-]+")


class Row(NamedTuple):
    """One row of the claims table as the report shows it. ``anchor``: its HTML id in its experiment's section;
    ``interval``: the ``1 − 2α`` confidence interval (computed rows) or ``None``; ``alpha``: NaN for old rows."""

    id: str
    anchor: str
    experiment: str
    paper: str
    kind: str
    source: str
    claim: str
    quantity: str
    setting: str
    theory: float
    value: float
    uncertainty: float
    alpha: float
    interval: tuple | None
    method: str
    n: int | None
    tolerance: str
    verdict: str
    note: str


def rows_of(claims: list) -> list[Row]:
    """The rows of ``claims`` (computed :class:`~dlnlab.experiments.claims.Claim` or old rows), with unique anchors."""
    rows, seen = [], set()
    for i, c in enumerate(claims):
        if isinstance(c, Claim):
            anchor = "row-" + _NOT_ID.sub("_", c.id)
            row = Row(c.id, anchor, c.experiment, c.paper, c.kind, c.source, c.claim, c.quantity, c.setting,
                      c.theory, c.value, c.uncertainty, c.tolerance.alpha, (c.evidence.lower, c.evidence.upper),
                      c.estimate.method, c.estimate.n, str(c.tolerance), c.verdict, c.note)
        elif isinstance(c, OldClaim):
            row = Row("", f"row-{c.experiment}-old{i}", c.experiment, c.paper, UNMIGRATED, "", c.claim, c.quantity,
                      "", c.theory, c.value, c.uncertainty, math.nan, None, "", None, c.tolerance, c.verdict, "")
        else:
            raise TypeError(f"claims row {i}: {type(c).__name__}; allowed: experiments.claims.Claim (or an old "
                            "experiments.base.Claim during the migration)")
        anchor = row.anchor
        while anchor in seen:
            anchor += "_"
        seen.add(anchor)
        rows.append(row._replace(anchor=anchor))
    return rows


class Counts(NamedTuple):
    """``by_kind[kind][verdict]`` (``kind`` one of :data:`~dlnlab.experiments.claims.KINDS` or :data:`UNMIGRATED`),
    ``expected_false_fails`` (Σα over the judged measured rows, :func:`~dlnlab.experiments.claims.tally`) and the ids
    of the inconclusive rows."""

    by_kind: dict
    expected_false_fails: float
    inconclusive: tuple


def counts(claims: list) -> Counts:
    """Counts by kind and verdict of a mixed claims list (computed rows through ``claims.tally``)."""
    t = tally(c for c in claims if isinstance(c, Claim))
    old = dict.fromkeys(VERDICTS, 0)
    for c in claims:
        if not isinstance(c, Claim):
            old[c.verdict] += 1
    return Counts({**t.counts, UNMIGRATED: old}, t.expected_false_fails, t.inconclusive)


def hold_line(by_verdict: dict) -> str:
    """``"12 of 15 hold, 1 fails, 2 inconclusive"`` (zero counts left out; "N of M" over every verdict)."""
    n = sum(by_verdict.values())
    parts = [f"{by_verdict['holds']} of {n} hold"]
    parts += [f"{by_verdict[v]} {'fail' if v == 'fails' else v}" for v in VERDICTS[1:] if by_verdict[v]]
    return ", ".join(parts)


def summary(claims: list) -> str:
    """One line for the terminal: measured rows (N of M hold, Σα), theory self-checks, beyond, old rows."""
    c = counts(claims)
    label = {"measured": "measured rows", "theory": "theory self-checks", "beyond": "beyond the papers"}
    parts = [f"{label[k]}: {hold_line(c.by_kind[k])}" + (
        f" (expected false fails Σα = {c.expected_false_fails:.2f})" if k == "measured" else "")
        for k in KINDS if sum(c.by_kind[k].values())]
    n_old = sum(c.by_kind[UNMIGRATED].values())
    if n_old:
        parts.append(f"{n_old} old rows with hand-written verdicts, not counted (being migrated)")
    return "; ".join(parts) or "no claims"
