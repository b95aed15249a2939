"""Vectorised per-mode simulation: the exact per-mode SGD recursion and the per-mode SDEs (``sgd_noise.md`` §5).

On the aligned manifold online SGD decouples into independent scalar problems, one per teacher mode
``α`` with singular value ``s_α`` and input variance ``λ_α``; a mode is described by its per-layer values
``a_{l,α}`` (``m_α = Π_l a_{l,α}``, ``π_{l,α} = Π_{j≠l} a_{j,α}``). A config with a ``[modes]`` section
(:func:`mode_config`; :func:`reduce_to_modes` of an aligned network config) runs an ensemble of such systems —
every mode of every replica — as one compiled JAX program (jit + vmap over replicas + ``lax.scan`` over record
intervals, float64); the dataset is laid out like the network simulator's (dims ``replica``, ``t``, ``mode``;
variables ``mode_strength``, ``noise_power``, optionally ``layer_sv``, and ``finite``), so the two compare directly
(:func:`as_network` is the network whose reduction a modes config is).

Schemes (``dynamics.kind`` ``sgd`` and ``gd``, and for ``sde`` the ``dynamics.scheme``, default ``em``):

* ``sgd`` — the **exact** discrete per-mode recursion (§5.4 and its unbalanced form, checks.md S1/S2):
  ``a_l ← a_l − η π_l ζ̂``, ``ζ̂ = B⁻¹ Σ_b ((m − s) z_b − e_b) z_b``, ``z_b ~ N(0, λ)``, ``e_b ~ N(0, σ_ε²)``. This *is* online
  SGD on a diagonal DLN (each mode its own scalar chain). For one mode, :func:`as_network` run by the network
  simulator (``d_in = d_out = width = 1``) with the same seed draws the same samples and produces the same iterates
  to round-off (checks.md S1). A full matrix network started on the aligned manifold does *not* stay there: SGD
  noise creates off-diagonal components (§6), whose effect on ``m_α`` is ``O(η/B)`` (measured by the
  ``mode_agreement`` experiment).
* ``gd`` — the same with the population gradient ``ζ̂ = λ(m − s)``.
* ``em`` — Euler–Maruyama for the per-layer SDE of §5.1, ``a_l ← a_l + Δt λπ_l(s − m) + sqrt(Δt η/B) π_l sqrt(D(m)) ξ``
  with one ``ξ ~ N(0, 1)`` per mode and step (the same for every layer). Weak order 1. Natural and exact in
  structure, but explicit in a drift and noise that grow like ``a^{2L−1}``: a rare large excursion makes the
  next step overshoot, and a replica can blow up (stiffness), as discrete SGD does.
* ``log`` — Euler–Maruyama in ``y_l = ln a_l`` (needs ``a_l > 0``), with the Itô drift
  ``λ r_l (s − m) − ½(η/B) r_l² D(m)`` and noise ``sqrt(η/B) r_l sqrt(D)``, ``r_l = π_l/a_l`` (§8 uses it near the saddle).
  Positivity is built in and relative precision is kept at tiny ``a`` (plateaus from ``m₀ = 1e-12`` cost nothing),
  but the Itô term ``∝ a^{2L−2}`` is explicit too: at large ``a`` it overshoots downwards (``noise_balance.md`` §12).
* ``implicit`` — **drift-implicit Euler in log coordinates** (the stable scheme): ``y' = y + Δt μ(y') + ς(y) sqrt(Δt) ξ``
  with ``μ, ς`` the log-coordinate drift and noise above, solved per mode by a damped Newton iteration on the
  ``L × L`` system (diagonal plus rank one: Sherman–Morrison); a solve that does not converge returns NaN (counted
  in ``n_diverged``). *Why this choice:* in the variable ``y = ln a`` the state is positive by
  construction and the dynamics near the saddle is resolved in relative precision; the stiff part of the
  dynamics — the confining drift ``−λ a^{2L−2}`` and the Itô term ``−(η/B) λ² a^{4L−4}`` that dominate at large ``a`` —
  is strongly *decreasing* in ``y``, so the backward-Euler drift step is unconditionally stable there (it can
  never overshoot past the fixed point the way the explicit steps do), while keeping weak order 1 like EM.
  Taming (``noise_balance.md`` §12) also prevents blow-up but rescales the noise by ``1/(1 + ς sqrt(Δt))``, which
  biases the variance at order ``sqrt(Δt)`` per unit time; the implicit step does not touch the noise.
  *Limit of both log schemes:* they need ``a_l > 0`` along the path. A balanced mode stays positive (its noise
  vanishes like ``a^{L−1}`` at 0), but in an unbalanced mode the noise of a small layer is ``∝ π_l``, which does not
  vanish as ``a_l → 0``: that layer can reach and cross 0 (its log-coordinate Itô drift ``−½(η/B) r_l² D`` then
  diverges). Use ``em`` (or ``sgd``) for strongly unbalanced modes.

Random numbers. Replica ``r`` with ``member`` index ``i`` uses the key ``fold_in(fold_in(PRNGKey(seed), i), 1)``
and step ``k`` draws from ``fold_in(fold_in(key, 0), k)`` — the same scheme as :func:`dlnlab.simulate` — so a
replica's path depends only on the seed and its member index. Gaussians come from :func:`dlnlab.rng.normal`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import conventions
from ..config import Config
from ..conventions import layer_products  # (and float64)
from ..errors import ConfigError
from ..model.teacher import Teacher
from ..rng import normal
from ..runtime import shard_replicas
from ._core import Program, Replicas, RunResult, chunk_size, execute, pad_increments, record_grid, time_unit, to_numpy

SCHEMES = ("sgd", "gd", "em", "log", "implicit")
SDE_SCHEMES = ("em", "log", "implicit")
NEWTON_MAX_ITERS = 60
NEWTON_TOL = 1e-13  # absolute, on y = ln a
NEWTON_MAX_STEP = 1.0  # damping: at most a factor e per Newton iteration
NEWTON_UNROLLED = 3
NEWTON_FAIL_TOL = 1e-9  # a solve that ends with a larger last step did not converge
#: State bytes of the block of replicas stepped through a whole chunk of records at a time (kept in cache).
BLOCK_BYTES = 2**14


# ---------------------------------------------------------------------------------------------------------
# Per-mode building blocks (pure JAX; ``a`` has shape (L, n_modes))


def mode_noise_var(m, s, input_variance, label_noise, noise="exact"):
    """:func:`dlnlab.conventions.mode_noise_var` ``D(m) = 2λ²(m − s)² + λσ_ε²`` (``noise="exact"``) or its
    label-noise part ``λσ_ε²`` (``"label"``)."""
    if noise == "label":
        return input_variance * label_noise**2 + 0.0 * m
    return conventions.mode_noise_var(m, s, input_variance, label_noise)


def mode_draws(key, batch_size, input_variance, label_noise):
    """One step's samples along every mode: ``z`` of shape ``(B, n_modes)`` with ``z ~ N(0, λ)`` and ``e ~ N(0, σ_ε²)``,
    drawn exactly as :meth:`dlnlab.Problem.sample` draws ``x`` and ``ε`` (``key`` is the step key;
    ``label_noise=None``: σ_ε = 0 without drawing ``e``)."""
    kx, ke = jax.random.split(key)
    n = input_variance.shape[0]
    z = normal(kx, (batch_size, n), input_variance.dtype) * jnp.sqrt(input_variance)
    if label_noise is None:
        return z, jnp.zeros_like(z)
    return z, label_noise * normal(ke, (batch_size, n), input_variance.dtype)


def minibatch_mode_gradient(a, z, e, s):
    """``ζ̂ = B⁻¹ Σ_b ((m − s) z_b − e_b) z_b`` per mode: the minibatch gradient of ``½(m z − s z − e)²`` in ``m``."""
    m, _ = layer_products(a)
    return jnp.mean(((m - s) * z - e) * z, axis=0)


def recursion_step(a, zeta_hat, lr):
    """Exact per-mode SGD update ``a_l ← a_l − η π_l ζ̂`` (§5.4; unbalanced aligned form, checks.md S2)."""
    _, pi = layer_products(a)
    return a - lr * pi * zeta_hat


def _log_coefficients(y, s, input_variance, label_noise, c, noise):
    """Log-coordinate drift ``μ`` and noise ``ς`` (per layer) and the pieces of their Jacobian."""
    Y = jnp.sum(y, axis=0)
    m = jnp.exp(Y)
    r = jnp.exp(Y[None] - 2.0 * y)  # π_l / a_l
    D = mode_noise_var(m, s, input_variance, label_noise, noise)
    mu = input_variance * r * (s - m) - 0.5 * c * r**2 * D
    return mu, r, m, D


def _log_drift_jacobian_parts(y, s, input_variance, label_noise, c, noise):
    """The log-coordinate drift and its Jacobian in the form ``∂μ_l/∂y_j = b_l − 2 A_l δ_lj`` (diagonal plus rank one).

    With ``r_l = exp(Y − 2y_l)``, ``m = exp(Y)``, ``Y = Σ y``: ``∂r_l/∂y_j = r_l(1 − 2δ_lj)`` and ``∂m/∂y_j = m``, so
    ``A_l = λ r_l (s − m) − c r_l² D`` and ``b_l = A_l − λ r_l m − ½ c r_l² D'(m) m`` (``c = η/B``)."""
    mu, r, m, D = _log_coefficients(y, s, input_variance, label_noise, c, noise)
    dD = 4.0 * input_variance**2 * (m - s) if noise == "exact" else 0.0 * m  # D'(m)
    A = input_variance * r * (s - m) - c * r**2 * D
    b = A - input_variance * r * m - 0.5 * c * r**2 * dD * m
    return mu, A, b


def implicit_log_step(y, xi, dt, s, input_variance, label_noise, c, noise="exact"):
    """One drift-implicit Euler step in ``y = ln a``: solve ``y' − Δt μ(y') = y + ς(y) sqrt(Δt) ξ`` (``ς_l = sqrt(c) r_l
    sqrt(D)``, ``c = η/B``) by damped Newton; the Newton system ``diag(1 + 2ΔtA) − Δt b 1ᵀ`` is solved by
    Sherman–Morrison, elementwise over modes. Steps are clipped to ``|Δy| ≤ 1`` and iterations stop at
    ``max|Δy| ≤ 1e-13`` (or after 60). A mode whose right-hand side is not finite (it diverged earlier, or its noise
    term overflows) fails at once: iterating could only end in NaN, and under ``vmap`` the loop runs until its
    slowest element stops, so one such mode cost every replica of the batch 60 iterations a step."""
    mu0, r, _, D = _log_coefficients(y, s, input_variance, label_noise, c, noise)
    target = y + jnp.sqrt(dt * c) * r * jnp.sqrt(D) * xi
    dead = ~jnp.all(jnp.isfinite(target), axis=0)
    # start from the explicit (log-EM) step where it is finite: then the residual is O(Δt²) and Newton needs
    # ~2 iterations at small Δt; where the explicit drift overflows, start from the noise-only target
    guess = target + dt * mu0
    guess = jnp.where(jnp.isfinite(guess), guess, target)

    def newton(state):
        u, it, _ = state
        mu, A, b = _log_drift_jacobian_parts(u, s, input_variance, label_noise, c, noise)
        F = u - target - dt * mu  # (L, n)
        d = 1.0 + 2.0 * dt * A
        Fd, bd = F / d, b / d
        delta = Fd + dt * bd * jnp.sum(Fd, axis=0) / (1.0 - dt * jnp.sum(bd, axis=0))
        delta = jnp.clip(jnp.where(jnp.isfinite(delta), delta, jnp.inf), -NEWTON_MAX_STEP, NEWTON_MAX_STEP)
        return u - delta, it + 1, jnp.where(dead, 0.0, jnp.max(jnp.abs(delta), axis=0))

    def cond(state):
        _, it, err = state
        return (it < NEWTON_MAX_ITERS) & (jnp.max(err) > NEWTON_TOL)

    state = (guess, 0, jnp.full(y.shape[1:], jnp.inf, y.dtype))
    for _ in range(NEWTON_UNROLLED):  # enough at small Δt; the loop below then exits at once
        state = newton(state)
    u, _, err = lax.while_loop(cond, newton, state)
    # a mode whose solve did not converge is returned as NaN (counted as diverged), never silently wrong
    return jnp.where((err <= NEWTON_FAIL_TOL) & ~dead, u, jnp.nan)


# ---------------------------------------------------------------------------------------------------------
# Steps of one replica, as (draw, update): ``draw(key, k, params, consts)`` gives step k's random numbers, from
# ``fold_in(key, k)`` with ``key = fold_in(replica key, 0)`` (derived once per run); ``update(x, r, params, consts)``
# applies the step. params = (lr, label_noise, dt) scalars, consts = (s, lam) arrays over modes. The state x is
# a (sgd/gd/em) or y = ln a (log/implicit).


def _step_fn(scheme, batch_size, noise, label_free):
    B = batch_size

    def draw_xi(key, k, params, consts):
        return normal(jax.random.fold_in(key, k), consts[0].shape, consts[0].dtype)

    def draw_samples(key, k, params, consts):
        return mode_draws(jax.random.fold_in(key, k), B, consts[1], None if label_free else params[1])

    def sgd(a, r, params, consts):
        z, e = r
        return recursion_step(a, minibatch_mode_gradient(a, z, e, consts[0]), params[0])

    def gd(a, r, params, consts):
        lr, _, _ = params
        s, lam = consts
        m, _ = layer_products(a)
        return recursion_step(a, lam * (m - s), lr)

    def em(a, xi, params, consts):
        lr, label_noise, dt = params
        s, lam = consts
        m, pi = layer_products(a)
        D = mode_noise_var(m, s, lam, label_noise, noise)
        return a + dt * lam * pi * (s - m) + jnp.sqrt(dt * lr / B) * pi * jnp.sqrt(D) * xi

    def log(y, xi, params, consts):
        lr, label_noise, dt = params
        s, lam = consts
        mu, r, _, D = _log_coefficients(y, s, lam, label_noise, lr / B, noise)
        return y + dt * mu + jnp.sqrt(dt * lr / B) * r * jnp.sqrt(D) * xi

    def implicit(y, xi, params, consts):
        lr, label_noise, dt = params
        s, lam = consts
        return implicit_log_step(y, xi, dt, s, lam, label_noise, lr / B, noise)

    def no_draw(key, k, params, consts):
        return ()

    return {"sgd": (draw_samples, sgd), "gd": (no_draw, gd), "em": (draw_xi, em), "log": (draw_xi, log),
            "implicit": (draw_xi, implicit)}[scheme]


def _observe_fn(scheme, record_layers, noise):
    logc = scheme in ("log", "implicit")

    def observe(x, params, consts):
        _, label_noise, _ = params
        s, lam = consts
        a = jnp.exp(x) if logc else x
        m = jnp.exp(jnp.sum(x, axis=0)) if logc else layer_products(a)[0]
        _, pi = layer_products(a)
        K = jnp.sum(pi**2, axis=0)
        out = {"mode_strength": m, "noise_power": K**2 * mode_noise_var(m, s, lam, label_noise, noise),
               "finite": jnp.all(jnp.isfinite(x))}
        if record_layers:
            out["layer_sv"] = a
        return out

    return observe


@functools.lru_cache(maxsize=64)
def _program(scheme, batch_size, noise, record_layers, inc_batched, label_free):
    """The compiled ensemble program (cached: calls differing only in values or shapes reuse it), its replica axis
    sharded over the CPU cores (:func:`dlnlab.runtime.shard_replicas`). ``label_free``: every σ_ε is 0 (the
    ``sgd`` scheme then draws no label noise; the other draws are unchanged)."""
    draw, update = _step_fn(scheme, batch_size, noise, label_free)
    observe = _observe_fn(scheme, record_layers, noise)

    def replica(x, k, key, params, incs, consts):
        # step k+1's draws are taken in step k and carried: XLA then computes them once, instead of again inside
        # the update's fusion for every layer
        def body(_, c):
            xx, kk, r = c
            return update(xx, r, params, consts), kk + 1, draw(key, kk + 1, params, consts)

        def interval(carry, n):
            carry = lax.fori_loop(0, n, body, carry)
            return carry, observe(carry[0], params, consts)

        (x, k, _), obs = lax.scan(interval, (x, k, draw(key, k, params, consts)), incs)
        return x, k, obs

    def initial(x, params, consts):
        return observe(x, params, consts)

    def shard(x, k, keys, params, incs, consts):
        keys = jax.vmap(lambda key: jax.random.fold_in(key, 0))(keys)
        return jax.vmap(replica, in_axes=(0, 0, 0, 0, 0 if inc_batched else None, None))(x, k, keys, params, incs, consts)

    run = shard_replicas(shard, (0, 1, 2, 3, 4) if inc_batched else (0, 1, 2, 3), BLOCK_BYTES)
    obs0 = jax.jit(jax.vmap(initial, in_axes=(0, 0, None)))
    return run, obs0


# ---------------------------------------------------------------------------------------------------------
# Configs


def mode_config(s, *, depth, lr, batch_size=1, label_noise=0.0, input_variance=1.0, m0=None, strength=None,
                layer_values=None, kind="sgd", scheme=None, noise=None, dt=None, steps=None, t_max=None, times=None,
                n_times=None, spacing=None, t_min=None, chunks=None, precision=None, record_layers=None,
                replicas=1000, seed=0, common_random_numbers=None) -> Config:
    """A per-mode :class:`~dlnlab.config.Config` (``[modes]`` section) for the modes ``s``, keywords named as the
    config keys (``None``: not given). Default record grid: 101 linearly spaced times (unless ``times``)."""
    if times is None:
        n_times, spacing = (101 if n_times is None else n_times), ("linear" if spacing is None else spacing)
    return Config.of("modes", singular_values=s, depth=depth, lr=lr, batch_size=batch_size, label_noise=label_noise,
                     input_variance=input_variance, m0=m0, strength=strength, layer_values=layer_values, kind=kind,
                     scheme=scheme, noise=noise, dt=dt, steps=steps, t_max=t_max, times=times, n_times=n_times,
                     spacing=spacing, t_min=t_min, chunks=chunks, precision=precision, record_layers=record_layers,
                     replicas=replicas, seed=seed, common_random_numbers=common_random_numbers)


def _shared(config: Config, drop=()) -> dict:
    d = config.to_dict()
    return {sec: {k: v for k, v in d[sec].items() if k not in drop} for sec in ("dynamics", "record", "ensemble")}


def as_network(config: Config, observables=("mode_strength", "noise_power")) -> Config:
    """The network config whose per-mode reduction ``config`` (a modes config) is: identity bases,
    ``d_in = d_out = width = n_modes``, aligned init; recording ``observables``. With one mode its SGD is exactly
    the ``sgd`` scheme (checks.md S1)."""
    m, k = config.modes, config.n_modes
    init = {"kind": "aligned", "hidden_basis": "identity", "scale": m.m0, "strength": m.strength,
            "layer_values": m.layer_values}
    d = _shared(config, drop=("scheme",))
    d["record"]["observables"] = list(observables)
    d.update(teacher={"d_in": k, "d_out": k, "singular_values": m.singular_values, "input_variance": m.input_variance,
                      "label_noise": m.label_noise, "basis": "identity"},
             network={"depth": m.depth, "width": k}, init={key: v for key, v in init.items() if v is not None})
    return Config.from_dict(_plain(d))


def reduce_to_modes(config: Config, scheme: str | None = None) -> Config:
    """The per-mode reduction of an aligned network config with online data: ``s_α``, ``λ_α`` (input variance along
    the teacher's input modes), ``σ_ε``, depth and the aligned start (the teacher's and hidden bases drop out);
    ``scheme``: the SDE scheme (``dynamics.kind = 'sde'``)."""
    if config.model != "network":
        raise ConfigError("config", config.model, "a network config (sections teacher, data, network, init)")
    if config.init.kind != "aligned":
        raise ConfigError("init.kind", config.init.kind, "'aligned' for the per-mode reduction")
    if config.data.kind != "online":
        raise ConfigError("data.kind", config.data.kind, "'online' for the per-mode reduction")
    teacher, i = Teacher.from_config(config), config.init
    if min(config.layer_dims) < teacher.n_modes:
        raise ConfigError("network.width", config.network.width,
                          f"at least min(d_in, d_out) = {teacher.n_modes} for the per-mode reduction")
    d = _shared(config, drop=("rtol", "atol", "isotropic_scale", "divergence_threshold"))
    d["record"].pop("observables", None)
    if scheme is not None:
        d["dynamics"]["scheme"] = scheme
    lam = config.teacher.input_variance
    d["modes"] = {"singular_values": teacher.s,
                  "input_variance": teacher.mode_input_variance if isinstance(lam, tuple) else lam,
                  "label_noise": config.teacher.label_noise, "depth": config.network.depth, "m0": i.scale,
                  "strength": i.strength, "layer_values": i.layer_values}
    return Config.from_dict(_plain(d))


def _plain(d):
    return {sec: {k: _value(v) for k, v in vals.items() if v is not None} for sec, vals in d.items()}


def _value(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_value(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------------------
# The program


class ModesState(NamedTuple):
    """Per-mode state: ``x`` (``(R, L, n_modes)``: ``a``, or ``y = ln a`` for the log schemes) and ``step``."""

    x: jax.Array
    step: jax.Array


def scheme_of(config: Config) -> str:
    """The scheme run for a modes config: ``sgd``, ``gd``, or the SDE's ``dynamics.scheme``."""
    kind = config.dynamics.kind
    return config.dynamics.scheme if kind == "sde" else kind


def _layer_values(m, depth, n_modes, scale, dtype):
    """Per-layer, per-mode values ``a_{l,α}`` (``L × n_modes``): ``layer_values`` (zero-padded), or balanced
    ``m_α(0)^{1/L}`` from ``strength`` (zero-padded) or ``scale`` (every mode)."""
    if m.layer_values is not None:
        a = jnp.asarray(m.layer_values, dtype)
        return jnp.pad(a, ((0, 0), (0, n_modes - a.shape[1])))
    if m.strength is not None:
        v = jnp.asarray(m.strength, dtype)
        v = jnp.pad(v, (0, n_modes - v.shape[0]))
    else:
        v = jnp.full((n_modes,), scale, dtype)
    return jnp.broadcast_to(v ** (1.0 / depth), (depth, n_modes))


def _initial_values(config: Config, reps: Replicas, coords: dict, weights):
    """``a(0)``, ``(R, L, n_modes)`` float64, from ``weights`` or the ``[modes]`` start (adds ``init_scale``)."""
    m, k, L = config.modes, config.n_modes, config.modes.depth
    R = reps.R
    if weights is not None:
        return np.broadcast_to(np.asarray(weights, np.float64), (R, L, k)).copy()
    dtype = jnp.float32 if config.dynamics.precision == "float32" else jnp.float64
    scale = reps.column("modes.m0", np.nan if m.m0 is None else m.m0)
    if m.m0 is not None:
        coords["init_scale"] = ("replica", scale)
    a0 = np.empty((R, L, k))
    keyed = np.where(np.isnan(scale), 0.0, scale)  # no m0 (strength / layer_values): one set for every replica
    for value in np.unique(keyed):
        a0[keyed == value] = np.asarray(_layer_values(m, L, k, float(value), dtype), np.float64)
    return a0


def build(config: Config, weights=None) -> Program:
    """The :class:`~._core.Program` of a modes config; ``weights``: per-layer values ``a`` (``(L, n_modes)`` or
    ``(R, L, n_modes)``) replacing the config's start."""
    if config.model != "modes":
        raise ConfigError("config", config.model, "a modes config (section [modes]; see mode_config)")
    scheme, dy, m = scheme_of(config), config.dynamics, config.modes
    noise = dy.noise if dy.kind == "sde" else "exact"
    dtype = jnp.float32 if dy.precision == "float32" else jnp.float64
    reps = Replicas.of(config)
    lr, label_noise = reps.column("dynamics.lr", dy.lr), reps.column("modes.label_noise", m.label_noise)
    unit = time_unit(config, lr)
    params = tuple(jnp.asarray(v, dtype) for v in (lr, label_noise, unit))
    s, lam = np.asarray(m.singular_values, np.float64), np.broadcast_to(np.asarray(m.input_variance, np.float64),
                                                                        (config.n_modes,))
    consts = (jnp.asarray(s, dtype), jnp.asarray(lam, dtype))
    coords = {"member": ("replica", reps.members), "lr": ("replica", lr), "label_noise": ("replica", label_noise)}
    a0 = _initial_values(config, reps, coords, weights)
    record_layers = bool(np.any(a0 != a0[:, :1])) if m.record_layers is None else m.record_layers
    if scheme in ("log", "implicit") and np.any(a0 <= 0):
        raise ConfigError("weights", "a_{l,α} <= 0", f"positive per-layer values for scheme {scheme!r} (log coordinates)")
    x0 = jnp.asarray(np.log(a0) if scheme in ("log", "implicit") else a0, dtype)
    grid = record_grid(config, unit)
    label_free = not np.any(label_noise)
    run_prog, obs0_fn = _program(scheme, dy.batch_size, noise, record_layers, grid.per_replica, label_free)
    keys, size, incs = reps.keys(1), chunk_size(config, grid), grid.increments
    draw, update = _step_fn(scheme, dy.batch_size, noise, label_free)
    step_keys = jax.vmap(lambda key: jax.random.fold_in(key, 0))(keys)
    one_step = jax.jit(jax.vmap(lambda x, k, key, p: ModesState(update(x, draw(key, k, p, consts), p, consts), k + 1),
                                in_axes=(0, 0, 0, 0)))

    def run(state, records):
        records = np.asarray(records)
        inc = pad_increments(incs[..., records - 1], max(size, len(records)))
        x, k, obs = run_prog(state.x, state.step, keys, params, jnp.asarray(inc), consts)
        return RunResult(ModesState(x, k), {name: a[:, :len(records)] for name, a in to_numpy(obs).items()})

    def dataset(ds):
        k = ds.sizes["mode"]
        return ds.assign_coords(s=("mode", s[:k]), input_variance=("mode", lam[:k]))

    dims = {"mode_strength": ("mode",), "noise_power": ("mode",), "finite": ()}
    if record_layers:
        dims["layer_sv"] = ("layer", "mode")
    return Program(config=config, name=f"modes/{scheme}", grid=grid, R=reps.R,
                   init=lambda: ModesState(x0, jnp.zeros(reps.R, dtype=jnp.int64)), run=run,
                   observe=lambda state: to_numpy(obs0_fn(state.x, params, consts)),
                   step=lambda state: one_step(state.x, state.step, step_keys, params), dims=dims, coords=coords,
                   dataset=dataset, attrs={"scheme": scheme})


def simulate_modes(config: Config, *, weights=None, progress=None, checkpoint=None,
                   checkpoint_every: float = 60.0):
    """Simulate the modes config ``config`` (see the module docstring; :func:`dlnlab.simulate` does the same).

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t`` (``step`` coordinate), ``mode`` and variables
    ``mode_strength`` (``m_α``), ``noise_power`` (``K_α² D_α(m_α)``, ``K = Σ_l π_l²``: the function-space noise power
    of the network's ``noise_power`` observable on the aligned manifold; times ``η/B`` it is the diffusion of
    ``m_α``), ``finite`` and, with ``modes.record_layers`` (default: for an unbalanced start), ``layer_sv``
    (dims ``layer``, ``mode``); ``attrs["n_diverged"]`` counts replicas that are not finite at the end."""
    return execute(build(config, weights), progress=progress, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, weights=weights)
