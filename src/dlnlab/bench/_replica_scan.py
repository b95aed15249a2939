"""B8's engine scan (issue 18 item 5): the cost per replica-step of every stepping engine over the number of replicas
R, at fixed steps, so that a cost superlinear in R — a solve or a convergence loop that runs until the slowest
replica is done, a dense operation over the replica axis — shows as an exponent of the total cost in R above 1.

Engines (small per-replica problems, so that R reaches 10⁴ in seconds): the network engine's online SGD and
population GD (L = 3, d = 10, width 10), the per-mode SDE with the Euler–Maruyama and the drift-implicit scheme
(10 modes, L = 3), [Z]'s diagonal network (SGD, 10 paths, L = 3), sparse regression (SGD, d = 40) and the two-layer
ReLU network (SGD). Gradient flow is not scanned: its adaptive step is shared by the replicas of a run, so its cost
per replica-step is not defined. Fitted per engine: the least-squares slope of ln(total time) on ln R over
R ≥ ``b8_fit_replicas`` (1 when the cost per replica-step is flat). Check: the largest exponent over the engines.
"""

from __future__ import annotations

import numpy as np

from ._engine import whole_run
from ._machine import timed


def _network(kind: str):
    def config(replicas: int, steps: int):
        from ..config import Config

        dyn = {"kind": kind, "lr": 0.01, "steps": steps} | ({"batch_size": 1} if kind == "sgd" else {})
        return Config.from_dict({
            "teacher": {"d_in": 10, "d_out": 10, "spectrum": "geometric", "rank": 10, "s_max": 3.0, "ratio": 0.7},
            "network": {"depth": 3, "width": 10}, "init": {"kind": "gaussian", "gamma": 1.5}, "dynamics": dyn,
            "record": {"n_times": 2, "spacing": "linear", "observables": ["loss"]},
            "ensemble": {"replicas": replicas, "seed": 0}})
    return config


def _modes(scheme: str):
    def config(replicas: int, steps: int):
        from ..engines import mode_config

        return mode_config(np.geomspace(2.0, 0.2, 10).tolist(), depth=3, lr=0.01, batch_size=1, label_noise=0.1,
                           m0=0.01, kind="sde", scheme=scheme, noise="exact", steps=steps, n_times=2, replicas=replicas)
    return config


def _diagonal(replicas: int, steps: int):
    from ..engines import diagonal_config
    from ..model import DiagonalModel

    return diagonal_config(DiagonalModel(depth=3, n_paths=10, label_noise=0.5), kind="sgd", lr=0.05, v0=[0.5] * 10,
                           steps=steps, n_times=2, replicas=replicas)


def _regression(replicas: int, steps: int):
    from ..engines import regression_config

    return regression_config(None, "sgd", init_scale=0.1, lr=0.01, batch_size=4, steps=steps, n_times=2,
                             replicas=replicas)


def _relu(replicas: int, steps: int):
    from ..engines import relu_config
    from ..model import ReluTask

    return relu_config(ReluTask(d=3, hidden=6, label_noise=0.5), lr=0.05, batch_size=2, steps=steps, n_times=2,
                       replicas=replicas, n_mc=100)


#: Engine name → ``config(replicas, steps)``.
ENGINES = {"network_sgd": _network("sgd"), "network_gd": _network("gd"), "modes_em": _modes("em"),
           "modes_implicit": _modes("implicit"), "diagonal_sgd": _diagonal, "regression_sgd": _regression,
           "relu_sgd": _relu}


def log_slope(x, y) -> float | None:
    """Least-squares slope of ln y on ln x (None with fewer than two distinct x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(np.unique(x)) < 2:
        return None
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def engine_scan(replicas: tuple, steps: int, fit_replicas: int, repeats: int) -> dict:
    """Per engine: seconds per replica-step at each R, and the exponent of the total cost in R over R ≥
    ``fit_replicas``."""
    out = {}
    for name, config in ENGINES.items():
        rows = []
        for R in replicas:
            run, _ = whole_run(config(R, steps))
            t, _ = timed(run, repeats)
            rows.append({"replicas": R, "s_per_replica_step": t["best_s"] / (R * steps), "best_s": t["best_s"],
                         "cpu_s": t["cpu_s"]})
        fit = [r for r in rows if r["replicas"] >= fit_replicas]
        out[name] = {"points": rows, "fit_over_replicas": [r["replicas"] for r in fit],
                     "replica_exponent": log_slope([r["replicas"] for r in fit], [r["best_s"] for r in fit])}
    return out
