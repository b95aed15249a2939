"""The ``diagonal_saddles`` experiment (issue 16 part 2) at its smoke preset: extrapolated jump times (gradient flow,
and gradient descent and SGD extrapolated in the step size too) and plateau saddles against the α → 0 algorithm, the limits against the LP, least-norm and implicit-bias solutions; the
perturbed labels move every theory value."""

from __future__ import annotations

from experiments._smoke import run_smoke


def test_rows_hold_and_supports_match(tmp_path, tmp_path_factory):
    result = run_smoke(tmp_path_factory, "diagonal_saddles", tmp_path)
    rows = {c.id: c for c in result.claims}
    keys = {"jump_times", "gd_jump_times", "sgd_jump_times", "plateau_iterates", "l1_limit", "l2_limit",
            "implicit_bias"}
    assert {c.key for c in rows.values()} == keys
    for c in rows.values():
        assert c.kind == "measured" and c.verdict == "holds", (c.id, c.verdict, c.value, c.evidence)
    note = rows["diagonal_saddles/plateau_iterates/instance=0"].note
    plateaus = int(note.split(" of ")[1].split(" ")[0])
    assert f"at {plateaus} of {plateaus} plateaus" in note, note
    gd = rows["diagonal_saddles/gd_jump_times/instance=0"]
    assert 0 < gd.uncertainty < 0.01 and "η = 0.02, 0.01" in gd.note  # record brackets resolve the 2 % budget
    sgd = rows["diagonal_saddles/sgd_jump_times/instance=0"]
    assert sgd.estimate.method == "t" and 0 < sgd.uncertainty < 0.006 and "128 runs per step size" in sgd.note
    assert (tmp_path / result.figures[0].path).exists()
