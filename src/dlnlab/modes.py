"""Vectorised per-mode simulation: the exact per-mode SGD recursion and the per-mode SDEs (``sgd_noise.md`` §5).

On the aligned manifold online SGD decouples into independent scalar problems, one per teacher mode
``α`` with singular value ``s_α`` and input variance ``λ_α``; a mode is described by its per-layer values
``a_{l,α}`` (``m_α = Π_l a_{l,α}``, ``π_{l,α} = Π_{j≠l} a_{j,α}``). :func:`simulate_modes` runs an ensemble of
such systems — every mode of every replica — as one compiled JAX program (jit + vmap over replicas +
``lax.scan`` over record intervals, float64), and returns an ``xarray.Dataset`` laid out like
:func:`dlnlab.simulate`'s (dims ``replica``, ``t``, ``mode``; variables ``mode_strength``, ``noise_power``,
optionally ``layer_sv``, and ``finite``), so the two can be compared directly.

Schemes (``scheme``; the default follows ``config.dynamics.kind``):

* ``sgd`` — the **exact** discrete per-mode recursion (§5.4 and its unbalanced form, checks.md S1/S2):
  ``a_l ← a_l − η π_l ζ̂``, ``ζ̂ = B⁻¹ Σ_b ((m − s) z_b − e_b) z_b``, ``z_b ~ N(0, λ)``, ``e_b ~ N(0, σ_ε²)``. This *is* online
  SGD on a diagonal DLN (each mode its own scalar chain). For one mode, :func:`dlnlab.simulate` of the scalar
  network (``d_in = d_out = width = 1``) with the same seed draws the same samples and produces the same iterates
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
import time

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from . import conventions  # noqa: F401  (float64)
from .config import Config, ConfigError
from .dynamics import Interrupted, _chunks, _progress, _trim, provenance, record_times
from .network import Initializer
from .rng import normal
from .runtime import shard_replicas
from .teacher import Teacher

SCHEMES = ("sgd", "gd", "em", "log", "implicit")
SDE_SCHEMES = ("em", "log", "implicit")
NEWTON_MAX_ITERS = 60
NEWTON_TOL = 1e-13  # absolute, on y = ln a
NEWTON_MAX_STEP = 1.0
NEWTON_UNROLLED = 3
NEWTON_FAIL_TOL = 1e-9  # a solve that ends with a larger last step did not converge  # damping: at most a factor e per Newton iteration


# ---------------------------------------------------------------------------------------------------------
# Per-mode building blocks (pure JAX; ``a`` has shape (L, n_modes))


def layer_products(a):
    """``(m, π)``: ``m = Π_l a_l`` (shape ``(n_modes,)``) and ``π_l = Π_{j≠l} a_j`` (shape ``(L, n_modes)``)."""
    L = a.shape[0]
    pre = [jnp.ones_like(a[0])]
    for l in range(L - 1):
        pre.append(pre[-1] * a[l])
    suf = [jnp.ones_like(a[0])]
    for l in range(L - 1, 0, -1):
        suf.append(suf[-1] * a[l])
    suf = suf[::-1]
    return pre[-1] * a[-1], jnp.stack([pre[l] * suf[l] for l in range(L)])


def mode_noise_var(m, s, lam, label_noise, noise="exact"):
    """``D(m) = 2λ²(m − s)² + λσ_ε²`` (``noise="exact"``) or its label-noise part ``λσ_ε²`` (``"label"``)."""
    if noise == "label":
        return lam * label_noise**2 + 0.0 * m
    return 2.0 * lam**2 * (m - s) ** 2 + lam * label_noise**2


def mode_draws(key, batch_size, lam, label_noise):
    """One step's samples along every mode: ``z`` of shape ``(B, n_modes)`` with ``z ~ N(0, λ)`` and ``e ~ N(0, σ_ε²)``,
    drawn exactly as :meth:`dlnlab.Problem.sample` draws ``x`` and ``ε`` (``key`` is the step key;
    ``label_noise=None``: σ_ε = 0 without drawing ``e``)."""
    kx, ke = jax.random.split(key)
    n = lam.shape[0]
    z = normal(kx, (batch_size, n), lam.dtype) * jnp.sqrt(lam)
    if label_noise is None:
        return z, jnp.zeros_like(z)
    return z, label_noise * normal(ke, (batch_size, n), lam.dtype)


def minibatch_mode_gradient(a, z, e, s):
    """``ζ̂ = B⁻¹ Σ_b ((m − s) z_b − e_b) z_b`` per mode: the minibatch gradient of ``½(m z − s z − e)²`` in ``m``."""
    m, _ = layer_products(a)
    return jnp.mean(((m - s) * z - e) * z, axis=0)


def recursion_step(a, zeta_hat, lr):
    """Exact per-mode SGD update ``a_l ← a_l − η π_l ζ̂`` (§5.4; unbalanced aligned form, checks.md S2)."""
    _, pi = layer_products(a)
    return a - lr * pi * zeta_hat


def _log_coefficients(y, s, lam, label_noise, c, noise):
    """Log-coordinate drift ``μ`` and noise ``ς`` (per layer) and the pieces of their Jacobian."""
    Y = jnp.sum(y, axis=0)
    m = jnp.exp(Y)
    r = jnp.exp(Y[None] - 2.0 * y)  # π_l / a_l
    D = mode_noise_var(m, s, lam, label_noise, noise)
    mu = lam * r * (s - m) - 0.5 * c * r**2 * D
    return mu, r, m, D


def _log_drift_jacobian_parts(y, s, lam, label_noise, c, noise):
    """The log-coordinate drift and its Jacobian in the form ``∂μ_l/∂y_j = b_l − 2 A_l δ_lj`` (diagonal plus rank one).

    With ``r_l = exp(Y − 2y_l)``, ``m = exp(Y)``, ``Y = Σ y``: ``∂r_l/∂y_j = r_l(1 − 2δ_lj)`` and ``∂m/∂y_j = m``, so
    ``A_l = λ r_l (s − m) − c r_l² D`` and ``b_l = A_l − λ r_l m − ½ c r_l² D'(m) m`` (``c = η/B``)."""
    mu, r, m, D = _log_coefficients(y, s, lam, label_noise, c, noise)
    dD = 4.0 * lam**2 * (m - s) if noise == "exact" else 0.0 * m  # D'(m)
    A = lam * r * (s - m) - c * r**2 * D
    b = A - lam * r * m - 0.5 * c * r**2 * dD * m
    return mu, A, b


def implicit_log_step(y, xi, dt, s, lam, label_noise, c, noise="exact"):
    """One drift-implicit Euler step in ``y = ln a``: solve ``y' − Δt μ(y') = y + ς(y) sqrt(Δt) ξ`` (``ς_l = sqrt(c) r_l
    sqrt(D)``, ``c = η/B``) by damped Newton; the Newton system ``diag(1 + 2ΔtA) − Δt b 1ᵀ`` is solved by
    Sherman–Morrison, elementwise over modes. Steps are clipped to ``|Δy| ≤ 1`` and iterations stop at
    ``max|Δy| ≤ 1e-13`` (or after 60)."""
    mu0, r, _, D = _log_coefficients(y, s, lam, label_noise, c, noise)
    target = y + jnp.sqrt(dt * c) * r * jnp.sqrt(D) * xi
    # start from the explicit (log-EM) step where it is finite: then the residual is O(Δt²) and Newton needs
    # ~2 iterations at small Δt; where the explicit drift overflows, start from the noise-only target
    guess = target + dt * mu0
    guess = jnp.where(jnp.isfinite(guess), guess, target)

    def newton(state):
        u, it, _ = state
        mu, A, b = _log_drift_jacobian_parts(u, s, lam, label_noise, c, noise)
        F = u - target - dt * mu  # (L, n)
        d = 1.0 + 2.0 * dt * A
        Fd, bd = F / d, b / d
        delta = Fd + dt * bd * jnp.sum(Fd, axis=0) / (1.0 - dt * jnp.sum(bd, axis=0))
        delta = jnp.clip(jnp.where(jnp.isfinite(delta), delta, jnp.inf), -NEWTON_MAX_STEP, NEWTON_MAX_STEP)
        return u - delta, it + 1, jnp.max(jnp.abs(delta), axis=0)

    def cond(state):
        _, it, err = state
        return (it < NEWTON_MAX_ITERS) & (jnp.max(err) > NEWTON_TOL)

    state = (guess, 0, jnp.full(y.shape[1:], jnp.inf, y.dtype))
    for _ in range(NEWTON_UNROLLED):  # enough at small Δt; the loop below then exits at once
        state = newton(state)
    u, _, err = lax.while_loop(cond, newton, state)
    # a mode whose solve did not converge is returned as NaN (counted as diverged), never silently wrong
    return jnp.where(err <= NEWTON_FAIL_TOL, u, jnp.nan)


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

    run = shard_replicas(shard, (0, 1, 2, 3, 4) if inc_batched else (0, 1, 2, 3))
    obs0 = jax.jit(jax.vmap(initial, in_axes=(0, 0, None)))
    return run, obs0


# ---------------------------------------------------------------------------------------------------------
# Public API


def mode_config(s, *, depth, lr, batch_size=1, label_noise=0.0, input_variance=1.0, m0=None, strength=None,
                layer_values=None, kind="sgd", dt=None, steps=None, t_max=None, n_times=101, spacing="linear",
                t_min=None, replicas=1000, seed=0, noise="exact") -> Config:
    """A :class:`~dlnlab.config.Config` for per-mode runs: teacher ``s`` with identity bases,
    ``d_in = d_out = width = len(s)``, aligned init from ``m0`` (every mode; may be a list to stack), ``strength``
    (per mode) or ``layer_values`` (``depth`` rows of per-mode values). With one mode the same config run by
    :func:`dlnlab.simulate` is the scalar network whose SGD the ``sgd`` scheme reproduces exactly."""
    s = [float(x) for x in np.atleast_1d(s)]
    k = len(s)
    lam = input_variance if np.ndim(input_variance) == 0 else [float(x) for x in input_variance]
    init = {"kind": "aligned", "hidden_basis": "identity"}
    if m0 is not None:
        init["scale"] = m0
    if strength is not None:
        init["strength"] = [float(x) for x in strength]
    if layer_values is not None:
        init["layer_values"] = [[float(x) for x in row] for row in layer_values]
    dyn = {"kind": kind, "lr": lr, "batch_size": batch_size}
    if steps is not None:
        dyn["steps"] = steps
    if t_max is not None:
        dyn["t_max"] = t_max
    if kind == "sde":
        dyn["noise"] = noise
        if dt is not None:
            dyn["dt"] = dt
    rec = {"n_times": n_times, "spacing": spacing, "observables": ["mode_strength", "noise_power"]}
    if t_min is not None:
        rec["t_min"] = t_min
    return Config.from_dict({
        "teacher": {"d_in": k, "d_out": k, "singular_values": s, "input_variance": lam, "label_noise": label_noise,
                    "basis": "identity"},
        "network": {"depth": depth, "width": k},
        "init": init,
        "dynamics": dyn,
        "record": rec,
        "ensemble": {"replicas": replicas, "seed": seed},
    })


def _scheme_of(config: Config, scheme):
    kind = config.dynamics.kind
    default = {"sgd": "sgd", "gd": "gd", "sde": "em"}
    if kind == "flow":
        raise ConfigError("dynamics.kind", kind, "'sgd', 'gd' or 'sde' for per-mode runs "
                          "(gradient flow of a mode is in closed form: dlnlab.theory.mode_flow_fn)")
    if scheme is None:
        return default[kind]
    if scheme not in SCHEMES:
        raise ConfigError("scheme", scheme, "one of " + ", ".join(SCHEMES))
    ok = scheme == kind if kind in ("sgd", "gd") else scheme in SDE_SCHEMES
    if not ok:
        allowed = f"'{kind}'" if kind in ("sgd", "gd") else ", ".join(repr(x) for x in SDE_SCHEMES)
        raise ConfigError("scheme", scheme, f"{allowed} for dynamics.kind = {kind!r}")
    return scheme


def _snap(t_nom, unit):
    """Record times snapped to the step grid, as :func:`dlnlab.simulate` does."""
    if np.all(unit == unit[0]):
        steps = np.unique(np.rint(t_nom / unit[0]).astype(np.int64))
        return steps * unit[0], (("t",), steps), np.diff(steps), False
    steps = np.rint(t_nom[None, :] / unit[:, None]).astype(np.int64)
    return t_nom, (("replica", "t"), steps), np.diff(steps, axis=1), True


def simulate_modes(config: Config, *, scheme: str | None = None, times=None, record_layers: bool | None = None,
                   progress: bool | None = None) -> xr.Dataset:
    """Simulate the per-mode reduction of ``config`` for every replica; see the module docstring for the schemes.

    ``config`` needs ``init.kind = "aligned"`` (``scale``, ``strength`` or ``layer_values``; the hidden bases and
    the teacher's ``U, V`` are irrelevant here) and online data. Used from it: ``s_α``, ``λ_α``, ``σ_ε``, depth,
    ``η``, ``B``, the SDE step ``dynamics.dt`` (default ``η``) and ``dynamics.noise`` (``"exact"``: ``D(m)``;
    ``"label"``: ``λσ_ε²``), record times, replicas and seed. ``dynamics.lr``, ``teacher.label_noise`` and
    ``init.scale`` may be stacked as for :func:`dlnlab.simulate`; the record grid is the same as there.

    ``times``: explicit record times (snapped to the step grid) instead of ``config.record``.
    ``record_layers``: also record the per-layer values ``layer_sv`` (dims ``layer``, ``mode``); default: when the
    initialisation is unbalanced.

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t`` (``step`` coordinate), ``mode`` and variables
    ``mode_strength`` (``m_α``), ``noise_power`` (``K_α² D_α(m_α)``, ``K = Σ_l π_l²``: the function-space noise power
    of the ``noise_power`` observable on the aligned manifold; times ``η/B`` it is the diffusion of ``m_α``),
    ``finite`` and optionally ``layer_sv``; ``attrs["n_diverged"]`` counts replicas that are not finite at the end.
    """
    wall0 = time.perf_counter()
    scheme = _scheme_of(config, scheme)
    dy, L = config.dynamics, config.network.depth
    if config.init.kind != "aligned":
        raise ConfigError("init.kind", config.init.kind, "'aligned' for per-mode runs")
    if config.data.kind != "online":
        raise ConfigError("data.kind", config.data.kind, "'online' for per-mode runs")
    noise = dy.noise if scheme in SDE_SCHEMES else "exact"
    if noise not in ("exact", "label"):
        raise ConfigError("dynamics.noise", noise, "'exact' or 'label' for per-mode SDEs")
    dtype = jnp.float32 if dy.precision == "float32" else jnp.float64
    teacher = Teacher.from_config(config)
    n_modes = teacher.n_modes
    consts = (jnp.asarray(teacher.s, dtype), jnp.asarray(teacher.mode_input_var, dtype))

    grid = config.replica_grid()
    R = len(grid)

    def col(name, value):
        return np.array([row.get(name, value) for row in grid], dtype=np.float64)

    lr = col("dynamics.lr", dy.lr)
    label_noise = col("teacher.label_noise", config.teacher.label_noise)
    unit = np.full(R, dy.dt) if (dy.kind == "sde" and dy.dt is not None) else lr
    params = tuple(jnp.asarray(v, dtype) for v in (lr, label_noise, unit))
    members = np.array([row["member"] for row in grid])
    coords = {"member": ("replica", members), "lr": ("replica", lr), "label_noise": ("replica", label_noise)}

    # initial per-layer values (L, n_modes) per replica
    init = Initializer(config, teacher)
    ic = config.init
    scale = col("init.scale", np.nan if ic.scale is None else ic.scale)
    if ic.scale is not None:
        coords["init_scale"] = ("replica", scale)
    a0 = np.empty((R, L, n_modes))
    keyed = np.where(np.isnan(scale), 0.0, scale)  # no scale (strength / layer_values): one set for every replica
    for value in np.unique(keyed):
        a = np.asarray(init.aligned_values(float(value)), np.float64)
        a0[keyed == value] = np.pad(a, ((0, 0), (0, n_modes - a.shape[1])))[:, :n_modes]
    balanced = bool(np.all(a0 == a0[:, :1]))
    if record_layers is None:
        record_layers = not balanced
    if scheme in ("log", "implicit"):
        if np.any(a0 <= 0):
            raise ConfigError("init", "a_{l,α} <= 0", f"positive per-layer values for scheme {scheme!r} (log coordinates)")
        x0 = np.log(a0)
    else:
        x0 = a0
    x0 = jnp.asarray(x0, dtype)

    base = jax.random.PRNGKey(config.ensemble.seed)
    keys = jax.vmap(lambda mbr: jax.random.fold_in(jax.random.fold_in(base, mbr), 1))(jnp.asarray(members))

    t_nom = record_times(config, float(np.min(unit))) if times is None else np.asarray(times, np.float64)
    t, step_coord, incs, batched = _snap(t_nom, unit)
    run, obs0_fn = _program(scheme, dy.batch_size, noise, bool(record_layers), batched, not np.any(label_noise))
    obs0 = {k: np.asarray(v)[:, None] for k, v in obs0_fn(x0, params, consts).items()}

    n = len(t)
    pieces, state, k = [], x0, jnp.zeros(R, dtype=jnp.int64)
    if n > 1:
        chunks, size = _chunks(n, config.record.chunks)
        try:
            with _progress(len(chunks), progress, f"modes/{scheme}") as bar:
                for idx in chunks:
                    inc = incs[..., idx - 1]
                    inc = np.concatenate([inc, np.zeros((*inc.shape[:-1], size - len(idx)), np.int64)], axis=-1)
                    state, k, obs = run(state, k, keys, params, jnp.asarray(inc), consts)
                    pieces.append(_trim(obs, len(idx)))
                    bar.update(1)
        except KeyboardInterrupt:
            if not pieces:
                raise
            raise Interrupted(_assemble(config, scheme, t, step_coord, obs0, pieces, coords, teacher, wall0,
                                        complete=False)) from None
    return _assemble(config, scheme, t, step_coord, obs0, pieces, coords, teacher, wall0, complete=True)


def _assemble(config, scheme, t, step_coord, obs0, pieces, coords, teacher, wall0, complete):
    n = 1 + sum(next(iter(p.values())).shape[1] for p in pieces)
    R = next(iter(obs0.values())).shape[0]
    coords = {"replica": np.arange(R), "t": np.asarray(t[:n], np.float64), **coords}
    dims, steps = step_coord
    coords["step"] = (dims, steps[..., :n])
    dims_of = {"mode_strength": ("mode",), "noise_power": ("mode",), "finite": (), "layer_sv": ("layer", "mode")}
    data_vars = {}
    for name in obs0:
        arr = np.concatenate([obs0[name], *[p[name] for p in pieces]], axis=1)
        data_vars[name] = (("replica", "t", *dims_of[name]), arr)
    ds = xr.Dataset(data_vars, coords=coords)
    k = ds.sizes["mode"]
    ds = ds.assign_coords(mode=np.arange(1, k + 1), s=("mode", teacher.s[:k]),
                          input_var=("mode", teacher.mode_input_var[:k]))
    if "layer" in ds.dims:
        ds = ds.assign_coords(layer=np.arange(1, ds.sizes["layer"] + 1))
    ds.attrs.update(provenance(config))
    ds.attrs.update(engine="per-mode", scheme=scheme, wall_time_s=time.perf_counter() - wall0, n_replicas=R,
                    complete=int(complete), n_diverged=int((~ds["finite"].isel(t=-1)).sum()))
    return ds


# ---------------------------------------------------------------------------------------------------------
# Measurements on recorded ensembles (NumPy)


def first_passage(t, m, level):
    """First recorded time at which ``m ≥ level`` (per replica and mode; ``nan`` if never).

    ``t``: ``(n_t,)``; ``m``: ``(replicas, n_t, modes)``; ``level``: ``(modes,)``."""
    t, m = np.asarray(t), np.asarray(m)
    hit = m >= np.asarray(level)
    idx = hit.argmax(axis=1)
    return np.where(hit.any(axis=1), t[idx], np.nan)


def peak_statistics(t, m, power, s, eps=0.01, pre_level=None):
    """Where the diffusion along each mode peaks, per replica: the argmax over recorded times of ``power``
    (any quantity ``∝ 𝒟_α``, e.g. the ``noise_power`` observable or ``m^p D(m)``) against the learning time.

    Returns a dict of ``(replicas, modes)`` arrays: ``t_peak`` and ``m_peak`` (global argmax over the run),
    ``t_learned`` (first time ``m ≥ (1 − ε)s``), and ``t_peak_pre``/``m_peak_pre``, the argmax restricted to times
    before ``m`` first reaches ``pre_level`` (per mode; default ``(1 − ε)s``). With label noise, pass the local
    minimum ``m_+`` of ``m^p D(m)`` (``theory.modes.peak_roots``) to locate the pre-learning *local* maximum even when
    the stationary phase is noisier than the bump."""
    t, m, power = np.asarray(t), np.asarray(m), np.asarray(power)
    s = np.asarray(s, np.float64)
    i = np.argmax(np.where(np.isfinite(power), power, -np.inf), axis=1)
    t_learned = first_passage(t, m, (1.0 - eps) * s)
    level = (1.0 - eps) * s if pre_level is None else np.asarray(pre_level, np.float64)
    t_end = first_passage(t, m, level)
    pre = np.where(t[None, :, None] <= np.where(np.isnan(t_end), np.inf, t_end)[:, None, :], power, -np.inf)
    j = np.argmax(pre, axis=1)
    take = lambda idx: np.take_along_axis(m, idx[:, None, :], axis=1)[:, 0]
    return {"t_peak": t[i], "m_peak": take(i), "t_learned": t_learned, "t_peak_pre": t[j], "m_peak_pre": take(j)}


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
    from .network import end_to_end

    full = problem.U.T @ end_to_end(weights) @ problem.V
    n = min(full.shape)
    mask = jnp.ones_like(full).at[jnp.arange(n), jnp.arange(n)].set(0.0)
    return {"offdiag_max": jnp.max(jnp.abs(full * mask))}


def _make_observables():
    from .observables import Observable

    return (Observable("mode_imbalance", _mode_imbalance,
                       {"mode_imbalance": ("layer_pair", "mode"), "mode_imbalance_rel": ("layer_pair", "mode")}),
            Observable("offdiag_max", _offdiag_max, {"offdiag_max": ()}))


#: Observable for full networks: per-mode layer imbalance ``‖W_{l+1}n‖² − ‖W_lᵀn‖²`` along the hidden direction
#: ``n ∝ W_l⋯W_1 v_α`` of mode ``α`` (``mode_imbalance``, dims ``layer_pair, mode``) and its ratio to
#: ``‖W_{l+1}n‖² + ‖W_lᵀn‖²`` (``mode_imbalance_rel``). On the aligned manifold it is ``a_{l+1,α}² − a_{l,α}²``,
#: the quantity whose decay §5.5 predicts; before a mode is learned ``n`` is dominated by the random init.
MODE_IMBALANCE, OFFDIAG_MAX = _make_observables()
#: ``OFFDIAG_MAX``: the largest off-diagonal entry ``max_{i≠j} |(UᵀWV)_{ij}|`` (checks.md S11's misalignment measure).
