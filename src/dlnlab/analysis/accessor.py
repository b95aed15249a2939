"""``ds.dln``: the analyses of a recorded run, found from its dataset (an xarray accessor)::

    import dlnlab
    ds = dlnlab.simulate(cfg)
    ds.dln.plateaus()                 # one row per replica and plateau (dlnlab.analysis.plateau_table)
    ds.dln.stationary(t_burn=50.0)    # samples at t >= t_burn of the non-diverged replicas
    ds.dln.summary()                  # the sweep's summaries of this run (one row per stacked combination)
    ds.dln.plot_modes(); ds.dln.plot_loss(); ds.dln.plot_staircase()   # matplotlib Axes

It works on the datasets of :func:`dlnlab.simulate` (the full network), of the per-mode simulator (mode strengths,
no loss) and of the diagonal-network simulator (``output``, ``loss``); a method that needs what a dataset does not
record raises ``ValueError`` naming what is missing. Registered when :mod:`dlnlab` is imported.

Plots show the median over the non-diverged replicas and a band between two quantiles (default 10 % and 90 %);
each takes an existing ``ax`` or makes a figure, and returns the Axes (``ax.figure`` is its figure).
"""

from __future__ import annotations

import tomllib
from numbers import Real

import numpy as np
import pandas as pd
import xarray as xr

from ..config import Config
from ..errors import ConfigError
from ..theory.saddle_sequence import saddle_losses
from .saddles import plateau_table
from .summaries import TAIL, diverged_replicas, plateaus, summarize, summarize_dataset

QUANTILES = (0.1, 0.9)


@xr.register_dataset_accessor("dln")
class DlnAccessor:
    """The analyses of one recorded run (module docstring)."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    @property
    def config(self) -> Config | None:
        """The run's :class:`~dlnlab.config.Config` (from ``attrs['config']``), or ``None`` for a dataset without one
        (the diagonal-network simulator's, a function sweep's)."""
        text = self._ds.attrs.get("config")
        return Config.from_dict(tomllib.loads(text)) if text else None

    def plateaus(self, **kwargs) -> pd.DataFrame:
        """The saddle-to-saddle plateau table: :func:`dlnlab.analysis.plateau_table` (its keyword arguments:
        ``threshold``, ``rank_tol``, ``gap``). Needs ``singular_values`` (or ``end_to_end``) recorded."""
        return plateau_table(self._ds, **kwargs)

    def stationary(self, t_burn: float, var: str | None = None) -> xr.DataArray:
        """Stationary samples: ``var`` at every record time ``t ≥ t_burn`` of the non-diverged replicas, dims
        ``(replica, t, …)`` (``.values`` for the array). ``var`` defaults to ``output`` (diagonal networks) or
        ``mode_strength``. Whether ``t_burn`` is past the relaxation is the caller's judgement."""
        ds = self._ds
        given = var is not None
        var = var if given else ("output" if "output" in ds else "mode_strength")
        self._need(var, "stationary samples", field="var" if given else "ds")
        t = ds["t"].values
        if not isinstance(t_burn, Real) or isinstance(t_burn, bool) or not t_burn <= t[-1]:
            raise ConfigError("t_burn", t_burn, f"a time at most the last record time {t[-1]:g}")
        keep = np.flatnonzero(~diverged_replicas(ds))
        return ds[var].isel(t=np.flatnonzero(t >= t_burn), replica=keep).transpose("replica", "t", ...)

    def summary(self, *, tail: float = TAIL, rank_threshold: float | None = None) -> pd.DataFrame:
        """The sweep's summaries of this run, one row per stacked combination: :func:`~.summaries.summarize` (with
        the plateau table's jump times when it can be computed) for a run of the network or per-mode model that
        carries its config, else :func:`~.summaries.summarize_dataset` (one row; ``tail`` and ``rank_threshold``
        do not apply)."""
        cfg = self.config
        if cfg is None or cfg.model not in ("network", "modes"):
            if tail != TAIL or rank_threshold is not None:
                field, value = ("tail", tail) if tail != TAIL else ("rank_threshold", rank_threshold)
                raise ConfigError(field, value, "the default: tail and rank_threshold summarise a run of the network "
                                                "or per-mode model with its config (attrs['config']); this dataset "
                                                "has " + ("none" if cfg is None else f"a {cfg.model} config"))
            return pd.DataFrame(summarize_dataset(self._ds))
        table, _ = plateaus(self._ds)
        return pd.DataFrame(summarize(self._ds, cfg, tail=tail, rank_threshold=rank_threshold,
                                      plateau_table=table))

    def plot_modes(self, ax=None, *, quantiles=QUANTILES, xscale: str = "linear"):
        """Mode strengths ``m_α(t)`` (median and quantile band per mode) with their targets ``s_α`` (dashed)."""
        ds = self._ds
        self._need("mode_strength", "plot_modes", "a diagonal network's end-to-end weight is 'output'")
        ax = _axes(ax)
        m = self._kept("mode_strength").transpose("replica", "t", "mode")
        s = ds["s"].values if "s" in ds.coords else None
        for a, mode in enumerate(m["mode"].values):
            line = _band(ax, ds["t"].values, m.values[:, :, a], quantiles, label=f"$m_{{{mode}}}$")
            if s is not None:
                ax.axhline(s[a], color=line.get_color(), ls="--", lw=0.8)
        ax.set(xlabel="t", ylabel="mode strength", xscale=xscale)
        ax.legend()
        return ax

    def plot_loss(self, ax=None, *, quantiles=QUANTILES, xscale: str = "linear", yscale: str = "log"):
        """The population loss ``𝓛(t)`` (median and quantile band over replicas)."""
        self._need("loss", "plot_loss", "the per-mode simulator records mode strengths only: plot_modes")
        ax = _axes(ax)
        _band(ax, self._ds["t"].values, self._kept("loss").transpose("replica", "t").values, quantiles,
              color="k", label="loss")
        ax.set(xlabel="t", ylabel="loss", xscale=xscale, yscale=yscale)
        return ax

    def plot_staircase(self, ax=None, *, quantiles=QUANTILES, xscale: str = "linear", yscale: str = "log"):
        """The loss with the saddle levels ``½ Σ_{i>k} λ_i s_i² (+ ½ d_out σ_ε²)`` of the staircase (dotted; modes
        in learning order, :func:`dlnlab.theory.saddle_sequence.saddle_losses`)."""
        ds = self._ds
        if "s" not in ds.coords or "input_variance" not in ds.coords:
            raise ConfigError("ds", "a dataset without the coordinates 's' and 'input_variance'",
                              "a dataset with the teacher's mode coordinates 's' and 'input_variance' (from "
                              "dlnlab.simulate) for plot_staircase")
        levels = saddle_losses(ds["s"].values, ds["input_variance"].values, *self._label_noise_floor())
        ax = self.plot_loss(ax, quantiles=quantiles, xscale=xscale, yscale=yscale)
        for k, level in enumerate(levels):
            if level > 0 or yscale != "log":
                ax.axhline(level, color="C3", ls=":", lw=1.0, label="saddle levels" if k == 0 else None)
        ax.legend()
        return ax

    def _label_noise_floor(self) -> tuple[float, int | None]:
        """``(σ_ε, d_out)`` of the run's label-noise floor ``½ d_out σ_ε²`` (one value across replicas)."""
        ds = self._ds
        noise = np.unique(ds["label_noise"].values) if "label_noise" in ds.coords else np.zeros(1)
        if noise.size != 1:
            raise ConfigError("ds", f"a dataset with label_noise stacked ({noise.tolist()})",
                              "one label_noise value for plot_staircase: select one first, e.g. "
                              "ds.where(ds.label_noise == v, drop=True)")
        cfg = self.config
        if cfg is None and noise[0] != 0:
            raise ConfigError("ds", "a dataset without its run's config (attrs['config'])",
                              "a dataset with its run's config for plot_staircase: the label-noise floor needs "
                              "d_out")
        return float(noise[0]), None if cfg is None else int(cfg.teacher.d_out)

    def _kept(self, var: str) -> xr.DataArray:
        keep = np.flatnonzero(~diverged_replicas(self._ds))
        if keep.size == 0:
            raise ConfigError("ds", "a dataset whose replicas all diverged",
                              f"at least one replica that did not diverge (no {var} to plot)")
        return self._ds[var].isel(replica=keep)

    def _need(self, var: str, what: str, hint: str = "", field: str = "ds") -> None:
        """Raise unless ``var`` is on ``(replica, t)``; ``field``: ``"var"`` when the caller named it, else the
        dataset ``"ds"`` lacks it."""
        ds = self._ds
        if var not in ds or not {"replica", "t"} <= set(ds[var].dims):
            have = ", ".join(sorted(str(k) for k, v in ds.data_vars.items() if {"replica", "t"} <= set(v.dims)))
            hint = f" ({hint})" if hint else ""
            if field == "var":
                raise ConfigError("var", var, f"a variable on (replica, t) of this dataset: {have or 'none'}{hint}")
            raise ConfigError("ds", f"a dataset with {have or 'no variable'} on (replica, t)",
                              f"a dataset with the variable {var!r} on (replica, t) for {what}{hint}")


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(constrained_layout=True)
    return ax


def _band(ax, t, x, quantiles, **kwargs):
    """Median over replicas (rows of ``x``) against ``t``, and the band between two quantiles."""
    (line,) = ax.plot(t, np.median(x, axis=0), **kwargs)
    lo, hi = np.quantile(x, quantiles, axis=0)
    ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return line
