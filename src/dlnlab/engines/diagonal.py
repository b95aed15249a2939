"""The simulator of [Z]'s diagonal linear networks (model: :mod:`dlnlab.model.diagonal`), vectorised over replicas.

A config with a ``[diagonal]`` section (:func:`diagonal_config`) describes the model, the start (``v0``: balanced
factors of the given path values; ``init_scale``: i.i.d. ``N(0, σ²)`` factors; or factors given to the
simulator) and the dynamics. Time is ``t = η·step`` (SDE and flow: ``Δt·step``), temperature ``T = η/(2B)``;
every per-sample gradient is ``ξ ∇_θ v``, ``ξ = (v x − y) x`` (:class:`~dlnlab.model.diagonal.DataConstants`).

Dynamics (``dynamics.kind``), vectorised over replicas as one compiled program:

* ``"flow"`` — gradient flow ``θ̇ = −∇𝓛`` (classical RK4 with step ``dt``);
* ``"gd"`` — ``θ ← θ − η ∇𝓛`` (population gradient);
* ``"sgd"`` — online SGD: ``B`` fresh samples per step, ``θ ← θ − η(ξ̂ ∇v + ρθ)``;
* ``"sde"`` — Itô Euler–Maruyama in parameter space ``θ ← θ − Δt ∇𝓛 + √(2TΔt g(v)) ∇v ζ`` (the exact
  rank-one noise; one ζ per replica), or with ``noise="isotropic"`` ``+ √(2TΔt) c ζ`` (a vector: "GD with
  isotropic injected noise", [Z] Fig. 1);
* ``"sde_log"`` — the balanced per-path SDE in ``y_i = ln|v_i|`` (factors of each path balanced, which the
  SDE preserves): with ``a_i = |v_i|``, ``σ_i = sgn v_i`` and one Brownian motion,
  ``dy_i = [−Lσ_i(β₁v − β₂)a_i^{1−2/L} − TLg(v)a_i^{2−4/L} − Lρ]dt + Lσ_i a_i^{1−2/L}√(2Tg(v)) dW``.
  With ``d`` equal paths it is the reduced SDE of §6.3 (``c = d^{2/L−1}``); ``L ≥ 2``.

``dynamics.scheme = "tamed"`` (``sde``, ``sde_log``) replaces the increment ``μΔt + ςΔW`` by
``μΔt/(1 + |μ|Δt) + ςΔW/(1 + ς²Δt)`` (per replica for ``sde``, per path for ``sde_log``): bounded steps at
large ``|v|`` where ``ln v`` is stiff (§12). Each step differs from Euler's by ``O(Δt²)`` where ``ς²Δt`` and
``|μ|Δt`` are small, but the stationary laws have power-law tails, where they are not, so the bias of the sampled
law is **not** O(Δt). Measured (tests/engines/test_diagonal.py; [Z]'s depth-1 model, L = 2, T = 0.16, 16 000
walkers started from the exact law, samples t ∈ [1, 30], mean of v against the law's 0.6991):

* ``sde``, tamed: bias +0.0112, +0.0072, +0.0106 (group SE 0.0013–0.0017) at Δt = 1e-3, 5e-4, 2.5e-4 — it does
  not shrink over this range (fitted order ≈ 0, neither Δt nor √Δt); prefer ``sde_log`` for such laws;
* ``sde_log``, tamed: +0.0005, −0.0025, +0.0021 (SE 0.0011–0.0015): no bias resolved (Euler in ln v: −0.023,
  −0.019, −0.013);
* L = 1 (``sde``, tamed): −0.0012, −0.0024, +0.0010 (SE 0.0009–0.0012).

``scheme="tamed_sqrt"`` is the variant of ``noise_balance.md`` §12, ``ςΔW/(1 + |ς|√Δt)``, whose noise damping
is O(√Δt) (kept to reproduce that note; it biases the law toward lower temperature: +0.029, +0.020, +0.020 in the
setting above).

Randomness (:class:`~._core.Replicas`): replica ``r`` has key ``fold_in(PRNGKey(seed), member_r)``; its dynamics key is
``fold_in(·, 1)`` and step ``k`` uses the normals of block ``k // 256`` drawn from ``fold_in(dyn_key, block)``:
a replica's trajectory depends only on its key and the parameters — not on the number of replicas nor on the
record times. Random initial factors use ``fold_in(replica_key, 0)``.

A replica whose state becomes non-finite or exceeds ``dynamics.divergence_threshold`` is frozen at its last good state
and marked (``diverged``, ``diverged_step``). In ``sde_log`` a path with ``v_i = 0`` has ``y_i = −∞`` and stays
there (a path at zero stays at zero).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..config import Config
from ..errors import ConfigError
from ..model.diagonal import DiagonalModel, balanced_factors, path_gradients, path_values, sgd_step
from ._core import Program, Replicas, RunResult, execute, record_grid, time_unit, to_numpy

BLOCK = 256  # steps per block of pre-drawn normals (fixed: part of the random-stream definition)


def _g(p, v):
    return p["alpha1"] * v**2 - 2 * p["alpha2"] * v + p["alpha3"]


def _make_step(kind, L, B, noise, scheme):
    """``step(state, z, p) -> (new_state_core, g_now)`` batched over replicas; ``z``: (R, n_noise) normals."""

    def tame(inc_drift, inc_noise, mu_abs, sig2, dt):
        if scheme == "tamed":
            return inc_drift / (1 + mu_abs * dt) + inc_noise / (1 + sig2 * dt)
        if scheme == "tamed_sqrt":
            return inc_drift / (1 + mu_abs * dt) + inc_noise / (1 + jnp.sqrt(sig2 * dt))
        return inc_drift + inc_noise

    if kind == "sde_log":
        e1, e2 = 1.0 - 2.0 / L, 2.0 - 4.0 / L

        def power(a, y, e):
            if e == 0.0:
                return jnp.ones_like(y)
            return jnp.exp(e * y)  # y = −inf gives 0

        def step(y, sign, z, p):
            a = jnp.exp(y)
            v = jnp.sum(sign * a, axis=-1)  # (R,)
            g = _g(p, v)
            xi = p["beta1"] * v - p["beta2"]
            T, dt = p["T"], p["dt"]
            a1, a2 = power(a, y, e1), power(a, y, e2)
            mu = -L * sign * xi[:, None] * a1 - (T * L * g)[:, None] * a2 - L * p["rho"]
            sig = L * sign * a1 * jnp.sqrt(2 * T * g)[:, None]
            dW = jnp.sqrt(dt) * z[:, :1]
            return y + tame(mu * dt, sig * dW, jnp.abs(mu), sig**2, dt), g

        return step

    def step(theta, z, p):
        v = jnp.sum(path_values(theta), axis=-1)
        g = _g(p, v)
        rho = p["rho"]
        if kind == "sgd":
            x = jnp.sqrt(p["lam"]) * z[:, :B]
            y = p["s"] * x + p["sigma"] * z[:, B:2 * B]
            new, _ = sgd_step(theta, x, y, p["lr"][:, None, None], rho)
            return new, g
        grad_v = path_gradients(theta)
        drift = -((p["beta1"] * v - p["beta2"])[:, None, None] * grad_v + rho * theta)
        if kind == "gd":
            return theta + p["lr"][:, None, None] * drift, g
        if kind == "flow":
            dt = p["dt"]

            def f(th):
                vv = jnp.sum(path_values(th), axis=-1)
                return -((p["beta1"] * vv - p["beta2"])[:, None, None] * path_gradients(th) + rho * th)

            k1 = drift
            k2 = f(theta + 0.5 * dt * k1)
            k3 = f(theta + 0.5 * dt * k2)
            k4 = f(theta + dt * k3)
            return theta + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), g
        # sde
        T, dt = p["T"][:, None, None], p["dt"]
        if noise == "isotropic":
            sig_vec = jnp.sqrt(2 * T) * p["iso"] * jnp.ones_like(theta)
            dW = jnp.sqrt(dt) * z.reshape(theta.shape)
        else:
            sig_vec = jnp.sqrt(2 * T * g[:, None, None]) * grad_v
            dW = jnp.sqrt(dt) * z[:, :1, None]
        mu_abs = jnp.sqrt(jnp.sum(drift**2, axis=(1, 2)))[:, None, None]
        sig2 = jnp.sum(sig_vec**2, axis=(1, 2))[:, None, None]
        return theta + tame(drift * dt, sig_vec * dW, mu_abs, sig2, dt), g

    return step


def _n_noise(kind, B, noise, d, L):
    if kind == "sgd":
        return 2 * B
    if kind == "sde":
        return d * L if noise == "isotropic" else 1
    if kind == "sde_log":
        return 1
    return 0


def _program(kind, L, B, noise, scheme, n_noise, threshold):
    """``(advance, gen)``: ``advance(carry, keys, p, k_end)`` steps every replica to step ``k_end``."""
    step = _make_step(kind, L, B, noise, scheme)
    log_thr = math.log(threshold)

    def gen(keys, b):
        Z = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, b), (BLOCK, max(n_noise, 1))))(keys)
        return jnp.transpose(Z, (1, 0, 2))  # (BLOCK, R, n)

    def one(st, z, p):
        x, sign, k, div_step, gint = st["x"], st["sign"], st["k"], st["div_step"], st["gint"]
        if kind == "sde_log":
            new, g = step(x, sign, z, p)
            bad_nonfinite = jnp.any(jnp.isnan(new) | (new == jnp.inf), axis=-1)
            bad_big = jnp.any(new > log_thr, axis=-1)
        else:
            new, g = step(x, z, p)
            bad_nonfinite = ~jnp.all(jnp.isfinite(new), axis=(1, 2))
            bad_big = jnp.any(jnp.abs(new) > threshold, axis=(1, 2))
        newly = (div_step < 0) & (bad_nonfinite | bad_big)
        div_step = jnp.where(newly, k, div_step)
        frozen = div_step >= 0
        fz = frozen.reshape((-1,) + (1,) * (x.ndim - 1))
        x = jnp.where(fz, x, new)
        gint = jnp.where(frozen, gint, gint + g * p["unit"])
        return {**st, "x": x, "k": k + 1, "div_step": div_step, "gint": gint}

    @jax.jit
    def advance(st, keys, p, k_end):
        def cond(c):
            return c[0]["k"] < k_end

        def body(c):
            st, Z, b_cur = c
            b = st["k"] // BLOCK
            if n_noise:
                Z = lax.cond(b != b_cur, lambda: gen(keys, b), lambda: Z)
            j0 = st["k"] - b * BLOCK
            j1 = jnp.minimum(k_end - b * BLOCK, BLOCK)
            st = lax.fori_loop(j0, j1, lambda j, s: one(s, Z[j], p), st)
            return st, Z, b

        st, Z, b = st
        return lax.while_loop(cond, body, (st, Z, b))

    return advance, gen


def _observe(kind, L, state, p):
    x, sign = state["x"], state["sign"]
    if kind == "sde_log":
        y = x
        vp = sign * jnp.exp(y)
        mag = jnp.exp(y / L)
        theta = jnp.concatenate([(sign * mag)[..., None], jnp.repeat(mag[..., None], L - 1, axis=-1)], axis=-1)
        logv = y
    else:
        theta = x
        vp = path_values(theta)
        logv = jnp.log(jnp.abs(vp))
    v = jnp.sum(vp, axis=-1)
    sq = jnp.sum(theta**2, axis=(1, 2))
    loss = 0.5 * (p["beta1"] * v**2 - 2 * p["beta2"] * v + p["ey2"]) + 0.5 * p["rho"] * sq
    return {"v": vp, "log_abs_v": logv, "output": v, "weights": theta, "g_integral": state["gint"], "loss": loss}


_PROGRAMS: dict = {}


def _compiled(kind, L, B, noise, scheme, n_noise, threshold):
    """``(advance, observe)`` for these settings (compiled once per process)."""
    key = (kind, L, B, noise, scheme, n_noise, threshold)
    if key not in _PROGRAMS:
        advance, _ = _program(*key)
        _PROGRAMS[key] = advance, jax.jit(lambda st, p: _observe(kind, L, st, p))
    return _PROGRAMS[key]


# ---------------------------------------------------------------------------------------------------------
# Configs and the program


def diagonal_config(model: DiagonalModel | None = None, **keys) -> Config:
    """A diagonal :class:`~dlnlab.config.Config` (``[diagonal]`` section) from ``model`` (default
    :class:`DiagonalModel`) and keywords named as the config keys (``kind``, ``lr``, ``dt``, ``times``, ``v0``,
    ``replicas``, …; ``None``: not given). Default record grid: 101 linearly spaced times (unless ``times``)."""
    model = DiagonalModel() if model is None else model
    if keys.get("times") is None:
        keys.setdefault("n_times", 101)
        keys.setdefault("spacing", "linear")
    return Config.of("diagonal", **asdict(model), **keys)


class DiagonalState(NamedTuple):
    """State of every replica: ``x`` (factors ``(R, d, L)``, or ``y = ln|v|`` ``(R, d)`` for ``sde_log``), the path
    signs ``sign`` (``sde_log``; ones otherwise), the common ``step``, ``diverged_step`` (−1: not diverged) and
    ``g_integral`` (``∫₀ᵗ g(v) ds``, left-point sums)."""

    x: jax.Array
    sign: jax.Array
    step: jax.Array
    diverged_step: jax.Array
    g_integral: jax.Array


def _initial_state(config: Config, model: DiagonalModel, reps: Replicas, weights) -> DiagonalState:
    dg, kind, (d, L, R) = config.diagonal, config.dynamics.kind, (model.n_paths, model.depth, reps.R)
    if weights is not None:
        theta0 = np.broadcast_to(np.asarray(weights, np.float64), (R, d, L)).copy()
    elif dg.v0 is not None:
        theta0 = balanced_factors(np.broadcast_to(np.asarray(dg.v0, np.float64), (R, d)).copy(), L)
    elif dg.init_scale is not None:
        theta0 = np.asarray(jax.vmap(lambda k: dg.init_scale * jax.random.normal(k, (d, L)))(reps.keys(0)))
    else:
        raise ConfigError("diagonal.v0", None, "one of diagonal.v0, diagonal.init_scale, or initial factors "
                                               "(weights=) for the simulator")
    if kind == "sde_log":
        mags = np.abs(theta0)
        if not np.allclose(mags, mags[..., :1], rtol=1e-12, atol=0):
            raise ConfigError("weights", "unbalanced factors", "balanced paths (|u^(j)| equal within each path) "
                                                                 "for sde_log: give diagonal.v0")
        vp = np.prod(theta0, axis=-1)
        with np.errstate(divide="ignore"):
            x0 = np.log(np.abs(vp))
        sign0 = np.where(vp < 0, -1.0, 1.0)
    else:
        x0, sign0 = theta0, np.ones((R, d))
    return DiagonalState(jnp.asarray(x0), jnp.asarray(sign0), jnp.asarray(0, jnp.int64),
                         jnp.full((R,), -1, jnp.int64), jnp.zeros((R,), jnp.float64))


def _params(config: Config, model: DiagonalModel, lr, unit) -> dict:
    c, B = model.constants, config.dynamics.batch_size
    p = {"beta1": c.beta1, "beta2": c.beta2, "alpha1": c.alpha1, "alpha2": c.alpha2, "alpha3": c.alpha3,
         "rho": model.weight_decay, "lam": model.input_variance, "s": model.s, "sigma": model.label_noise,
         "ey2": model.label_second_moment, "iso": float(config.dynamics.isotropic_scale), "dt": unit, "unit": unit}
    p = {k: jnp.asarray(v, jnp.float64) for k, v in p.items()}
    p["lr"], p["T"] = jnp.asarray(lr), jnp.asarray(lr / (2 * B))
    return p


def build(config: Config, weights=None) -> Program:
    """The :class:`~._core.Program` of a diagonal config; ``weights``: initial factors ``(n_paths, depth)`` or
    ``(R, n_paths, depth)`` replacing the config's start."""
    if config.model != "diagonal":
        raise ConfigError("config", config.model, "a diagonal config (section [diagonal]; see diagonal_config)")
    model, dy = DiagonalModel.from_config(config), config.dynamics
    reps = Replicas.of(config)
    lr = reps.column("dynamics.lr", dy.lr)
    unit = float(time_unit(config, lr)[0])
    grid = record_grid(config, np.full(reps.R, unit))
    L, d, B = model.depth, model.n_paths, dy.batch_size
    n_noise = _n_noise(dy.kind, B, dy.noise, d, L)
    advance, observe = _compiled(dy.kind, L, B, dy.noise, dy.scheme or "euler", n_noise,
                                 float(dy.divergence_threshold))
    p, keys = _params(config, model, lr, unit), reps.keys(1)

    def to_carry(state):
        st = {"x": state.x, "sign": state.sign, "k": state.step, "div_step": state.diverged_step,
              "gint": state.g_integral}
        return st, jnp.zeros((BLOCK, reps.R, max(n_noise, 1))), jnp.asarray(-1, jnp.int64)

    def to_state(carry):
        st = carry[0]
        return DiagonalState(st["x"], st["sign"], st["k"], st["div_step"], st["gint"])

    def observe_state(state):
        return to_numpy(observe(to_carry(state)[0], p))

    def run(state, records):
        carry, rows = to_carry(state), []
        for k_end in grid.steps[np.asarray(records)]:
            carry = advance(carry, keys, p, jnp.asarray(int(k_end), jnp.int64))
            rows.append(to_numpy(observe(carry[0], p)))
        return RunResult(to_state(carry), {name: np.stack([r[name] for r in rows], axis=1) for name in rows[0]})

    def step(state):
        return to_state(advance(to_carry(state), keys, p, state.step + 1))

    def summary(state):
        div_step = np.asarray(state.diverged_step)
        return {"diverged": (("replica",), div_step >= 0), "diverged_step": (("replica",), div_step)}

    coords = {"member": ("replica", reps.members), "lr": ("replica", lr), "temperature": ("replica", lr / (2 * B))}
    dims = {"v": ("path",), "log_abs_v": ("path",), "output": (), "weights": ("path", "factor"), "g_integral": (),
            "loss": ()}
    attrs = {"scheme": dy.scheme or "none",
             "conventions": "loss 1/2(vx-y)^2 + rho/2|theta|^2; t = lr*step (sde, sde_log, flow: dt*step); Ito SDE; "
                            "T = lr/(2B); L = D+1 factors per path"}
    return Program(config=config, name=f"diagonal/{dy.kind}", grid=grid, R=reps.R,
                   init=lambda: _initial_state(config, model, reps, weights), run=run, observe=observe_state,
                   step=step, dims=dims, coords=coords, summary=summary, attrs=attrs)


def simulate_diagonal(config: Config, *, weights=None, progress=None, checkpoint=None,
                      checkpoint_every: float = 60.0):
    """Simulate the diagonal config ``config`` (see the module docstring; :func:`dlnlab.simulate` does the same).

    ``weights``: initial factors ``(n_paths, depth)`` or ``(R, n_paths, depth)`` (e.g.
    :func:`~dlnlab.model.diagonal.balanced_factors` of per-replica path values), replacing ``diagonal.v0`` /
    ``diagonal.init_scale``.

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t``, ``path``, ``factor`` and variables ``v``
    (path values), ``log_abs_v``, ``output`` (``v = Σ v_i``), ``weights``, ``g_integral`` (``∫₀ᵗ g(v) ds``,
    left-point sums), ``loss`` (population), ``diverged``, ``diverged_step``; coordinates ``step``, ``member``,
    ``lr``, ``temperature``; the config in ``attrs``."""
    return execute(build(config, weights), progress=progress, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every, weights=weights)
