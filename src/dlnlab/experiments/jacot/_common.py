"""Shared pieces of the [J] experiments (Jacot, Ged, Şimşek, Hongler, Gabriel; ``saddle_to_saddle.md``): every
formula beyond [J]'s abstract is our derivation (``source = "derived"``; the abstract's own statements ``paper``).

* :func:`row` — a claims row of [J];
* the power-test factors of the theory inputs come from :func:`dlnlab.experiments.base.theory_factors`: an
  experiment multiplies an input by its factor **only where it computes theory values** (saddle losses, saddle maps, closed forms, the
  regime a γ falls in), never in a simulation;
* :func:`perturbed_s` — the teacher spectrum the theory side uses (``s × f_s``, and ``s_2 × f_s2``);
* :func:`teacher_config` / :func:`network_config` — the whitened random-basis teacher and the networks of the [J]
  experiments.
"""

from __future__ import annotations

import numpy as np

from ...config import Config
from ..claims import Claim

PAPER = "J"


def row(experiment, key, setting, claim, quantity, theory, estimate, tolerance, *, kind="measured",
        source="derived", note=""):
    """A [J] claims row (``source`` ``derived`` unless [J]'s abstract states it: ``paper``)."""
    return Claim(experiment=experiment, key=key, setting=setting, paper=PAPER, claim=claim, quantity=quantity,
                 theory=float(theory), estimate=estimate, tolerance=tolerance, kind=kind, source=source, note=note)


def perturbed_s(s, f: dict) -> np.ndarray:
    """The teacher spectrum of the theory side: ``s × f["s"]``, its second value also × ``f["s2"]`` (where given)."""
    out = np.asarray(s, np.float64) * f.get("s", 1.0)
    if len(out) > 1:
        out[1] *= f.get("s2", 1.0)
    return out


def teacher_config(s, d: int, seed: int) -> dict:
    """The whitened teacher of the [J] experiments: ``d × d``, spectrum ``s`` (zeros beyond), random basis."""
    return {"d_in": int(d), "d_out": int(d), "singular_values": [float(x) for x in s], "basis": "random",
            "seed": int(seed)}


def network_config(*, s, d, depth, width, init, dynamics, n_times, replicas, seed, teacher_seed,
                   observables=("loss", "singular_values", "mode_strength", "end_to_end"), spacing="log") -> Config:
    """A full-matrix network on the [J] teacher (online population data), ``init`` and ``dynamics`` sections
    given, ``n_times`` records (log-spaced unless ``spacing``)."""
    return Config.from_dict({
        "teacher": teacher_config(s, d, teacher_seed), "network": {"depth": int(depth), "width": int(width)},
        "init": dict(init), "dynamics": dict(dynamics),
        "record": {"n_times": int(n_times), "spacing": spacing, "observables": list(observables)},
        "ensemble": {"replicas": int(replicas), "seed": int(seed)}})
