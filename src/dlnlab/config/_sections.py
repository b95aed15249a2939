"""The config sections and their fields: the one declarative table of what a config may contain.

Every field is declared once, with its default, its constraint (:mod:`._constraints`), a doc string, the models
(simulators) that use it and whether it may be *stacked* (given as a list: one group of replicas per value).
:data:`FIELDS` is that table keyed by dotted name (``"dynamics.lr"``); the config reference is generated from it.

Models: ``network`` (the deep linear network of :mod:`dlnlab.engines.network`: sections ``teacher``, ``data``,
``network``, ``init``), ``modes`` (the per-mode reduction, section ``modes``), ``diagonal`` ([Z]'s diagonal
network, section ``diagonal``), ``relu`` (the two-layer ReLU network, section ``relu``) and ``regression`` (a
diagonal network for sparse regression, section ``regression``). The sections
``dynamics``, ``record`` and ``ensemble`` are shared; a shared key that a model does not use must be omitted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, NamedTuple

from ._constraints import AnyOf, Boolean, Constraint, Interval, ListOf, Options, OrList, Text

MODELS = ("network", "modes", "diagonal", "relu", "regression")
#: The model sections of each model (a config has those of exactly one model).
MODEL_SECTIONS = {"network": ("teacher", "data", "network", "init"), "modes": ("modes",),
                  "diagonal": ("diagonal",), "relu": ("relu",), "regression": ("regression",)}
SHARED_SECTIONS = ("dynamics", "record", "ensemble")

BUILTIN_OBSERVABLES = ("loss", "singular_values", "mode_strength", "off_diagonal", "balancedness", "layer_norm",
                       "grad_norm", "noise_power", "effective_rank")
#: Built-in observables recorded only on request (not in the default list): full d_out × d_in matrices.
OPTIONAL_OBSERVABLES = ("end_to_end", "residual", "sharpness")

POSITIVE = Interval(Real, 0, None, closed="neither")
NONNEGATIVE = Interval(Real, 0, None, closed="left")
NUMBER = Interval(Real)
COUNT = Interval(Integral, 1, None, closed="left")
SEED = Interval(Integral, 0, None, closed="left")


class Field(NamedTuple):
    """One config key: dotted ``key``, ``default`` (``None``: not given / chosen by the model), ``constraint``,
    ``doc``, the ``models`` using it and whether it is ``stackable``."""

    key: str
    default: Any
    constraint: Constraint
    doc: str
    models: tuple
    stackable: bool

    @property
    def allowed(self) -> str:
        """What is allowed, in words (``None`` is allowed where the default is ``None``)."""
        extra = " (or omitted)" if self.default is None else ""
        return self.constraint.text + extra + ("; a list stacks replicas" if self.stackable else "")


def param(default, constraint: Constraint, doc: str, *, models=MODELS, stackable=False):
    return dataclasses.field(default=default, metadata={"constraint": constraint, "doc": doc, "models": models,
                                                        "stackable": stackable})


def _net(default, constraint, doc, stackable=False):
    return param(default, constraint, doc, models=("network",), stackable=stackable)


# ---------------------------------------------------------------------------------------------------------
# The network model


@dataclass(frozen=True)
class TeacherConfig:
    """Teacher ``M = Σ s_α u_α v_αᵀ``, inputs ``x ~ N(0, V diag(λ) Vᵀ)``, labels ``y = Mx + ε``."""

    d_in: int = _net(10, COUNT, "input dimension")
    d_out: int = _net(10, COUNT, "output dimension")
    singular_values: tuple | None = _net(None, ListOf(NONNEGATIVE),
                                         "explicit s_α (at most min(d_in, d_out)); for spectrum = 'explicit'")
    spectrum: str = _net("explicit", Options("explicit", "power", "geometric", "linear"), "family of the s_α")
    rank: int | None = _net(None, COUNT, "number of non-zero s_α of a family (at most min(d_in, d_out))")
    s_max: float = _net(1.0, POSITIVE, "largest s_α of a family")
    exponent: float = _net(1.0, NONNEGATIVE, "power family: s_i = s_max i^-exponent")
    ratio: float = _net(0.5, POSITIVE, "geometric family: s_i = s_max ratio^(i-1)")
    s_min: float | None = _net(None, POSITIVE, "linear family: from s_max down to s_min (default s_max/rank)")
    input_variance: float | tuple = _net(1.0, OrList(POSITIVE), "λ along the columns of V: a number or d_in numbers")
    label_noise: float | tuple = _net(0.0, OrList(NONNEGATIVE), "σ_ε, the label-noise standard deviation", stackable=True)
    basis: str = _net("random", Options("random", "identity"), "teacher bases U, V")
    seed: int = _net(0, SEED, "seed of U and V")


@dataclass(frozen=True)
class DataConfig:
    """Online (fresh samples every step), a finite dataset of ``n_samples``, or matrix completion: the training
    objective is ``½ Σ_{(i,j)∈Ω} (W − M)_ij²`` over a random set Ω of observed entries of the teacher ``M``
    (``observed_fraction`` of them, drawn with ``seed``); ``loss`` stays the full-matrix error ``½‖W − M‖²_F``."""

    kind: str = _net("online", Options("online", "finite", "completion"), "where the training samples come from")
    n_samples: int | None = _net(None, COUNT, "size of the finite dataset (data.kind = 'finite')")
    observed_fraction: float | None = _net(None, Interval(Real, 0, 1, closed="right"),
                                           "fraction of the entries of M observed (data.kind = 'completion')")
    whiten: bool = _net(False, Boolean(), "make the empirical input covariance exactly V diag(λ) Vᵀ")
    sampling: str = _net("without_replacement", Options("with_replacement", "without_replacement"),
                         "finite-data SGD: minibatches drawn with replacement or by shuffled epochs")
    seed: int = _net(0, SEED, "seed of the dataset (or of the observed entries)")


@dataclass(frozen=True)
class NetworkConfig:
    depth: int = _net(3, COUNT, "L, the number of weight matrices")
    width: int | tuple = _net(20, OrList(COUNT), "hidden width, or a list of depth - 1 widths")


@dataclass(frozen=True)
class InitConfig:
    kind: str = _net("gaussian", Options("gaussian", "aligned", "orthogonal", "file"), "initialisation")
    gamma: float | tuple | None = _net(None, OrList(NUMBER), "σ² = w^-γ (gaussian, orthogonal)", stackable=True)
    scale: float | tuple | None = _net(None, OrList(NONNEGATIVE), "explicit σ (gaussian, orthogonal) or m0 of every mode (aligned)",
                      stackable=True)
    scaling: str = _net("width", Options("width", "min_fan"),
                        "width: w = largest hidden width | min_fan: per layer min(d_l, d_{l-1})")
    strength: tuple | None = _net(None, ListOf(NONNEGATIVE), "aligned: per-mode m_α(0)")
    layer_values: tuple | None = _net(None, ListOf(ListOf(NUMBER)), "aligned unbalanced: depth rows of per-mode a_{l,α}")
    hidden_basis: str = _net("random", Options("random", "identity"), "aligned: random or identity hidden bases")
    path: str | None = _net(None, Text(), "file: an .npz with arrays W1..WL")


# ---------------------------------------------------------------------------------------------------------
# The per-mode, diagonal and ReLU models


def _of(model, default, constraint, doc, stackable=False):
    return param(default, constraint, doc, models=(model,), stackable=stackable)


@dataclass(frozen=True)
class ModesConfig:
    """The per-mode reduction of an aligned deep linear network: independent scalar chains ``m_α = Π_l a_{l,α}``,
    one per teacher mode (:mod:`dlnlab.engines.modes`); online data."""

    singular_values: tuple | None = _of("modes", None, ListOf(NONNEGATIVE), "the s_α, one per mode")
    input_variance: float | tuple = _of("modes", 1.0, OrList(POSITIVE), "λ_α: a number or one per mode")
    label_noise: float | tuple = _of("modes", 0.0, OrList(NONNEGATIVE), "σ_ε", stackable=True)
    depth: int = _of("modes", 3, COUNT, "L, the number of layers")
    m0: float | tuple | None = _of("modes", None, OrList(NONNEGATIVE), "balanced start: m_α(0) of every mode", stackable=True)
    strength: tuple | None = _of("modes", None, ListOf(NONNEGATIVE), "balanced start: per-mode m_α(0)")
    layer_values: tuple | None = _of("modes", None, ListOf(ListOf(NUMBER)),
                                     "unbalanced start: depth rows of per-mode a_{l,α}")
    record_layers: bool | None = _of("modes", None, Boolean(),
                                     "also record the per-layer values layer_sv (default: when unbalanced)")


@dataclass(frozen=True)
class DiagonalConfig:
    """[Z]'s diagonal linear network: ``n_paths`` paths of ``depth`` factors, scalar data ``y = s x + ε``
    (:mod:`dlnlab.engines.diagonal`); the initial factors from ``v0`` or ``init_scale`` (or given to the
    simulator)."""

    depth: int = _of("diagonal", 2, COUNT, "L, factors per path ([Z]'s D + 1)")
    n_paths: int = _of("diagonal", 1, COUNT, "d, the number of paths")
    input_variance: float = _of("diagonal", 1.0, POSITIVE, "λ = E x²")
    s: float = _of("diagonal", 1.0, NUMBER, "teacher slope: y = s x + ε")
    label_noise: float = _of("diagonal", 1.0, NONNEGATIVE, "σ_ε")
    weight_decay: float = _of("diagonal", 0.0, NONNEGATIVE, "ρ: (ρ/2)‖θ‖² added to the loss")
    v0: tuple | None = _of("diagonal", None, ListOf(NUMBER), "initial path values (balanced factors), n_paths values")
    init_scale: float | None = _of("diagonal", None, NONNEGATIVE, "initial factors i.i.d. N(0, init_scale²)")


@dataclass(frozen=True)
class ReluConfig:
    """A ``d → hidden → d`` ReLU network learning ``y = x + ε`` by online SGD (:mod:`dlnlab.engines.relu`)."""

    d: int = _of("relu", 20, COUNT, "input and output dimension")
    hidden: int = _of("relu", 200, COUNT, "hidden width")
    label_noise: float = _of("relu", 1.0, NONNEGATIVE, "σ_ε")
    scale1: float = _of("relu", 1.0, NONNEGATIVE, "W₁ ~ N(0, scale1²/d)")
    scale2: float = _of("relu", 1.0, NONNEGATIVE, "W₂ ~ N(0, scale2²/hidden)")
    n_mc: int = _of("relu", 2000, Interval(Integral, 100, None, closed="left"),
                    "fresh samples per record for the noise statistics (a multiple of 100)")
    n_bound_records: int = _of("relu", 5, SEED, "records (besides t = 0) at which the §3 bounds are computed")


@dataclass(frozen=True)
class RegressionConfig:
    """Sparse linear regression ``y = Xβ* + σε`` (``n_samples × d`` Gaussian design, ``sparsity`` non-zero target
    entries) by a diagonal network ``β = u ⊙ v`` or ``u^D − v^D`` from init scale α
    (:mod:`dlnlab.engines.regression`)."""

    n_samples: int = _of("regression", 20, COUNT, "n, the rows of the design X (typically n < d)")
    d: int = _of("regression", 40, COUNT, "d, the dimension of β")
    sparsity: int = _of("regression", 3, COUNT, "k, the non-zero entries of the target β* (random support)")
    target: float | tuple = _of("regression", 1.0, OrList(NUMBER), "the non-zero values of β*: a number or k numbers")
    label_noise: float = _of("regression", 0.0, NONNEGATIVE, "σ: y = Xβ* + σε")
    seed: int = _of("regression", 0, SEED, "seed of the design, the support and the label noise")
    depth: int = _of("regression", 2, Interval(Integral, 2, None, closed="left"), "D: β = u^D − v^D (power)")
    kind: str = _of("regression", "product", Options("product", "power"),
                    "product: β = u ⊙ v from (√2α, 0) (depth 2) | power: β = u^D − v^D from (α, α)")
    init_scale: float | tuple = _of("regression", 1e-3, OrList(POSITIVE), "α, the initialisation scale",
                                    stackable=True)


# ---------------------------------------------------------------------------------------------------------
# Shared sections

_DISCRETE = ("network", "modes", "diagonal")
#: The solvers of network gradient flow (``dynamics.solver``; :mod:`dlnlab.engines._flow`).
FLOW_SOLVERS = ("auto", "explicit", "implicit")
#: The arithmetic of the network gradient flow's gradient (``dynamics.arithmetic``; :mod:`dlnlab.engines._flow`).
FLOW_ARITHMETIC = ("auto", "float64", "double-double")


@dataclass(frozen=True)
class DynamicsConfig:
    kind: str = param("sgd", Options("flow", "gd", "sgd", "sde", "sde_log"),
                      "flow | gd | sgd | sde (diagonal also: sde_log, the balanced per-path SDE in ln|v|)")
    scheme: str | None = param(None, Options("em", "log", "implicit", "euler", "tamed", "tamed_sqrt"),
                               "SDE scheme: modes em | log | implicit (default em); diagonal euler | tamed | "
                               "tamed_sqrt (default tamed for sde_log, euler for sde)", models=("modes", "diagonal"))
    lr: float | tuple = param(0.01, OrList(POSITIVE), "η, the learning rate", stackable=True)
    batch_size: int = param(1, COUNT, "B, samples per step")
    steps: int | None = param(None, COUNT, "number of steps (or give t_max, or record.times)")
    t_max: float | str | None = param(None, AnyOf(POSITIVE, Options("auto")),
                                      "duration t = unit·steps (unit: η; SDE and diagonal flow: dt); network flow "
                                      "also 'auto': until the loss has settled (log records by decades)")
    noise: str = param("exact", Options("exact", "label", "isotropic"),
                       "SDE noise: exact covariance | its label-noise part | isotropic c²I", models=_DISCRETE)
    dt: float | None = param(None, POSITIVE, "SDE (diagonal: also flow) time step (default η)", models=_DISCRETE)
    isotropic_scale: float = param(1.0, NONNEGATIVE, "c of the isotropic noise", models=("network", "diagonal"))
    solver: str = param("auto", Options(*FLOW_SOLVERS),
                               "flow: auto (Dopri5, per replica switching to Rodas5P on the exact Hessian while the "
                               "explicit step is stiffness-limited) | explicit (diffrax Dopri5) | implicit "
                               "(Rodas5P throughout)", models=("network",))
    arithmetic: str = param("auto", Options(*FLOW_ARITHMETIC),
                            "flow: the gradient's arithmetic: float64 | double-double (its entries exact to ~1 ulp "
                            "where the float64 sum of O(1) terms loses the tiny gradient of an unlearned mode; "
                            "~10x the cost per gradient) | auto (double-double when L >= 3 and max|θ0|^(L-1) < "
                            "1e-12)", models=("network",))
    rtol: float = param(1e-10, POSITIVE, "flow: relative tolerance", models=("network", "regression"))
    atol: float | None = param(None, POSITIVE, "flow: absolute tolerance (default rtol·1e-3·max|θ0|)",
                               models=("network", "regression"))
    precision: str = param("float64", Options("float64", "float32"), "floating-point precision",
                           models=("network", "modes"))
    divergence_threshold: float | None = param(
        None, POSITIVE, "a replica with any |weight| above this is frozen and marked diverged (default 1e30; "
                        "relu: 1e3)", models=("network", "diagonal", "relu", "regression"))


@dataclass(frozen=True)
class RecordConfig:
    n_times: int = param(200, Interval(Integral, 2, None, closed="left"), "number of record times (with t = 0)")
    spacing: str = param("log", Options("log", "linear"), "spacing of the record times")
    t_min: float | None = param(None, POSITIVE, "first time after 0 (log spacing); default one step (flow with "
                                                "t_max = 'auto': 1e-3 over the fastest initial relative rate)")
    per_decade: int = param(20, COUNT, "flow with t_max = 'auto': records per decade of time", models=("network",))
    times: tuple | None = param(None, ListOf(NONNEGATIVE), "explicit increasing record times (t = 0 is added); "
                                                           "the run ends at the last one")
    observables: tuple = param(BUILTIN_OBSERVABLES, ListOf(Options(*BUILTIN_OBSERVABLES, *OPTIONAL_OBSERVABLES),
                                                           min_len=0),
                               "built-in observables to record", models=("network",))
    chunks: int = param(10, COUNT, "compiled chunks (progress, interrupt and checkpoint granularity)")


@dataclass(frozen=True)
class EnsembleConfig:
    replicas: int = param(1, COUNT, "seeds per stacked hyper-parameter combination")
    seed: int = param(0, SEED, "seed of the ensemble")
    common_random_numbers: bool = param(True, Boolean(), "stacked combinations reuse the member streams (true) "
                                                         "or every replica has its own (false)")


SECTIONS = {
    "teacher": TeacherConfig, "data": DataConfig, "network": NetworkConfig, "init": InitConfig,
    "modes": ModesConfig, "diagonal": DiagonalConfig, "relu": ReluConfig, "regression": RegressionConfig,
    "dynamics": DynamicsConfig, "record": RecordConfig, "ensemble": EnsembleConfig,
}


def _table() -> dict[str, Field]:
    out = {}
    for sec, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            m = f.metadata
            out[f"{sec}.{f.name}"] = Field(f"{sec}.{f.name}", f.default, m["constraint"], m["doc"], m["models"],
                                           m["stackable"])
    return out


#: Every config key: dotted name -> :class:`Field`.
FIELDS: dict[str, Field] = _table()
#: The stackable keys, in stacking order (the first varies slowest).
STACKABLE = ("dynamics.lr", "teacher.label_noise", "init.scale", "init.gamma", "modes.label_noise", "modes.m0",
             "regression.init_scale")
