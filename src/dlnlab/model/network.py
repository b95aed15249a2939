"""Deep linear networks: weights, products, initialisations and their diagnostics.

Weights are a tuple ``(W_1, …, W_L)`` with ``W_l`` of shape ``(d_l, d_{l−1})``; the end-to-end map is
``W = W_L ⋯ W_1``. Every initialiser takes one PRNG key and one scale (a traced scalar), so that it can be
vmapped over an ensemble with stacked init scales; with the same key and different scales the draws are
the *same normalised draw* rescaled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..config import Config
from ..errors import ConfigError
from .teacher import Teacher

Weights = tuple  # tuple[jax.Array, ...]


def end_to_end(weights: Weights):
    """``W = W_L ⋯ W_1``."""
    W = weights[0]
    for Wl in weights[1:]:
        W = Wl @ W
    return W


def prefix_products(weights: Weights):
    """``[W_{<1}, …, W_{<L}]`` with ``W_{<l} = W_{l−1} ⋯ W_1`` (``W_{<1} = I``)."""
    out = [jnp.eye(weights[0].shape[1], dtype=weights[0].dtype)]
    for Wl in weights[:-1]:
        out.append(Wl @ out[-1])
    return out


def suffix_products(weights: Weights):
    """``[W_{>1}, …, W_{>L}]`` with ``W_{>l} = W_L ⋯ W_{l+1}`` (``W_{>L} = I``)."""
    out = [jnp.eye(weights[-1].shape[0], dtype=weights[-1].dtype)]
    for Wl in reversed(weights[1:]):
        out.append(out[-1] @ Wl)
    return out[::-1]


def balancedness(weights: Weights):
    """``‖W_{l+1}ᵀ W_{l+1} − W_l W_lᵀ‖_F`` for ``l = 1 … L−1`` (conserved by gradient flow)."""
    return jnp.stack([jnp.linalg.norm(weights[l + 1].T @ weights[l + 1] - weights[l] @ weights[l].T)
                      for l in range(len(weights) - 1)]) if len(weights) > 1 else jnp.zeros((0,))


def describe(weights: Weights) -> dict:
    """Diagnostics of an initialisation: balancedness per layer pair, layer norms, end-to-end scale."""
    W = np.asarray(end_to_end(weights))
    return {
        "balancedness": np.asarray(balancedness(weights)).tolist(),
        "layer_frobenius": [float(np.linalg.norm(np.asarray(w))) for w in weights],
        "end_to_end_operator_norm": float(np.linalg.norm(W, 2)),
        "end_to_end_frobenius": float(np.linalg.norm(W)),
    }


def _haar(key, n, dtype):
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    return q * jnp.sign(jnp.diag(r))


def _semi_orthogonal(key, rows, cols, dtype):
    q = _haar(key, max(rows, cols), dtype)
    return q[:rows, :cols]


class Initializer:
    """Builds per-replica initial weights for a config: ``init(key, scale) -> weights``.

    * ``gaussian``: i.i.d. ``N(0, σ²)`` entries; ``σ² = w^−γ`` (``scaling="width"``, w the largest hidden
      width) or ``σ_l² = min(d_l, d_{l−1})^−γ`` (``scaling="min_fan"``), or an explicit ``σ = scale``.
    * ``orthogonal``: ``σ`` times a random (semi-)orthogonal matrix per layer, σ as for ``gaussian``.
    * ``aligned``: ``W_l = O_l diag(a_l) O_{l−1}ᵀ`` with ``O_0 = V``, ``O_L = U`` and random (or identity)
      hidden bases; balanced ``a_{l,α} = m_α(0)^{1/L}`` from ``scale`` (all modes) or ``strength`` (per mode),
      or unbalanced per-layer ``layer_values``.
    * ``file``: weights ``W1 … WL`` read from an ``.npz`` (no pickle), identical for every replica.

    ``scales(config)`` gives the per-combination scale values the stacking grid uses.
    """

    def __init__(self, config: Config, teacher: Teacher):
        self.config = config
        self.teacher = teacher
        self.dims = config.layer_dims
        self.kind = config.init.kind
        self.dtype = jnp.float32 if config.dynamics.precision == "float32" else jnp.float64
        if self.kind == "file":
            self._file_weights = self._load_file(config.init.path)

    # -- scales -------------------------------------------------------------------------------------------

    def scale_from_gamma(self, gamma: float):
        """σ (or, for ``min_fan``, the per-layer σ_l array) from γ."""
        dims, sc = self.dims, self.config.init.scaling
        if sc == "width":
            w = max(dims[1:-1])
            return float(w) ** (-gamma / 2)
        return np.array([float(min(dims[l], dims[l + 1])) ** (-gamma / 2) for l in range(len(dims) - 1)])

    def layer_scales(self, scale):
        """Per-layer σ_l from one replica's scale (a scalar; min_fan gammas arrive as a per-layer array)."""
        scale = jnp.asarray(scale, self.dtype)
        return jnp.broadcast_to(scale, (len(self.dims) - 1,))

    # -- draws --------------------------------------------------------------------------------------------

    def __call__(self, key, scale) -> Weights:
        dims, L = self.dims, len(self.dims) - 1
        keys = jax.random.split(key, L + 1)
        if self.kind == "file":
            return tuple(jnp.asarray(w, self.dtype) for w in self._file_weights)
        if self.kind in ("gaussian", "orthogonal"):
            sig = self.layer_scales(scale)
            out = []
            for l in range(L):
                shape = (dims[l + 1], dims[l])
                if self.kind == "gaussian":
                    z = jax.random.normal(keys[l], shape, self.dtype)
                else:
                    z = _semi_orthogonal(keys[l], *shape, self.dtype)
                out.append(sig[l] * z)
            return tuple(out)
        return self._aligned(keys, scale)

    def aligned_values(self, scale):
        """Per-layer, per-mode values ``a_{l,α}`` (``L × k``) of the aligned init."""
        ic, L = self.config.init, len(self.dims) - 1
        k = min(self.dims)
        if ic.layer_values is not None:
            a = jnp.asarray(ic.layer_values, self.dtype)
            return jnp.pad(a, ((0, 0), (0, k - a.shape[1])))
        if ic.strength is not None:
            m = jnp.asarray(ic.strength, self.dtype)
            m = jnp.pad(m, (0, k - m.shape[0]))
        else:
            m = jnp.full((k,), scale, self.dtype)
        return jnp.broadcast_to(m ** (1.0 / L), (L, k))

    def _aligned(self, keys, scale):
        dims, L = self.dims, len(self.dims) - 1
        a = self.aligned_values(scale)
        k = a.shape[1]
        bases = [jnp.asarray(self.teacher.V, self.dtype)]
        for l in range(1, L):
            if self.config.init.hidden_basis == "identity":
                bases.append(jnp.eye(dims[l], dtype=self.dtype))
            else:
                bases.append(_haar(keys[l], dims[l], self.dtype))
        bases.append(jnp.asarray(self.teacher.U, self.dtype))
        return tuple((bases[l + 1][:, :k] * a[l]) @ bases[l][:, :k].T for l in range(L))

    def _load_file(self, path):
        try:
            with np.load(path, allow_pickle=False) as f:
                ws = [np.asarray(f[f"W{l + 1}"], dtype=np.float64) for l in range(len(self.dims) - 1)]
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError("init.path", path, f"an .npz file with arrays W1..W{len(self.dims) - 1} ({exc})") from None
        for l, w in enumerate(ws):
            if w.shape != (self.dims[l + 1], self.dims[l]):
                raise ConfigError("init.path", path, f"W{l + 1} of shape {(self.dims[l + 1], self.dims[l])}, got {w.shape}")
        return ws
