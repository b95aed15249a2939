"""`dlnlab reproduce`: claims table, HTML report rendered in headless Chromium, and resume."""

import csv
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlnlab import reproduce as reproduce_mod
from dlnlab.cli import app
from dlnlab.experiments import REGISTRY, Claim, Experiment, ExperimentResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def saxe_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--paper", "S", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_claims_table_has_finite_rows(saxe_run):
    with open(saxe_run / "claims.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["experiment"] for r in rows} == {"saxe"}
    for r in rows:
        assert r["verdict"] in ("holds", "fails", "not applicable")
        assert math.isfinite(float(r["value"])) and math.isfinite(float(r["uncertainty"]))


def test_interrupted_reproduce_resumes_without_recomputing(saxe_run, monkeypatch, tmp_path):
    """An interrupt during the second experiment; the rerun skips the finished first one and restarts
    the unfinished second one from scratch (its partial directory is discarded)."""
    saxe_run = Path(shutil.copytree(saxe_run, tmp_path / "copy"))
    calls = []

    def second(params, out):
        calls.append("second")
        (out / "scratch.txt").write_text("partial")
        if len(calls) == 1:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second experiment
        return ExperimentResult("zz_second", claims=[Claim("S", "dummy", "zz_second", "x", 1.0, 1.0, 0.0, "exact",
                                                           "holds")])

    monkeypatch.setitem(REGISTRY, "zz_second", Experiment("zz_second", "S", "dummy", second, {"quick": {}}, "0 s"))
    original_run = Experiment.run
    ran = []
    monkeypatch.setattr(Experiment, "run", lambda self, *a, **k: (ran.append(self.name), original_run(self, *a, **k))[1])
    with pytest.raises(KeyboardInterrupt):
        reproduce_mod.reproduce(saxe_run, "quick", papers=["S"], progress=False)
    assert ran == ["zz_second"]  # saxe was finished by the fixture: not recomputed
    assert not (saxe_run / "experiments" / "zz_second").exists()
    reproduce_mod.reproduce(saxe_run, "quick", papers=["S"], progress=False)
    assert ran == ["zz_second", "zz_second"] and calls == ["second", "second"]
    assert (saxe_run / "experiments" / "zz_second" / "result.json").exists()
    reproduce_mod.reproduce(saxe_run, "quick", papers=["S"], progress=False)
    assert ran == ["zz_second", "zz_second"]  # both finished now: nothing recomputed


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_report_renders_in_chromium(saxe_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((saxe_run / "report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        rendered = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        shot = Path(tmp_path) / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert rendered and all(rendered)
    assert shot.stat().st_size > 10_000
