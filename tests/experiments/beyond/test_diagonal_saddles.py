"""The ``diagonal_saddles`` experiment (issue 16 part 2) at its smoke preset: extrapolated jump times and plateau
saddles against the α → 0 algorithm, the limits against the LP, least-norm and implicit-bias solutions; the
perturbed labels move every theory value."""

from __future__ import annotations

from dlnlab.experiments import get


def test_rows_hold_and_supports_match(tmp_path):
    result = get("diagonal_saddles").run("smoke", tmp_path)
    rows = {c.id: c for c in result.claims}
    keys = {"jump_times", "plateau_iterates", "l1_limit", "l2_limit", "implicit_bias"}
    assert {c.key for c in rows.values()} == keys
    for c in rows.values():
        assert c.kind == "measured" and c.verdict == "holds", (c.id, c.verdict, c.value, c.evidence)
    note = rows["diagonal_saddles/plateau_iterates/instance=0"].note
    plateaus = int(note.split(" of ")[1].split(" ")[0])
    assert f"at {plateaus} of {plateaus} plateaus" in note, note
    assert (tmp_path / result.figures[0].path).exists()
