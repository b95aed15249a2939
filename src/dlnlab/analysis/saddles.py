"""Saddle-to-saddle analysis of trajectories (``saddle_to_saddle.md`` §§5, 6, 9).

:func:`plateau_table` segments every replica of a run (gradient flow, GD, SGD or SDE) into **plateaus** and
**jumps** and returns a tidy :class:`pandas.DataFrame`, one row per replica and plateau.

The detector works on the singular values ``σ_1 ≥ σ_2 ≥ …`` of the end-to-end map ``W`` (recorded as
``singular_values``, or computed from ``end_to_end``):

1. **Threshold.** ``τ`` is half the smallest *learned* singular value at the end of the run. The learned ones are
   those above the largest gap (ratio ``≥ gap``, default 10) of the final spectrum (the median of the last 2 %
   of records, so SGD noise does not matter); with no such gap all are counted. ``threshold=`` overrides ``τ``.
2. **Staircase.** The rank count ``#{i : σ_i(W(t)) > τ}``, made monotone by a running maximum, rises by one at
   each jump (several at once when modes are learned together).
3. **Half-times.** Jump ``k`` is then timed as in §9: the first time the sum of the top ``k`` singular values
   passes its value on the preceding plateau plus half of the singular value the jump adds (for whitened
   gradient flow: ``σ_k(W) = s_k/2``), interpolated linearly between records.
4. **Plateau values** are medians over the plateau's *core*, the middle half ``[t_a + Δ/4, t_b − Δ/4]`` of
   ``[t_a, t_b]`` (the record nearest the midpoint if the core holds none): the loss, the rank of ``W`` (number
   of singular values above ``rank_tol``, default ``τ/5``, i.e. ``s/10`` as in checks.md G7).
5. **Jumps.** The mode learned is the teacher mode whose ``|m_α|/s_α`` grows most from one plateau core to the
   next (needs ``mode_strength``, or ``end_to_end`` and the run's config). The **escape direction** is the top
   singular pair of ``ΔW = W(after) − W(before)``, ``before`` the last core record of the plateau (the saddle),
   ``after`` the first record at or past the half-time; it is compared with the top singular pair of the
   residual ``−∇_W 𝓛`` at ``before`` (``residual`` recorded, or rebuilt from the teacher for online data).

Times are ``t`` (with stacked step sizes, each replica's exact times ``t_exact``). Columns: ``replica`` and the
replica coordinates (``member``, ``lr``, ``label_noise``, ``init_scale`` or
``init_gamma``), ``plateau`` (0 = the first), ``t_start``, ``t_end`` (the half-time of the jump that ends it;
the run's last time for the last plateau), ``duration``, ``loss``, ``loss_theory`` (§6.2 saddle loss for the
modes learned so far; online data only), ``train_loss`` (finite data, completion), ``rank``, and for the jump
that ends the plateau: ``learned_mode`` (1-based, as the ``mode`` coordinate), ``learned_value`` (the singular
value it adds), ``escape_cos_left``/``escape_cos_right`` (``|cos|`` between the escape direction and the
residual's top left/right singular vectors), ``escape_rank_ratio`` (``σ_2/σ_1`` of ``ΔW``: 0 for a rank-one
jump), ``residual_gap`` (``σ_2/σ_1`` of the residual: near 1 the top pair is ill-defined),
``mode_cos_left``/``mode_cos_right`` (escape direction against the learned teacher mode's ``u_α``, ``v_α``),
and ``threshold`` (``τ``). Jump columns are NaN on the last plateau and wherever their inputs were not recorded.

It also holds the distance diagnostics of the γ phase transition (§5): :func:`saddle_distance`,
:func:`minima_distance_bound` and :func:`gd_displacement`; and the fits :func:`fit_escape_law` and
:func:`crossover`.
"""

from __future__ import annotations

import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from jax import lax

from ..errors import ConfigError
from ..theory import saddle_sequence as th

# ---------------------------------------------------------------------------------------------------------
# Inputs from a dataset


def _teacher_and_config(ds: xr.Dataset):
    """``(Teacher, Config)`` rebuilt from ``ds.attrs['config']``, or ``(None, None)``."""
    from ..config import Config
    from ..model.teacher import Teacher

    text = ds.attrs.get("config")
    if not text:
        return None, None
    try:
        cfg = Config.from_dict(tomllib.loads(text))
        return Teacher.from_config(cfg), cfg
    except Exception:  # noqa: BLE001 - a foreign or outdated config: analyse without the teacher
        return None, None


def _singular_values(ds: xr.Dataset) -> np.ndarray:
    if "singular_values" in ds:
        return np.asarray(ds["singular_values"].transpose("replica", "t", ...).values, np.float64)
    if "end_to_end" in ds:
        W = np.asarray(ds["end_to_end"].transpose("replica", "t", ...).values, np.float64)
        return np.linalg.svd(W, compute_uv=False)
    raise ConfigError("ds", "a dataset without 'singular_values' or 'end_to_end'",
                      "a dataset with the observable 'singular_values' (or 'end_to_end') recorded, for the plateau "
                      "analysis (record.observables)")


def _auto_threshold(final: np.ndarray, gap: float) -> float:
    """Half the smallest singular value above the largest gap (ratio ``≥ gap``) of the final spectrum."""
    f = np.sort(np.asarray(final, np.float64))[::-1]
    if f.size == 0 or not f[0] > 0:
        return np.inf
    f = np.maximum(f, 1e-300)
    K = len(f)
    if len(f) > 1:
        ratios = f[:-1] / f[1:]
        i = int(np.argmax(ratios))
        if ratios[i] >= gap:
            K = i + 1
    return 0.5 * f[K - 1]


def _core(t: np.ndarray, ta: float, tb: float) -> np.ndarray:
    """Indices of the records in the middle half of ``[ta, tb]`` (at least the one nearest the midpoint)."""
    d = tb - ta
    idx = np.flatnonzero((t >= ta + 0.25 * d) & (t <= tb - 0.25 * d))
    if idx.size == 0:
        idx = np.array([int(np.argmin(np.abs(t - 0.5 * (ta + tb))))])
    return idx


def _first_crossing(t, y, level, i0, i1):
    """First time in records ``[i0, i1]`` where ``y`` reaches ``level`` (linear interpolation); ``None`` if never."""
    seg = np.flatnonzero(y[i0:i1 + 1] >= level)
    if seg.size == 0:
        return None
    j = i0 + int(seg[0])
    if j == 0 or y[j - 1] >= level:
        return float(t[j])
    frac = (level - y[j - 1]) / (y[j] - y[j - 1])
    return float(t[j - 1] + frac * (t[j] - t[j - 1]))


def _top_pair(X):
    u, s, vt = np.linalg.svd(X)
    ratio = s[1] / s[0] if s.size > 1 and s[0] > 0 else 0.0
    return u[:, 0], vt[0], s, ratio


# ---------------------------------------------------------------------------------------------------------
# The plateau table


def plateau_table(ds: xr.Dataset, *, threshold: float | None = None, rank_tol: float | None = None,
                  gap: float = 10.0) -> pd.DataFrame:
    """Segment every replica of ``ds`` into plateaus and jumps: one row per replica and plateau (module doc).

    Parameters
    ----------
    ds : a dataset from :func:`dlnlab.simulate` (or :func:`dlnlab.load`) with ``singular_values`` (or
        ``end_to_end``) recorded; ``loss``, ``mode_strength``, ``end_to_end`` and ``residual`` add columns.
    threshold : the rank threshold ``τ`` on the singular values of ``W`` (default: automatic, per replica).
    rank_tol : threshold for the ``rank`` column (default ``τ/5``).
    gap : minimal ratio between consecutive final singular values that separates learned from unlearned ones.
    """
    if "t" not in ds.dims or "replica" not in ds.dims:
        raise ConfigError("ds", f"a dataset with dims {tuple(ds.dims)}",
                          "a dataset with dims 'replica' and 't' (from dlnlab.simulate) for the plateau analysis")
    t = np.asarray(ds["t"].values, np.float64)
    if t.size < 3:
        raise ConfigError("ds", f"a dataset with {t.size} record times", "≥ 3 record times for the plateau "
                                                                         "analysis (record.n_times)")
    SV = _singular_values(ds)
    R = SV.shape[0]
    loss = ds["loss"].transpose("replica", "t").values if "loss" in ds else np.full((R, t.size), np.nan)
    train = ds["train_loss"].transpose("replica", "t").values if "train_loss" in ds else None
    teacher, cfg = _teacher_and_config(ds)
    W = ds["end_to_end"].transpose("replica", "t", ...).values if "end_to_end" in ds else None
    if "mode_strength" in ds:
        m = ds["mode_strength"].transpose("replica", "t", ...).values
        s_modes = np.asarray(ds["s"].values if "s" in ds.coords else np.ones(m.shape[-1]), np.float64)
        mode_ids = np.asarray(ds["mode"].values) if "mode" in ds.coords else np.arange(1, m.shape[-1] + 1)
    elif W is not None and teacher is not None:
        k = teacher.n_modes
        m = np.einsum("ia,rtij,ja->rta", teacher.U[:, :k], W, teacher.V[:, :k])
        s_modes, mode_ids = teacher.s, np.arange(1, k + 1)
    else:
        m = s_modes = mode_ids = None
    online = cfg is not None and cfg.data.kind == "online"
    if "residual" in ds:
        res = ds["residual"].transpose("replica", "t", ...).values
    elif W is not None and teacher is not None and online:
        res = (teacher.M[None, None] - W) @ teacher.input_cov
    else:
        res = None
    coord_names = [c for c in ds.coords if ds[c].dims == ("replica",) and c != "replica"]
    rows = []
    t_exact = ds["t_exact"].transpose("replica", "t").values if "t_exact" in ds.coords else None
    for r in range(R):
        extra = {c: ds[c].values[r].item() for c in coord_names}
        label_noise = float(extra.get("label_noise", 0.0))
        rows += _replica_rows(
            r, extra, t if t_exact is None else np.asarray(t_exact[r], np.float64), SV[r], loss[r], None if train is None else train[r],
            None if m is None else m[r], s_modes, mode_ids,
            None if W is None else W[r], None if res is None else res[r],
            teacher if online else None, label_noise, threshold, rank_tol, gap)
    cols = ["replica", *coord_names, "plateau", "t_start", "t_end", "duration", "loss", "loss_theory",
            "train_loss", "rank", "learned_mode", "learned_value", "escape_cos_left", "escape_cos_right",
            "escape_rank_ratio", "residual_gap", "mode_cos_left", "mode_cos_right", "threshold"]
    df = pd.DataFrame(rows, columns=cols)
    if train is None:
        df = df.drop(columns="train_loss")
    df["learned_mode"] = df["learned_mode"].astype("Int64")
    return df


def _half_times(t, C, count, r0, K):
    """Jump times and levels (step 3 of the module docstring): the coarse times of the staircase ``count``, then
    the half-level crossings of the partial sums ``C`` (two passes: the plateau cores depend on the times)."""
    n = len(t)
    coarse = [float(t[int(np.argmax(count >= k))]) for k in range(r0 + 1, K + 1)]
    times = coarse
    levels = [np.nan] * len(coarse)
    for _ in range(2):
        bounds = [0.0, *times, float(t[-1])]
        cores = [_core(t, bounds[p], bounds[p + 1]) for p in range(len(bounds) - 1)]
        new_times, levels = [], []
        for j, k in enumerate(range(r0 + 1, K + 1)):
            before = np.median(C[cores[j], k - 1])
            after = np.median(C[cores[j + 1], k])
            level = after - before
            levels.append(level)
            i0 = int(np.searchsorted(t, bounds[j]))
            i1 = int(min(cores[j + 1][-1], n - 1))
            tk = _first_crossing(t, C[:, k], before + 0.5 * level, i0, i1) if level > 0 else None
            new_times.append(coarse[j] if tk is None else tk)
        times = list(np.maximum.accumulate(new_times)) if new_times else []
    return times, levels


def _replica_rows(r, extra, t, S, loss, train, m, s_modes, mode_ids, W, res, teacher, label_noise,
                  threshold, rank_tol, gap):
    finite = np.all(np.isfinite(S), axis=1)
    n = int(np.argmin(finite)) if not finite.all() else len(t)  # analyse the finite prefix
    if n < 3:
        return []
    t, S = t[:n], S[:n]
    tail = S[-max(1, n // 50):]
    tau = threshold if threshold is not None else _auto_threshold(np.median(tail, axis=0), gap)
    rtol = rank_tol if rank_tol is not None else tau / 5.0
    count = np.maximum.accumulate(np.sum(S > tau, axis=1))
    r0, K = int(count[0]), int(count[-1])
    C = np.concatenate([np.zeros((n, 1)), np.cumsum(S, axis=1)], axis=1)  # C[:, k] = σ_1 + … + σ_k

    times, levels = _half_times(t, C, count, r0, K)
    bounds = [0.0, *times, float(t[-1])]
    cores = [_core(t, bounds[p], bounds[p + 1]) for p in range(len(bounds) - 1)]

    learned_so_far, theory_ok = [], r0 == 0
    rows = []
    for p in range(len(bounds) - 1):
        core = cores[p]
        row = {"replica": r, **extra, "plateau": p, "t_start": bounds[p], "t_end": bounds[p + 1],
               "duration": bounds[p + 1] - bounds[p], "loss": float(np.median(loss[:n][core])),
               "loss_theory": np.nan, "rank": int(np.round(np.median(np.sum(S[core] > rtol, axis=1)))),
               "learned_mode": pd.NA, "learned_value": np.nan, "escape_cos_left": np.nan,
               "escape_cos_right": np.nan, "escape_rank_ratio": np.nan, "residual_gap": np.nan,
               "mode_cos_left": np.nan, "mode_cos_right": np.nan, "threshold": tau}
        if train is not None:
            row["train_loss"] = float(np.median(train[:n][core]))
        if teacher is not None and theory_ok:
            lam = teacher.mode_input_variance
            if len(learned_so_far) == p:
                unlearned = np.setdiff1d(np.arange(len(teacher.s)), learned_so_far)
                row["loss_theory"] = float(0.5 * np.sum(lam[unlearned] * teacher.s[unlearned] ** 2)
                                           + 0.5 * teacher.d_out * label_noise**2)
        if p < len(times):  # the jump that ends this plateau
            row["learned_value"] = float(levels[p])
            nxt = cores[p + 1]
            alpha = None
            if m is not None:
                scale = np.where(s_modes > 0, s_modes, np.inf)
                growth = (np.median(np.abs(m[:n][nxt]), axis=0) - np.median(np.abs(m[:n][core]), axis=0)) / scale
                if np.any(np.isfinite(scale)):
                    alpha = int(np.argmax(np.where(np.isfinite(scale), growth, -np.inf)))
                    row["learned_mode"] = int(mode_ids[alpha])
                    learned_so_far.append(alpha)
            if alpha is None:
                theory_ok = False
            if W is not None:
                ib = int(core[-1])
                ia = int(min(np.searchsorted(t, times[p]), n - 1))
                u_e, v_e, _, ratio = _top_pair(W[ia] - W[ib])
                row["escape_rank_ratio"] = ratio
                if res is not None:
                    u_r, v_r, _, rgap = _top_pair(res[ib])
                    row["escape_cos_left"] = abs(float(u_e @ u_r))
                    row["escape_cos_right"] = abs(float(v_e @ v_r))
                    row["residual_gap"] = rgap
                if teacher is not None and alpha is not None:
                    row["mode_cos_left"] = abs(float(u_e @ teacher.U[:, alpha]))
                    row["mode_cos_right"] = abs(float(v_e @ teacher.V[:, alpha]))
        rows.append(row)
    return rows


def escape_vectors(ds: xr.Dataset, table: pd.DataFrame) -> dict:
    """The escape directions behind ``table``: ``{(replica, plateau): (u, v)}``, the top singular pair of
    ``W(after) − W(before)`` for the jump that ends each plateau (``before``: the last record of the plateau's core;
    ``after``: the first record at or past the jump's half-time), as in :func:`plateau_table`. Needs ``end_to_end``."""
    if "end_to_end" not in ds:
        raise ConfigError("ds", "a dataset without 'end_to_end'", "a dataset with the observable 'end_to_end' "
                                                                  "recorded, for the escape directions")
    t = np.asarray(ds["t"].values, np.float64)
    W = ds["end_to_end"].transpose("replica", "t", ...).values
    out = {}
    for (r, g) in table.groupby("replica"):
        g = g.sort_values("plateau")
        for _, row in g.iloc[:-1].iterrows():
            ib = int(_core(t, row.t_start, row.t_end)[-1])
            ia = int(min(np.searchsorted(t, row.t_end), len(t) - 1))
            u, v, _, _ = _top_pair(W[int(r), ia] - W[int(r), ib])
            out[(int(r), int(row.plateau))] = (u, v)
    return out


def summarize_plateaus(table: pd.DataFrame) -> pd.DataFrame:
    """One row per replica: number of jumps, first escape time, the learned modes in order, the plateau losses."""
    out = []
    for r, g in table.groupby("replica", sort=True):
        g = g.sort_values("plateau")
        jumps = g.iloc[:-1]
        out.append({
            "replica": r,
            "n_jumps": len(jumps),
            "escape_time": float(jumps["t_end"].iloc[0]) if len(jumps) else np.nan,
            "learned_modes": " ".join(str(x) for x in jumps["learned_mode"] if not pd.isna(x)),
            "plateau_losses": " ".join(f"{x:.4g}" for x in g["loss"]),
            "final_rank": int(g["rank"].iloc[-1]),
            "min_escape_cos": float(np.nanmin(jumps[["escape_cos_left", "escape_cos_right"]].values))
            if len(jumps) and np.isfinite(jumps[["escape_cos_left", "escape_cos_right"]].values).any() else np.nan,
        })
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------------------
# Escape-law and crossover fits


def fit_escape_law(sigma, times, depth: int) -> dict:
    """Fit escape times against the init scale (§4): ``L = 2``: ``t = a + b ln(1/σ)`` (returns the slope ``b``);
    ``L ≥ 3``: ``ln t = a + b ln σ`` (returns the exponent ``b``, theory ``−(L − 2)``). Returns
    ``{"kind", "value", "stderr", "intercept", "theory"}`` (``theory`` for unit ``λ s``: divide by ``λ s`` for
    the slope)."""
    sigma, times = np.asarray(sigma, np.float64), np.asarray(times, np.float64)
    ok = np.isfinite(times) & (times > 0) & (sigma > 0)
    if ok.sum() < 2:
        raise ConfigError("times", f"{int(ok.sum())} finite escape times > 0 (with sigma > 0)",
                          "at least two, to fit the escape law")
    if depth == 2:
        x, y, kind = np.log(1.0 / sigma[ok]), times[ok], "slope"
    else:
        x, y, kind = np.log(sigma[ok]), np.log(times[ok]), "exponent"
    A = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = max(len(x) - 2, 1)
    cov = np.linalg.inv(A.T @ A) * (resid @ resid) / dof
    return {"kind": kind, "value": float(coef[1]), "stderr": float(np.sqrt(cov[1, 1])), "intercept": float(coef[0]),
            "theory": th.escape_law_slope(depth)[1]}


def crossover(gamma, d_sad, d_min) -> tuple[float, float]:
    """The γ at which ``d_sad`` falls below ``d_min`` (the init is then nearer the saddle than the minima):
    linear interpolation of ``ln(d_sad/d_min)`` at its first sign change from + to −, and the slope
    ``d ln(d_sad/d_min)/dγ`` there (steeper = sharper transition). ``(nan, nan)`` if there is no crossing."""
    g = np.asarray(gamma, np.float64)
    z = np.log(np.asarray(d_sad, np.float64)) - np.log(np.asarray(d_min, np.float64))
    ok = np.isfinite(z)
    g, z = g[ok], z[ok]
    order = np.argsort(g)
    g, z = g[order], z[order]
    for i in range(len(g) - 1):
        if z[i] > 0 >= z[i + 1]:
            slope = (z[i + 1] - z[i]) / (g[i + 1] - g[i])
            return float(g[i] - z[i] / slope), float(slope)
    return np.nan, np.nan


# ---------------------------------------------------------------------------------------------------------
# Distance diagnostics of the γ phase transition (§5)


def _as_batched(weights):
    ws = tuple(np.asarray(w, np.float64) for w in weights)
    single = ws[0].ndim == 2
    return (tuple(w[None] for w in ws) if single else ws), single


def saddle_distance(weights):
    """Exact distance to the saddle set ``{W_1 = 0, W_L = 0}`` (§5.1; the origin for ``L = 2``):
    ``√(‖W_1‖² + ‖W_L‖²)``. ``weights``: one replica's ``(W_1, …, W_L)`` or arrays with a leading replica axis."""
    ws, single = _as_batched(weights)
    if len(ws) < 2:
        raise ConfigError("weights", f"{len(ws)} layer", "at least two layers (the saddle at 0 needs depth >= 2)")
    d = np.sqrt(np.sum(ws[0] ** 2, axis=(1, 2)) + np.sum(ws[-1] ** 2, axis=(1, 2)))
    return float(d[0]) if single else d


def layer_operator_norms(weights) -> np.ndarray:
    """``‖W_l‖_op`` per layer (exact: SVD), shape ``(L,)`` or ``(R, L)``."""
    ws, single = _as_batched(weights)
    out = np.stack([np.linalg.norm(w, ord=2, axis=(1, 2)) for w in ws], axis=1)
    return out[0] if single else out


def minima_distance_bound(weights, s1: float):
    """§5.2 lower bound on the distance to the global minima (whitened realizable MSE with top singular value
    ``s1``): ``√L (s1^{1/L} − max_l ‖W_l‖_op)_+``."""
    ops = layer_operator_norms(weights)
    L = ops.shape[-1]
    return th.minima_distance_lower_bound(ops.max(axis=-1), s1, L)


def origin_hessian(problem, widths) -> np.ndarray:
    """Hessian of the population loss ``½ tr((W − M) Σx (W − M)ᵀ)`` (no label noise) at ``θ = 0`` by autodiff, for
    layer sizes ``widths = (d_0, w_1, …, d_L)`` (§6.1, checks.md G4); parameters flattened layer after layer, each
    row-major. Compare with :func:`dlnlab.theory.saddle_sequence.origin_hessian_spectrum` (``L = 2``; ``L ≥ 3``: zero)."""
    from jax.flatten_util import ravel_pytree

    from ..model.network import end_to_end

    zeros = tuple(jnp.zeros((widths[i + 1], widths[i]), jnp.float64) for i in range(len(widths) - 1))
    flat, unravel = ravel_pytree(zeros)
    M, cov = jnp.asarray(problem.M), jnp.asarray(problem.input_cov)

    def loss(theta):
        E = end_to_end(unravel(theta)) - M
        return 0.5 * jnp.sum((E @ cov) * E)

    return np.asarray(jax.jit(jax.hessian(loss))(flat))


def gd_displacement(weights0, problem, *, tol: float = 1e-10, max_time: float = 1e3, lr_max: float = 0.01,
                    safety: float = 0.3, check_every: int = 50) -> dict:
    """Upper bound on the distance to the global minima (§5.4): run GD on the population loss (no label noise)
    from ``weights0`` (leading replica axis) until the loss is below ``tol`` and return ``‖θ_∞ − θ_0‖``.

    The step of each replica is ``min(safety/λ̂, lr_max)`` with ``λ̂ = λ_max(Σx) Σ_l ‖W_{>l}‖²‖W_{<l}‖²`` (§5.4),
    recomputed every ``check_every`` steps. Replicas stop independently at ``loss < tol`` or ``t ≥ max_time``.
    Returns NumPy arrays ``displacement``, ``loss``, ``time``, ``steps`` and ``converged`` (``loss < tol``; only
    then is the displacement an upper bound on the distance to the minima).
    """
    from ..model.gradients import full_gradient
    from ..model.network import end_to_end, prefix_products, suffix_products

    ws0 = tuple(jnp.asarray(w, problem.M.dtype) for w in weights0)
    lam_x = float(np.max(np.linalg.eigvalsh(np.asarray(problem.input_cov))))

    def loss_fn(ws):
        E = end_to_end(ws) - problem.M
        return 0.5 * jnp.sum((E @ problem.input_cov) * E)

    def sq_op(X):
        g = X @ X.T if X.shape[0] <= X.shape[1] else X.T @ X
        return jnp.max(jnp.linalg.eigvalsh(g))

    def lam_hat(ws):
        pre, suf = prefix_products(ws), suffix_products(ws)
        return lam_x * sum(sq_op(suf[l]) * sq_op(pre[l]) for l in range(len(ws)))

    def block(ws, eta):
        def body(_, w):
            return tuple(a - eta * g for a, g in zip(w, full_gradient(w, problem)))
        return lax.fori_loop(0, check_every, body, ws)

    v_loss, v_lam, v_block = jax.vmap(loss_fn), jax.vmap(lam_hat), jax.vmap(block)

    @jax.jit
    def run(ws):
        R = ws[0].shape[0]
        zeros = jnp.zeros(R, ws[0].dtype)

        def cond(state):
            _, _, done, _, _ = state
            return ~jnp.all(done)

        def body(state):
            ws, t, done, steps, _ = state
            eta = jnp.where(done, 0.0, jnp.minimum(safety / jnp.maximum(v_lam(ws), 1e-300), lr_max))
            ws = v_block(ws, eta)
            t = t + eta * check_every
            steps = steps + jnp.where(done, 0, check_every)
            loss = v_loss(ws)
            done = done | (loss < tol) | (t >= max_time) | ~jnp.isfinite(loss)
            return ws, t, done, steps, loss

        init = (ws, zeros, v_loss(ws) < tol, jnp.zeros(R, jnp.int64), v_loss(ws))
        return lax.while_loop(cond, body, init)

    ws, t, _, steps, loss = run(ws0)
    disp = jnp.sqrt(sum(jnp.sum((a - b) ** 2, axis=(1, 2)) for a, b in zip(ws, ws0)))
    loss = np.asarray(loss)
    return {"displacement": np.asarray(disp), "loss": loss, "time": np.asarray(t), "steps": np.asarray(steps),
            "converged": loss < tol}
