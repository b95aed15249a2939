"""An example dlnlab plugin (``docs/plugins.md``): one paper and one experiment, its claims rows computed.

The paper "EX" claims: SGD with batch size 1 on the one-parameter regression ``y = s + σ ε`` (input 1, loss
``(w − y)²/2``, step ``η``) settles to a law of mean ``s`` and, for small ``η``, variance ``ησ²/2`` (the SDE
``dw = −(w − s) dt + √η σ dB`` in dlnlab's time ``t = η·step``). The recursion ``w ← w − η(w − y)`` has the exact
stationary variance ``ησ²/(2 − η)``: the small-η law is off by the factor ``2/(2 − η)``, ``η/2`` to first order,
which is the model budget of the measured row.
"""

from __future__ import annotations

import numpy as np

from dlnlab import figures
from dlnlab.analysis import stats
from dlnlab.experiments import ExperimentResult, Figure, register, register_paper
from dlnlab.experiments.claims import Claim, Tolerance, setting

PAPER = "EX"
NAME = "example_label_noise"
register_paper(PAPER, "A. Example (2026) — label-noise SGD settles at variance ησ²/2")


def simulate(p: dict) -> np.ndarray:
    """Every replica's weight at ``t_max`` from the far start ``w0`` (one vectorised SGD step per iteration)."""
    rng = np.random.default_rng(p["seed"])
    w = np.full(p["replicas"], float(p["w0"]))
    for _ in range(round(p["t_max"] / p["lr"])):
        y = p["s"] + p["noise"] * rng.standard_normal(w.size)
        w -= p["lr"] * (w - y)
    return w


@register(NAME, paper=PAPER, cost="~2 s",
          claim="SGD with label noise settles at variance ησ²/2 (small η) around the teacher",
          quick={"lr": 0.05, "noise": 1.0, "s": 2.0, "w0": 10.0, "t_max": 20.0, "replicas": 100_000, "seed": 0},
          full={"lr": 0.05, "noise": 1.0, "s": 2.0, "w0": 10.0, "t_max": 20.0, "replicas": 1_000_000, "seed": 0},
          smoke={"replicas": 40_000})
def example_label_noise(p: dict, out) -> ExperimentResult:
    w = simulate(p)  # simulate
    lr, noise = p["lr"], p["noise"]
    law = lr * noise**2 / 2
    at = setting(lr=lr, noise=noise)
    budget = Tolerance.within(relative=lr, why="the O(η) discretisation: the exact recursion's variance is "
                                               "2/(2 − η) times the law (η/2 to first order), budget η")
    rows = [  # estimate -> claims
        Claim(experiment=NAME, key="variance", setting=at, paper=PAPER, claim="stationary variance ησ²/2",
              quantity="Var w at t_max (from w0 = 10: the transient (1 − η)^n·8 is < 1e-7)", theory=law,
              estimate=stats.group_estimate(w, stat=np.var), tolerance=budget, kind="measured", source="paper"),
        Claim(experiment=NAME, key="discrete-variance", setting=at, paper=PAPER,
              claim="the budget covers the exact discrete correction", quantity="ησ²/(2 − η), closed form",
              theory=law, estimate=stats.Estimate.exact(lr * noise**2 / (2 - lr)), tolerance=budget, kind="theory",
              source="derived"),
    ]
    fig, ax = figures.subplots(figsize=(5, 3.5))  # figures
    ax.hist(w, bins=80, density=True, alpha=0.6, label="SGD")
    x = np.linspace(w.min(), w.max(), 200)
    ax.plot(x, np.exp(-(x - p["s"]) ** 2 / (2 * law)) / np.sqrt(2 * np.pi * law), label="law N(s, ησ²/2)")
    ax.set(xlabel="w", ylabel="density")
    ax.legend()
    caption = "The weights at t_max against the small-η law: the same bell, the width within η/2."
    return ExperimentResult(NAME, claims=rows, figures=[Figure(figures.save(fig, out, "law"), caption)])
