"""Build-time pages ``experiments/``: one per registered experiment (:data:`dlnlab.experiments.REGISTRY`: its
paper, claim, cost and presets) and, when a reproduction directory holds its last run, that run's figures and
claims rows. The run directory is ``$DLNLAB_DOCS_RUN`` if set, else ``dlnlab-runs/reproduce-quick`` (the default
output of ``dlnlab reproduce --quick`` in the repository root); the build never needs one."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import mkdocs_gen_files

from dlnlab.experiments import PAPERS, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ["DLNLAB_DOCS_RUN"]) if "DLNLAB_DOCS_RUN" in os.environ else ROOT / "dlnlab-runs/reproduce-quick"


def cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;")


def number(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.4g}" if isinstance(x, (int, float)) else cell(x)


def value(v) -> str:
    return f"`{json.dumps(v, ensure_ascii=False)}`"


def preset_lines(exp) -> list[str]:
    """Every preset the experiment declares, one column each."""
    presets = exp.presets
    keys = list(dict.fromkeys(k for p in presets.values() for k in p))
    lines = ["## Presets", "", ("`dlnlab run " + exp.name + " --quick` (default) or `--full`; "
             f"`--set KEY=VALUE` changes one parameter (`dlnlab reproduce --set {exp.name}.KEY=VALUE`)."), "",
             "| parameter | " + " | ".join(presets) + " |", "|---|" + "---|" * len(presets)]
    lines += [f"| `{k}` | " + " | ".join(value(p[k]) if k in p else "—" for p in presets.values()) + " |"
              for k in keys]
    return lines + [""]


def last_run(name: str) -> dict | None:
    f = RUN_DIR / "experiments" / name / "result.json"
    return json.loads(f.read_text()) if f.exists() else None


def figure_lines(name: str, result: dict) -> list[str]:
    """The run's PNG figures, copied beside the page, with their captions."""
    lines = []
    for fig in result["figures"]:
        src = RUN_DIR / "experiments" / name / fig["path"]
        png = src if src.suffix == ".png" else src.with_suffix(".png")
        if not png.exists():
            lines += [f"*Figure `{fig['path']}` is missing from the run directory.*", ""]
            continue
        with mkdocs_gen_files.open(f"experiments/{name}/{png.name}", "wb") as fh:
            fh.write(png.read_bytes())
        lines += [f"![{cell(fig['caption'])}]({name}/{png.name})", "", f"*{cell(fig['caption'])}*", ""]
    return lines


def claim_lines(result: dict) -> list[str]:
    lines = ["| quantity | theory | simulation ± uncertainty | tolerance | verdict |", "|---|---|---|---|---|"]
    for c in result["claims"]:
        lines.append(f"| {cell(c['quantity'])} | {number(c['theory'])} | {number(c['value'])} ± "
                     f"{number(c['uncertainty'])} | {cell(c['tolerance'])} | **{c['verdict']}** |")
    return lines + [""]


def run_lines(exp) -> list[str]:
    result = last_run(exp.name)
    if result is None:
        return ["## Last run", "", "!!! note \"No run available\"",
                (f"    This build found no run of `{exp.name}` in `{RUN_DIR}` (set `DLNLAB_DOCS_RUN` to a "
                 "`dlnlab reproduce` output directory). Run `dlnlab reproduce --quick` and rebuild the site to see "
                 "its figures and claims here."), ""]
    preset = result["params"].get("preset", "?")
    lines = ["## Last run", "", f"From `{RUN_DIR}` ({preset} preset, wall time {result['wall_time_s']:.1f} s).", "",
             "### Figures", ""]
    lines += figure_lines(exp.name, result) or ["The run wrote no figure.", ""]
    lines += ["### Claims", ""]
    return lines + (claim_lines(result) if result["claims"] else ["The run checked no claim.", ""])


def experiment_page(exp) -> str:
    lines = [f"# `{exp.name}`", "", f"**Paper [{exp.paper}]:** {PAPERS[exp.paper]}.", "",
             f"**Claim reproduced:** {exp.claim}", "", f"**Cost of the quick preset:** {exp.cost} on 2 cores.", ""]
    doc = (exp.fn.__doc__ or "").strip()
    if doc:
        lines += ["## What is measured", "", doc, ""]
    return "\n".join(lines + preset_lines(exp) + run_lines(exp))


def index_page(exps) -> str:
    lines = ["# Experiments", "",
             ("Every registered experiment (`dlnlab list`), grouped by paper. Each page gives the claim it "
              "reproduces, its presets and, when this build found a run of `dlnlab reproduce --quick`, that run's "
              f"figures and claims rows (run directory: `{RUN_DIR}`)."), "",
             "| experiment | paper | claim | quick cost |", "|---|---|---|---|"]
    lines += [f"| [`{e.name}`]({e.name}.md) | {e.paper} | {cell(e.claim)} | {e.cost} |" for e in exps]
    return "\n".join(lines + ["", "Papers: " + "; ".join(f"**[{k}]** {v}" for k, v in PAPERS.items()) + "."])


def main() -> None:
    exps = sorted(REGISTRY.values(), key=lambda e: (e.paper, e.name))
    with mkdocs_gen_files.open("experiments/index.md", "w") as fh:
        fh.write(index_page(exps))
    for exp in exps:
        with mkdocs_gen_files.open(f"experiments/{exp.name}.md", "w") as fh:
            fh.write(experiment_page(exp))


main()
