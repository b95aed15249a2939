"""dlnlab.experiments.claims: computed verdicts, tolerance bands, the row format, the tally."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest

from dlnlab.analysis import stats
from dlnlab.errors import ConfigError
from dlnlab.experiments.base import Claim as OldClaim
from dlnlab.experiments.base import ExperimentResult, write_claims_csv
from dlnlab.experiments.claims import Claim, Tolerance, setting, tally

WHY = "test budget"


def _claim(estimate, theory=0.0, tolerance=None, kind="measured", key="q", **kw):
    return Claim(experiment="exp", key=key, setting=kw.pop("setting", setting(depth=2, T=0.1)), paper="C",
                 claim="a claim", quantity="a quantity", theory=theory, estimate=estimate,
                 tolerance=tolerance or Tolerance.within(absolute=1.0, why=WHY), kind=kind, source="derived", **kw)


def _t(value, se=0.1, dof=19):
    return stats.Estimate.student(value, se, dof)


def test_tolerance_bands():
    assert Tolerance.within(absolute=0.1, relative=0.05, why=WHY).band(4.0) == pytest.approx((3.8, 4.2))
    assert Tolerance.within(absolute=0.3, relative=0.05, why=WHY).band(4.0) == pytest.approx((3.7, 4.3))
    assert Tolerance.at_most(absolute=0.02, why=WHY).band(0.0) == (-math.inf, 0.02)
    assert Tolerance.at_least(relative=0.1, why=WHY).band(1.0) == (0.9, math.inf)
    assert Tolerance.above(0.9, why=WHY).band(math.nan) == (0.9, math.inf)
    assert Tolerance.below(0.0, why=WHY).band(3.0) == (-math.inf, 0.0)
    assert all(math.isnan(e) for e in Tolerance.within(relative=0.1, why=WHY).band(math.nan))
    text = str(Tolerance.within(absolute=0.1, relative=0.05, alpha=0.005, why="O(h) bias"))
    assert "max(0.1, 5 % of |θ|)" in text and "99 % interval" in text and "α = 0.005" in text and "O(h) bias" in text


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Tolerance("near", WHY), "side"),
    (lambda: Tolerance.within(absolute=0.1, why=" "), "why"),
    (lambda: Tolerance.within(absolute=-1.0, why=WHY), "absolute"),
    (lambda: Tolerance.within(relative=0.1, alpha=0.5, why=WHY), "alpha"),
    (lambda: Tolerance("within", WHY, threshold=1.0), "threshold"),
])
def test_tolerance_validation(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_verdicts_are_computed():
    within = Tolerance.within(absolute=1.0, why=WHY)  # sdd of a t(19) law at α = 0.01 with se 0.1: 0.54
    assert _claim(_t(0.1), tolerance=within).verdict == "holds"
    assert _claim(_t(0.9), tolerance=within).verdict == "fails"  # straddles the edge, resolved
    assert _claim(_t(0.0, se=0.5), tolerance=within).verdict == "inconclusive"  # sdd 2.7 > 1, bounds ±1.27
    assert _claim(_t(0.0, se=0.3), tolerance=within).verdict == "holds"  # sdd 1.62 > 1, but bounds ±0.76 fit
    assert _claim(_t(math.nan), tolerance=within).verdict == "not applicable"
    assert _claim(_t(0.1), theory=math.nan, tolerance=Tolerance.within(relative=0.1, why=WHY)).verdict == (
        "not applicable")
    c = _claim(_t(0.1), tolerance=within)
    assert c.id == "exp/q/depth=2, T=0.1" and c.value == 0.1 and c.uncertainty == 0.1
    assert c.evidence.lower == pytest.approx(0.1 - 0.1 * 2.539, rel=1e-3)  # t_{0.99, 19} = 2.539


def test_qualitative_claims_get_computed_verdicts():
    # "every run": Wilson fraction, theory 1, threshold 0.9; 64 of 64 resolves (sdd 0.078 < 0.1) and holds
    every = Tolerance.above(0.9, why="every run, up to 10 %")
    assert _claim(stats.wilson(64, 64), theory=1.0, tolerance=every).verdict == "holds"
    assert _claim(stats.wilson(60, 64), theory=1.0, tolerance=every).verdict == "inconclusive"
    assert _claim(stats.wilson(40, 64), theory=1.0, tolerance=every).verdict == "fails"
    # an ordering: batch means of t2 − t1 above 0, no theory value (±1 is 14 SE away from 0: no seed flips it;
    # a difference centred on 0 exactly always straddles the threshold)
    x = np.random.default_rng(0).normal(0.0, 1.0, size=200)
    for shift, verdict in ((1.0, "holds"), (-1.0, "fails"), (0.0, "inconclusive")):
        d = stats.group_estimate(x - x.mean() + shift)
        assert _claim(d, theory=math.nan, tolerance=Tolerance.above(0.0, why="ordering")).verdict == verdict


def test_a_perturbed_theory_fails():
    # a measured mean (batch means over 4000 replicas: SE 0.008, the 5 % budget is 12 SE) against its theory and
    # against the theory × 1.2
    x = np.random.default_rng(1).normal(2.0, 0.5, size=4000)
    tol = Tolerance.within(relative=0.05, why="5 % model budget")
    assert _claim(stats.group_estimate(x), theory=2.0, tolerance=tol).verdict == "holds"
    assert _claim(stats.group_estimate(x), theory=2.4, tolerance=tol).verdict == "fails"


def test_a_verdict_cannot_be_written():
    c = _claim(_t(5.0))
    assert c.verdict == "fails"
    with pytest.raises(TypeError):
        _claim(_t(5.0), verdict="holds")
    with pytest.raises(ValueError):
        dataclasses.replace(c, verdict="holds")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.verdict = "holds"
    row = c.to_dict()
    with pytest.raises(ConfigError, match="computed, not written"):
        Claim.from_dict({**row, "verdict": "holds"})
    with pytest.raises(ConfigError, match="computed, not written"):  # doctored evidence: judged again, disagrees
        Claim.from_dict({**row, "lower": -0.5, "upper": 0.5})


def test_measured_rows_need_an_uncertainty():
    with pytest.raises(ConfigError, match="uncertainty > 0"):
        _claim(stats.Estimate.exact(0.3))
    assert _claim(stats.Estimate.exact(0.3), kind="theory").verdict == "holds"
    assert _claim(stats.Estimate.exact(0.3, bound=1e-6)).verdict == "holds"


def test_claim_validation():
    with pytest.raises(ConfigError, match="inside its own tolerance band"):
        _claim(_t(1.0), theory=0.5, tolerance=Tolerance.above(0.9, why=WHY))
    with pytest.raises(ConfigError, match="Claim.kind"):
        _claim(_t(0.0), kind="measurement")
    with pytest.raises(ConfigError, match="Claim.key"):
        _claim(_t(0.0), key="a/b")
    with pytest.raises(ConfigError, match="Claim.estimate"):
        _claim(0.3)
    assert _claim(_t(0.0), setting={"L": 3, "s": 0.5}).setting == "L=3, s=0.5"


def _table():
    rng = np.random.default_rng(2)
    return [
        _claim(stats.group_estimate(rng.normal(0.0, 1.0, size=(100, 4))), key="mean"),
        _claim(stats.bootstrap_quantile(rng.exponential(size=3000)), theory=math.log(2), key="median",
               tolerance=Tolerance.within(relative=0.2, alpha=0.005, why=WHY)),
        _claim(stats.ks_1samp(rng.uniform(size=500), lambda v: np.clip(v, 0, 1)).distance, key="ks",
               tolerance=Tolerance.at_most(absolute=0.2, why=WHY)),
        _claim(stats.wilson(64, 64), theory=1.0, key="every", tolerance=Tolerance.above(0.9, why=WHY), kind="beyond"),
        _claim(stats.Estimate.exact(1e-12), key="closed_form", kind="theory",
               tolerance=Tolerance.at_most(absolute=1e-9, why="quadrature")),
        _claim(_t(0.0, se=3.0), key="noisy"),
        _claim(_t(math.nan), key="missing"),
    ]


def test_rows_round_trip_through_json_and_csv(tmp_path):
    table = _table()
    for c in table:
        back = Claim.from_dict(json.loads(json.dumps(c.to_dict())))
        assert (back.id, back.verdict, back.tolerance) == (c.id, c.verdict, c.tolerance)
        np.testing.assert_array_equal(back.evidence, c.evidence)
    old = OldClaim("C", "old claim", "exp", "q", 1.0, 1.1, 0.1, "within 5 SE", "holds")
    write_claims_csv([old, *table], tmp_path / "claims.csv")
    with open(tmp_path / "claims.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["verdict"] == "holds" and rows[0]["id"] == ""
    others, theory = [c for c in table if c.kind != "theory"], [c for c in table if c.kind == "theory"]
    assert [r["kind"] for r in rows[-len(theory):]] == ["theory"] * len(theory) > []  # the self-checks' block, last
    assert [Claim.from_dict(r).id for r in rows[1:]] == [c.id for c in others + theory]
    assert [Claim.from_dict(r).verdict for r in rows[1:]] == [c.verdict for c in others + theory]
    res = ExperimentResult("exp", claims=[old, *table])
    again = ExperimentResult.from_json(res.to_json())
    assert again.claims[0] == old and [c.verdict for c in again.claims[1:]] == [c.verdict for c in table]


def test_tally():
    table = _table()
    t = tally(table)
    verdicts = {c.key: c.verdict for c in table}
    assert verdicts["noisy"] == "inconclusive" and verdicts["missing"] == "not applicable"
    assert sum(t.counts["measured"].values()) == 5 and t.counts["theory"]["holds"] == 1
    assert t.counts["beyond"]["holds"] == 1
    # Σα over the judged measured rows: mean, median (α = 0.005), ks, noisy — not "missing"
    assert t.expected_false_fails == pytest.approx(0.01 + 0.005 + 0.01 + 0.01)
    assert t.inconclusive == ("exp/noisy/depth=2, T=0.1",)
    with pytest.raises(ConfigError, match="unique"):
        tally([table[0], table[0]])
