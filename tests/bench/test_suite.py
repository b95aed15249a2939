"""`dlnlab bench`: every workload runs (at tiny sizes), the JSON has the documented schema, every ratio that
was measured is finite, and a missing optional package is reported as skipped. The targets themselves are
for the benchmark on a quiet machine, not for timed tests."""

import importlib.util
import json
import math
import sys

import pytest
from typer.testing import CliRunner

from dlnlab import bench
from dlnlab.cli import app

CHECKS = {wid: set(t) for wid, t in bench.TARGETS.items()}
#: B8 (scaling) is run alone by tests/bench/test_scaling.py (`--only B8`), not again here
SUITE = [wid for wid in bench.WORKLOADS if wid != "B8"]


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    """`dlnlab bench --quick --out FILE` with the quick sizes replaced by the tiny ones."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    mp = pytest.MonkeyPatch()
    mp.setitem(bench.SIZES, "quick", bench.SIZES["tiny"])
    try:
        only = [arg for wid in SUITE for arg in ("--only", wid)]
        result = CliRunner().invoke(app, ["bench", "--quick", "--markdown", "--out", str(out), *only])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_json_schema(tiny_result):
    res, _ = tiny_result
    assert res["schema"] == bench.SCHEMA and res["mode"] == "quick"
    m = res["machine"]
    for key in ("cpu", "cores_logical", "cores_usable", "memory_gib", "platform", "backend", "devices"):
        assert key in m
    assert m["cores_usable"] >= 1 and m["memory_gib"] > 0
    for pkg in ("dlnlab", "jax", "jaxlib", "numpy", "diffrax", "torch", "python"):
        assert pkg in res["versions"]
    assert res["backend"] == m["backend"]
    assert set(res["workloads"]) == set(SUITE)


def test_every_workload_runs_and_every_ratio_is_finite(tiny_result):
    res, _ = tiny_result
    for wid, w in res["workloads"].items():
        assert w["status"] in ("ok", "skipped"), (wid, w.get("error"))
        assert set(w["checks"]) == CHECKS[wid]
        for name, c in w["checks"].items():
            assert c["op"] in (">=", "<") and c["target"] == bench.TARGETS[wid][name][1]
            if c["skipped"] is None:
                assert isinstance(c["value"], float) and math.isfinite(c["value"]), (wid, name, c)
                assert isinstance(c["passed"], bool)
                assert math.isfinite(c.get("cpu_value", 0.0))
            else:
                assert c["value"] is None and c["passed"] is None
    # what must have been measured here (B6 is left to the full benchmark)
    w = res["workloads"]
    assert w["B6"]["status"] == "skipped"
    measured = {(wid, n) for wid, x in w.items() for n, c in x["checks"].items() if c["skipped"] is None}
    expected = {("B1", "vs_numpy_batched"), ("B2", "fraction_of_gemm"), ("B3", "vs_numpy_em"),
                ("B4", "vs_explicit_L3"), ("B5", "peak_rss_gib"), ("B5", "rss_growth"),
                ("B9", "throughput_vs_short"), ("B9", "rss_growth")}
    if importlib.util.find_spec("torch") is not None:
        expected.add(("B1", "vs_torch_loop"))
    if importlib.util.find_spec("diffrax") is not None:
        expected.add(("B3", "vs_diffrax_euler"))
    assert expected <= measured


def test_figures_are_consistent(tiny_result):
    res, _ = tiny_result
    w = res["workloads"]
    b1 = w["B1"]
    assert b1["checks"]["vs_numpy_batched"]["value"] == pytest.approx(
        b1["numpy_batched"]["best_s"] / b1["dlnlab"]["best_s"])
    for key in ("dlnlab", "numpy_batched"):  # the same SGD problem: comparable final losses
        assert math.isfinite(b1[key]["final_loss_mean"])
    b4 = w["B4"]["depths"]["3"]  # tiny: L = 3, the explicit run capped and extrapolated
    a, e = b4["auto"], b4["explicit"]
    assert a["ok"] and e["ok"] and a["gradient_evaluations"] > a["solver_steps"] > 0 and a["hessian_evaluations"] > 0
    for x in (a, e):  # both through the plateaus at the closed form's accuracy (tiny: rtol 1e-6; measured 1e-5, 3e-6)
        assert x["max_rel_error"] < 1e-3
    assert e["capped"] and e["reached_t"] < e["t_max"] and e["solver_steps"] > e["measured_steps"]
    assert e["best_s"] > e["measured_wall_s"] and "extrapolation" in e
    assert e["gradient_evaluations"] == pytest.approx(6 * e["solver_steps"] + 1)
    q = b4["auto_equal_accuracy"]  # the check compares at equal accuracy: auto rerun at a tighter rtol if needed
    assert q["max_rel_error"] <= e["max_rel_error"] or not q["reached"]
    assert q["rtol"] <= 1e-6 and (q["rtol"] < 1e-6) == (a["max_rel_error"] > e["max_rel_error"])
    assert w["B4"]["checks"]["vs_explicit_L3"]["value"] == pytest.approx(e["best_s"] / q["best_s"])
    assert w["B4"]["checks"]["vs_explicit_L4"]["skipped"]
    b2 = w["B2"]
    c = b2["product_ceiling"]  # the step's products, each at its best isolated rate: the FLOPs B2 counts
    assert sum(r["flops"] for r in c["products"]) == pytest.approx(b2["dlnlab"]["flops_per_replica_step"])
    # by hand, L = 4, dims 10-100-100-100-10, B = 32: 2B(d² + d² + 2·Σ layer + Σ layer[1:])
    assert bench.sgd_step_flops([10, 100, 100, 100, 10], 32) == 2 * 32 * (100 + 100 + 2 * 22_000 + 21_000)
    rates = [r["rate"] for r in c["products"]]
    assert min(rates) <= c["mix_rate"] <= max(rates)
    assert c["fraction_of_gemm"] == pytest.approx(c["mix_rate"] / b2["gemm"]["flops"])
    runs = w["B5"]["runs"]
    assert [r["steps"] for r in runs] == list(bench.SIZES["tiny"]["b5_steps"])
    assert all(r["peak_rss_bytes"] > 0 for r in runs)
    b9, tiny = w["B9"], bench.SIZES["tiny"]  # long runs: every chunk clocked, the steps of the chunks add up
    for key, steps in (("short", tiny["b9_short_steps"]), ("long", tiny["b9_steps"])):
        run = b9["runs"][key]
        assert run["steps"] == steps and sum(run["chunk_steps"]) == steps and len(run["chunk_ends_s"]) == run["chunks"]
        assert all(0 < r < math.inf for r in run["chunk_s_per_replica_step"])
        assert run["peak_rss_bytes"] > 0 and math.isfinite(run["final_loss_mean"])
    assert b9["checks"]["rss_growth"]["value"] == pytest.approx(
        b9["runs"]["long"]["peak_rss_bytes"] / b9["runs"]["short"]["peak_rss_bytes"] - 1)


def test_full_suite_runs_b9_only_when_named(monkeypatch):
    """The full suite leaves B9 (its full size takes hours on 2 cores) to `--only B9`: skipped, the reason given."""
    from dlnlab.bench import _suite

    ran = []
    monkeypatch.setattr(_suite, "WORKLOADS", {"B9": ("long runs", lambda size: ran.append(size) or {"checks": {}})})
    res = _suite.run_suite("full")
    assert not ran and res["workloads"]["B9"]["status"] == "skipped" and "--only B9" in res["workloads"]["B9"]["skipped"]
    res = _suite.run_suite("full", only=["B9"])
    assert len(ran) == 1 and res["workloads"]["B9"]["status"] == "ok"


def test_table_is_printed(tiny_result):
    _, output = tiny_result
    assert "machine:" in output and "fraction_of_gemm" in output and "vs_numpy_em" in output


def test_markdown_table_has_every_workload(tiny_result):
    """`--markdown` prints the README table: the header, one row per workload (two for B1, B3 and B4) and the
    machine."""
    res, output = tiny_result
    table = bench.markdown_table(res)
    assert table in output and table.startswith("Machine: ")
    rows = [ln for ln in table.splitlines() if ln.startswith("| B")]
    assert [r.split("|")[1].strip() for r in rows] == SUITE
    assert len([ln for ln in table.splitlines() if ln.startswith("|  |")]) == 3
    assert all(ln.count("|") == 8 for ln in table.splitlines() if ln.startswith("|"))


def test_missing_package_is_reported_as_skipped(monkeypatch):
    """Without diffrax the diffrax comparison is skipped, not estimated (the per-mode program is cached)."""
    for module in ("diffrax", "lineax"):  # a None entry makes find_spec and import report the package missing
        monkeypatch.setitem(sys.modules, module, None)
    assert not bench.have("diffrax")
    res = bench.b3_mode_sde(bench.SIZES["tiny"])
    c = res["checks"]["vs_diffrax_euler"]
    assert c["skipped"] and c["value"] is None and c["passed"] is None
    assert "skipped" in res["diffrax_euler"]
    assert math.isfinite(res["checks"]["vs_numpy_em"]["value"])


def test_only_rejects_unknown_workload():
    result = CliRunner().invoke(app, ["bench", "--only", "B99"])
    assert result.exit_code == 2 and "--only" in result.output


def test_device_gpu_without_a_gpu_says_so_and_exits_0(monkeypatch):
    """`dlnlab bench --device gpu` where JAX sees no CUDA device (as here, or forced so): a message, exit 0, nothing
    run; an unknown device is a usage error."""
    monkeypatch.setattr(bench, "gpu_devices", list)
    result = CliRunner().invoke(app, ["bench", "--device", "gpu", "--quick"])
    assert result.exit_code == 0 and "no GPU" in result.output and "B1" not in result.output
    assert CliRunner().invoke(app, ["bench", "--device", "tpu"]).exit_code == 2

