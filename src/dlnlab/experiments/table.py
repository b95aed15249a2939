"""The claims table: one flat view of a row of either type, counts by kind and verdict, and the HTML tables of rows
(beside an experiment's figures, the full filterable table, a result in a notebook).

Every string from a result (claims, settings, notes, tolerances) is HTML-escaped here."""

from __future__ import annotations

import html
import math
import re
from typing import NamedTuple

from .base import Claim as OldClaim
from .claims import KINDS, VERDICTS, Claim, tally

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


#: the claims-table rules, scoped to ``.dlnlab`` so that a notebook's page keeps its own styles
TABLE_CSS = """
.dlnlab table{border-collapse:collapse;width:100%;font-size:.8rem;margin:.4rem 0;table-layout:fixed}
.dlnlab th,.dlnlab td{border:1px solid #ddd;padding:.2rem .35rem;text-align:left;vertical-align:top;
overflow-wrap:break-word}
.dlnlab th{background:#f3f3f3;font-weight:600}
.dlnlab td.num{text-align:right;font-variant-numeric:tabular-nums}
.dlnlab tr.g td{background:#fafafa;color:#333;font-style:italic}
.dlnlab .v{font-weight:600}
.dlnlab .v-holds{background:#e3f3e6;color:#0f5a25} .dlnlab .v-fails{background:#fbe1e3;color:#9b0c16}
.dlnlab .v-inconclusive{background:#fff1c7;color:#6d4600} .dlnlab .v-not-applicable{background:#eeeeee;color:#555}
.dlnlab .v-none{background:#f6f6f6;color:#666}
.dlnlab .k-unmigrated{color:#9b0c16}
.dlnlab small{color:#555}
"""

COMPACT = (("verdict", 14), ("kind · source", 13), ("quantity", 27), ("setting", 14), ("θ", 9),
           ("estimate ± SE", 16), ("α", 7))
FULL = (("verdict", 9), ("paper", 5), ("experiment", 10), ("kind", 8), ("source", 7), ("quantity", 15), ("setting", 10),
        ("θ", 6), ("estimate ± SE", 9), ("α", 4), ("tolerance", 11), ("note", 6))


def esc(x) -> str:
    """``x`` as HTML text (quotes escaped too)."""
    return html.escape(str(x), quote=True)


def fmt_num(x) -> str:
    """A number in 4 significant digits (– for NaN, ±∞), anything else escaped."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return esc(x)
    x = float(x)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.4g}"


def vclass(verdict: str) -> str:
    """The CSS class of a verdict (``v-holds``, ``v-not-applicable``, …; ``v-none``: nothing measured)."""
    return "v-" + verdict.replace(" ", "-")


def verdict_cell(r: Row) -> str:
    return f"<td class='v {vclass(r.verdict)}' title='{esc(r.tolerance)}'>{esc(r.verdict)}</td>"


def estimate_cell(r: Row) -> str:
    title = "" if r.interval is None else (f"{100 * (1 - 2 * r.alpha):g} % interval [{fmt_num(r.interval[0])}, "
                                            f"{fmt_num(r.interval[1])}]; n = {r.n}; {r.method}")
    return f"<td class='num' title='{esc(title)}'>{fmt_num(r.value)} ± {fmt_num(r.uncertainty)}</td>"


def _head(cols) -> str:
    group = "".join(f"<col style='width:{w}%'>" for _, w in cols)
    return f"<colgroup>{group}</colgroup><thead><tr>{''.join(f'<th>{esc(c)}</th>' for c, _ in cols)}</tr></thead>"


def _group(claim: str, n_cols: int, attrs: str = "") -> str:
    return f"<tr class='g'{attrs}><td colspan='{n_cols}'>{esc(claim)}</td></tr>"


def compact_table(rows: list[Row], *, anchors: bool = True, experiment: bool = False) -> str:
    """Verdict, kind and source, quantity (its note below), setting, θ, estimate ± SE, α; a group row per claim.
    ``anchors``: give each row its HTML id; ``experiment``: an experiment column (rows of several experiments)."""
    cols = (COMPACT[:1] + (("experiment", 12),) + COMPACT[1:]) if experiment else COMPACT
    body, last = [], None
    for r in rows:
        if (r.experiment, r.claim) != last:
            body.append(_group(r.claim, len(cols)))
            last = (r.experiment, r.claim)
        exp = f"<td><a href='#exp-{esc(r.experiment)}'>{esc(r.experiment)}</a></td>" if experiment else ""
        note = f"<br><small>{esc(r.note)}</small>" if r.note else ""
        rid = f" id='{esc(r.anchor)}'" if anchors else ""
        body.append(f"<tr{rid}>{verdict_cell(r)}{exp}<td class='k-{esc(r.kind)}'>{esc(r.kind)}<br><small>"
                    f"{esc(r.source or '–')}</small></td><td>{esc(r.quantity)}{note}</td><td>{esc(r.setting)}</td>"
                    f"<td class='num'>{fmt_num(r.theory)}</td>{estimate_cell(r)}<td class='num'>{fmt_num(r.alpha)}</td></tr>")
    return f"<table>{_head(cols)}<tbody>{''.join(body)}</tbody></table>"


def _data(r: Row) -> str:
    return (f" data-paper='{esc(r.paper)}' data-kind='{esc(r.kind)}' data-verdict='{esc(r.verdict)}' "
            f"data-experiment='{esc(r.experiment)}'")


def full_table(rows: list[Row]) -> str:
    """Every row, one column each for paper, experiment, kind, source, quantity, setting, θ, estimate, α, tolerance
    and note; rows carry ``data-*`` attributes for the filters, group rows the claim text."""
    body, last = [], None
    for r in rows:
        if (r.experiment, r.claim) != last:
            body.append(_group(r.claim, len(FULL)))
            last = (r.experiment, r.claim)
        body.append(
            f"<tr id='t-{esc(r.anchor)}'{_data(r)}>{verdict_cell(r)}<td>{esc(r.paper)}</td>"
            f"<td><a href='#{esc(r.anchor)}'>{esc(r.experiment)}</a></td><td class='k-{esc(r.kind)}'>{esc(r.kind)}</td>"
            f"<td>{esc(r.source or '–')}</td><td>{esc(r.quantity)}</td><td>{esc(r.setting)}</td>"
            f"<td class='num'>{fmt_num(r.theory)}</td>{estimate_cell(r)}<td class='num'>{fmt_num(r.alpha)}</td>"
            f"<td><small>{esc(r.tolerance)}</small></td><td><small>{esc(r.note)}</small></td></tr>")
    return f"<table id='full'>{_head(FULL)}<tbody>{''.join(body)}</tbody></table>"


def filters(rows: list[Row]) -> str:
    """One ``<select>`` per filtered column (paper, kind, verdict, experiment), its values those of ``rows``."""
    out = []
    for name in ("paper", "kind", "verdict", "experiment"):
        values = sorted({getattr(r, name) for r in rows})
        opts = "".join(f"<option value='{esc(v)}'>{esc(v)}</option>" for v in values)
        out.append(f"<label>{name} <select name='{name}'><option value=''>all</option>{opts}</select></label>")
    return (f"<div id='filters'>{''.join(out)} <span><b id='nshown'>{len(rows)}</b> of {len(rows)} rows shown"
            "</span></div>")


def result_html(result) -> str:
    """An :class:`~dlnlab.experiments.ExperimentResult` as HTML for notebooks: its name, counts and claims table with
    verdict colours."""
    rows = rows_of(result.claims)
    return (f"<div class='dlnlab'><style>{TABLE_CSS}</style><p><b>{esc(result.name)}</b> — "
            f"{esc(summary(result.claims))}</p>{compact_table(rows, anchors=False)}</div>")


__all__ = ["TABLE_CSS", "UNMIGRATED", "Counts", "Row", "compact_table", "counts", "esc", "filters", "fmt_num",
           "full_table", "hold_line", "result_html", "rows_of", "summary", "vclass"]
