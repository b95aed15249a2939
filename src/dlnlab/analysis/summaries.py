"""Scalar summaries of a recorded run: final losses, learned ranks, escape times, plateaus and stationary moments.

:func:`summarize` summarises a run of a config (one row per stacked combination) — the default summary of a
config sweep (:func:`dlnlab.sweep`); :func:`summarize_dataset` any dataset with ``replica`` and ``t`` dims (one
row) — that of a function sweep. ``ds.dln.summary()`` picks the one that fits a dataset."""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np

from ..config import Config
from ..errors import ConfigError

#: Summary defaults: the stationary moments use records with ``t >= (1 - TAIL) * t_final``.
TAIL = 0.5


def _first_time(mask: np.ndarray, times: np.ndarray) -> np.ndarray:
    """First time along the last axis where ``mask`` holds (nan if never). ``times`` broadcasts to mask."""
    times = np.broadcast_to(times, mask.shape)
    hit = mask.any(axis=-1)
    idx = mask.argmax(axis=-1)
    first = np.take_along_axis(times, idx[..., None], axis=-1)[..., 0]
    return np.where(hit, first, np.nan)


def _nanmedian(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmedian(x)) if np.isfinite(x).any() else math.nan


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


def diverged_replicas(ds) -> np.ndarray:
    """``(replica,)`` bool: the replicas flagged ``diverged``, or non-finite at the last record (``finite``);
    none if the dataset has neither."""
    if "diverged" in ds:
        return np.asarray(ds["diverged"].values, bool)
    if "finite" in ds:
        return ~np.asarray(ds["finite"].isel(t=-1).values, bool)
    return np.zeros(ds.sizes["replica"], bool)


def plateaus(ds):
    """The saddle-to-saddle plateau table of a run (:func:`dlnlab.analysis.saddles.plateau_table`, one row per
    replica and plateau) and ``None``, or ``None`` and the reason it could not be computed."""
    try:
        from ..analysis.saddles import plateau_table

        return plateau_table(ds), None
    except Exception as exc:  # noqa: BLE001 - an optional summary: the run itself is fine
        return None, f"{type(exc).__name__}: {exc}"


def summarize(ds, config: Config, *, tail: float = TAIL, rank_threshold: float | None = None,
              plateau_table=None) -> list[dict]:
    """Scalar summaries of a run, one dict per stacked combination (the rows of the sweep table).

    Each row holds the stacked values (``dynamics.lr`` …) and, over that combination's replicas:

    * ``n_replicas``, ``n_diverged`` (replicas flagged ``diverged``, or non-finite at the end); the other
      summaries use the non-diverged replicas only;
    * ``t_final`` and ``loss_final_mean`` / ``loss_final_median`` (population loss at the last record);
    * ``learned_rank_mean`` / ``learned_rank_median``: singular values of W at the last record at least
      ``rank_threshold`` (default half the smallest non-zero teacher singular value);
    * per teacher mode α = 1..k with s_α > 0: ``escape_time_α`` — median over replicas of the first record
      time at which the mode strength m_α reaches s_α/2 (singular value σ_α of W, sorted, if mode strengths
      are not recorded; a replica that never gets there counts as +∞, nan if the median is), ``escaped_α`` —
      the fraction of replicas that got there, and ``plateau_α`` — median over replicas of the time from
      the previous escape (of any mode; 0 for the first) to mode α's escape: the plateau before its jump;
    * ``m_mean_α``, ``m_median_α``, ``m_var_α``: stationary moments of the mode strength m_α pooled over
      the replicas and the records with ``t >= (1 − tail) t_final``;
    * given ``plateau_table`` (from :func:`plateaus`): ``n_jumps_median`` — median number of jumps of the
      rank staircase — and ``jump_time_k`` (k = 1, 2, …) — median over replicas of the half-time of the k-th
      jump (a replica with fewer jumps counts as +∞; nan if the median is).

    Times are the replica's exact times (``t_exact`` when step sizes are stacked)."""
    arrays = _Arrays.of(ds, config, rank_threshold)
    stacked = config.stacked()
    names = list(stacked)
    grid = config.replica_grid()
    tail_mask = arrays.t_nom >= (1.0 - tail) * arrays.t_nom[-1]
    rows = []
    for combo in itertools.product(*(stacked[n] for n in names)):
        sel = np.array([all(row[n] == v for n, v in zip(names, combo)) for row in grid])
        ok = sel & ~arrays.diverged
        row: dict[str, Any] = dict(zip(names, combo))
        row.update(n_replicas=int(sel.sum()), n_diverged=int((sel & arrays.diverged).sum()),
                   t_final=float(np.max(arrays.times[sel][:, -1])))
        row.update(_loss_and_rank(arrays, ok))
        row.update(_escapes(arrays, ok))
        if plateau_table is not None:
            row.update(_jump_summary(plateau_table, np.flatnonzero(ok)))
        row.update(_moments(arrays, ok, tail_mask))
        rows.append(row)
    return rows


@dataclasses.dataclass(frozen=True)
class _Arrays:
    """What :func:`summarize` reads from a run: replica flags, exact times, teacher values and records."""

    diverged: np.ndarray  # (R,) bool
    t_nom: np.ndarray  # (T,) nominal record times
    times: np.ndarray  # (R, T) exact times of each replica
    s_all: np.ndarray  # teacher singular values
    modes: list  # indices of the teacher modes with s > 0
    threshold: float  # rank threshold on the singular values of W
    m: np.ndarray | None  # (R, T, mode) mode strengths
    sv: np.ndarray | None  # (R, T, sv) singular values of W
    loss: np.ndarray | None  # (R, T) population loss

    @classmethod
    def of(cls, ds, config: Config, rank_threshold) -> _Arrays:
        R, n = ds.sizes["replica"], len(config.replica_grid())
        if n != R:
            raise ConfigError("config", f"a config describing {n} replicas", f"the config of this dataset, which "
                                                                            f"has {R} replicas (attrs['config'])")
        diverged = diverged_replicas(ds)
        t_nom = np.asarray(ds["t"].values, np.float64)
        times = (np.asarray(ds["t_exact"].values, np.float64) if "t_exact" in ds.coords
                 else np.broadcast_to(t_nom, (R, len(t_nom))))
        s_all = np.asarray(ds["s"].values, np.float64) if "s" in ds.coords else None
        if s_all is None:
            from ..model.teacher import Teacher

            s_all = np.asarray(Teacher.from_config(config).s, np.float64)
        s_pos = s_all[s_all > 0]
        thr = rank_threshold if rank_threshold is not None else (0.5 * float(s_pos.min()) if len(s_pos) else 0.0)

        def values(name):
            return np.asarray(ds[name].values, np.float64) if name in ds else None

        return cls(diverged, t_nom, times, s_all, [a for a in range(len(s_all)) if s_all[a] > 0], thr,
                   values("mode_strength"), values("singular_values"), values("loss"))


def _loss_and_rank(a: _Arrays, ok) -> dict:
    row = {"loss_final_mean": _nanmean(a.loss[ok, -1]) if a.loss is not None and ok.any() else math.nan,
           "loss_final_median": _nanmedian(a.loss[ok, -1]) if a.loss is not None and ok.any() else math.nan}
    if a.sv is not None and ok.any():
        last = a.sv[ok, -1, :]
        ranks = (last >= a.threshold).sum(axis=-1) if a.threshold > 0 else (last > 0).sum(axis=-1)
        row["learned_rank_mean"], row["learned_rank_median"] = float(ranks.mean()), float(np.median(ranks))
    else:
        row["learned_rank_mean"] = row["learned_rank_median"] = math.nan
    return row


def _escapes(a: _Arrays, ok) -> dict:
    """``escape_time_j``, ``escaped_j``, ``plateau_j`` of each teacher mode j (see :func:`summarize`)."""
    esc_all = {}
    for j, mode in enumerate(a.modes, start=1):
        if a.m is not None and mode < a.m.shape[-1]:
            track = a.m[ok][:, :, mode]
        elif a.sv is not None and j - 1 < a.sv.shape[-1]:
            track = np.sort(a.sv[ok], axis=-1)[:, :, ::-1][:, :, j - 1]
        else:
            track = None
        if track is not None and ok.any():
            esc = _first_time(track >= 0.5 * a.s_all[mode], a.times[ok])
            esc_all[j] = np.where(np.isnan(esc), np.inf, esc)
    # per replica, the escape event just before each mode's escape (0 for the first): its plateau
    stack = np.stack(list(esc_all.values())) if esc_all else np.zeros((0, int(ok.sum())))
    row = {}
    for j in range(1, len(a.modes) + 1):
        if j not in esc_all:
            row[f"escape_time_{j}"] = row[f"escaped_{j}"] = row[f"plateau_{j}"] = math.nan
        else:
            e = esc_all[j]
            med = float(np.median(e))
            row[f"escape_time_{j}"] = med if np.isfinite(med) else math.nan
            row[f"escaped_{j}"] = float(np.mean(np.isfinite(e)))
            before = np.where(stack < e[None, :], stack, -np.inf).max(axis=0, initial=-np.inf)
            pl = np.where(np.isfinite(e), e - np.maximum(before, 0.0), np.inf)
            pmed = float(np.median(pl))
            row[f"plateau_{j}"] = pmed if np.isfinite(pmed) else math.nan
    return row


def _moments(a: _Arrays, ok, tail_mask) -> dict:
    """``m_mean_j``, ``m_median_j``, ``m_var_j``: the stationary moments of each mode strength."""
    row = {}
    for j, mode in enumerate(a.modes, start=1):
        if a.m is not None and mode < a.m.shape[-1] and ok.any():
            x = a.m[ok][:, tail_mask, mode].ravel()
            row[f"m_mean_{j}"], row[f"m_median_{j}"], row[f"m_var_{j}"] = (
                float(np.mean(x)), float(np.median(x)), float(np.var(x, ddof=1)) if x.size > 1 else math.nan)
        else:
            row[f"m_mean_{j}"] = row[f"m_median_{j}"] = row[f"m_var_{j}"] = math.nan
    return row


def _jump_summary(table, replicas) -> dict:
    if len(replicas) == 0:
        return {"n_jumps_median": math.nan}
    sub = table[table["replica"].isin(replicas)]
    jumps = {r: np.sort(np.asarray(g["t_end"], np.float64))[:-1] for r, g in sub.groupby("replica")}
    counts = [len(jumps.get(r, [])) for r in replicas]
    out = {"n_jumps_median": float(np.median(counts))}
    for k in range(1, max(counts, default=0) + 1):
        tk = [jumps[r][k - 1] if len(jumps.get(r, [])) >= k else np.inf for r in replicas]
        med = float(np.median(tk))
        out[f"jump_time_{k}"] = med if np.isfinite(med) else math.nan
    return out


def summarize_dataset(ds) -> list[dict]:
    """Generic summary of a function sweep's dataset (one row): ``n_replicas``, ``n_diverged`` (the
    ``diverged`` variable, or ``attrs['n_diverged']``), ``t_final`` and ``loss_final_mean``/``_median`` over
    the non-diverged replicas when ``loss`` is recorded on ``(replica, t)``."""
    row: dict[str, Any] = {}
    R = ds.sizes.get("replica")
    row["n_replicas"] = int(R) if R is not None else math.nan
    div = None
    if "diverged" in ds and ds["diverged"].dims == ("replica",):
        div = np.asarray(ds["diverged"].values, bool)
        row["n_diverged"] = int(div.sum())
    else:
        row["n_diverged"] = int(ds.attrs["n_diverged"]) if "n_diverged" in ds.attrs else math.nan
    if "t" in ds.coords and ds.sizes.get("t"):
        row["t_final"] = float(ds["t"].values[-1])
    if "loss" in ds and set(ds["loss"].dims) == {"replica", "t"}:
        last = np.asarray(ds["loss"].transpose("replica", "t").values[:, -1], np.float64)
        ok = ~div if div is not None else np.ones(last.shape, bool)
        row["loss_final_mean"] = _nanmean(last[ok]) if ok.any() else math.nan
        row["loss_final_median"] = _nanmedian(last[ok]) if ok.any() else math.nan
    return [row]
