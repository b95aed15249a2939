"""Observables recorded during a run, computed inside the compiled program from one replica's weights.

An :class:`Observable` maps ``(weights, problem, params)`` to a dict of arrays and declares the dims of
each (besides ``replica`` and ``t``). Built-ins (all exact, no sampling):

============== ====================== =========================================================
name           variables (dims)       meaning
============== ====================== =========================================================
loss           loss; train_loss       population loss ½tr(EΣxEᵀ)+½d_outσ_ε²; finite data: empirical;
                                      completion: ½Σ_Ω E_ij² (loss is then ½‖E‖²_F)
singular_values singular_values (sv)  singular values of the end-to-end map W
mode_strength  mode_strength (mode)   m_α = u_αᵀ W v_α
off_diagonal   off_diagonal           ‖UᵀWV − diag(UᵀWV)‖_F (misalignment)
balancedness   balancedness           ‖W_{l+1}ᵀW_{l+1} − W_lW_lᵀ‖_F, pair (l, l+1)
               (layer_pair)
layer_norm     layer_norm (layer)     ‖W_l‖_F
grad_norm      grad_norm              ‖∇𝓛(θ)‖ over all layers (the drift; independent of η)
noise_power    noise_power (mode);    per-sample gradient-noise variance along m_α, and tr Σ(θ)
               noise_power_total      (multiply by η/B for the diffusion per unit time)
effective_rank effective_rank         exp(entropy of σ_i/Σσ_j) of W (Roy & Vetterli)
end_to_end     end_to_end (out, in)   the end-to-end map W = W_L ⋯ W_1 (not recorded by default)
residual       residual (out, in)     −∇_W 𝓛 of the training objective (population: (M − W)Σx; not
                                      recorded by default); its top singular pair is the escape direction
sharpness      sharpness;             top eigenvalue of the Hessian of the training objective (Lanczos on
               sharpness_residual     Hessian-vector products, :mod:`.hessian`; not recorded by default) and
                                      its Ritz residual (an eigenvalue lies within it); GD is stable at a
                                      minimum only if sharpness ≤ 2/η
============== ====================== =========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ..errors import ConfigError
from .gradients import end_to_end_gradient, full_gradient
from .hessian import sharpness as _sharpness_of
from .network import balancedness as _balancedness
from .network import end_to_end
from .noise import noise_power as _noise_power
from .noise import sampled_noise_power
from .problem import Problem


class ReplicaParams(NamedTuple):
    """Per-replica hyper-parameters (scalars inside vmap; ``(R,)`` arrays outside)."""

    lr: jax.Array
    label_noise: jax.Array
    dt: jax.Array  # time per step (η for GD/SGD; the SDE step)


@dataclass(frozen=True)
class Observable:
    """``fn(weights, problem, params) -> {var: array}``; ``dims[var]`` names the array's axes."""

    name: str
    fn: Callable
    dims: dict


#: Largest batch of matrices handed to one LAPACK ``gesdd`` call (see :func:`singular_values`).
SVD_BATCH = 16


@jax.custom_batching.custom_vmap
def singular_values(W):
    """Singular values of ``W`` (descending). Under ``vmap`` the batch is split into LAPACK calls of at most
    :data:`SVD_BATCH` matrices (``lax.map``): with the replica axis sharded over two or more CPU devices, one batched
    ``gesdd`` over ≳ 48 matrices per device never returned (jaxlib 0.10.2, XLA:CPU; ``tests/model/test_observables.py``
    reproduces the set-up). Each matrix's values are bitwise those of the batched call."""
    return jnp.linalg.svd(W, compute_uv=False)


@singular_values.def_vmap
def _singular_values_batched(axis_size, in_batched, W):
    if not in_batched[0]:
        return singular_values.fun(W), False
    return lax.map(singular_values.fun, W, batch_size=SVD_BATCH), True


def _loss(weights, problem: Problem, params):
    W = end_to_end(weights)
    E = W - problem.M
    out = {"loss": 0.5 * jnp.sum((E @ problem.input_cov) * E) + 0.5 * W.shape[0] * params.label_noise**2}
    if problem.finite:
        out["train_loss"] = 0.5 * jnp.mean(jnp.sum((problem.X @ W.T - problem.Y) ** 2, axis=1))
    if problem.mask is not None:  # matrix completion: the objective on the observed entries
        out["train_loss"] = 0.5 * jnp.sum(problem.mask * E**2)
    return out


def _svals(weights, problem, params):
    return {"singular_values": singular_values(end_to_end(weights))}


def _mode_matrix(weights, problem):
    return problem.U_k.T @ end_to_end(weights) @ problem.V_k


def _mode_strength(weights, problem, params):
    return {"mode_strength": jnp.diagonal(_mode_matrix(weights, problem))}


def _off_diagonal(weights, problem, params):
    full = problem.U.T @ end_to_end(weights) @ problem.V
    k = problem.s.shape[0]
    diag = jnp.zeros_like(full).at[jnp.arange(k), jnp.arange(k)].set(jnp.diagonal(full)[:k])
    return {"off_diagonal": jnp.linalg.norm(full - diag)}


def _balance(weights, problem, params):
    return {"balancedness": _balancedness(weights)}


def _layer_norm(weights, problem, params):
    return {"layer_norm": jnp.stack([jnp.linalg.norm(w) for w in weights])}


def _grad_norm(weights, problem, params):
    return {"grad_norm": jnp.sqrt(sum(jnp.sum(g**2) for g in full_gradient(weights, problem)))}


def _noise(weights, problem, params):
    per_mode, total = _noise_power(weights, problem, params.label_noise)
    return {"noise_power": per_mode, "noise_power_total": total}


def _eff_rank(weights, problem, params):
    sv = singular_values(end_to_end(weights))
    total = jnp.sum(sv)
    p = sv / jnp.where(total > 0, total, 1.0)
    ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return {"effective_rank": jnp.where(total > 0, jnp.exp(ent), 0.0)}


def _end_to_end(weights, problem, params):
    return {"end_to_end": end_to_end(weights)}


def _residual(weights, problem, params):
    return {"residual": -end_to_end_gradient(weights, problem)}


def _sharpness(weights, problem, params):
    top, resid = _sharpness_of(weights, problem)
    return {"sharpness": top, "sharpness_residual": resid}


BUILTIN = {
    "loss": Observable("loss", _loss, {"loss": (), "train_loss": ()}),
    "singular_values": Observable("singular_values", _svals, {"singular_values": ("sv",)}),
    "mode_strength": Observable("mode_strength", _mode_strength, {"mode_strength": ("mode",)}),
    "off_diagonal": Observable("off_diagonal", _off_diagonal, {"off_diagonal": ()}),
    "balancedness": Observable("balancedness", _balance, {"balancedness": ("layer_pair",)}),
    "layer_norm": Observable("layer_norm", _layer_norm, {"layer_norm": ("layer",)}),
    "grad_norm": Observable("grad_norm", _grad_norm, {"grad_norm": ()}),
    "noise_power": Observable("noise_power", _noise, {"noise_power": ("mode",), "noise_power_total": ()}),
    "effective_rank": Observable("effective_rank", _eff_rank, {"effective_rank": ()}),
    "end_to_end": Observable("end_to_end", _end_to_end, {"end_to_end": ("out", "in")}),
    "residual": Observable("residual", _residual, {"residual": ("out", "in")}),
    "sharpness": Observable("sharpness", _sharpness, {"sharpness": (), "sharpness_residual": ()}),
}


def _finite(weights, problem, params):
    return {"finite": jnp.all(jnp.stack([jnp.all(jnp.isfinite(w)) for w in weights]))}


#: Always recorded: whether every weight of the replica is still finite.
FINITE = Observable("finite", _finite, {"finite": ()})


def resolve(names, extra=None) -> list[Observable]:
    """Built-in observables by name, plus user :class:`Observable` objects."""
    obs = [BUILTIN[n] for n in names] + list(extra or [])
    seen = set()
    for o in obs:
        if o.name in seen:
            raise ConfigError("observables", o.name, "observables with distinct names (this one is given twice)")
        seen.add(o.name)
    return [*obs, FINITE]


def observe_fn(observables: list[Observable]):
    """One function computing every observable: ``(weights, problem, params) -> {var: array}``."""

    def observe(weights, problem, params):
        out = {}
        for o in observables:
            out.update(o.fn(weights, problem, params))
        return out

    return observe


# ---------------------------------------------------------------------------------------------------------
# Observables of the alignment with the teacher's modes (not recorded by default: pass them to simulate)


def _mode_imbalance(weights, problem, params):
    f = problem.V_k
    out, rel = [], []
    for l in range(len(weights) - 1):
        f = weights[l] @ f  # W_{≤l} v_α: hidden representation of input mode α after layer l
        n = f / jnp.linalg.norm(f, axis=0)
        up = jnp.sum((weights[l + 1] @ n) ** 2, axis=0)
        down = jnp.sum((weights[l].T @ n) ** 2, axis=0)
        out.append(up - down)
        rel.append((up - down) / (up + down))
    if not out:
        z = jnp.zeros((0, problem.s.shape[0]), problem.M.dtype)
        return {"mode_imbalance": z, "mode_imbalance_rel": z}
    return {"mode_imbalance": jnp.stack(out), "mode_imbalance_rel": jnp.stack(rel)}


def _offdiag_max(weights, problem, params):
    full = problem.U.T @ end_to_end(weights) @ problem.V
    n = min(full.shape)
    mask = jnp.ones_like(full).at[jnp.arange(n), jnp.arange(n)].set(0.0)
    return {"offdiag_max": jnp.max(jnp.abs(full * mask))}


#: Per-mode layer imbalance ``‖W_{l+1}n‖² − ‖W_lᵀn‖²`` along the hidden direction ``n ∝ W_l⋯W_1 v_α`` of mode ``α``
#: (``mode_imbalance``, dims ``layer_pair, mode``) and its ratio to ``‖W_{l+1}n‖² + ‖W_lᵀn‖²``
#: (``mode_imbalance_rel``). On the aligned manifold it is ``a_{l+1,α}² − a_{l,α}²``, the quantity whose decay
#: ``sgd_noise.md`` §5.5 predicts; before a mode is learned ``n`` is dominated by the random init.
MODE_IMBALANCE = Observable("mode_imbalance", _mode_imbalance,
                            {"mode_imbalance": ("layer_pair", "mode"), "mode_imbalance_rel": ("layer_pair", "mode")})
#: The largest off-diagonal entry ``max_{i≠j} |(UᵀWV)_{ij}|`` (checks.md S11's misalignment measure).
OFFDIAG_MAX = Observable("offdiag_max", _offdiag_max, {"offdiag_max": ()})


def _weights_key(key, weights):
    """``key`` folded with a hash of the weights' bit patterns: a different key for every replica and record whose
    weights differ (an observable gets no key of its own)."""
    for w in weights:
        bits = lax.bitcast_convert_type(w, jnp.uint32).ravel()
        mult = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(1)
        key = jax.random.fold_in(key, jnp.sum(bits * mult))
    return key


def sampled_noise(n_samples: int, seed: int = 0) -> Observable:
    """The empirical minibatch-gradient noise along the teacher's modes (:func:`~.noise.sampled_noise_power`):
    ``sampled_noise_power`` (dims ``mode``; function space, the measured counterpart of ``noise_power``) and
    ``sampled_layer_noise`` (``layer, mode``; parameter space, along each layer's mode direction).

    Online data: per-sample gradients of ``n_samples`` fresh samples (divisor ``n − 1``: unbiased), drawn from
    ``fold_in(PRNGKey(seed), hash of the weights)`` — independent of the training draws, fresh for every replica
    and record whose weights differ (replicas with bitwise-equal weights, e.g. an identity-basis aligned start at
    ``t = 0``, share a batch). Finite data: the dataset's own per-sample gradients (divisor ``N``: the exact
    minibatch noise of that dataset; ``n_samples`` unused)."""
    if not (isinstance(n_samples, int) and n_samples >= 2):
        raise ConfigError("sampled_noise.n_samples", n_samples, "an integer ≥ 2 (samples per record)")
    base = jax.random.PRNGKey(seed)

    def fn(weights, problem, params):
        if problem.finite:
            per_mode, per_layer = sampled_noise_power(weights, problem, problem.X, problem.Y, ddof=0)
        else:
            X, Y = problem.sample(_weights_key(base, weights), n_samples, params.label_noise)
            per_mode, per_layer = sampled_noise_power(weights, problem, X, Y)
        return {"sampled_noise_power": per_mode, "sampled_layer_noise": per_layer}

    return Observable("sampled_noise", fn, {"sampled_noise_power": ("mode",), "sampled_layer_noise": ("layer", "mode")})
