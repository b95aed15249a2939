"""The flip table (issue 14 item 6): every quick preset rerun at several seeds, each measured row's verdicts over them.

    python benchmarks/flip_table.py                        # 5 seeds, every registered experiment with a seed
    python benchmarks/flip_table.py --only saxe --seeds 3  # a subset
    python benchmarks/flip_table.py --from-runs            # rewrite the table from the runs already in --out

Seed K is ``dlnlab reproduce --quick --seed K --out OUT/seed-K`` (resumable: rerun the same command after an
interrupt). Not a test: about 5 × the quick preset's time.

**Rule.** A measured row with false-fail rate α, judged (not ``not applicable``) at n seeds, fails at k of them. If its
theory is exact, each seed fails with probability ≤ α, independently, so P(K ≥ k) ≤ binom.sf(k − 1, n, α). The row
*flips more often than its α allows* — a defect to fix (sample size or statistics) — when its verdicts differ across
seeds and that tail is below ``LEVEL`` = 0.01 (at α = 0.01 and n = 5: one fail has p = 0.049, two p = 0.001). A row
that fails at every seed is a stable disagreement, not a flip; a row mixing ``holds`` and ``inconclusive`` has
marginal power (listed); a row missing at some seed has an unstable id (a defect). Only computed rows
(``experiments.claims.Claim``) are judged; experiments writing old rows are listed as not migrated.

Writes ``TABLE.csv`` (one line per measured row: id, experiment, paper, α, the verdict at each seed, counts, p,
status) and ``TABLE.md`` (the summary, the flagged and the mixed rows).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections import Counter
from pathlib import Path

from scipy.stats import binom

from dlnlab.runtime import usable_cores

LEVEL = 0.01
SHORT = {"holds": "H", "fails": "F", "inconclusive": "I", "not applicable": "–", None: "·"}
FLAGGED = ("flips more often than α allows", "unstable id")


def run_seeds(names: list[str], seeds: int, out: Path, jobs: int) -> None:
    from dlnlab.reproduce import reproduce

    for k in range(seeds):
        t0 = time.perf_counter()
        reproduce(out / f"seed-{k}", "quick", names=names, seed=k, progress=True, jobs=jobs)
        print(f"seed {k}: {time.perf_counter() - t0:.0f} s", flush=True)


def read_runs(out: Path, seeds: int) -> tuple[list[dict], set[str]]:
    """The measured computed rows of every seed (``{id: row}`` per seed) and the experiments with old rows."""
    per_seed, old = [], set()
    for k in range(seeds):
        with open(out / f"seed-{k}" / "claims.csv") as fh:
            rows = list(csv.DictReader(fh))
        old |= {r["experiment"] for r in rows if not r["id"]}
        per_seed.append({r["id"]: r for r in rows if r["id"] and r["kind"] == "measured"})
    return per_seed, old


def classify(verdicts: list, alpha: float) -> tuple[float, str]:
    """``(p, status)`` of a row's verdicts over the seeds (``None``: no such row at that seed)."""
    if None in verdicts:
        return float("nan"), "unstable id"
    judged = [v for v in verdicts if v != "not applicable"]
    k = judged.count("fails")
    p = float(binom.sf(k - 1, len(judged), alpha)) if k else 1.0
    if len(set(verdicts)) == 1:
        return p, f"stable: {verdicts[0]}"
    if k == 0:
        return p, "holds/inconclusive mix" if set(judged) == {"holds", "inconclusive"} else "mixed, no fails"
    return p, "flips more often than α allows" if p < LEVEL else "flips within α"


def table(per_seed: list[dict]) -> list[dict]:
    ids = sorted({i for rows in per_seed for i in rows})
    out = []
    for i in ids:
        first = next(rows[i] for rows in per_seed if i in rows)
        verdicts = [rows[i]["verdict"] if i in rows else None for rows in per_seed]
        alpha = float(first["alpha"])
        p, status = classify(verdicts, alpha)
        n = Counter(verdicts)
        out.append({"id": i, "experiment": first["experiment"], "paper": first["paper"], "alpha": alpha,
                    **{f"seed_{k}": v for k, v in enumerate(verdicts)}, "holds": n["holds"], "fails": n["fails"],
                    "inconclusive": n["inconclusive"], "not_applicable": n["not applicable"], "p_binomial": p,
                    "status": status})
    return out


def _md_rows(rows: list[dict], seeds: int) -> list[str]:
    lines = ["| id | α | verdicts by seed | p | status |", "|---|---|---|---|---|"]
    for r in rows:
        seq = " ".join(SHORT[r[f"seed_{k}"]] for k in range(seeds))
        lines.append(f"| `{r['id']}` | {r['alpha']:g} | {seq} | {r['p_binomial']:.3g} | {r['status']} |")
    return lines


def markdown(rows: list[dict], seeds: int, names: list[str], old: set[str], skipped: list[str], meta: dict) -> str:
    status = Counter(r["status"] for r in rows)
    judged_fails = sum(r["fails"] for r in rows if r["holds"])
    expected = sum(r["alpha"] * (seeds - r["not_applicable"]) for r in rows if r["holds"])
    lines = [f"# Flip table: quick presets at seeds 0–{seeds - 1}", "",
             (f"Written {meta['written']} by `python benchmarks/flip_table.py` ({meta['load']}). Rule and columns: "
              "the script's docstring. Verdicts: H holds, F fails, I inconclusive, – not applicable, · no such row."),
             "",
             f"Experiments ({len(names)}): {', '.join(names) or 'none'}.",
             f"Writing old rows (not migrated, their rows not judged): {', '.join(sorted(old)) or 'none'}.",
             f"Not rerun (no `seed` parameter): {', '.join(skipped) or 'none'}.", "",
             f"**{len(rows)} measured rows**; "
             + "; ".join(f"{s}: {n}" for s, n in sorted(status.items())) + ".", "",
             (f"Fails in rows that hold at some seed: {judged_fails}, against Σ n·α = {expected:.2f} expected if "
              f"every theory were exact. Rows flagged (flips more often than α allows at level {LEVEL}, or unstable "
              f"ids): **{sum(status[s] for s in FLAGGED)}**."), ""]
    flagged = [r for r in rows if r["status"] in FLAGGED]
    mixed = [r for r in rows if not r["status"].startswith("stable") and r["status"] not in FLAGGED]
    for title, part in (("Flagged rows", flagged), ("Other rows whose verdict changes", mixed)):
        lines += [f"## {title} ({len(part)})", ""] + (_md_rows(part, seeds) if part else ["none"]) + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", action="append", metavar="NAME", help="only this experiment (repeatable)")
    ap.add_argument("--out", type=Path, default=Path("dlnlab-runs/flip-table"), help="where the runs go")
    ap.add_argument("--table", type=Path, default=Path("benchmarks/flip_table"), help="TABLE.csv and TABLE.md")
    ap.add_argument("--from-runs", action="store_true", help="only rewrite the table from the runs in --out")
    ap.add_argument("--jobs", type=int, default=0, help="experiments at once (0: one per usable core)")
    args = ap.parse_args(argv)
    from dlnlab.experiments import REGISTRY, get

    names = sorted(args.only or REGISTRY)
    skipped = [n for n in names if not isinstance(get(n).presets["quick"].get("seed"), int)]
    names = [n for n in names if n not in skipped]
    if not args.from_runs:
        run_seeds(names, args.seeds, args.out, args.jobs or usable_cores())
    per_seed, old = read_runs(args.out, args.seeds)
    rows = table(per_seed)
    la = os.getloadavg()
    load = f"load average {la[0]:.1f}, {la[1]:.1f}, {la[2]:.1f} on {os.cpu_count()} cores at the end"
    meta = {"written": time.strftime("%Y-%m-%d %H:%M"), "load": load}
    with open(args.table.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["id"])
        w.writeheader()
        w.writerows(rows)
    args.table.with_suffix(".md").write_text(markdown(rows, args.seeds, names, old, skipped, meta) + "\n")
    print(json.dumps(Counter(r["status"] for r in rows)), f"→ {args.table}.md, {args.table}.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
