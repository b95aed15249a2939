"""The ``edge_of_stability`` experiment (issue 16 part 3) at its smoke preset: GD between 2/S_GF and 2/S_bal
settles at sharpness ≈ 2/η, no flatter than the balanced minimum; the beyond rows: progressive sharpening, most
inits flatter than GF just below 2/S_GF (a Wilson fraction), no convergence above 2/S_bal without divergence, and
divergence further up (a Wilson fraction). At 12 replicas every row holds at seeds 0–4 (checked when the rows were
made; the seed-0 verdicts are the checked-in expected ones)."""

from __future__ import annotations

import numpy as np

from experiments._smoke import run_smoke


def test_rows(tmp_path, tmp_path_factory):
    rows = {c.id: c for c in run_smoke(tmp_path_factory, "edge_of_stability", tmp_path).claims}
    for i in ("edge/eta=0.47", "above_balanced/eta=0.47", "sharpening/eta=0.3", "flatter_than_gf/eta=0.38",
              "no_convergence/eta=0.52", "diverges/eta=0.75"):
        c = rows[f"edge_of_stability/{i}"]
        assert c.verdict == "holds", (c.id, c.verdict, c.value, c.evidence)
    assert rows["edge_of_stability/diverges/eta=0.75"].note == "diverged at η ≤ 0.52: 0 of 48"  # none further down
    assert np.isnan(rows["edge_of_stability/diverges/eta=0.75"].theory)
