"""The power test of an experiment (issue 14 item 5), for the per-paper ``test_power.py`` files::

    from experiments._power import assert_power

    def test_power(tmp_path):
        assert_power("diffusion_peak", tmp_path)

(the per-paper folder needs an ``__init__.py``, like ``tests/experiments/``, for ``experiments._power`` to import
whatever the test order). It runs the experiment's ``smoke`` preset at the true theory, then once per declared
:class:`~dlnlab.experiments.Perturbation` (``perturb={input=factor}``: the theory input off by that factor, the
simulation unchanged), and asserts the contract of ``experiments.base``:

* at least one measured row holds at the true theory (otherwise the test could show nothing);
* every measured row that holds at the true theory and that a perturbation *moves* — its theory value, its tolerance
  band or its estimate changes (an estimate against a theory law, e.g. a KS distance, moves with the law) — fails
  under that perturbation;
* every measured row that holds at the true theory is moved by at least one declared perturbation.
"""

from __future__ import annotations

import math
from pathlib import Path

from dlnlab.engines import keep_runs
from dlnlab.experiments import get
from dlnlab.experiments.claims import Claim

from ._smoke import finished_smoke, run_cache


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def moved(row: Claim, other: Claim) -> bool:
    """Whether a perturbation changed a row's theory value, tolerance band or estimate."""
    band, other_band = row.tolerance.band(row.theory), other.tolerance.band(other.theory)
    return not (_same(row.theory, other.theory) and all(map(_same, band, other_band))
                and _same(row.value, other.value))


def _measured(result) -> dict[str, Claim]:
    return {c.id: c for c in result.claims if isinstance(c, Claim) and c.kind == "measured"}


def assert_power(name: str, out: Path, perturbations=None, session=None) -> dict:
    """Run the power test of experiment ``name`` in ``out`` (over its declared perturbations, or the given subset);
    returns ``{perturbation description: {id: verdict}}`` of the measured rows that hold at the true theory. With
    ``session`` (pytest's ``tmp_path_factory``) the run at the true theory is the session's smoke run where it has
    finished (``_smoke.finished_smoke``), and the perturbed arms read the simulations they share with it from the
    session's run cache (``_smoke.run_cache``)."""
    if session is None:
        return _assert_power(name, out, perturbations, None)
    with keep_runs(run_cache(session)):
        return _assert_power(name, out, perturbations, finished_smoke(session, name))


def _assert_power(name, out, perturbations, true) -> dict:
    exp = get(name)
    perturbations = exp.perturbations if perturbations is None else tuple(perturbations)
    assert perturbations, f"{name}: no Perturbation declared (register(..., perturbations=(Perturbation(...),)))"
    true = _measured(true if true is not None else exp.run("smoke", Path(out) / "true"))
    holding = {i: c for i, c in true.items() if c.verdict == "holds"}
    assert holding, f"{name}: no measured row holds at the smoke preset, so no perturbation can show power"
    verdicts, problems, moved_by = {}, [], {i: [] for i in holding}
    for k, p in enumerate(perturbations):
        run = _measured(exp.run("smoke", Path(out) / f"perturbed-{k}", [f"perturb={{{p.input}={p.factor!r}}}"]))
        verdicts[p.description] = {i: run[i].verdict for i in holding if i in run}
        for i, row in holding.items():
            if i not in run:
                problems.append(f"{i}: no such row with {p.input} × {p.factor:g} ({p.description})")
            elif moved(row, run[i]):
                moved_by[i].append(p.description)
                if run[i].verdict != "fails":
                    problems.append(f"{i}: {run[i].verdict} with {p.input} × {p.factor:g} ({p.description}); theory "
                                    f"{row.theory:.6g} → {run[i].theory:.6g}, estimate {run[i].value:.6g} ± "
                                    f"{run[i].uncertainty:.3g}")
    problems += [f"{i}: holds, and no declared perturbation moves it (its theory is not tested)"
                 for i, by in moved_by.items() if not by]
    assert not problems, f"{name}: power test, {len(problems)} problems:\n" + "\n".join(problems)
    return verdicts
