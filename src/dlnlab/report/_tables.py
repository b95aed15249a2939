"""HTML tables of claims rows: the compact table beside an experiment's figures, the full filterable table, cells.

Every string from a result (claims, settings, notes, tolerances) is escaped here."""

from __future__ import annotations

import html
import math

from ._rows import Row

COMPACT = (("verdict", 14), ("kind · source", 13), ("quantity", 27), ("setting", 14), ("θ", 9),
           ("estimate ± SE", 16), ("α", 7))
FULL = (("verdict", 9), ("paper", 5), ("experiment", 10), ("kind", 8), ("source", 7), ("quantity", 15), ("setting", 10),
        ("θ", 6), ("estimate ± SE", 9), ("α", 4), ("tolerance", 11), ("note", 6))


def e(x) -> str:
    return html.escape(str(x), quote=True)


def num(x) -> str:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return e(x)
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
    return f"<td class='v {vclass(r.verdict)}' title='{e(r.tolerance)}'>{e(r.verdict)}</td>"


def estimate_cell(r: Row) -> str:
    title = "" if r.interval is None else (f"{100 * (1 - 2 * r.alpha):g} % interval [{num(r.interval[0])}, "
                                            f"{num(r.interval[1])}]; n = {r.n}; {r.method}")
    return f"<td class='num' title='{e(title)}'>{num(r.value)} ± {num(r.uncertainty)}</td>"


def _head(cols) -> str:
    group = "".join(f"<col style='width:{w}%'>" for _, w in cols)
    return f"<colgroup>{group}</colgroup><thead><tr>{''.join(f'<th>{e(c)}</th>' for c, _ in cols)}</tr></thead>"


def _group(claim: str, n_cols: int, attrs: str = "") -> str:
    return f"<tr class='g'{attrs}><td colspan='{n_cols}'>{e(claim)}</td></tr>"


def compact_table(rows: list[Row], *, anchors: bool = True, experiment: bool = False) -> str:
    """Verdict, kind and source, quantity (its note below), setting, θ, estimate ± SE, α; a group row per claim.
    ``anchors``: give each row its HTML id; ``experiment``: an experiment column (rows of several experiments)."""
    cols = (COMPACT[:1] + (("experiment", 12),) + COMPACT[1:]) if experiment else COMPACT
    body, last = [], None
    for r in rows:
        if (r.experiment, r.claim) != last:
            body.append(_group(r.claim, len(cols)))
            last = (r.experiment, r.claim)
        exp = f"<td><a href='#exp-{e(r.experiment)}'>{e(r.experiment)}</a></td>" if experiment else ""
        note = f"<br><small>{e(r.note)}</small>" if r.note else ""
        rid = f" id='{e(r.anchor)}'" if anchors else ""
        body.append(f"<tr{rid}>{verdict_cell(r)}{exp}<td class='k-{e(r.kind)}'>{e(r.kind)}<br><small>"
                    f"{e(r.source or '–')}</small></td><td>{e(r.quantity)}{note}</td><td>{e(r.setting)}</td>"
                    f"<td class='num'>{num(r.theory)}</td>{estimate_cell(r)}<td class='num'>{num(r.alpha)}</td></tr>")
    return f"<table>{_head(cols)}<tbody>{''.join(body)}</tbody></table>"


def _data(r: Row) -> str:
    return (f" data-paper='{e(r.paper)}' data-kind='{e(r.kind)}' data-verdict='{e(r.verdict)}' "
            f"data-experiment='{e(r.experiment)}'")


def full_table(rows: list[Row]) -> str:
    """Every row, one column each for paper, experiment, kind, source, quantity, setting, θ, estimate, α, tolerance
    and note; rows carry ``data-*`` attributes for the filters, group rows the claim text."""
    body, last = [], None
    for r in rows:
        if (r.experiment, r.claim) != last:
            body.append(_group(r.claim, len(FULL)))
            last = (r.experiment, r.claim)
        body.append(
            f"<tr id='t-{e(r.anchor)}'{_data(r)}>{verdict_cell(r)}<td>{e(r.paper)}</td>"
            f"<td><a href='#{e(r.anchor)}'>{e(r.experiment)}</a></td><td class='k-{e(r.kind)}'>{e(r.kind)}</td>"
            f"<td>{e(r.source or '–')}</td><td>{e(r.quantity)}</td><td>{e(r.setting)}</td>"
            f"<td class='num'>{num(r.theory)}</td>{estimate_cell(r)}<td class='num'>{num(r.alpha)}</td>"
            f"<td><small>{e(r.tolerance)}</small></td><td><small>{e(r.note)}</small></td></tr>")
    return f"<table id='full'>{_head(FULL)}<tbody>{''.join(body)}</tbody></table>"


def filters(rows: list[Row]) -> str:
    """One ``<select>`` per filtered column (paper, kind, verdict, experiment), its values those of ``rows``."""
    out = []
    for name in ("paper", "kind", "verdict", "experiment"):
        values = sorted({getattr(r, name) for r in rows})
        opts = "".join(f"<option value='{e(v)}'>{e(v)}</option>" for v in values)
        out.append(f"<label>{name} <select name='{name}'><option value=''>all</option>{opts}</select></label>")
    return (f"<div id='filters'>{''.join(out)} <span><b id='nshown'>{len(rows)}</b> of {len(rows)} rows shown"
            "</span></div>")
