"""The report page: summary, one section per paper, one per experiment (figures beside rows), the theory
self-checks, the inconclusive rows, the full filterable table, how to read it, provenance."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from ..experiments import REGISTRY, ExperimentResult
from ..experiments.claims import KINDS, PAPERS, VERDICTS
from ..experiments.table import (
    UNMIGRATED,
    Counts,
    Row,
    compact_table,
    counts,
    filters,
    full_table,
    hold_line,
    rows_of,
    vclass,
)
from ..experiments.table import esc as e
from ..experiments.table import fmt_num as num
from ._assets import FILTER_JS, PAGE_CSS
from ._headlines import HEADLINES, KEY_FIGURE, PAPER_ORDER

KIND_TEXT = {
    "measured": "a simulated quantity against an independent theory value — only these count as reproduced",
    "theory": "a numerical check of our own closed forms: a self-check, never a reproduction",
    "beyond": "a measurement past the papers",
    UNMIGRATED: "an old row whose verdict was written by hand (being migrated to computed verdicts; not counted)",
}


def _img(path: Path) -> str:
    if not path.is_file():
        return f"<p>missing figure {e(path.name)}</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{e(path.name)}' src='data:image/png;base64,{data}'>"


def _figure(run_dir: Path, result: ExperimentResult, index: int) -> str:
    fig = result.figures[index]
    return (f"<figure>{_img(run_dir / 'experiments' / result.name / fig.path)}<figcaption>{e(fig.caption)}"
            "</figcaption></figure>")


def _counts_table(c: Counts) -> str:
    head = "".join(f"<th class='{vclass(v)}'>{e(v)}</th>" for v in VERDICTS)
    body = []
    for kind in (*KINDS, UNMIGRATED):
        n = c.by_kind[kind]
        if kind != "measured" and not sum(n.values()):
            continue
        cells = "".join(f"<td class='num'>{n[v]}</td>" for v in VERDICTS)
        body.append(f"<tr><td title='{e(KIND_TEXT[kind])}'><b>{e(kind)}</b></td>{cells}"
                    f"<td class='num'>{sum(n.values())}</td></tr>")
    return (f"<table><thead><tr><th>kind</th>{head}<th>rows</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _summary_box(claims: list) -> str:
    c = counts(claims)
    old = sum(c.by_kind[UNMIGRATED].values())
    old_text = f" {old} old rows have hand-written verdicts (being migrated): never counted." if old else ""
    return (
        "<div class='box two'><div>"
        f"<p><b>Measured rows: {e(hold_line(c.by_kind['measured']))}.</b> Expected number of false fails over the "
        f"table <b>Σα = {c.expected_false_fails:.2f}</b>: each row states its false-fail rate α (the probability that "
        "it fails although its theory is exact), so about this many measured fails are chance.</p>"
        f"{_counts_table(c)}<p><a href='#inconclusive'>{len(c.inconclusive)} inconclusive rows listed</a>."
        f"{e(old_text)}</p></div>"
        "<div><p><b>Verdicts</b> are computed, never written: <span class='badge v-holds'>holds</span>the whole "
        "1 − 2α confidence interval lies inside the tolerance band; <span class='badge v-fails'>fails</span>it lies "
        "outside, or the run resolves its tolerance and the interval is not inside; <span class='badge "
        "v-inconclusive'>inconclusive</span>the run could not have detected a violation of its tolerance; <span "
        "class='badge v-not-applicable'>not applicable</span>no estimate.</p><p><b>Kind</b>: <i>measured</i> — "
        f"{e(KIND_TEXT['measured'])}; <i>theory</i> — {e(KIND_TEXT['theory'])}; <i>beyond</i> — "
        f"{e(KIND_TEXT['beyond'])}.</p><p><b>Source</b>: <i>paper</i> — the paper states it; <i>derived</i> — our "
        "derivation from the abstract (every [C] and [J] formula: only their abstracts were available).</p>"
        "<nav><a href='#papers'>papers</a><a href='#experiments'>experiments</a><a href='#theory'>theory "
        "self-checks</a><a href='#inconclusive'>inconclusive rows</a><a href='#table'>full table</a><a "
        "href='#provenance'>provenance</a></nav></div></div>")


def _row_links(rows: list[Row], verdict: str) -> str:
    links = " ".join(f"<a href='#{e(r.anchor)}' title='{e(r.id or r.quantity)}'>[{i}]</a>"
                     for i, r in enumerate((r for r in rows if r.verdict == verdict), 1))
    return f"<br>{e(verdict)}: {links}" if links else ""


def _verdict_summary(rows: list[Row]) -> str:
    """A headline's measured rows: an overall badge (fails if one fails, else inconclusive if one is, else holds),
    "N of M hold", links to the rows that fail and to the inconclusive ones."""
    measured = [r for r in rows if r.kind == "measured"]
    n = {v: sum(r.verdict == v for r in measured) for v in VERDICTS}
    overall = ("none" if not measured else "fails" if n["fails"] else "inconclusive" if n["inconclusive"]
               else "holds" if n["holds"] else "not applicable")
    label = "no measured rows" if overall == "none" else overall
    text = hold_line(n) if measured else ""
    old = sum(r.kind == UNMIGRATED for r in rows)
    old_text = f"<br><small>+ {old} old rows (hand-written verdicts, not counted)</small>" if old else ""
    return (f"<td class='v {vclass(overall)}'>{e(label)}</td><td>{e(text)}{_row_links(measured, 'fails')}"
            f"{_row_links(measured, 'inconclusive')}{old_text}</td>")


def _paper_section(paper: str, rows: list[Row], results: list[ExperimentResult], run_dir: Path) -> str:
    names = [r.name for r in results if r.name in REGISTRY and REGISTRY[r.name].paper == paper]
    present = {r.name for r in results}
    heads = [(h.text, h.experiments) for h in HEADLINES if h.paper == paper]
    other = tuple(n for n in names if all(n not in exps for _, exps in heads))
    if other:
        heads.append(("Other experiments of this paper.", other))
    body = []
    for text, exps in heads:
        links = ", ".join(f"<a href='#exp-{e(n)}'>{e(n)}</a>" if n in present else f"<small>{e(n)} (not run)</small>"
                          for n in exps)
        mine = [r for r in rows if r.experiment in exps and r.paper == paper]
        body.append(f"<tr><td>{e(text)}</td><td>{links}</td>{_verdict_summary(mine)}</tr>")
    key = next((r for r in results if r.name == KEY_FIGURE.get(paper) and r.figures), None)
    key = key or next((r for r in results if r.name in names and r.figures), None)
    fig = _figure(run_dir, key, 0) if key else "<p>no figure in this run</p>"
    return (f"<section id='paper-{e(paper)}'><h3>[{e(paper)}] {e(PAPERS[paper])}</h3><div class='two'><table>"
            "<colgroup><col style='width:42%'><col style='width:20%'><col style='width:14%'><col style='width:24%'>"
            "</colgroup><thead><tr><th>headline claim of the abstract</th><th>experiments</th><th>verdict</th>"
            f"<th>measured rows</th></tr></thead><tbody>{''.join(body)}</tbody></table>{fig}</div></section>")


def _experiment_section(result: ExperimentResult, rows: list[Row], run_dir: Path) -> str:
    exp = REGISTRY.get(result.name)
    mine = [r for r in rows if r.experiment == result.name]
    shown = [r for r in mine if r.kind != "theory"]
    n_theory = len(mine) - len(shown)
    head = (f"<h3>{e(result.name)} <small>[{e(exp.paper)}] · {len(mine)} rows · {result.wall_time_s:.1f} s</small>"
            f"</h3><p>{e(exp.claim)}</p>") if exp else f"<h3>{e(result.name)} <small>(not registered)</small></h3>"
    theory = f"<p><small>{n_theory} theory self-checks: <a href='#theory'>below</a>.</small></p>" if n_theory else ""
    table = (compact_table(shown) if shown else "<p>no measured rows</p>") + theory + (
        f"<details><summary>parameters (seed included)</summary><pre>{e(json.dumps(result.params, indent=1))}"
        "</pre></details>")
    figs = "".join(_figure(run_dir, result, i) for i in range(len(result.figures)))
    body = f"<div class='exp'><div>{figs}</div><div>{table}</div></div>" if figs else table
    return f"<section id='exp-{e(result.name)}'>{head}{body}</section>"


def _inconclusive(rows: list[Row]) -> str:
    items = [f"<li><a href='#{e(r.anchor)}'>{e(r.id or r.experiment)}</a> — {e(r.quantity)}: {num(r.value)} ± "
             f"{num(r.uncertainty)} against θ = {num(r.theory)}; {e(r.tolerance)}</li>"
             for r in rows if r.verdict == "inconclusive"]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>none</p>"


def _order(results: list[ExperimentResult]) -> list[ExperimentResult]:
    rank = {p: i for i, p in enumerate(PAPER_ORDER)}
    return sorted(results, key=lambda r: (rank.get(REGISTRY[r.name].paper, 9) if r.name in REGISTRY else 9, r.name))


def render_page(run_dir: Path, results: list[ExperimentResult], manifest: dict) -> str:
    results = _order(results)
    claims = [c for r in results for c in r.claims]
    rows = rows_of(claims)
    present = {REGISTRY[r.name].paper for r in results if r.name in REGISTRY}
    # the three papers and [S] first, then every other key (past the papers, plugins) in the order of its name
    papers = [p for p in PAPER_ORDER if p in present] + sorted(present - set(PAPER_ORDER))
    theory = [r for r in rows if r.kind == "theory"]
    seed = manifest.get("seed_shift", 0)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>dlnlab reproduction report</title><style>{PAGE_CSS}</style></head><body><main class='dlnlab'>",
        "<h1>dlnlab reproduction report</h1>",
        (f"<p class='sub'>preset <b>{e(manifest.get('preset', '?'))}</b>{f' · seeds shifted by {seed}' if seed else ''}"
         f" · {len(results)} experiments · {len(rows)} rows · total {sum(r.wall_time_s for r in results):.0f} s · "
         f"written {e(manifest.get('written', ''))}</p>"),
        _summary_box(claims),
        "<h2 id='papers'>Papers: the headline claims</h2>",
        *[_paper_section(p, rows, results, run_dir) for p in papers],
        "<h2 id='experiments'>Experiments</h2>",
        *[_experiment_section(r, rows, run_dir) for r in results],
        f"<h2 id='theory'>Theory self-checks ({len(theory)} rows, not counted as reproductions)</h2>",
        compact_table(theory, experiment=True) if theory else "<p>none</p>",
        "<h2 id='inconclusive'>Inconclusive rows</h2>", _inconclusive(rows),
        "<h2 id='table'>Full table</h2>", filters(rows), full_table(rows),
        "<h2 id='provenance'>Provenance</h2>",
        f"<pre>{e(json.dumps({k: manifest.get(k) for k in ('versions', 'machine')}, indent=1))}</pre>",
        f"</main><script>{FILTER_JS}</script></body></html>",
    ]
    return "\n".join(parts)

