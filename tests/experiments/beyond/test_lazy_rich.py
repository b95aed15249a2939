"""The ``lazy_rich`` experiment (issue 16 part 1) at its smoke preset: dlnlab's flow from λ-balanced, non-aligned
inits against the exact Riccati solution (end-to-end map and tangent-kernel change), and the closed-form map's lazy
and rich ends."""

from __future__ import annotations

from dlnlab.experiments import get


def test_rows(tmp_path):
    rows = get("lazy_rich").run("smoke", tmp_path).claims
    assert {c.key for c in rows} == {"exact_flow", "kernel_change", "lazy_at_large_lambda", "rich_at_small_scale"}
    for c in rows:
        assert c.verdict == "holds", (c.id, c.verdict, c.value, c.evidence)
    assert sum(c.kind == "measured" for c in rows) == 8
