"""The ``lazy_rich`` experiment (issue 16 part 1) at its smoke preset: dlnlab's flow from λ-balanced, non-aligned
inits against the exact Riccati solution (end-to-end map and tangent-kernel change), and the closed-form map's lazy
and rich ends."""

from __future__ import annotations

from experiments._smoke import run_smoke


def test_rows(tmp_path, tmp_path_factory):
    rows = run_smoke(tmp_path_factory, "lazy_rich", tmp_path).claims
    assert {c.key for c in rows} == {"exact_flow", "kernel_change", "lazy_at_large_lambda", "rich_at_small_scale"}
    for c in rows:
        assert c.verdict == "holds", (c.id, c.verdict, c.value, c.evidence)
    assert sum(c.kind == "measured" for c in rows) == 8


def test_width_rows_hold_the_slope_against_the_derived_exponent():
    """``kernel_width_exponent`` on synthetic kernel changes ``c·w^e`` with 5 % log-normal scatter: holds where ``e`` is
    the derived exponent (−1 at γ = 1/2, +1 at γ = 2), fails where the data scale with the opposite sign."""
    import numpy as np

    from dlnlab.experiments.beyond import lazy_rich as lr

    rng = np.random.default_rng(0)
    w = np.repeat([8, 32, 128], 16)
    runs = {0.5: (w, 0.3 * (w / 8.0) ** -1.0 * np.exp(0.05 * rng.normal(size=w.size))),
            2.0: (w, 8.0 * (w / 8.0) ** -1.0 * np.exp(0.05 * rng.normal(size=w.size)))}
    rows = {r.id: r for r in lr._width_rows(runs, {})}
    lazy, rich = rows["lazy_rich/kernel_width_exponent/gamma=0.5"], rows["lazy_rich/kernel_width_exponent/gamma=2"]
    assert lazy.theory == -1.0 and rich.theory == 1.0 and lazy.kind == rich.kind == "beyond"
    assert lazy.verdict == "holds" and rich.verdict == "fails"
    assert abs(lazy.value + 1.0) < 0.05 and lazy.uncertainty > 0
