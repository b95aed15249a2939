"""Reports of a benchmark result: the plain-text table, the JSON file and the README's Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

from . import cli_startup
from ._spec import TARGETS


def _fmt(v):
    if v is None:
        return "—"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


UNITS = {"vs_torch_loop": "×", "vs_numpy_batched": "×", "fraction_of_gemm": "", "vs_numpy_em": "×",
         "vs_diffrax_euler": "×", "vs_explicit_L3": "×", "vs_explicit_L4": "×", "peak_rss_gib": " GiB", "rss_growth": "",
         "wall_minutes": " min", "vs_fastest_min": "×", "vs_fastest_median": "×", "engine_replica_exponent_max": "",
         "throughput_vs_short": ""}


def format_table(result: dict, header: bool = True) -> str:
    """A plain-text table: workload, figure, value (wall-time based), the same from CPU times, target, verdict."""
    cols = ("id", "figure", "value", "cpu-time value", "target", "verdict")
    rows = []
    for wid, res in result["workloads"].items():
        if res.get("status") == "error":
            rows.append((wid, "error", res["error"][:70], "", "", "ERROR"))
            continue
        for name, c in res.get("checks", {}).items():
            unit = UNITS.get(name, "")
            target = f"{c['op']} {c['target']:g}{unit}"
            if c["skipped"]:
                rows.append((wid, name, "skipped", "", target, f"skip ({c['skipped']})"))
            else:
                cpu = c.get("cpu_value")
                rows.append((wid, name, f"{_fmt(c['value'])}{unit}", "" if cpu is None else f"{_fmt(cpu)}{unit}",
                             target, "pass" if c["passed"] else "FAIL"))
    widths = [max(len(str(r[i])) for r in [*rows, cols]) for i in range(len(cols))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(cols, widths))] if header else []
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def write_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float))
    return path


# ---------------------------------------------------------------------------------------------------------
# The README table (``dlnlab bench --markdown``, or ``python -m dlnlab.bench RESULT.json``)


def _num(x, unit=""):
    """3 significant digits; thousands separated by spaces."""
    if x is None:
        return "—"
    text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return text.replace(",", " ") + unit


def _sci(x, digits=1):
    """``1e-6``, ``4.4e-5``: scientific notation without exponent padding."""
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _cells(check, unit="×"):
    """(ratio (from CPU times), verdict) cells of a check."""
    if check is None or check.get("skipped"):
        return "skipped" if check else "—", "—"
    cpu = check.get("cpu_value")
    ratio = _num(check["value"], unit) + ("" if cpu is None else f" ({_num(cpu, unit)})")
    return ratio, "met" if check["passed"] else "not met"


def _target(wid, name):
    op, thr = TARGETS[wid][name]
    return f"{'≥' if op == '>=' else '<'} {thr:g}{UNITS.get(name, '')}"


def _row(res, wid, name, workload, ours, alternative, unit="×"):
    """A table row of check ``name`` of workload result ``res``; a continuation row has ``workload`` None."""
    ratio, verdict = _cells(res.get("checks", {}).get(name), unit)
    cells = ("", "", ours or "") if workload is None else (wid, workload, ours)
    return f"| {' | '.join(cells)} | {alternative} | {ratio} | {_target(wid, name)} | {verdict} |"


def _b1_rows(res, p):
    tl, npb = res["torch_loop"], res["numpy_batched"]
    torch = (f"PyTorch loop, replica after replica: {_num(tl['best_s'], ' s')} ({tl['measured_replicas']} "
             f"replicas timed, × {_num(p['replicas'] / tl['measured_replicas'])})" if "best_s" in tl
             else f"PyTorch loop: {tl['skipped']}")
    return [_row(res, "B1", "vs_torch_loop", f"SGD, L = 3, d = 10, width 50, B = 1, {p['replicas']} replicas × "
                 f"{_num(p['steps'])} steps", _num(res["dlnlab"]["best_s"], " s"), torch),
            _row(res, "B1", "vs_numpy_batched", None, None,
                 f"hand-batched NumPy ({npb.get('product', 'einsum')}), closed-form gradients: "
                 f"{_num(npb['best_s'], ' s')}")]


def _b2_rows(res, p):
    g = res["gemm"]
    lines = [_row(res, "B2", "fraction_of_gemm", f"SGD, L = 4, width 100, B = 32, {p['replicas']} replicas × "
                  f"{p['steps']} steps", _num(res["dlnlab"]["achieved_flops"] / 1e9, " GFLOP/s"),
                  f"float64 GEMM ({g['n']}², best of JAX, NumPy, one per device): {_num(g['flops'] / 1e9, ' GFLOP/s')}",
                  "")]
    if "product_ceiling" in res:
        c = res["product_ceiling"]
        lines.append(f"| | ceiling: the step's matrix products alone, each at its best isolated rate | "
                     f"{_num(c['mix_rate'] / 1e9, ' GFLOP/s')} | | {_num(c['fraction_of_gemm'])} of GEMM | | |")
    return lines


def _b3_rows(res, p):
    dx = res["diffrax_euler"]
    return [_row(res, "B3", "vs_numpy_em", f"per-mode Euler–Maruyama, {len(p['s'])} modes × {p['replicas']} replicas "
                 f"× {_num(p['steps'])} steps", _num(res["dlnlab"]["best_s"], " s"),
                 f"vectorised NumPy EM: {_num(res['numpy_em']['best_s'], ' s')}"),
            _row(res, "B3", "vs_diffrax_euler", None, None,
                 f"diffrax `Euler` + `UnsafeBrownianPath`: {_num(dx['best_s'], ' s')}" if "best_s" in dx
                 else f"diffrax: {dx['skipped']}")]


def _b4_rows(res, p):
    lines = []
    for depth in (3, 4):
        name = f"vs_explicit_L{depth}"
        r = res.get("depths", {}).get(str(depth))
        first = not lines
        if r is None:
            lines.append(_row(res, "B4", name, "gradient flow" if first else None, f"L = {depth}: not run", ""))
            continue
        a, e = r["auto"], r["explicit"]
        ours = (f"L = {depth}, auto: {_num(a['gradient_evaluations'])} gradient + {_num(a['hessian_evaluations'])} "
                f"Hessian evaluations, {_num(a['best_s'], ' s')}, error {_sci(a['max_rel_error'], 2)}")
        q = r.get("auto_equal_accuracy")
        if q is not None and q["rtol"] != p["rtol"]:
            ours += (f"; at the explicit run's accuracy (rtol {_sci(q['rtol'])}: error {_sci(q['max_rel_error'], 2)}"
                     f"{'' if q['reached'] else ', not reached'}) {_num(q['best_s'], ' s')}")
        capped = f", extrapolated from {_num(e['measured_steps'])} steps" if e["capped"] else ""
        alt = (f"explicit Dopri5: {_num(e['gradient_evaluations'])} gradient evaluations, {_num(e['best_s'], ' s')}"
               f"{capped}, error {_sci(e['max_rel_error'], 2)}")
        workload = (f"gradient flow through 4 plateaus from m₀ = {_sci(p['m0'])}, rtol {_sci(p['rtol'])}"
                    if first else None)
        lines.append(_row(res, "B4", name, workload, ours, alt))
    return lines


def _b5_rows(res, p):
    runs = res["runs"]
    small, big = runs[0], runs[-1]

    def gib(b):
        return _num(b / 2**30, " GiB")

    ours = (f"peak RSS {gib(big['peak_rss_bytes'])} ({gib(small['peak_rss_bytes'])} at {_num(small['steps'])} "
            f"steps; imports alone {gib(big['rss_after_imports_bytes'])})")
    c = res["checks"]
    verdict = "met" if c["peak_rss_gib"]["passed"] and c["rss_growth"]["passed"] else "not met"
    return [(f"| B5 | {_num(big['steps'])} steps × {p['replicas']} replicas × 10 modes, 200 log-spaced "
            f"records | {ours} | | growth {100 * c['rss_growth']['value']:+.1f} % | < 1 GiB, no growth | {verdict} |")]


def _b6_rows(res, p):
    c = res["checks"]["wall_minutes"]
    ours = "not run (quick mode)" if c.get("skipped") else _num(c["value"], " min")
    verdict = "—" if c.get("skipped") else ("met" if c["passed"] else "not met")
    return [f"| B6 | `dlnlab reproduce --quick` | {ours} | | | < 10 min | {verdict} |"]


def _b8_rows(res, p):
    f = res["fits"]
    w, r = f["width_exponent"]["dlnlab"], f["replica_exponent"]["dlnlab"]
    n = sum(len(g) for g in res["points"].values())
    ours = (f"cost ∝ w^{'—' if w is None else f'{w:.2f}'} (w ≥ {min(f['width_exponent']['over_widths'])}), "
            f"∝ R^{'—' if r is None else f'{r:.2f}'} (R ≥ {min(f['replica_exponent']['over_replicas'])})")
    alts = ", ".join(p.get("alternatives", ["numpy_matmul", "torch_bmm"]))
    lines = [_row(res, "B8", "vs_fastest_min", f"SGD per replica-step at {n} points (width, replicas, depth)", ours,
                  f"fastest per point of {alts}: smallest ratio"),
             _row(res, "B8", "vs_fastest_median", None, None, "median ratio")]
    if "engines" in res:
        exps = ", ".join(f"{k} {v['replica_exponent']:.2f}" for k, v in res["engines"].items()
                         if v["replica_exponent"] is not None)
        lines.append(_row(res, "B8", "engine_replica_exponent_max", None,
                          f"every engine, R = {p['engine_scan']['replicas'][0]}…{p['engine_scan']['replicas'][-1]}: "
                          f"exponent of the cost in R: {exps}", "", ""))
    return lines


def _b9_rows(res, p):
    if "runs" not in res:
        return [f"| B9 | long runs | {res.get('skipped', 'not run')} | | | ≥ 0.9, growth < 5 % | — |"]
    short, long = res["runs"]["short"], res["runs"]["long"]
    c = res["checks"]
    ours = (f"{_num(long['wall_s'] / 60, ' min')}; late rate {_num(res['late_s_per_replica_step'] * 1e6, ' µs')} "
            f"per replica-step; peak RSS {_num(long['peak_rss_bytes'] / 2**30, ' GiB')} "
            f"({_num(short['peak_rss_bytes'] / 2**30, ' GiB')} at {_num(short['steps'])} steps)")
    ok = c["throughput_vs_short"]["passed"] and c["rss_growth"]["passed"]
    return [(f"| B9 | online SGD, L = 3, w = d = {p['width']}, B = {p['batch_size']}, {_num(long['steps'])} steps × "
            f"{p['replicas']} replicas, {p['records']} records, checkpoint every {p['checkpoint_every_s']:g} s | {ours} "
            f"| short run ({_num(short['steps'])} steps) | throughput {_num(c['throughput_vs_short']['value'])} of "
            f"the short run's, RSS {100 * c['rss_growth']['value']:+.1f} % | ≥ 0.9, growth < 5 % | "
            f"{'met' if ok else 'not met'} |")]


#: The README table's rows of each workload: ``fn(result, params) -> lines``.
_ROWS = {"B1": _b1_rows, "B2": _b2_rows, "B3": _b3_rows, "B4": _b4_rows, "B5": _b5_rows, "B6": _b6_rows,
         "B7": cli_startup.markdown_rows, "B8": _b8_rows, "B9": _b9_rows}


def markdown_table(result: dict) -> str:
    """The README's benchmark table for ``result`` (:func:`run_suite`'s output), preceded by its machine line."""
    m, v = result["machine"], result["versions"]
    load = f"load average {m.get('load_average')} → {m.get('load_average_end')} (1, 5, 15 min)"
    machine = (f"Machine: {m['cpu']}, {m['cores_usable']} cores, {m['memory_gib']} GiB; {m['platform']}; CPython "
               f"{v['python']}; JAX/jaxlib {v['jax']}/{v['jaxlib']} ({m['backend']}, {len(m['devices'])} devices), "
               f"float64; NumPy {v['numpy']}; torch {v.get('torch')}; diffrax {v.get('diffrax')}; {load}; "
               f"`dlnlab bench{' --quick' if result['mode'] == 'quick' else ''}`, {result['created']}.")
    lines = [machine, "", "| | workload | dlnlab | alternative | ratio (from CPU times) | target | |",
             "|---|---|---|---|---|---|---|"]
    for wid, res in result["workloads"].items():
        if res.get("status") == "error":
            lines.append(f"| {wid} | {res['title']} | error: {res['error'][:120]} | | | | — |")
        else:
            rows = _ROWS[wid.split(":")[0]](res, res.get("params", {}))
            lines += [r.replace(f"| {wid.split(':')[0]} |", f"| {wid} |", 1) for r in rows]
    return "\n".join(lines)
