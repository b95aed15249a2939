"""Two-layer ReLU network: model, per-sample gradients and the noise-balance statistics of its layers ([Z] Fig. 2; ``noise_balance.md`` §3).

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

The simulator is :mod:`dlnlab.engines.relu`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..config import FIELDS


@dataclass(frozen=True)
class ReluTask:
    """``y = x + ε`` in ``d`` dimensions learnt by a ``d → hidden → d`` ReLU network."""

    d: int = 20
    hidden: int = 200
    label_noise: float = 1.0  # σ_ε

    def __post_init__(self):  # the constraints of the [relu] config section
        for f in fields(self):
            FIELDS[f"relu.{f.name}"].constraint.check(f"relu.{f.name}", getattr(self, f.name))

    @classmethod
    def from_config(cls, config) -> ReluTask:
        """The task of a config's ``[relu]`` section."""
        return cls(**{f.name: getattr(config.relu, f.name) for f in fields(cls)})


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
