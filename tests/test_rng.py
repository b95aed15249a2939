"""dlnlab.rng: ``normal`` maps ``jax.random.normal``'s own uniform variates by AS241 — its accuracy against an
independent quantile (SciPy), its agreement with ``jax.random.normal``, float32 rounding, the law of its draws and
reproducibility by key. Every check is deterministic (fixed keys and inputs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import dlnlab.conventions  # float64
import dlnlab.runtime  # noqa: F401  (CPU devices, the Threefry lowering)
from dlnlab.rng import normal, quantile_of_symmetric_uniform


def _reference(u):
    """``Φ⁻¹((1 + u)/2)`` by SciPy without rounding the probability: ``√2 erf⁻¹(u)`` in the centre, ``ndtri`` of the
    exact ``(1 − |u|)/2`` in the tails (``1 − |u|`` is exact for ``|u| ≥ 1/2``)."""
    tail = np.abs(u) >= 0.5
    out = np.sqrt(2.0) * special.erfinv(u)
    out[tail] = -np.sign(u[tail]) * special.ndtri(0.5 * (1.0 - np.abs(u[tail])))
    return out


def _uniforms():
    rng = np.random.default_rng(0)
    edges = 1.0 - 2.0 ** -np.arange(1.0, 53.0)  # down to the last representable uniforms before ±1
    return np.concatenate([rng.uniform(-1, 1, 400_000), edges, -edges, [0.0, 1e-300, 0.85, -0.85, 0.849999, 0.850001]])


def test_quantile_is_accurate_to_a_few_ulp():
    """AS241 is accurate to about 1e-16 relative; evaluated in float64 the measured worst case over 400 000 uniform
    variates, the branch edges (|u| = 0.85, r = 5) and the extreme tails (1 − |u| = 2⁻⁵²) is ~1e-15. The bound 4e-15
    (~18 ulp) leaves room for the reference's own error (SciPy's erfinv/ndtri, ~1 ulp) and fails at any wrong
    coefficient or branch (errors then ≥ 1e-7)."""
    u = _uniforms()
    got = np.asarray(jax.jit(quantile_of_symmetric_uniform)(jnp.asarray(u)))
    ref = _reference(u)
    nonzero = ref != 0
    assert got[~nonzero].tolist() == [0.0] * int((~nonzero).sum())
    rel = np.abs(got[nonzero] - ref[nonzero]) / np.abs(ref[nonzero])
    assert rel.max() < 4e-15, rel.max()
    assert np.all(np.diff(got[np.argsort(u)]) >= 0)  # monotone


def test_draws_are_jax_normal_ones_up_to_its_erfinv_error():
    """Same key, same uniform bits: ``normal`` and ``jax.random.normal`` differ only by the error of XLA's float64
    erf⁻¹ (documented ~1e-12 relative; 1e-11 here as the bound)."""
    key = jax.random.key(7)
    ours = np.asarray(normal(key, (200_000,)))
    theirs = np.asarray(jax.random.normal(key, (200_000,), jnp.float64))
    np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-11)
    assert not np.array_equal(ours, np.asarray(normal(jax.random.key(8), (200_000,))))


def test_float32_draws_are_the_rounded_float64_quantile():
    """In float32 the uniform is drawn in float32 and the quantile evaluated in float64, then rounded: the draw is
    the float32 nearest to the exact quantile of that uniform (within half an ulp; a tie-close case may round the
    other way, never further than one ulp)."""
    key = jax.random.key(3)
    got = np.asarray(normal(key, (100_000,), jnp.float32))
    assert got.dtype == np.float32
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = np.asarray(jax.random.uniform(key, (100_000,), jnp.float32, lo, 1.0)).astype(np.float64)
    exact = _reference(u)
    ulps = np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 1.0 and np.mean(ulps <= 0.5) > 0.9999


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_draws_have_the_standard_normal_law(seed):
    """10⁶ draws: mean, variance and the Kolmogorov–Smirnov distance to Φ. Bounds at 5 standard errors (mean: 1/√n,
    variance: √(2/n)) and KS at the 1e-6 quantile of its null law: the false-fail rate of each check is ≤ 6e-7 per
    seed; three seeds. A quantile wrong by 1e-3 anywhere in the centre, or a lost tail, fails the KS check."""
    n = 1_000_000
    x = np.asarray(normal(jax.random.key(seed), (n,)))
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs(x.var() - 1.0) < 5 * np.sqrt(2.0 / n)
    ks = stats.kstest(x, "norm")
    assert ks.pvalue > 1e-6, ks
