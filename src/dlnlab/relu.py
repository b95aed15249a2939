"""Two-layer ReLU network under online SGD: noise balance between its layers ([Z] Fig. 2; ``noise_balance.md`` §3).

Model and data: ``f(x) = W₂ relu(W₁x)`` (no biases), ``W₁: hidden × d``, ``W₂: d × hidden``; ``x ~ N(0, I_d)``,
``y = x + ε``, ``ε ~ N(0, σ_ε² I_d)``. Per-sample ½-loss ``ℓ = ½‖f(x) − y‖²`` ([Z]'s loss has no ½:
:mod:`dlnlab.conventions`); online SGD with ``B`` fresh samples per step, ``T = η/(2B)``, ``t = η·step``.

Symmetry: every hidden neuron ``i`` has the rescaling symmetry ``(u_i, w_i) → (c u_i, w_i/c)``, ``c > 0``, with
``u_i = W₂[:, i]`` (outgoing) and ``w_i = W₁[i]`` (incoming) (relu is positively homogeneous). Per sample,
with ``a_i = 1[w_i·x > 0]``, ``r = f(x) − y`` and ``A_i = a_i x rᵀ`` (``d × d``; [Z]'s ``A_{ki} = ∂ℓ̃/∂(u_i w_k)``):
``∂ℓ/∂u_i = A_iᵀ w_i`` and ``∂ℓ/∂w_i = A_i u_i``. Hence (Theorem 3.1; :func:`dlnlab.theory.balance.noise_matrices`)
``tr Var ∂ℓ/∂W₂ = Σ_i w_iᵀC₂⁽ⁱ⁾w_i`` and ``tr Var ∂ℓ/∂W₁ = Σ_i u_iᵀC₁⁽ⁱ⁾u_i`` with
``C₁⁽ⁱ⁾ = E[A_iᵀA_i] − E[A_i]ᵀE[A_i]`` (acting on ``u_i``) and ``C₂⁽ⁱ⁾ = E[A_iA_iᵀ] − E[A_i]E[A_i]ᵀ`` (on ``w_i``),
and

* SDE law: ``d(‖W₂‖²_F − ‖W₁‖²_F)/dt = 2T(tr C_{W₂} − tr C_{W₁})`` (``tr C_{W_l}`` = trace of the per-sample
  gradient covariance of layer ``l``); discrete SGD adds ``η(‖∇_{W₂}𝓛‖² − ‖∇_{W₁}𝓛‖²)`` in expectation
  (``noise_balance.md`` §4);
* noise balance ``tr C_{W₂} = tr C_{W₁}`` at stationarity, hence (block-diagonal ``C``'s, extreme eigenvalues over
  all neurons) ``μ₂min/μ₁max ≤ ‖W₂‖²_F/‖W₁‖²_F ≤ μ₂max/μ₁min``, and per neuron the same with its own ``C``'s —
  :func:`ratio_bounds`.

Randomness: replica ``r`` has key ``fold_in(PRNGKey(seed), r)``; its initial weights use ``fold_in(·, 0)``,
SGD step ``k`` uses ``fold_in(fold_in(·, 1), k)`` and the Monte-Carlo sample of record ``j`` uses
``fold_in(fold_in(·, 2), j)``: trajectories do not depend on the record schedule nor on the number of replicas.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from . import conventions


@dataclass(frozen=True)
class ReluTask:
    """``y = x + ε`` in ``d`` dimensions learnt by a ``d → hidden → d`` ReLU network."""

    d: int = 20
    hidden: int = 200
    label_noise: float = 1.0  # σ_ε


def init_weights(key, task: ReluTask, scale1: float = 1.0, scale2: float = 1.0):
    """``W₁ ~ N(0, scale1²/d)``, ``W₂ ~ N(0, scale2²/hidden)`` (LeCun at scale 1: ‖W₁‖² ≈ hidden, ‖W₂‖² ≈ d)."""
    k1, k2 = jax.random.split(key)
    W1 = scale1 * jax.random.normal(k1, (task.hidden, task.d)) / np.sqrt(task.d)
    W2 = scale2 * jax.random.normal(k2, (task.d, task.hidden)) / np.sqrt(task.hidden)
    return W1, W2


def sample_data(key, task: ReluTask, n: int):
    """``n`` samples ``(x, y)``, each of shape ``(n, d)``."""
    kx, ke = jax.random.split(key)
    x = jax.random.normal(kx, (n, task.d))
    return x, x + task.label_noise * jax.random.normal(ke, (n, task.d))


def forward(weights, x):
    W1, W2 = weights
    return jax.nn.relu(x @ W1.T) @ W2.T


def sample_loss(weights, x, y):
    """Per-sample ½-loss ``½‖f(x) − y‖²`` (``x, y``: one sample)."""
    return 0.5 * jnp.sum((forward(weights, x[None])[0] - y) ** 2)


#: Per-sample gradients ``(g_{W₁}, g_{W₂})`` with a leading sample axis.
per_sample_grads = jax.vmap(jax.grad(sample_loss), in_axes=(None, 0, 0))


def sgd_step(weights, x, y, lr):
    """``θ ← θ − η ĝ`` with ``ĝ`` the mean gradient over the minibatch ``(x, y)``."""
    g = jax.grad(lambda w: jnp.mean(jax.vmap(sample_loss, in_axes=(None, 0, 0))(w, x, y)))(weights)
    return tuple(w - lr * gw for w, gw in zip(weights, g)), g


def neuron_noise_matrices(weights, x, y):
    """Per-neuron ``C₁⁽ⁱ⁾`` (acting on ``u_i``) and ``C₂⁽ⁱ⁾`` (acting on ``w_i``), shapes ``(hidden, d, d)``, from the
    per-sample ``A_i = a_i x rᵀ`` (covariances with the ``n − 1`` divisor)."""
    n = x.shape[0]
    a = (x @ weights[0].T > 0).astype(x.dtype)  # (n, hidden)
    r = forward(weights, x) - y  # (n, d)
    mA = jnp.einsum("ni,nk,nj->ikj", a, x, r) / n  # E[A_i], (hidden, d_in, d_out)
    AtA = jnp.einsum("ni,nj,nk->ijk", a * jnp.sum(x**2, 1)[:, None], r, r) / n  # E[a‖x‖² r rᵀ]
    AAt = jnp.einsum("ni,nj,nk->ijk", a * jnp.sum(r**2, 1)[:, None], x, x) / n  # E[a‖r‖² x xᵀ]
    c = n / (n - 1)
    C1 = c * (AtA - jnp.einsum("ikj,ikl->ijl", mA, mA))
    C2 = c * (AAt - jnp.einsum("ikj,ilj->ikl", mA, mA))
    return C1, C2


def gradient_moments(weights, x, y, chunk: int = 100):
    """Per layer, the trace of the per-sample gradient covariance (``n − 1`` divisor) and an unbiased estimate of
    ``‖∇𝓛‖² = ‖E g‖²``, from :data:`per_sample_grads` on ``(x, y)``, accumulated over chunks of ``chunk`` samples
    (``n`` must be a multiple) so that the ``n × P`` gradients are never held at once. Returns ``(tr, ‖E g‖²)``,
    each of shape ``(2,)`` (layers ``W₁, W₂``)."""
    n = x.shape[0]

    def body(acc, xy):
        g = per_sample_grads(weights, *xy)
        return tuple((s + jnp.sum(gl, 0), q + jnp.sum(gl**2)) for (s, q), gl in zip(acc, g)), None

    zero = tuple((jnp.zeros_like(w), jnp.zeros(())) for w in weights)
    acc = lax.scan(body, zero, (x.reshape(-1, chunk, x.shape[1]), y.reshape(-1, chunk, y.shape[1])))[0]
    mean_sq = jnp.stack([jnp.sum((s / n) ** 2) for s, _ in acc])
    tr = (jnp.stack([q for _, q in acc]) - n * mean_sq) / (n - 1)
    return tr, mean_sq - tr / n


def balance_statistics(weights, x, y, with_matrices: bool = False):
    """Observables of noise balance on the Monte-Carlo sample ``(x, y)`` (JAX):

    ``sq_norm`` ``(‖W₁‖², ‖W₂‖²)``; ``noise_trace`` ``(tr C_{W₁}, tr C_{W₂})`` and ``grad_sq_norm``
    ``(‖∇_{W₁}𝓛‖², ‖∇_{W₂}𝓛‖²)`` (unbiased) from per-sample gradients (:func:`gradient_moments`); ``loss``
    (population ½-loss estimate); ``neuron_ratio`` ``‖u_i‖²/‖w_i‖²``; with ``with_matrices`` also ``C1, C2`` of
    :func:`neuron_noise_matrices` (for :func:`ratio_bounds`)."""
    tr, grad_sq = gradient_moments(weights, x, y)
    W1, W2 = weights
    out = {"sq_norm": jnp.stack([jnp.sum(W1**2), jnp.sum(W2**2)]), "noise_trace": tr, "grad_sq_norm": grad_sq,
           "loss": 0.5 * jnp.mean(jnp.sum((forward(weights, x) - y) ** 2, axis=1)),
           "neuron_ratio": jnp.sum(W2**2, axis=0) / jnp.sum(W1**2, axis=1)}
    if with_matrices:
        out["C1"], out["C2"] = neuron_noise_matrices(weights, x, y)
    return out


def ratio_bounds(C1, C2):
    """Stationary bounds of §3 from per-neuron ``C₁⁽ⁱ⁾, C₂⁽ⁱ⁾`` (``(..., hidden, d, d)``; NumPy): per neuron
    ``[μ₂min/μ₁max, μ₂max/μ₁min]`` on ``‖u_i‖²/‖w_i‖²`` (shape ``(..., hidden, 2)``), and for the layers, with the
    extremes over all neurons (block-diagonal ``C``'s), on ``‖W₂‖²_F/‖W₁‖²_F`` (shape ``(..., 2)``).

    (The eigenvalues are taken on the host: batched ``eigvalsh`` inside the vmapped XLA:CPU program deadlocked.)"""
    e1, e2 = np.linalg.eigvalsh(np.asarray(C1)), np.linalg.eigvalsh(np.asarray(C2))  # ascending
    neuron = np.stack([e2[..., 0] / e1[..., -1], e2[..., -1] / e1[..., 0]], axis=-1)
    layer = np.stack([e2[..., 0].min(-1) / e1[..., -1].max(-1), e2[..., -1].max(-1) / e1[..., 0].min(-1)], axis=-1)
    return neuron, layer


@partial(jax.jit, static_argnames=("task", "batch_size", "n_steps"))
def _advance(weights, diverged, keys, k0, lr, threshold, task, batch_size, n_steps):
    """``n_steps`` SGD steps from step ``k0`` for every replica (leading axis of ``weights`` and ``keys``); a replica
    whose weights become non-finite or exceed ``threshold`` in absolute value is frozen at its last good weights."""

    def one(w, div, key):
        def body(carry, k):
            w, div = carry
            x, y = sample_data(jax.random.fold_in(key, k), task, batch_size)
            new = sgd_step(w, x, y, lr)[0]
            bad = ~jnp.all(jnp.stack([jnp.all(jnp.abs(a) < threshold) for a in new]))  # also catches NaN
            div = div | bad
            return (tuple(jnp.where(div, a, b) for a, b in zip(w, new)), div), None

        return lax.scan(body, (w, div), k0 + jnp.arange(n_steps))[0]

    return jax.vmap(one)(weights, diverged, keys)


@partial(jax.jit, static_argnames=("task", "n_mc", "with_matrices"))
def _observe(weights, keys, j, task, n_mc, with_matrices):
    def one(w, key):
        x, y = sample_data(jax.random.fold_in(key, j), task, n_mc)
        return balance_statistics(w, x, y, with_matrices)

    return jax.vmap(one)(weights, keys)


def simulate_relu(task: ReluTask = ReluTask(), *, lr: float = 0.02, batch_size: int = 1, steps: int = 2000,
                  n_records: int = 41, replicas: int = 4, seed: int = 0, scale1: float = 1.0, scale2: float = 1.0,
                  n_mc: int = 2000, n_bound_records: int = 5, divergence_threshold: float = 1e3) -> xr.Dataset:
    """Online SGD of ``replicas`` independent networks, recording :func:`balance_statistics` (on ``n_mc`` fresh
    samples per record, a multiple of 100) at ``n_records`` equally spaced steps; the bounds of :func:`ratio_bounds`
    only at step 0 and at the last ``n_bound_records`` records (NaN elsewhere; they cost ``O(n_mc·hidden·d²)``).
    Time ``t = η·step``;
    ``layer`` 1 is ``W₁``, 2 is ``W₂``. Diverged replicas (``diverged``) are frozen (see :func:`_advance`)."""
    wall0 = time.perf_counter()
    rec = np.unique(np.rint(np.linspace(0, steps, n_records)).astype(np.int64))
    base = jax.random.PRNGKey(int(seed))
    rkeys = jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.arange(replicas))
    sub = [jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(rkeys) for i in range(3)]
    weights = jax.vmap(lambda k: init_weights(k, task, scale1, scale2))(sub[0])
    lr_, thr = jnp.asarray(lr, jnp.float64), jnp.asarray(divergence_threshold, jnp.float64)
    diverged = jnp.zeros(replicas, bool)
    rows, k = [], 0
    for j, k_r in enumerate(rec):
        if k_r > k:
            weights, diverged = _advance(weights, diverged, sub[1], jnp.asarray(k), lr_, thr, task, int(batch_size),
                                         int(k_r - k))
            k = int(k_r)
        obs = jax.tree_util.tree_map(np.asarray, _observe(weights, sub[2], j, task, int(n_mc),
                                                          bool(j == 0 or j >= len(rec) - n_bound_records)))
        if "C1" in obs:
            obs["neuron_bounds"], obs["ratio_bounds"] = ratio_bounds(obs.pop("C1"), obs.pop("C2"))
        else:
            obs["neuron_bounds"] = np.full((replicas, task.hidden, 2), np.nan)
            obs["ratio_bounds"] = np.full((replicas, 2), np.nan)
        rows.append(obs)
    stack = {name: np.stack([r[name] for r in rows], axis=1) for name in rows[0]}
    ds = xr.Dataset(
        {"sq_norm": (("replica", "t", "layer"), stack["sq_norm"]),
         "noise_trace": (("replica", "t", "layer"), stack["noise_trace"]),
         "grad_sq_norm": (("replica", "t", "layer"), stack["grad_sq_norm"]),
         "loss": (("replica", "t"), stack["loss"]),
         "ratio_bounds": (("replica", "t", "bound"), stack["ratio_bounds"]),
         "neuron_bounds": (("replica", "t", "neuron", "bound"), stack["neuron_bounds"]),
         "neuron_ratio": (("replica", "t", "neuron"), stack["neuron_ratio"]),
         "diverged": (("replica",), np.asarray(diverged))},
        coords={"replica": np.arange(replicas), "t": rec * lr, "step": ("t", rec), "layer": [1, 2],
                "bound": ["lower", "upper"], "neuron": np.arange(task.hidden)})
    settings = {"lr": lr, "batch_size": int(batch_size), "temperature": conventions.temperature(lr, batch_size),
                "steps": int(steps), "replicas": int(replicas), "seed": int(seed), "scale1": scale1, "scale2": scale2,
                "n_mc": int(n_mc), "divergence_threshold": divergence_threshold}
    ds.attrs.update({"task": json.dumps(asdict(task)), "settings": json.dumps(settings), **settings,
                     "conventions": "loss 1/2|f(x)-y|^2; t = lr*step; T = lr/(2B); layer 1 = W1 (incoming)",
                     "n_diverged": int(np.sum(diverged)), "wall_time_s": time.perf_counter() - wall0})
    return ds
