"""Shared pieces of the [Z] experiments: the reference data, theory perturbations, claim rows, the stationarity
(burn-in) diagnostic, stationary-law rows and the output helpers.

Library units throughout (``noise_balance.md``): ½-loss, ``T = η/(2B)`` (= [Z]'s T), ``t = η·step``, ``L = D + 1``
factors per path; reference data ``x ~ N(0, 1)``, ``y = x + ε``, ``σ_ε = 1``: ``(β₁, β₂, α₁, α₂, α₃) =
(1, 1, 2, 2, 3)``, ``T_c = 1/3``.
"""

from __future__ import annotations

import numpy as np

from ... import figures
from ...analysis import stats
from ...errors import ConfigError
from ...storage import save
from ...theory.balance import DataConstants
from ..base import Figure, theory_factors  # noqa: F401  (theory_factors: imported from here by the [Z] modules)
from ..claims import Claim, Tolerance, setting

REF = DataConstants.reference()


def constants(s: float = 1.0, label_noise: float = 1.0) -> DataConstants:
    """The single-mode data constants of ``x ~ N(0, 1)``, ``y = s x + ε`` (``s`` possibly perturbed)."""
    return DataConstants.single_mode(1.0, s, label_noise)


def row(exp: str, key: str, *, claim: str, quantity: str, theory: float, estimate, tolerance: Tolerance,
        kind: str = "measured", source: str = "paper", note: str = "", **params) -> Claim:
    """One [Z] claims row; ``params`` name its setting (``setting(**params)``)."""
    return Claim(experiment=exp, key=key, setting=setting(**params), paper="Z", claim=claim, quantity=quantity,
                 theory=float(theory), estimate=estimate, tolerance=tolerance, kind=kind, source=source, note=note)


def exact(value: float, bound: float = 0.0) -> stats.Estimate:
    return stats.Estimate.exact(float(value), bound)


BURN_IN_BUDGET = 0.04
"""Largest early-vs-late difference of the fraction below the pooled median accepted as stationary."""


def burn_in(x) -> stats.Estimate:
    """The stationarity diagnostic of kept samples ``x`` (replica, record): with ``m`` the median of all of them,
    per replica the fraction of its early-half records below ``m`` minus that of its late half; the batch-means
    estimate of the replica mean (0 at stationarity, > 0 while the law still drifts upward, < 0 downward)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ConfigError("x", f"samples of shape {x.shape}", "an array (replica, record) with ≥ 2 records")
    med = np.median(x)
    h = x.shape[1] // 2
    return stats.group_estimate(np.mean(x[:, :h] < med, axis=1) - np.mean(x[:, -h:] < med, axis=1))


def burn_in_row(exp: str, x, window: str, start: str, **params) -> tuple[Claim, str]:
    """The stationarity row of one setting (kind ``beyond``: a diagnostic of the run, not a claim of [Z]) and the
    note to put on the setting's other rows."""
    e = burn_in(x)
    c = row(exp, "burn_in", claim=f"Started from {start}, the kept samples are stationary: the early and late "
            "halves of the window agree", quantity=f"fraction below the pooled median, early − late half of {window}",
            theory=0.0, estimate=e, kind="beyond", source="derived",
            tolerance=Tolerance.within(absolute=BURN_IN_BUDGET, why="a stationary run gives 0; the budget bounds a "
                                       "residual drift of the law over the window"), **params)
    return c, f"from {start}; burn-in diagnostic (early − late fraction below median) {e.value:+.4f} ± {e.se:.4f}"


def stationary_rows(exp: str, x, law, *, start: str, window: str, rel: float, ks: float, why: str,
                    mean: bool = True, source: str = "paper", **params) -> list[Claim]:
    """Rows of a stationary setting: median (and mean) of the kept samples ``x`` (replica, record) against ``law``'s
    (batch means over replicas, relative budget ``rel``), the KS distance of one sample per replica (the last) to
    the law (budget ``ks``), and the burn-in row. ``mean=False`` where ``E v² = ∞`` (no CLT for the mean)."""
    diag, note = burn_in_row(exp, x, window, start, **params)
    tol = Tolerance.within(relative=rel, why=why)
    rows = [row(exp, "median", claim="The stationary median of v is the exact law's", quantity="median of v",
                theory=law.median, estimate=stats.group_estimate(x, np.median), tolerance=tol, source=source,
                note=note, **params)]
    if mean:
        rows.append(row(exp, "mean", claim="The stationary mean of v is the exact law's", quantity="mean of v",
                        theory=law.mean, estimate=stats.group_estimate(x, np.mean), tolerance=tol, source=source,
                        note=note, **params))
    last = np.asarray(x)[:, -1]
    rows.append(row(exp, "ks", claim="The stationary law of v is the exact law (KS distance)", source=source,
                    quantity=f"KS distance to the law, one sample per replica (n = {last.size})", theory=0.0,
                    estimate=stats.ks_1samp(last, law.cdf).distance, note=note,
                    tolerance=Tolerance.at_most(absolute=ks, why=why), **params))
    return [*rows, diag]


def save_dataset(ds, out, name: str) -> None:
    """Save a run (zarr; netCDF if zarr fails — the data are a convenience, the claims do not read them)."""
    try:
        save(ds, out / f"{name}.zarr")
    except Exception:  # noqa: BLE001
        ds.to_netcdf(out / f"{name}.nc")


def figure(fig, out, name: str, caption: str) -> Figure:
    """Save ``fig`` as ``name.png``/``.pdf`` in ``out`` and return its :class:`Figure` entry."""
    return Figure(figures.save(fig, out, name), caption)


def hist_vs_law(ax, x, law, edges, *, log10: bool = False, label: str = "simulation", color=None) -> None:
    """Histogram of ``x`` against the law's density on ``edges`` (with ``log10``: ``edges`` in log₁₀ v and the
    density of log₁₀ v, ``ln 10 · v p(v)``)."""
    x = np.asarray(x, np.float64).ravel()
    data = np.log10(x[x > 0]) if log10 else x
    ax.hist(data, bins=edges, density=True, alpha=0.45, label=label, color=color)
    g = np.linspace(edges[0], edges[-1], 400)
    dens = np.log(10) * 10**g * law.pdf(10**g) if log10 else law.pdf(g)
    ax.plot(g, dens, color="k" if color is None else color, lw=1.2, label="exact law")
