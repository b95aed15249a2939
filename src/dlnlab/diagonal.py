"""[Z]'s diagonal linear networks of any depth, in the library's conventions, with vectorised JAX dynamics.

Model (``noise_balance.md`` §§5–6): scalar input ``x ~ N(0, λ)``, label ``y = s x + ε``, ``ε ~ N(0, σ_ε²)``;
``d`` paths ``v_i = Π_{j=1}^{L} u_i^{(j)}`` of ``L`` factors each ([Z]'s "depth D" is ``L − 1``); output
``v = Σ_i v_i``; per-sample loss ``ℓ = ½(v x − y)² + (ρ/2)‖θ‖²`` (½-loss; [Z]'s loss has no ½ — convert
with :meth:`DiagonalModel.from_ziyin`, which uses :func:`dlnlab.conventions.from_ziyin`). Time is
``t = η·step`` (SDE: ``Δt·step``), temperature ``T = η/(2B)``.

Every per-sample gradient is ``ξ ∇_θ v`` with ``ξ = ∂ℓ/∂v = (v x − y) x`` (rank-one noise): ``E ξ = β₁v − β₂``,
``Var ξ = g(v)`` (:class:`~dlnlab.theory.balance.DataConstants`).

Dynamics (``kind``), vectorised over replicas as one compiled program:

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

``scheme="tamed"`` (``sde``, ``sde_log``) replaces the increment ``μΔt + ςΔW`` by
``μΔt/(1 + |μ|Δt) + ςΔW/(1 + ς²Δt)`` (per replica for ``sde``, per path for ``sde_log``): bounded steps at
large ``|v|`` where ``ln v`` is stiff (§12), with an O(Δt) effect elsewhere (weak order 1).
``scheme="tamed_sqrt"`` is the variant of ``noise_balance.md`` §12, ``ςΔW/(1 + |ς|√Δt)``, whose noise damping
is O(√Δt) (kept to reproduce that note; it biases the law toward lower temperature).

Randomness: replica ``r`` has key ``fold_in(PRNGKey(seed), member_r)``; its dynamics key is
``fold_in(·, 1)`` and step ``k`` uses the normals of block ``k // 256`` drawn from ``fold_in(dyn_key, block)``:
a replica's trajectory depends only on its key and the parameters — not on the number of replicas nor on the
record times. Random initial factors use ``fold_in(replica_key, 0)``.

A replica whose state becomes non-finite or exceeds ``divergence_threshold`` is frozen at its last good state
and marked (``diverged``, ``diverged_step``). In ``sde_log`` a path with ``v_i = 0`` has ``y_i = −∞`` and stays
there (a path at zero stays at zero).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax

from . import conventions
from .theory.balance import DataConstants

KINDS = ("flow", "gd", "sgd", "sde", "sde_log")
SCHEMES = ("euler", "tamed", "tamed_sqrt")
BLOCK = 256  # steps per block of pre-drawn normals (fixed: part of the random-stream definition)


@dataclass(frozen=True)
class DiagonalModel:
    """[Z]'s diagonal linear network with ``n_paths`` paths of ``depth`` factors (L = D + 1), and its data."""

    depth: int = 2  # L: factors per path ([Z]'s D + 1)
    n_paths: int = 1  # d
    input_var: float = 1.0  # λ = E x²
    s: float = 1.0  # teacher slope: y = s x + ε
    label_noise: float = 1.0  # σ_ε
    weight_decay: float = 0.0  # ρ: (ρ/2)‖θ‖²

    def __post_init__(self):
        if int(self.depth) != self.depth or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        if int(self.n_paths) != self.n_paths or self.n_paths < 1:
            raise ValueError(f"n_paths must be an integer >= 1, got {self.n_paths!r}")
        if not self.input_var > 0:
            raise ValueError("input_var must be > 0")
        if self.label_noise < 0 or self.weight_decay < 0:
            raise ValueError("label_noise and weight_decay must be >= 0")

    @classmethod
    def from_ziyin(cls, D: int, d: int = 1, *, k: float = 1.0, sigma: float = 1.0, input_var: float = 1.0,
                   gamma_z: float = 0.0) -> DiagonalModel:
        """[Z]'s depth-``D`` model on ``y = kx + ε`` (``ε ~ N(0, σ²)``) with weight decay ``γ_Z‖θ‖²``: ``L = D + 1``,
        ``ρ = γ_Z`` (:func:`dlnlab.conventions.from_ziyin`). Step sizes convert as ``η = 2η_Z``, ``B = S``."""
        _, _, L = conventions.from_ziyin(1.0, 1, D)
        return cls(depth=L, n_paths=d, input_var=input_var, s=k, label_noise=sigma, weight_decay=gamma_z)

    @property
    def constants(self) -> DataConstants:
        return DataConstants.single_mode(self.input_var, self.s, self.label_noise)

    @property
    def label_second_moment(self) -> float:
        """``E y² = λs² + σ_ε²``."""
        return self.input_var * self.s**2 + self.label_noise**2

    def population_loss(self, v, sum_sq=0.0):
        """``𝓛 = ½(β₁v² − 2β₂v + E y²) + (ρ/2)‖θ‖²``."""
        c = self.constants
        v = np.asarray(v, np.float64)
        return 0.5 * (c.beta1 * v**2 - 2 * c.beta2 * v + self.label_second_moment) + 0.5 * self.weight_decay * sum_sq

    def T_crit(self) -> float:
        """``T_c = (β₂ − ρ)/α₃`` of the L = 2 model (``s/(2λs² + σ_ε²)`` for λ = 1, ρ = 0)."""
        return self.constants.T_crit(self.weight_decay)


# ---------------------------------------------------------------------------------------------------------
# Pure single-state functions (JAX; leading batch axes allowed)


def path_values(theta):
    """``v_i = Π_j u_i^{(j)}`` for factors ``theta[..., path, factor]``."""
    return jnp.prod(theta, axis=-1)


def path_gradients(theta):
    """``∂v_i/∂u_i^{(l)} = Π_{j≠l} u_i^{(j)}`` (exact with zeros: prefix × suffix products)."""
    L = theta.shape[-1]
    if L == 1:
        return jnp.ones_like(theta)
    cols = [theta[..., j] for j in range(L)]
    pre, suf = [None] * L, [None] * L
    pre[0], suf[L - 1] = jnp.ones_like(cols[0]), jnp.ones_like(cols[0])
    for j in range(1, L):
        pre[j] = pre[j - 1] * cols[j - 1]
        suf[L - 1 - j] = suf[L - j] * cols[L - j]
    return jnp.stack([pre[j] * suf[j] for j in range(L)], axis=-1)


def minibatch_xi(v, x, y):
    """``ξ̂ = (1/B) Σ_b (v x_b − y_b) x_b`` (``x, y``: trailing batch axis; ``v`` broadcast)."""
    return jnp.mean((v[..., None] * x - y) * x, axis=-1)


def sgd_step(theta, x, y, lr, weight_decay=0.0):
    """One online SGD step ``θ ← θ − η(ξ̂ ∇v + ρθ)`` on the minibatch ``(x, y)``; returns ``(θ', ξ̂)``."""
    v = jnp.sum(path_values(theta), axis=-1)
    xi = minibatch_xi(v, x, y)
    grad = xi[..., None, None] * path_gradients(theta) + weight_decay * theta
    return theta - lr * grad, xi


def population_gradient(theta, c: DataConstants, weight_decay=0.0):
    v = jnp.sum(path_values(theta), axis=-1)
    return (c.beta1 * v - c.beta2)[..., None, None] * path_gradients(theta) + weight_decay * theta


def balanced_factors(v_paths, depth):
    """Balanced factors of path values: ``|u^{(j)}| = |v_i|^{1/L}``, the sign on the first factor."""
    v = np.asarray(v_paths, np.float64)
    a = np.abs(v) ** (1.0 / depth)
    theta = np.repeat(a[..., None], depth, axis=-1)
    theta[..., 0] *= np.where(v < 0, -1.0, 1.0)
    return theta


# ---------------------------------------------------------------------------------------------------------
# Engine


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


def record_steps(times, unit):
    """Record times snapped to the step grid (unique, sorted, starting at step 0)."""
    steps = np.unique(np.rint(np.asarray(times, np.float64) / unit).astype(np.int64))
    if steps[0] != 0:
        steps = np.concatenate([[0], steps])
    return steps


def simulate_diagonal(model: DiagonalModel, kind: str = "sgd", *, lr=0.01, batch_size: int = 1,
                      dt: float | None = None, t_max: float | None = None, steps: int | None = None,
                      times=None, n_times: int = 101, spacing: str = "linear", replicas: int = 1, seed: int = 0,
                      v0=None, weights0=None, init_scale: float | None = None, noise: str = "exact",
                      isotropic_scale: float = 1.0, scheme: str | None = None,
                      divergence_threshold: float = 1e30) -> xr.Dataset:
    """Simulate an ensemble of ``replicas`` diagonal networks and record observables at chosen times.

    Parameters
    ----------
    model : :class:`DiagonalModel`.
    kind : ``"flow" | "gd" | "sgd" | "sde" | "sde_log"`` (module docstring).
    lr, batch_size : η and B; ``T = η/(2B)``. For ``sde``/``sde_log``, ``lr`` may be an array with one value
        per replica (e.g. a temperature scan in one compiled run).
    dt : time step of ``flow``/``sde``/``sde_log`` (default η; "Gaussian SGD").
    t_max or steps : duration (time ``t = unit·step``, unit = η for gd/sgd, dt otherwise).
    times : explicit record times (snapped to steps); otherwise ``n_times`` times, ``spacing`` linear or log.
    v0 : initial path values (``(d,)`` or ``(R, d)``): balanced factors ``|v_i|^{1/L}`` (sign on the first).
    weights0 : initial factors ``(d, L)`` or ``(R, d, L)`` (parameter-space kinds only).
    init_scale : i.i.d. ``N(0, σ²)`` factors from each replica's init key.
    noise : ``"exact"`` (rank one, the SGD noise) or ``"isotropic"`` (``sde`` only; ``Σ = c²I``, c = isotropic_scale).
    scheme : ``"euler" | "tamed" | "tamed_sqrt"`` (SDE kinds). Default: ``"tamed"`` for ``sde_log`` (plain Euler in
        ln v overshoots at large v — for L ≥ 3 a walker thrown to v ≈ e^{−200} never returns, since its dynamics
        vanish like v^{1−2/L}; noise_balance.md §12), ``"euler"`` otherwise.

    Returns an ``xarray.Dataset`` with dims ``replica``, ``t``, ``path``, ``factor`` and variables ``v``
    (path values), ``log_abs_v``, ``output`` (``v = Σ v_i``), ``weights``, ``g_integral`` (``∫₀ᵗ g(v) ds``,
    left-point sums), ``loss`` (population), ``diverged``, ``diverged_step``; coordinates ``step``, ``member``,
    ``lr``, ``temperature``; the settings in ``attrs``.
    """
    wall0 = time.perf_counter()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if scheme is None:
        scheme = "tamed" if kind == "sde_log" else "euler"
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if noise not in ("exact", "isotropic") or (noise == "isotropic" and kind != "sde"):
        raise ValueError("noise must be 'exact', or 'isotropic' with kind='sde'")
    L, d, R, B = model.depth, model.n_paths, int(replicas), int(batch_size)
    if kind == "sde_log" and L < 2:
        raise ValueError("sde_log needs depth >= 2 (use kind='sde' for the linear model)")
    if B < 1 or R < 1:
        raise ValueError("batch_size and replicas must be >= 1")
    lr_arr = np.broadcast_to(np.asarray(lr, np.float64), (R,)).copy()
    if np.any(lr_arr <= 0):
        raise ValueError("lr must be > 0")
    if kind in ("gd", "sgd") and not np.all(lr_arr == lr_arr[0]):
        raise ValueError("per-replica lr is only supported for the SDE kinds (common time grid)")
    unit = float(lr_arr[0]) if kind in ("gd", "sgd") else float(dt if dt is not None else lr_arr[0])
    if kind in ("flow", "sde", "sde_log") and dt is None and not np.all(lr_arr == lr_arr[0]):
        raise ValueError("give dt when lr differs between replicas")
    if times is None:
        if t_max is None:
            if steps is None:
                raise ValueError("give t_max, steps or times")
            t_max = steps * unit
        if spacing == "linear":
            times = np.linspace(0.0, t_max, n_times)
        elif spacing == "log":
            times = np.concatenate([[0.0], np.geomspace(unit, t_max, n_times - 1)])
        else:
            raise ValueError("spacing must be 'linear' or 'log'")
    rec = record_steps(times, unit)

    # initial state
    base = jax.random.PRNGKey(int(seed))
    members = np.arange(R)
    rkeys = jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.asarray(members))
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(rkeys)
    dyn_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(rkeys)
    given = sum(x is not None for x in (v0, weights0, init_scale))
    if given != 1:
        raise ValueError("give exactly one of v0, weights0, init_scale")
    if v0 is not None:
        vp0 = np.broadcast_to(np.asarray(v0, np.float64), (R, d)).copy()
        theta0 = balanced_factors(vp0, L)
    elif weights0 is not None:
        theta0 = np.broadcast_to(np.asarray(weights0, np.float64), (R, d, L)).copy()
    else:
        theta0 = np.asarray(jax.vmap(lambda k: init_scale * jax.random.normal(k, (d, L)))(init_keys))
    if kind == "sde_log":
        mags = np.abs(theta0)
        if not np.allclose(mags, mags[..., :1], rtol=1e-12, atol=0):
            raise ValueError("sde_log needs balanced paths (|u^(j)| equal within each path): use v0=")
        vp = np.prod(theta0, axis=-1)
        with np.errstate(divide="ignore"):
            x0 = np.log(np.abs(vp))
        sign0 = np.where(vp < 0, -1.0, 1.0)
    else:
        x0, sign0 = theta0, np.ones((R, d))
    c = model.constants
    T_arr = lr_arr / (2 * B)
    p = {"beta1": c.beta1, "beta2": c.beta2, "alpha1": c.alpha1, "alpha2": c.alpha2, "alpha3": c.alpha3,
         "rho": model.weight_decay, "lam": model.input_var, "s": model.s, "sigma": model.label_noise,
         "ey2": model.label_second_moment, "iso": float(isotropic_scale), "dt": unit, "unit": unit}
    p = {k: jnp.asarray(v, jnp.float64) for k, v in p.items()}
    p["lr"], p["T"] = jnp.asarray(lr_arr), jnp.asarray(T_arr)

    n_noise = _n_noise(kind, B, noise, d, L)
    key = (kind, L, B, noise, scheme, n_noise, float(divergence_threshold))
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _program(*key)
    advance, _gen = _PROGRAMS[key]
    observe = jax.jit(lambda st, p: _observe(kind, L, st, p))

    st = {"x": jnp.asarray(x0), "sign": jnp.asarray(sign0), "k": jnp.asarray(0, jnp.int64),
          "div_step": jnp.full((R,), -1, jnp.int64), "gint": jnp.zeros((R,), jnp.float64)}
    Z = jnp.zeros((BLOCK, R, max(n_noise, 1)))
    carry = (st, Z, jnp.asarray(-1, jnp.int64))
    records = []
    for k_r in rec:
        carry = advance(carry, dyn_keys, p, jnp.asarray(int(k_r), jnp.int64))
        records.append(jax.tree_util.tree_map(np.asarray, observe(carry[0], p)))
    st = carry[0]

    t = rec * unit
    stack = {name: np.stack([r[name] for r in records], axis=1) for name in records[0]}
    div_step = np.asarray(st["div_step"])
    ds = xr.Dataset(
        {
            "v": (("replica", "t", "path"), stack["v"]),
            "log_abs_v": (("replica", "t", "path"), stack["log_abs_v"]),
            "output": (("replica", "t"), stack["output"]),
            "weights": (("replica", "t", "path", "factor"), stack["weights"]),
            "g_integral": (("replica", "t"), stack["g_integral"]),
            "loss": (("replica", "t"), stack["loss"]),
            "diverged": (("replica",), div_step >= 0),
            "diverged_step": (("replica",), div_step),
        },
        coords={"replica": np.arange(R), "t": t, "step": ("t", rec), "path": np.arange(1, d + 1),
                "factor": np.arange(1, L + 1), "member": ("replica", members), "lr": ("replica", lr_arr),
                "temperature": ("replica", T_arr)},
    )
    from .dynamics import package_versions

    settings = {"kind": kind, "batch_size": B, "dt": unit, "noise": noise, "isotropic_scale": isotropic_scale,
                "scheme": scheme, "seed": int(seed), "replicas": R, "divergence_threshold": divergence_threshold}
    ds.attrs.update({"model": json.dumps(asdict(model)), "settings": json.dumps(settings), **{
        k: v for k, v in settings.items() if isinstance(v, (int, float, str))},
        "versions": json.dumps(package_versions(), sort_keys=True), "backend": jax.default_backend(),
        "conventions": "loss 1/2(vx-y)^2 + rho/2|theta|^2; t = lr*step (sde: dt*step); Ito SDE; T = lr/(2B); "
                       "L = D+1 factors per path",
        "n_diverged": int((div_step >= 0).sum()), "wall_time_s": time.perf_counter() - wall0})
    return ds


def stationary_samples(ds: xr.Dataset, t_burn: float, var: str = "output"):
    """Samples of ``var`` at every record time ``t ≥ t_burn`` (shape ``(replica, n)``), non-diverged replicas only."""
    sel = ds[var].sel(t=ds.t[ds.t >= t_burn])
    keep = ~ds["diverged"].values
    return sel.values[keep]


def group_se(samples, stat, groups: int = 20):
    """Group standard error of ``stat`` over replicas (``checks.md`` §0): replicas (rows) are split into
    ``groups`` groups, ``stat`` is computed per group on all its samples; SE = sd/√groups. Returns
    ``(stat(all), se)``."""
    x = np.asarray(samples)
    parts = np.array_split(np.arange(x.shape[0]), groups)
    per = np.array([stat(x[idx].ravel()) for idx in parts])
    return float(stat(x.ravel())), float(per.std(ddof=1) / np.sqrt(groups))
