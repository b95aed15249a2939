"""An interrupted run keeps every completed record (nothing a user computed is lost)."""


import numpy as np
import pytest
import xarray as xr

import dlnlab

CONFIG = {
    "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0]},
    "network": {"depth": 2, "width": 6},
    "init": {"kind": "gaussian", "gamma": 2.0},
    "dynamics": {"kind": "sgd", "lr": 0.01, "batch_size": 2, "steps": 400},
    "record": {"n_times": 41, "spacing": "linear", "chunks": 4},
    "ensemble": {"replicas": 3, "seed": 1},
}


@pytest.mark.parametrize("kind", ["sgd", "flow"])
def test_interrupt_returns_completed_records(interrupt_after, kind):
    cfg = dlnlab.Config.from_dict({**CONFIG, "dynamics": {**CONFIG["dynamics"], "kind": kind}})
    full = dlnlab.simulate(cfg, progress=False)
    with pytest.raises(dlnlab.Interrupted) as info:
        dlnlab.simulate(cfg, progress=interrupt_after(2))
    part = info.value.partial
    assert part.attrs["complete"] == 0 and full.attrs["complete"] == 1
    # 2 of 4 chunks of 10 records each, plus t = 0: the records are exactly those of the full run
    assert part.sizes["t"] == 21
    expected, got = full.isel(t=slice(0, 21)), part  # the records (not the final state's summary variables)
    for name in [v for v in expected.data_vars if "t" in expected[v].dims]:
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    xr.testing.assert_equal(got.coords.to_dataset(), expected.coords.to_dataset())
