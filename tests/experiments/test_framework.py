"""The experiments framework on fake experiments: the power-test helper, the verdict-regression file and its
command, and the CI check that a commit changing the file says why."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dlnlab.analysis import stats
from dlnlab.experiments import REGISTRY, Experiment, ExperimentResult, Perturbation, verdicts
from dlnlab.experiments.claims import Claim, Tolerance

from ._power import assert_power

ROOT = Path(__file__).resolve().parents[2]


def _fake(params, out):
    """Two measured rows: ``s`` enters the first's theory, ``T`` the second's; ``value`` sets both estimates."""
    def row(key, theory):
        return Claim(experiment=params["name"], key=key, paper="C", claim="fake", quantity=key, theory=theory,
                     estimate=stats.Estimate.student(params["value"], 0.001, 19),
                     tolerance=Tolerance.within(relative=0.02, why="test"), kind="measured", source="derived")

    scale = params["perturb"]
    return ExperimentResult(params["name"], claims=[row("by_s", 1.0 * scale.get("s", 1.0)),
                                                    row("by_T", 1.0 * scale.get("T", 1.0))])


@pytest.fixture
def fake(monkeypatch):
    def register(name, perturbations, value=1.0):
        preset = {"seed": 0, "name": name, "value": value, "perturb": {}}
        exp = Experiment(name, "C", "fake", _fake, {p: dict(preset) for p in ("quick", "full", "smoke")}, "0 s",
                         tuple(perturbations))
        monkeypatch.setitem(REGISTRY, name, exp)
        return name

    return register


S, T = Perturbation("s", 1.05, "s × 1.05 in the theory"), Perturbation("T", 0.9, "T × 0.9 in the theory")


def test_power_helper_passes_when_every_holding_row_is_moved_and_fails(fake, tmp_path):
    verdicts_by = assert_power(fake("zz_power", (S, T)), tmp_path)
    assert verdicts_by == {S.description: {"zz_power/by_s": "fails", "zz_power/by_T": "holds"},
                           T.description: {"zz_power/by_s": "holds", "zz_power/by_T": "fails"}}


def test_power_helper_names_the_rows_no_perturbation_tests(fake, tmp_path):
    with pytest.raises(AssertionError, match="zz_weak/by_T: holds, and no declared perturbation moves it"):
        assert_power(fake("zz_weak", (S,)), tmp_path)
    with pytest.raises(AssertionError, match="no Perturbation declared"):
        assert_power(fake("zz_none", ()), tmp_path)
    with pytest.raises(AssertionError, match="no measured row holds"):
        assert_power(fake("zz_off", (S,), value=2.0), tmp_path)


def test_power_helper_fails_a_row_that_survives_its_perturbation(fake, tmp_path):
    tiny = Perturbation("s", 1.001, "s × 1.001: inside the 2 % budget")
    with pytest.raises(AssertionError, match=r"zz_tiny/by_s: holds with s × 1.001"):
        assert_power(fake("zz_tiny", (tiny, T)), tmp_path)


def test_verdict_file_write_only_and_check(fake, tmp_path, capsys):
    """--write records smoke and quick verdicts; --only replaces one experiment's entries and keeps the others;
    --check reports a changed verdict and exits 1."""
    a, b = fake("zz_a", (S,)), fake("zz_b", (S,))
    path = tmp_path / "expected.json"
    assert verdicts.main(["--write", "--only", a, "--only", b, "--file", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["smoke"] == data["quick"] == {n: {f"{n}/by_T": "holds", f"{n}/by_s": "holds"} for n in (a, b)}
    assert "verdicts: <reason>" in data["about"]
    REGISTRY[b].presets["smoke"]["value"] = 2.0
    assert verdicts.main(["--check", "--only", a, "--only", b, "--file", str(path)]) == 1
    assert "zz_b/by_s: expected 'holds', got 'fails'" in capsys.readouterr().out
    assert verdicts.main(["--write", "--only", b, "--presets", "smoke", "--file", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["smoke"][a] == {f"{a}/by_T": "holds", f"{a}/by_s": "holds"}  # kept
    assert data["smoke"][b] == {f"{b}/by_T": "fails", f"{b}/by_s": "fails"}
    assert b not in data["quick"] and a in data["quick"]  # b's quick entry was not rerun: dropped, not stale
    assert verdicts.main(["--check", "--only", a, "--only", b, "--file", str(path)]) == 0


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_ci_check_requires_a_reason_for_a_changed_verdict_file(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / "tests" / "experiments").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "check_verdicts", repo / ".ci" / "check_verdicts")
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    file = repo / "tests" / "experiments" / "expected_verdicts.json"

    def commit(text, message):
        file.write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", message)
        return subprocess.run([str(repo / ".ci" / "check_verdicts")], check=False, capture_output=True, text=True)

    assert commit('{"smoke": {}}', "first").returncode == 0  # no parent: nothing to compare
    assert commit('{"smoke": {}}', "unrelated change").returncode == 0  # file unchanged
    bad = commit('{"smoke": {"x": {"x/a": "fails"}}}', "x: new estimator\n\nno reason line")
    assert bad.returncode == 1 and "verdicts: <reason>" in bad.stderr
    good = commit('{"smoke": {"x": {"x/a": "holds"}}}', "x: more replicas\n\nverdicts: x/a holds at 4x replicas")
    assert good.returncode == 0 and "x/a holds at 4x replicas" in good.stdout


def test_ci_runs_the_readme_test_command_with_the_slow_tests():
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "python -m pytest" in line and line.startswith("python3"))
    assert "python -m pytest -n 2 --runslow" in command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci and ".ci/check_verdicts" in ci


def _flip_table():
    import importlib.util

    spec = importlib.util.spec_from_file_location("flip_table", ROOT / "benchmarks" / "flip_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flip_table_rule():
    """A correct theory fails a seed with probability ≤ α: at α = 0.01 over 5 seeds one fail is within α (p = 0.049),
    two are not (p ≈ 0.001); a row failing at every seed is stable; a row missing at a seed has an unstable id."""
    classify = _flip_table().classify
    h, f, i = "holds", "fails", "inconclusive"
    assert classify([h] * 5, 0.01) == (1.0, "stable: holds")
    assert classify([f] * 5, 0.01)[1] == "stable: fails"
    p, status = classify([h, h, f, h, h], 0.01)
    assert status == "flips within α" and p == pytest.approx(1 - 0.99 ** 5)
    p, status = classify([h, f, f, h, h], 0.01)
    assert status == "flips more often than α allows" and p == pytest.approx(1 - 0.99 ** 5 - 5 * 0.01 * 0.99 ** 4)
    assert classify([h, f, h, h, h], 0.2)[1] == "flips within α"
    assert classify([h, i, h, h, h], 0.01)[1] == "holds/inconclusive mix"
    assert classify([h, None, h, h, h], 0.01)[1] == "unstable id"


def test_flip_table_from_runs(tmp_path):
    """The table and its Markdown summary from the runs of two seeds (one row flips, one old-style experiment)."""
    module = _flip_table()
    for k, verdict in enumerate(("holds", "fails")):
        d = tmp_path / f"seed-{k}"
        d.mkdir()
        (d / "claims.csv").write_text(
            "id,experiment,paper,kind,alpha,verdict\n"
            f"e/a,e,C,measured,0.01,holds\ne/b,e,C,measured,0.01,{verdict}\ne/t,e,C,theory,0.01,fails\n"
            ",old,Z,,,holds\n")
    per_seed, old = module.read_runs(tmp_path, 2)
    rows = module.table(per_seed)
    assert old == {"old"} and [(r["id"], r["status"]) for r in rows] == [("e/a", "stable: holds"),
                                                                        ("e/b", "flips within α")]
    md = module.markdown(rows, 2, ["e", "old"], old, ["nos"], {"written": "now", "load": "load 0"})
    assert "**2 measured rows**" in md and "Writing old rows (not migrated, their rows not judged): old." in md
    assert "| `e/b` | 0.01 | H F | 0.0199 | flips within α |" in md and "no `seed` parameter): nos." in md
