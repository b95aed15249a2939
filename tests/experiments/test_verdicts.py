"""Verdict regression (issue 14 item 7): the smoke run's verdicts, row by row (stable ids), against the checked-in
``expected_verdicts.json``. A changed verdict fails here until the file is regenerated
(``python -m dlnlab.experiments.verdicts --write --only NAME``) and committed with a line ``verdicts: <reason>`` in
the commit message (``.ci/check_verdicts``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlnlab.experiments import verdicts

from ._smoke import own_smoke, smoke_run

FILE = Path(__file__).with_name("expected_verdicts.json")
REGENERATE = "python -m dlnlab.experiments.verdicts --write --only NAME"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return smoke_run(tmp_path_factory)


def test_smoke_verdicts_are_the_expected_ones(smoke):
    _, rows = smoke
    actual = {}
    for r in rows:
        if r["id"]:
            actual.setdefault(r["experiment"], {})[r["id"]] = r["verdict"]
    borrowed = sorted(n for n in actual if not own_smoke(n))
    assert borrowed == [], (f"experiments with computed rows but no smoke preset of their own: {borrowed} (declare "
                            "register(..., smoke={...}): a reduced preset at which the verdicts are stable)")
    diff = verdicts.compare(verdicts.load(FILE)["smoke"], actual)
    assert diff == [], (f"{len(diff)} smoke verdicts differ from {FILE.name}; if on purpose, run `{REGENERATE}` and "
                        "commit the file with a line 'verdicts: <reason>' in the message:\n" + "\n".join(diff))
