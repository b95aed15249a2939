"""Shared pieces of the [C] experiments (Corlouer et al. 2026; every formula ``derived``, ``sgd_noise.md``).

* :func:`row` — a claims row of [C] (``paper = "C"``, ``source = "derived"``);
* :func:`factor` — the power-test factor of a theory input (``params["perturb"]``): the experiments multiply that
  input by it **only where they compute theory values** (closed forms, quadratures, and the per-mode models they
  simulate as the theory side of a comparison), never in the simulation under test;
* :func:`ks_distance` — a KS distance read on a grid of points (first-hit times live on the record grid) with the
  exact Kolmogorov bounds of :class:`dlnlab.analysis.stats.KSLaw`;
* :func:`burn_in` — the early-vs-late diagnostic of kept stationary samples, reported in a row's note;
* :func:`network_config` — the full-matrix networks of the [C] experiments; :func:`write_csv`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ...analysis import stats
from ...config import Config, ConfigError
from ..base import write_csv  # noqa: F401  (imported from here by the [C] modules)
from ..claims import Claim


def row(experiment, key, setting, claim, quantity, theory, estimate, tolerance, *, kind="measured", note=""):
    """A [C] claims row: ``paper = "C"``, ``source = "derived"`` (our derivations from the abstract)."""
    return Claim(experiment=experiment, key=key, setting=setting, paper="C", claim=claim, quantity=quantity,
                 theory=float(theory), estimate=estimate, tolerance=tolerance, kind=kind, source="derived", note=note)


def factor(params, name: str, allowed: tuple[str, ...]) -> float:
    """The factor by which the theory input ``name`` is perturbed (1 when not perturbed); every key of
    ``params["perturb"]`` must be one of the experiment's ``allowed`` theory inputs."""
    perturb = params.get("perturb") or {}
    bad = sorted(set(perturb) - set(allowed))
    if bad:
        raise ConfigError("perturb", perturb, "theory inputs among " + ", ".join(allowed))
    return float(perturb.get(name, 1.0))


def ks_distance(value: float, n: int) -> stats.Estimate:
    """A KS distance ``value = sup_j |F_n(t_j) − F(t_j)|`` of ``n`` independent samples, read on any set of points,
    as an estimate of ``sup_j |F_true(t_j) − F(t_j)|`` with :class:`~dlnlab.analysis.stats.KSLaw` bounds (the
    Kolmogorov bound on ``sup|F_n − F_true|`` holds over every subset of points)."""
    law = stats.KSLaw(int(n))
    half = law.spread(float(special.ndtr(-1.0)))  # the one-sigma half-width, as stats' own estimators report
    return stats.Estimate(float(value), half, math.nan, int(n), law)


def burn_in(samples) -> str:
    """Early-vs-late diagnostic of stationary samples ``(replicas, records)``: the two-sample KS test of the first
    against the second half of each replica's kept records (agreement: the kept window is past the burn-in)."""
    x = np.asarray(samples, np.float64)
    half = x.shape[1] // 2
    test = stats.ks_2samp(x[:, :half], x[:, half:])
    _, hi = test.distance.bounds(0.01)
    return (f"burn-in check: KS(first, second half of the kept records) = {test.distance.value:.4f} "
            f"(99 % upper bound {hi:.4f}; p = {test.pvalue:.3g})")


def network_config(*, s, depth, width, label_noise, lr, batch_size, t_max, n_times, replicas, seed, init,
                   kind="sgd", observables=("mode_strength",), teacher_seed=11, d=None, chunks=None):
    """A full-matrix ``d × d`` network (``d = len(s)`` unless given: the extra teacher modes are ``s_α = 0``) with a
    random teacher basis, linear record grid and the ``init`` section given (aligned or Gaussian)."""
    d = len(s) if d is None else int(d)
    record = {"n_times": int(n_times), "spacing": "linear", "observables": list(observables)}
    if chunks is not None:
        record["chunks"] = int(chunks)
    return Config.from_dict({
        "teacher": {"d_in": d, "d_out": d, "singular_values": [float(x) for x in s], "label_noise": label_noise,
                    "basis": "random", "seed": int(teacher_seed)},
        "network": {"depth": int(depth), "width": int(width)}, "init": dict(init),
        "dynamics": {"kind": kind, "lr": lr, "batch_size": int(batch_size), "t_max": float(t_max)},
        "record": record, "ensemble": {"replicas": int(replicas), "seed": int(seed)}})
