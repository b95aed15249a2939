"""Process-wide JAX set-up done once when dlnlab is imported.

* **Unrolled Threefry on CPU.** JAX lowers the Threefry-2x32 hash behind ``jax.random`` to a rolled
  5-iteration loop on CPU; inside a per-step simulation loop each draw then costs several small loop
  iterations. dlnlab registers the unrolled lowering for CPU instead (the same 20 rounds, so the same bits: every
  random stream is unchanged), which makes a step's key derivation and draws several times cheaper.
"""

from __future__ import annotations

import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir


def _threefry2x32_unrolled(k1, k2, x1, x2):
    """Threefry-2x32 (20 rounds, key injection every 4), as ``jax.random``'s unrolled lowering."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = lax.shift_left(x1, np.uint32(r)) | lax.shift_right_logical(x1, np.uint32(32 - r))
            x1 = x0 ^ x1
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


mlir.register_lowering(threefry2x32_p, mlir.lower_fun(_threefry2x32_unrolled, multiple_results=True), platform="cpu")
