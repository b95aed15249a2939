"""`dlnlab reproduce`: claims table, seeds, resume, and the HTML report (escaping, counts by kind, sections, the
full table's filters in headless Chromium, the notebook view)."""

import csv
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlnlab import reproduce as reproduce_mod
from dlnlab.analysis import stats
from dlnlab.cli import app
from dlnlab.experiments import REGISTRY, VERDICTS, Experiment, ExperimentResult, Figure
from dlnlab.experiments.claims import Claim, Tolerance, setting
from dlnlab.experiments.table import rows_of

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL = "<script>alert('x')</script>&\"'"


def _row(exp, key, value, se=0.01, *, kind="measured", paper="C", theory=1.0, note="", claim="a claim"):
    return Claim(experiment=exp, key=key, setting=setting(depth=2, T=0.1), paper=paper, claim=claim,
                 quantity=f"quantity {key}", theory=theory, estimate=stats.Estimate.student(value, se, 19),
                 tolerance=Tolerance.within(relative=0.05, why="test budget"), kind=kind, source="derived", note=note)


def _synthetic(params, out):
    """Rows of every kind and verdict, a figure, and user strings that need escaping."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, params["seed"]])
    fig.savefig(out / "fig.png")
    plt.close(fig)
    name = params["name"]
    claims = [_row(name, "holds", 1.01), _row(name, "fails", 1.3), _row(name, "noisy", 1.0, se=0.2),
              _row(name, "self", 1.0, kind="theory"), _row(name, "past", 1.0, kind="beyond"),
              _row(name, "evil", 1.0, note=EVIL, claim=EVIL)]
    return ExperimentResult(name, claims=claims, figures=[Figure("fig.png", f"caption {EVIL}")])


@pytest.fixture
def synthetic(monkeypatch):
    """Two registered fake experiments ([C] and [S]) writing the rows of :func:`_synthetic`."""
    for name, paper in (("zz_fake_c", "C"), ("zz_fake_s", "S")):
        presets = {p: {"seed": 5, "name": name, "label": EVIL, "perturb": {}} for p in ("quick", "full", "smoke")}
        monkeypatch.setitem(REGISTRY, name, Experiment(name, paper, f"fake claim {EVIL}", _synthetic, presets, "0 s"))
    return ["zz_fake_c", "zz_fake_s"]


@pytest.fixture(scope="module")
def saxe_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep")
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--paper", "S", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_claims_table_has_finite_rows(saxe_run):
    with open(saxe_run / "claims.csv") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames[:5] == ["id", "experiment", "paper", "kind", "source"]
    assert {"alpha", "tolerance", "verdict", "note"} <= set(reader.fieldnames)
    assert {r["experiment"] for r in rows} == {"saxe"}
    for r in rows:
        assert r["verdict"] in VERDICTS
        assert math.isfinite(float(r["value"])) and math.isfinite(float(r["uncertainty"]))


def test_seed_shifts_every_experiment(synthetic, tmp_path):
    """``--seed K`` adds K to each experiment's seed (recorded in its parameters and the manifest); the default out
    directory names the shift; a finished run at another seed is recomputed, not reused."""
    res = reproduce_mod.reproduce(tmp_path / "a", "quick", names=synthetic, progress=False, seed=3)
    assert [r.params["seed"] for r in res] == [8, 8]
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["seed_shift"] == 3
    assert "seeds shifted by 3" in (tmp_path / "a" / "report.html").read_text()
    res = reproduce_mod.reproduce(tmp_path / "a", "quick", names=synthetic, progress=False)
    assert [r.params["seed"] for r in res] == [5, 5]
    out = CliRunner().invoke(app, ["run", "zz_fake_c", "--smoke", "--seed", "2", "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "r" / "result.json").read_text())["params"] == {
        "preset": "smoke", "seed": 7, "name": "zz_fake_c", "label": EVIL, "perturb": {}}


def test_seed_shift_needs_a_seed_parameter(monkeypatch, tmp_path):
    monkeypatch.setitem(REGISTRY, "zz_noseed", Experiment("zz_noseed", "S", "x", _synthetic, {"quick": {}}, "0 s"))
    out = CliRunner().invoke(app, ["run", "zz_noseed", "--seed", "1", "--out", str(tmp_path / "r")])
    assert out.exit_code == 2 and "zz_noseed.seed" in out.output and "--seed" in out.output
    assert not (tmp_path / "r").exists()


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
        return ExperimentResult("zz_second", claims=[_row("zz_second", "dummy", 1.0, paper="S")])

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


@pytest.fixture
def synthetic_run(synthetic, tmp_path):
    reproduce_mod.reproduce(tmp_path, "quick", names=synthetic, progress=False)
    return tmp_path


def test_report_escapes_user_strings_and_is_self_contained(synthetic_run):
    html = (synthetic_run / "report.html").read_text()
    assert EVIL not in html and "<script>alert" not in html
    assert html.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;&#x27;") >= 5  # claim, note, …
    assert len(re.findall(r"<script\b", html)) == 1  # the filters' inline script, nothing else
    assert not re.search(r"""(?:src|href)=['"](?:https?:)?//""", html)  # nothing fetched
    assert re.search(r"<img alt='fig.png' src='data:image/png;base64,", html)


def test_report_counts_by_kind_and_lists_inconclusive_rows(synthetic_run):
    """Only measured rows count in "N of M hold"; Σα over the judged measured rows; theory self-checks apart; each
    row's α shown; the inconclusive rows listed with links; source explained."""
    html = (synthetic_run / "report.html").read_text()
    assert "Measured rows: 4 of 8 hold, 2 fail, 2 inconclusive." in html  # holds, fails, noisy, evil × 2 experiments
    assert "Σα = 0.08" in html
    by_kind = {k: [int(x) for x in re.findall(r"<td class='num'>(\d+)</td>", cells)]
               for k, cells in re.findall(r"<b>(\w+)</b></td>((?:<td class='num'>\d+</td>)+)</tr>", html)}
    assert by_kind == {"measured": [4, 2, 2, 0, 8], "theory": [2, 0, 0, 0, 2], "beyond": [2, 0, 0, 0, 2]}
    theory = html[html.index("<h2 id='theory'>"):html.index("<h2 id='inconclusive'>")]
    assert theory.count("quantity self") == 2 and "quantity holds" not in theory
    inconclusive = html[html.index("<h2 id='inconclusive'>"):html.index("<h2 id='table'>")]
    assert inconclusive.count("<li>") == 2 and "href='#row-zz_fake_c_noisy_depth_2_T_0.1'" in inconclusive
    assert "id='row-zz_fake_c_noisy_depth_2_T_0.1'" in html
    assert "<i>derived</i>" in html and "<i>paper</i>" in html
    for section in ("paper-C", "paper-S", "exp-zz_fake_c", "exp-zz_fake_s", "table", "provenance"):
        assert f"id='{section}'" in html, section
    # papers first, then experiments, then the full table
    assert html.index("id='paper-C'") < html.index("id='exp-zz_fake_c'") < html.index("id='full'")


def test_result_html_for_notebooks(synthetic, tmp_path):
    res = REGISTRY["zz_fake_c"].run("smoke", tmp_path)
    html = res._repr_html_()
    assert html.startswith("<div class='dlnlab'><style>") and EVIL not in html
    for verdict in ("holds", "fails", "inconclusive"):
        assert f"class='v v-{verdict}'" in html
    assert html.count("<tr><td class='v v-") == len(rows_of(res.claims)) == 6  # theory rows included here


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (installed by .ci/run)")
def test_report_renders_and_filters_in_chromium(synthetic_run, saxe_run):
    """Figures load, no console errors, the page fits 1280 px, and the full table's filters hide what they
    should (the count follows)."""
    playwright = pytest.importorskip("playwright.sync_api")
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        shown = {}
        for run in (synthetic_run, saxe_run):
            page.goto((run / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")
            assert all(page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"))
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.goto((synthetic_run / "report.html").resolve().as_uri())
        for name, value in (("verdict", "inconclusive"), ("experiment", "zz_fake_s"), ("kind", "theory")):
            page.select_option(f"#filters select[name={name}]", value)
            shown[name] = (page.inner_text("#nshown"),
                           page.evaluate("Array.from(document.querySelectorAll('#full tbody tr:not(.g)'))"
                                         ".filter(r => !r.hidden).map(r => r.dataset.verdict + '/' + r.dataset.kind)"))
        browser.close()
    assert errors == []
    assert shown["verdict"] == ("2", ["inconclusive/measured"] * 2)
    assert shown["experiment"] == ("1", ["inconclusive/measured"])
    assert shown["kind"] == ("0", [])


def test_report_has_a_section_for_a_paper_without_headlines(monkeypatch, tmp_path):
    """A paper key past the four of the headlines (here [D], as a plugin's would be) gets its own paper section."""
    presets = {p: {"seed": 5, "name": "zz_fake_d", "label": "x", "perturb": {}} for p in ("quick", "full", "smoke")}
    monkeypatch.setitem(REGISTRY, "zz_fake_d", Experiment("zz_fake_d", "D", "fake claim", _synthetic, presets, "0 s"))
    reproduce_mod.reproduce(tmp_path, "quick", names=["zz_fake_d"], progress=False)
    html = (tmp_path / "report.html").read_text()
    assert "id='paper-D'" in html and html.index("id='paper-D'") < html.index("id='exp-zz_fake_d'")


def _network_config(seed):
    import dlnlab

    return dlnlab.Config.from_dict({
        "teacher": {"d_in": 3, "d_out": 2, "singular_values": [1.5, 0.5], "label_noise": 0.2},
        "network": {"depth": 2, "width": 4}, "init": {"kind": "gaussian", "gamma": 1.0},
        "dynamics": {"kind": "sgd", "lr": 0.05, "batch_size": 2, "steps": 40},
        "record": {"n_times": 5, "observables": ["loss"]}, "ensemble": {"replicas": 3, "seed": seed}})


STOP_AFTER = {}  # simulation count after which ``_three_runs`` is interrupted (as Ctrl-C would)


def _three_runs(params, out):
    """Three small SGD runs; the experiment's row is their mean final loss."""
    from dlnlab import simulate

    losses = []
    for k in range(3):
        losses.append(float(simulate(_network_config(params["seed"] + k), progress=False).loss[:, -1].mean()))
        if STOP_AFTER.get("n") == k + 1:
            raise KeyboardInterrupt
    (out / "losses.json").write_text(json.dumps(losses))
    return ExperimentResult("zz_three", claims=[_row("zz_three", "loss", sum(losses) / 3, theory=sum(losses) / 3)])


def test_interrupted_experiment_resumes_from_its_completed_simulations(monkeypatch, tmp_path):
    """Issue 19 item 4: Ctrl-C after the second of an experiment's three simulations; the rerun runs only the third
    (the first two are read back from ``.NAME.runs``), and its claims and data are an uninterrupted run's. The kept
    runs go once the experiment has finished; runs kept by other code (another fingerprint) are not trusted."""
    from dlnlab.engines import _core

    presets = {p: {"seed": 3, "perturb": {}} for p in ("quick", "full", "smoke")}
    monkeypatch.setitem(REGISTRY, "zz_three", Experiment("zz_three", "S", "three runs", _three_runs, presets, "0 s"))
    monkeypatch.delenv(_core.RUN_CACHE_ENV, raising=False)
    ran = []
    real = _core._execute
    monkeypatch.setattr(_core, "_execute", lambda program, *a: (ran.append(program.config.ensemble.seed),
                                                                 real(program, *a))[1])
    reproduce_mod.reproduce(tmp_path / "whole", "quick", names=["zz_three"], progress=False)
    assert ran == [3, 4, 5]

    ran.clear()
    stale = tmp_path / "cut" / "experiments" / ".zz_three.runs" / "0123456789abcdef"
    stale.mkdir(parents=True)
    monkeypatch.setitem(STOP_AFTER, "n", 2)
    with pytest.raises(KeyboardInterrupt):
        reproduce_mod.reproduce(tmp_path / "cut", "quick", names=["zz_three"], progress=False)
    assert ran == [3, 4] and not stale.exists()
    assert len(list((tmp_path / "cut" / "experiments" / ".zz_three.runs").glob("*/*.nc"))) == 2
    STOP_AFTER.clear()
    reproduce_mod.reproduce(tmp_path / "cut", "quick", names=["zz_three"], progress=False)
    assert ran == [3, 4, 5]  # only the third simulation was run again
    assert not (tmp_path / "cut" / "experiments" / ".zz_three.runs").exists()
    for f in ("claims.csv", "experiments/zz_three/losses.json"):
        assert (tmp_path / "cut" / f).read_text() == (tmp_path / "whole" / f).read_text(), f


def test_parallel_reproduce_gives_the_serial_claims(tmp_path):
    """``jobs = 2``: two experiments in two worker processes give the claims of a serial, in-process run, row for
    row, and the manifest records the jobs."""
    names = ["discrete_collapse", "law_of_balance"]
    tables = {}
    for jobs in (1, 2):
        reproduce_mod.reproduce(tmp_path / str(jobs), "smoke", names=names, progress=False, jobs=jobs)
        tables[jobs] = (tmp_path / str(jobs) / "claims.csv").read_text()
        assert json.loads((tmp_path / str(jobs) / "manifest.json").read_text())["jobs"] == jobs
    assert tables[2] == tables[1] and len(tables[1].splitlines()) > 10


def test_cost_seconds_reads_the_registered_costs():
    assert reproduce_mod.cost_seconds("~1.5 min") == 90 and reproduce_mod.cost_seconds("12–70 s under load") == 70
    assert reproduce_mod.cost_seconds("fast") == 60
    assert all(reproduce_mod.cost_seconds(e.cost) > 0 for e in REGISTRY.values())
