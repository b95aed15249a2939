"""B8 scaling (issue 18 item 2): `dlnlab bench --only B8 --quick` at tiny sizes writes every point of the width,
replica and depth scans with every alternative, all finite (no timing assertions: the ratios at these sizes measure
call overheads, not the engines)."""

import importlib.util
import json
import math

import pytest
from typer.testing import CliRunner

from dlnlab import bench
from dlnlab.cli import app


@pytest.fixture(scope="module")
def b8(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b8.json"
    mp = pytest.MonkeyPatch()
    mp.setitem(bench.SIZES, "quick", bench.SIZES["tiny"])
    try:
        result = CliRunner().invoke(app, ["bench", "--only", "B8", "--quick", "--out", str(out)])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    assert (out.parent / "b8-scaling.png").stat().st_size > 0  # the scaling figure beside the JSON
    res = json.loads(out.read_text())
    assert set(res["workloads"]) == {"B8"}
    return res["workloads"]["B8"]


def test_every_point_and_alternative_is_finite(b8):
    assert b8["status"] == "ok", b8.get("error")
    tiny = bench.SIZES["tiny"]
    points = b8["points"]
    assert [p["width"] for p in points["width"]] == list(tiny["b8_widths"])
    assert [p["replicas"] for p in points["replicas"]] == list(tiny["b8_replicas"])
    assert [p["depth"] for p in points["depth"]] == list(tiny["b8_depths"])
    alternatives = {"numpy_matmul", "jax_per_replica"} | (
        {"torch_bmm", "torch_autograd"} if importlib.util.find_spec("torch") else set())  # tiny: no torch.compile
    for p in (p for group in points.values() for p in group):
        assert set(p["alternatives"]) == alternatives
        for x in (p["dlnlab"], *p["alternatives"].values()):
            assert x["s_per_replica_step"] > 0 and math.isfinite(x["final_loss_mean"])
        assert p["alternatives"]["jax_per_replica"]["measured_replicas"] == min(p["replicas"], tiny["b8_jax_loop_replicas"])
        assert p["steps"] == bench.b8_steps(p["width"], p["replicas"], p["depth"], tiny)  # work-sized, within bounds
        assert tiny["b8_steps"] <= p["steps"] <= tiny["b8_max_steps"]
        fastest = p["alternatives"][p["fastest_alternative"]]["s_per_replica_step"]
        assert p["ratio"] == pytest.approx(fastest / p["dlnlab"]["s_per_replica_step"])
        assert 0 < p["fraction_of_gemm"] < math.inf
    for fit in b8["fits"].values():
        assert math.isfinite(fit["dlnlab"])
    ratios = [p["ratio"] for group in points.values() for p in group]
    assert b8["checks"]["vs_fastest_min"]["value"] == pytest.approx(min(ratios))
    assert b8["params"]["threads"]["numpy"]
    engines = b8["engines"]  # every stepping engine over R (tiny: R = 2, 8)
    assert set(engines) == set(bench.ENGINES)
    for e in engines.values():
        assert [p["replicas"] for p in e["points"]] == list(tiny["b8_engine_replicas"])
        assert all(0 < p["s_per_replica_step"] < math.inf for p in e["points"]) and math.isfinite(e["replica_exponent"])
    assert b8["checks"]["engine_replica_exponent_max"]["value"] == pytest.approx(
        max(e["replica_exponent"] for e in engines.values()))


def test_the_alternatives_run_the_same_sgd():
    """Batched PyTorch and stacked-matmul / einsum NumPy from the same weights, with the same step size: the same
    problem (final population losses of the same size; the draws differ, so not equal)."""
    import numpy as np

    from dlnlab.engines import build
    from dlnlab.model import Teacher

    cfg = bench.b8_config(6, 4, 3, 50)
    w0 = [np.asarray(w) for w in build(cfg).init().weights]
    t = Teacher.from_config(cfg)
    args = (w0, t.M, t.input_cov_sqrt, cfg.dynamics.lr, 32, 50)
    loss = lambda weights: bench.population_loss_np(weights, t.M, t.input_cov)
    start = bench.numpy_batched_sgd(*args[:5], 0, [0])[0][:, 0]
    np.testing.assert_allclose(start, loss(w0), rtol=1e-14)
    mm_losses, mm_weights = bench.numpy_batched_sgd(*args, [25, 50])
    mm = mm_losses[:, -1]
    np.testing.assert_allclose(mm, loss(mm_weights), rtol=1e-14)  # the last record is of the returned weights
    es = bench.numpy_batched_sgd(*args, [50], product="einsum")[0][:, -1]
    np.testing.assert_allclose(mm, es, rtol=1e-12)  # the same draws: matmul and einsum agree to round-off
    assert np.all(mm < start)
    if importlib.util.find_spec("torch"):
        tc = loss(bench.torch_batched_sgd(*args))
        assert np.all(tc < start) and np.all(np.abs(np.log(tc / mm)) < 1.0)
        ta = loss(bench.torch_batched_sgd(*args, gradients="autograd"))  # same draws: = closed form to round-off
        np.testing.assert_allclose(ta, tc, rtol=1e-10)
    jx = loss(bench.jax_per_replica_sgd(*args))
    assert np.all(jx < start) and np.all(np.abs(np.log(jx / mm)) < 1.0)
    with pytest.raises(ValueError, match="record_steps"):
        bench.numpy_batched_sgd(*args, [51])


def test_float32_point_runs_every_alternative_in_float32():
    """The GPU benchmark's float32 pass (B8 at precision float32): dlnlab and every alternative run the same SGD in
    float32 (final losses finite, within float32 round-off of one another's scale), here on the CPU."""
    from dlnlab.bench._scaling import _alternatives

    size = bench.SIZES["tiny"] | {"precision": "float32", "device": "cpu"}
    p = bench.b8_point(6, 4, 3, 20, 1, _alternatives(size), "float32")
    losses = [p["dlnlab"]["final_loss_mean"], *(a["final_loss_mean"] for a in p["alternatives"].values())]
    assert all(math.isfinite(x) for x in losses) and max(losses) / min(losses) < 1.5
    assert bench.b8_config(6, 4, 3, 20, "float32").dynamics.precision == "float32"
