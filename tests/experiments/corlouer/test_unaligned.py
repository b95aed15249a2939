"""The ``unaligned`` experiment (E4; checks.md S10, S11) at its smoke preset: the late-time per-mode laws of the
strong modes, convergence without label noise, the off-diagonal part and the null modes."""

from __future__ import annotations

from experiments._smoke import run_smoke


def test_unaligned_rows(tmp_path, tmp_path_factory):
    rows = {c.id: c for c in run_smoke(tmp_path_factory, "unaligned", tmp_path).claims}
    for i in ("late_law/L=3, mode=1, sigma=0.3", "late_law/L=3, mode=2, sigma=0.3", "converges/sigma=0",
              "off_diagonal/sigma=0", "off_diagonal/sigma=0.3", "null_modes/sigma=0", "null_modes/sigma=0.3"):
        c = rows[f"unaligned/{i}"]
        assert c.verdict == "holds", (c.id, c.verdict, c.value, c.evidence)
    assert rows["unaligned/late_law/L=3, mode=3, sigma=0.3"].verdict in ("holds", "inconclusive")
