"""float64 by default, and the float32 plateau stall of README item 8 / checks.md C6."""

import warnings

import numpy as np
import pytest

import dlnlab


def _gd_config(precision, steps):
    # One balanced mode, L = 4, a0 = 1e-3 (m0 = a0^4 = 1e-12), η = 1e-2, λ = s = 1 (checks.md C6).
    return dlnlab.Config.from_dict({
        "teacher": {"d_in": 1, "d_out": 1, "singular_values": [1.0], "basis": "identity"},
        "network": {"depth": 4, "width": 1},
        "init": {"kind": "aligned", "scale": 1e-12, "hidden_basis": "identity"},
        "dynamics": {"kind": "gd", "lr": 1e-2, "steps": steps, "precision": precision},
        "record": {"n_times": 2, "spacing": "linear", "observables": ["layer_norm"]},
    })


def test_float64_is_default():
    ds = dlnlab.simulate(_gd_config("float64", 10))
    assert ds["layer_norm"].dtype == np.float64


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_float32_stalls_on_plateau(precision):
    """C6: 2e5 GD steps. The per-step relative change ηλs·a^{L−2} = 1e-8 is below float32's eps (1.2e-7),
    so float32 leaves a exactly unchanged (exact equality: an update that rounds away is a no-op), while
    float64 follows the scalar balanced-mode GD recursion a ← a − η a^{L−1}(a^L − s) (an independent
    NumPy loop) to 1e-12 relative (round-off over 2e5 steps) and reaches 1.00201e-3 as in checks.md."""
    steps = 200_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = dlnlab.simulate(_gd_config(precision, steps))
    a = float(ds["layer_norm"].isel(replica=0, t=-1, layer=0))
    if precision == "float32":
        assert a == np.float32(np.float32(1e-12) ** np.float32(0.25))
        assert any("stall" in str(w.message) for w in caught), "float32 stall must be warned about"
    else:
        ref = 1e-3
        for _ in range(steps):
            ref -= 1e-2 * ref**3 * (ref**4 - 1.0)
        assert a == pytest.approx(ref, rel=1e-12)
        assert a == pytest.approx(1.00201e-3, rel=1e-5)  # checks.md quotes 6 significant digits
        assert not any("stall" in str(w.message) for w in caught)
