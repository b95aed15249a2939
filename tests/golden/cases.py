"""The golden cases: small runs of every engine whose datasets must not change under refactoring (issue 13).

Each case is a function returning an ``xarray.Dataset``. ``python -m tests.golden.record`` (run from the repo root)
writes every data variable and coordinate of every case to ``tests/golden/golden.npz`` with the platform it was
recorded on (``golden.json``); ``tests/test_golden.py`` recomputes them and compares bitwise.
"""

from __future__ import annotations

import numpy as np

import dlnlab


def _cfg(**sections):
    base = {
        "teacher": {"d_in": 4, "d_out": 3, "singular_values": [2.0, 1.0, 0.5], "label_noise": 0.3},
        "network": {"depth": 3, "width": 5},
        "init": {"kind": "gaussian", "gamma": 1.5},
        "dynamics": {"kind": "sgd", "lr": 0.05, "batch_size": 4, "steps": 60},
        "record": {"n_times": 7, "chunks": 3},
        "ensemble": {"replicas": 3, "seed": 11},
    }
    for sec, vals in sections.items():
        base.setdefault(sec, {}).update(vals)
    return dlnlab.Config.from_dict(base)


def flow():
    """Recorded with the only flow solver then, diffrax's Dopri5: now ``solver = "explicit"`` (the default became
    ``"auto"``; tests/engines/test_flow.py checks that it agrees with this to the accuracy contract)."""
    return dlnlab.simulate(_cfg(dynamics={"kind": "flow", "steps": None, "t_max": 3.0, "rtol": 1e-8,
                                          "solver": "explicit"},
                                init={"gamma": None, "scale": 0.1}))


def gd():
    return dlnlab.simulate(_cfg(dynamics={"kind": "gd"}, teacher={"input_variance": [1.0, 2.0, 0.5, 1.5]}))


def sgd_stacked():
    return dlnlab.simulate(_cfg(dynamics={"steps": None, "t_max": 2.0, "lr": [0.02, 0.05]},
                                teacher={"label_noise": [0.0, 0.5]}))


def sgd_finite_epochs():
    return dlnlab.simulate(_cfg(data={"kind": "finite", "n_samples": 10, "whiten": True}))


def sgd_finite_replacement():
    return dlnlab.simulate(_cfg(data={"kind": "finite", "n_samples": 10, "sampling": "with_replacement"}))


def sde_exact():
    return dlnlab.simulate(_cfg(dynamics={"kind": "sde", "noise": "exact"}, init={"gamma": [1.0, 2.0]}))


def sde_label():
    return dlnlab.simulate(_cfg(dynamics={"kind": "sde", "noise": "label", "dt": 0.02}))


def gd_completion():
    return dlnlab.simulate(_cfg(teacher={"label_noise": 0.0}, data={"kind": "completion", "observed_fraction": 0.7},
                                dynamics={"kind": "gd"}))


def aligned_sgd_extra_observables():
    return dlnlab.simulate(_cfg(init={"kind": "aligned", "gamma": None, "scale": 0.01, "hidden_basis": "identity"},
                                record={"observables": ["loss", "mode_strength", "end_to_end", "residual"]}))


def _mode_cfg(**kw):
    from dlnlab.engines import mode_config

    args = {"depth": 3, "lr": 0.02, "batch_size": 2, "label_noise": 0.4, "m0": 0.05, "steps": 80, "n_times": 9,
            "replicas": 4, "seed": 3}
    args.update(kw)
    return mode_config([2.0, 1.0], **args)


def modes_sgd():
    return dlnlab.simulate(_mode_cfg())


def modes_em():
    return dlnlab.simulate(_mode_cfg(kind="sde", scheme="em"))


def modes_log_stacked():
    return dlnlab.simulate(_mode_cfg(kind="sde", scheme="log", m0=[0.05, 0.2], steps=None, t_max=1.6))


def modes_implicit_unbalanced():
    return dlnlab.simulate(_mode_cfg(kind="sde", scheme="implicit", m0=None,
                                     layer_values=[[0.5, 0.4], [0.3, 0.4], [0.4, 0.3]]))


def _diag_cfg(model=None, **kw):
    from dlnlab.engines import diagonal_config
    from dlnlab.model import DiagonalModel

    args = {"depth": 2, "n_paths": 3, "s": 1.0, "label_noise": 0.5}
    args.update(model or {})
    return diagonal_config(DiagonalModel(**args), **kw)


def diagonal_sgd():
    return dlnlab.simulate(_diag_cfg(kind="sgd", lr=0.05, batch_size=2, steps=300, n_times=6, replicas=3, seed=2,
                                     init_scale=0.3))


def diagonal_sde_isotropic():
    return dlnlab.simulate(_diag_cfg({"weight_decay": 0.01}, kind="sde", lr=[0.02, 0.04, 0.06], dt=0.01, t_max=2.0,
                                     n_times=5, replicas=1, common_random_numbers=False, seed=1, v0=[0.3, -0.2, 0.1],
                                     noise="isotropic"))


def diagonal_sde_log():
    return dlnlab.simulate(_diag_cfg({"depth": 3}, kind="sde_log", lr=0.05, t_max=3.0, n_times=5, spacing="log",
                                     replicas=3, seed=4, v0=[0.3, 0.2, 0.1]))


def diagonal_flow():
    return dlnlab.simulate(_diag_cfg(kind="flow", lr=0.1, dt=0.01, t_max=2.0, n_times=5, replicas=2,
                                     v0=[0.1, 0.05, 0.02]))


def relu_sgd():
    from dlnlab.engines import relu_config
    from dlnlab.model import ReluTask

    return dlnlab.simulate(relu_config(ReluTask(d=3, hidden=6, label_noise=0.5), lr=0.05, batch_size=2, steps=40,
                                       n_times=5, replicas=2, seed=5, n_mc=200, n_bound_records=2))


CASES = {f.__name__: f for f in (
    flow, gd, sgd_stacked, sgd_finite_epochs, sgd_finite_replacement, sde_exact, sde_label, gd_completion,
    aligned_sgd_extra_observables, modes_sgd, modes_em, modes_log_stacked, modes_implicit_unbalanced,
    diagonal_sgd, diagonal_sde_isotropic, diagonal_sde_log, diagonal_flow, relu_sgd)}


def arrays(ds) -> dict[str, np.ndarray]:
    """Every data variable and coordinate of ``ds`` as plain arrays (what the golden file stores)."""
    out = {}
    for name, var in {**ds.data_vars, **ds.coords}.items():
        out[name] = np.asarray(var.values)
    return out
