"""``dlnlab report RUN_DIR``: one self-contained HTML file (figures embedded, no network).

Every user-provided string (claims, captions, parameters, paths) is HTML-escaped; nothing in a result
directory is executed or unpickled (JSON and CSV only).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from .experiments import PAPERS, REGISTRY, ExperimentResult

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1400px;
color:#1b1b1b;line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem} .sub{color:#555;margin-top:0}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:1rem 0}
th,td{border:1px solid #ddd;padding:.3rem .45rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{white-space:nowrap}
.scroll{overflow-x:auto}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.holds{background:#e6f4ea} .fails{background:#fde7e9} .na{background:#f1f1f1}
figure{margin:1.2rem 0;border:1px solid #e3e3e3;padding:.6rem;border-radius:6px}
figure img{max-width:100%;height:auto;display:block;margin:auto}
figcaption{font-size:.9rem;color:#333;margin-top:.4rem}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;margin-right:.4rem;font-size:.85rem}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _num(x) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.4g}"
    return _e(x)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(path.name)}" src="data:image/png;base64,{data}">'


def _load_results(run_dir: Path) -> list[ExperimentResult]:
    results = []
    for f in sorted((run_dir / "experiments").glob("*/result.json")):
        if f.parent.name.startswith("."):
            continue
        results.append(ExperimentResult.from_json(f.read_text()))
    return results


def render(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    results = _load_results(run_dir)
    manifest = {}
    if (run_dir / "manifest.json").exists():
        manifest = json.loads((run_dir / "manifest.json").read_text())
    claims = [c for r in results for c in r.claims]
    counts = {v: sum(c.verdict == v for c in claims) for v in ("holds", "fails", "not applicable")}
    total_time = sum(r.wall_time_s for r in results)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>dlnlab reproduction report</title><style>{CSS}</style></head><body>",
        "<h1>dlnlab reproduction report</h1>",
        (f"<p class='sub'>preset <b>{_e(manifest.get('preset', '?'))}</b> · {len(results)} experiments · "
         f"{len(claims)} claims · total {total_time:.0f} s · written {_e(manifest.get('written', ''))}</p>"),
        (f"<p><span class='badge holds'>{counts['holds']} hold</span>"
         f"<span class='badge fails'>{counts['fails']} fail</span>"
         f"<span class='badge na'>{counts['not applicable']} not applicable</span></p>"),
        "<h2>Papers</h2><ul>",
        *[f"<li><b>[{_e(k)}]</b> {_e(v)}</li>" for k, v in PAPERS.items()],
        "</ul><h2>Claims</h2>",
        ("<div class='scroll'><table><thead><tr><th>paper</th><th>claim</th><th>experiment</th><th>quantity</th><th>theory</th>"
         "<th>simulation ± unc.</th><th>tolerance</th><th>verdict</th></tr></thead><tbody>"),
    ]
    for c in claims:
        cls = {"holds": "holds", "fails": "fails"}.get(c.verdict, "na")
        parts.append(
            f"<tr class='{cls}'><td>{_e(c.paper)}</td><td>{_e(c.claim)}</td>"
            f"<td><a href='#{_e(c.experiment)}'>{_e(c.experiment)}</a></td><td>{_e(c.quantity)}</td>"
            f"<td class='num'>{_num(c.theory)}</td><td class='num'>{_num(c.value)} ± {_num(c.uncertainty)}</td>"
            f"<td>{_e(c.tolerance)}</td><td>{_e(c.verdict)}</td></tr>")
    parts.append("</tbody></table></div><h2>Experiments</h2>")
    for r in results:
        exp = REGISTRY.get(r.name)
        parts.append(f"<section id='{_e(r.name)}'><h3>{_e(r.name)}</h3>")
        if exp is not None:
            parts.append(f"<p>[{_e(exp.paper)}] {_e(exp.claim)} · wall time {r.wall_time_s:.1f} s</p>")
        for fig in r.figures:
            path = run_dir / "experiments" / r.name / fig.path
            body = _img(path) if path.exists() else f"<p>missing figure {_e(fig.path)}</p>"
            parts.append(f"<figure>{body}<figcaption>{_e(fig.caption)}</figcaption></figure>")
        parts.append(f"<details><summary>parameters (seeds included)</summary><pre>{_e(json.dumps(r.params, indent=1))}"
                     "</pre></details></section>")
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{_e(json.dumps({k: manifest.get(k) for k in ('versions', 'machine')}, indent=1))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path | str) -> Path:
    run_dir = Path(run_dir)
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(run_dir), encoding="utf-8")
    tmp.replace(path)
    return path
