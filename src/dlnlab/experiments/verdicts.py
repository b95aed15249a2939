"""Verdict regression (issue 14 item 7): the expected verdict of every computed claims row, by its stable id.

``tests/experiments/expected_verdicts.json`` holds, per preset — ``smoke`` (the one ``tests/experiments/
test_verdicts.py`` compares, at the presets' own seeds) and ``quick`` (for information) — and per experiment, the
map ``id → verdict`` of its :class:`~dlnlab.experiments.claims.Claim` rows. When a verdict changes on purpose::

    python -m dlnlab.experiments.verdicts --write --only NAME    # rerun NAME's smoke and quick presets (repeatable)
    python -m dlnlab.experiments.verdicts --write                # every registered experiment
    python -m dlnlab.experiments.verdicts --check                # a fresh smoke run against the file

and commit the file with a line ``verdicts: <reason>`` in the commit message (``.ci/check_verdicts`` fails a commit
that changes the file without one). Old ``experiments.base.Claim`` rows have no id and are not recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .base import REGISTRY, get
from .claims import Claim

FILE = Path("tests/experiments/expected_verdicts.json")
PRESETS = ("smoke", "quick")
ABOUT = ("Expected verdicts of the computed claims rows (id -> verdict), per preset and experiment, at each preset's "
         "own seed. tests/experiments/test_verdicts.py compares the smoke ones. Regenerate with python -m "
         "dlnlab.experiments.verdicts --write [--only NAME]; a commit changing this file has a line "
         "'verdicts: <reason>' in its message (.ci/check_verdicts).")


def verdicts_of(claims) -> dict[str, str]:
    """``id → verdict`` of the computed rows of ``claims`` (sorted by id)."""
    return dict(sorted((c.id, c.verdict) for c in claims if isinstance(c, Claim)))


def collect(preset: str, names, out: Path | str) -> dict[str, dict[str, str]]:
    """Run ``preset`` of each experiment of ``names`` into ``out/preset/NAME``: ``{name: {id: verdict}}`` for those
    with computed rows."""
    table = {}
    for name in names:
        result = get(name).run(preset, Path(out) / preset / name)
        if verdicts := verdicts_of(result.claims):
            table[name] = verdicts
    return table


def compare(expected: dict, actual: dict) -> list[str]:
    """One line per row whose verdict differs between two ``{experiment: {id: verdict}}`` tables (a row missing
    from one side included)."""
    lines = []
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name, {}), actual.get(name, {})
        lines += [f"{i}: expected {want.get(i, '(no such row)')!r}, got {got.get(i, '(no such row)')!r}"
                  for i in sorted(set(want) | set(got)) if want.get(i) != got.get(i)]
    return lines


def load(path: Path | str = FILE) -> dict:
    """The file's ``{preset: {experiment: {id: verdict}}}`` (empty presets if there is no file yet)."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    return {p: data.get(p, {}) for p in PRESETS}


def update(data: dict, preset: str, table: dict, names) -> dict:
    """``data`` with the entries of ``names`` under ``preset`` replaced by ``table``'s (an experiment without computed
    rows dropped); the other experiments kept."""
    section = {k: v for k, v in data[preset].items() if k not in set(names)}
    return {**data, preset: dict(sorted({**section, **table}.items()))}


def write(data: dict, path: Path | str = FILE) -> None:
    Path(path).write_text(json.dumps({"about": ABOUT, **data}, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dlnlab.experiments.verdicts", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rerun and rewrite the entries of the chosen experiments")
    mode.add_argument("--check", action="store_true", help="rerun the smoke presets and compare with the file")
    ap.add_argument("--only", action="append", metavar="NAME", help="only this experiment (repeatable)")
    ap.add_argument("--presets", default=",".join(PRESETS), help="with --write: smoke,quick (default) or smoke")
    ap.add_argument("--file", type=Path, default=FILE, help=f"the expected-verdicts file (default {FILE})")
    ap.add_argument("--out", type=Path, help="where the runs go (default: a temporary directory)")
    args = ap.parse_args(argv)
    names = args.only or sorted(REGISTRY)
    for name in names:
        get(name)  # an unknown name is a ConfigError naming the registered ones
    presets = ("smoke",) if args.check else tuple(p.strip() for p in args.presets.split(","))
    if "smoke" not in presets or not set(presets) <= set(PRESETS):
        ap.error(f"--presets {args.presets!r}: allowed smoke,quick or smoke")
    data = load(args.file)
    with tempfile.TemporaryDirectory() as tmp:
        tables = {p: collect(p, names, args.out or tmp) for p in presets}
    if args.check:
        diff = compare({n: v for n, v in data["smoke"].items() if n in names}, tables["smoke"])
        print("\n".join(diff) or f"smoke verdicts of {len(names)} experiments match {args.file}")
        return 1 if diff else 0
    for p in PRESETS:  # a quick entry not rerun with its smoke one would be stale: dropped
        data = update(data, p, tables.get(p, {}), names)
    write(data, args.file)
    print(f"wrote {args.file}: " + "; ".join(f"{p}: {sum(map(len, data[p].values()))} rows" for p in PRESETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
